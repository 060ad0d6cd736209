//! `pushd`: parse the command line, start logging, run the chosen role.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = pushd::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(pushd::run(cli))
}
