//! A worker process (`pushbench worker`, started by the coordinator): holds a slice of the
//! client connections and posts messages, on one thread (a current-thread runtime and
//! `Rc` state: no locks, no cross-thread wake-ups). Commands come on stdin, one JSON line
//! each, and are answered in order on stdout (see [`crate::proto`]).

use std::cell::RefCell;
use std::rc::Rc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::proto::{Command, Reply};

mod receive;
mod send;

pub use receive::Received;

/// Runs the worker until `quit` or the end of stdin.
pub fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve())
}

async fn serve() -> anyhow::Result<()> {
    let received = Rc::new(RefCell::new(Received::default()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Command>(&line) {
            Ok(Command::Connect(spec)) => receive::connect(spec, &received).await,
            Ok(Command::Send(spec)) => Reply::Sent(send::send(spec).await),
            Ok(Command::Stats { phase }) => Reply::Stats(received.borrow_mut().stats(phase)),
            Ok(Command::Count { phase }) => received.borrow_mut().count(phase),
            Ok(Command::Quit) => break,
            Err(e) => Reply::Failed {
                error: format!("bad command {line:?}: {e}"),
            },
        };
        let mut out = serde_json::to_vec(&reply)?;
        out.push(b'\n');
        stdout.write_all(&out).await?;
        stdout.flush().await?;
    }
    Ok(())
}
