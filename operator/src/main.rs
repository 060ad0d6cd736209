//! `pushcluster-operator`: parse the command line, start logging, run the operator.

use std::process::ExitCode;

use clap::Parser;
use pushcluster_operator::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    pushcluster_telemetry::init(config.log_format.telemetry());
    if let Err(e) = config.leader.lease() {
        eprintln!("pushcluster-operator: {e}");
        return ExitCode::from(64);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pushcluster-operator: failed to start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime
        .block_on(pushcluster_operator::run(
            config,
            pushcluster_operator::shutdown_signal(),
        ))
        .map_err(anyhow::Error::from);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "operator failed");
            ExitCode::FAILURE
        }
    }
}
