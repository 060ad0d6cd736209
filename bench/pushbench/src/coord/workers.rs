//! The worker processes: copies of this binary (`pushbench worker`), each answering one
//! JSON line per command.

use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::proto::{self, Reply};

pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn call(&mut self, cmd: &proto::Command) -> anyhow::Result<Reply> {
        let mut line = serde_json::to_vec(cmd)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        let reply = self
            .stdout
            .next_line()
            .await?
            .context("a worker exited (see its stderr above)")?;
        match serde_json::from_str(&reply)? {
            Reply::Failed { error } => bail!("worker: {error}"),
            r => Ok(r),
        }
    }
}

/// All workers of a run; killed on drop.
pub struct Workers {
    pub list: Vec<Worker>,
}

impl Workers {
    pub fn spawn(n: usize) -> anyhow::Result<Workers> {
        let exe = std::env::current_exe().context("locating pushbench")?;
        let mut list = Vec::with_capacity(n);
        for _ in 0..n {
            let mut child = Command::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("starting a worker")?;
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
            list.push(Worker {
                child,
                stdin,
                stdout,
            });
        }
        Ok(Workers { list })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Sends worker `i` the command `cmds[i]`, if any, and waits for every reply.
    pub async fn call_some(
        &mut self,
        cmds: Vec<Option<proto::Command>>,
    ) -> anyhow::Result<Vec<Option<Reply>>> {
        let calls = self
            .list
            .iter_mut()
            .zip(cmds.iter())
            .map(|(w, c)| async move {
                match c {
                    Some(c) => w.call(c).await.map(Some),
                    None => Ok(None),
                }
            });
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .collect()
    }

    /// The same command to every worker.
    pub async fn call_all(&mut self, cmd: &proto::Command) -> anyhow::Result<Vec<Reply>> {
        let calls = self.list.iter_mut().map(|w| w.call(cmd));
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .collect()
    }

    /// Tells every worker to quit and waits for it.
    pub async fn quit(mut self) {
        for w in &mut self.list {
            let mut line = serde_json::to_vec(&proto::Command::Quit).expect("serializes");
            line.push(b'\n');
            let _ = w.stdin.write_all(&line).await;
            let _ = w.stdin.flush().await;
        }
        for w in &mut self.list {
            let _ = w.child.wait().await;
        }
    }

    /// Pids of the workers (for their CPU time, besides what they report).
    pub fn pids(&self) -> Vec<u32> {
        self.list.iter().filter_map(|w| w.child.id()).collect()
    }
}
