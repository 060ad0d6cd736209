//! The `pushd` binary's library: command line ([`cli`]), the standalone wiring
//! ([`standalone`]), the cluster roles ([`roles`]), the demo page and JavaScript SDK served to
//! browsers ([`web`]) and the small client tools ([`tools`]). Mobile push (every vendor) is
//! `pushcluster-mobile`; the roles only wire its flags.
#![forbid(unsafe_code)]

use std::process::ExitCode;

pub mod cli;
pub mod roles;
pub mod standalone;
pub mod tools;
pub mod web;

/// Runs a parsed command line; maps errors to exit codes.
pub async fn run(cli: cli::Cli) -> ExitCode {
    match cli.command {
        cli::Command::Standalone(args) => {
            pushcluster_telemetry::init(args.log.format());
            match standalone::Config::from_args(args) {
                Ok(config) => {
                    exit(standalone::run(config, pushcluster_server::shutdown::signal()).await)
                }
                Err(e) => {
                    eprintln!("pushd: {e}");
                    ExitCode::from(pushcluster_config::EXIT_CONFIG as u8)
                }
            }
        }
        cli::Command::Auth(args) => {
            pushcluster_telemetry::init(args.log.format());
            exit(roles::auth::run(args, pushcluster_server::shutdown::signal()).await)
        }
        cli::Command::Collect(args) => {
            pushcluster_telemetry::init(args.log.format());
            exit(roles::collect::run(args, pushcluster_server::shutdown::signal()).await)
        }
        cli::Command::Dispatch(args) => {
            pushcluster_telemetry::init(args.log.format());
            exit(roles::dispatch::run(args, pushcluster_server::shutdown::signal()).await)
        }
        cli::Command::Push(args) => {
            pushcluster_telemetry::init(args.log.format());
            exit(roles::push::run(args, pushcluster_server::shutdown::signal()).await)
        }
        cli::Command::Token(args) => exit(tools::token(args)),
        cli::Command::Send(args) => exit(tools::send(args).await),
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
