//! `pushbench`: parse the command line, run the coordinator or a worker.

use clap::Parser;
use pushbench::cli::{Cli, Cmd};

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Worker => pushbench::worker::main(),
        Cmd::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?
            .block_on(pushbench::coord::run(*args)),
    }
}
