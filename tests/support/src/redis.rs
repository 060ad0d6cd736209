//! Redis: a single server (restartable on its port) and a 3-master cluster.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{Proc, free_port, require, retry_start, run, wait_ready};

/// A `redis-server` on 127.0.0.1, without persistence.
pub struct Redis {
    pub port: u16,
    pub url: String,
    bin: PathBuf,
    args: Vec<String>,
    // Declared before `dir`: the server is killed before its directory is removed.
    proc: Option<Proc>,
    dir: TempDir,
}

impl Redis {
    /// Starts Redis, or `None` (skip) when it is not installed and not required.
    pub async fn start() -> Option<Redis> {
        Self::start_with(&[]).await
    }

    /// Starts Redis with extra `redis-server` arguments (e.g. `--cluster-enabled yes`).
    pub async fn start_with(extra: &[&str]) -> Option<Redis> {
        let bin = require("redis-server")?;
        Some(
            retry_start("redis-server", || {
                let bin = bin.clone();
                async move {
                    let mut r = Redis::new(bin, free_port(), extra);
                    r.launch().await?;
                    Ok(r)
                }
            })
            .await,
        )
    }

    /// Starts Redis on a given port (one attempt: fails if the port is taken), e.g. to bring
    /// back a server on the address a component under test already knows.
    pub async fn start_on(port: u16, extra: &[&str]) -> Option<anyhow::Result<Redis>> {
        let bin = require("redis-server")?;
        let mut r = Redis::new(bin, port, extra);
        Some(r.launch().await.map(|()| r))
    }

    fn new(bin: PathBuf, port: u16, extra: &[&str]) -> Redis {
        Redis {
            port,
            url: format!("redis://127.0.0.1:{port}"),
            bin,
            args: extra.iter().map(|s| s.to_string()).collect(),
            proc: None,
            dir: tempfile::Builder::new()
                .prefix("pushcluster-redis-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args);
        let log = self.dir.path().join("redis.log");
        let mut proc = Proc::spawn("redis-server", cmd, &log)?;
        let url = self.url.clone();
        let result = proc
            .wait_ready(Duration::from_secs(10), || {
                let url = url.clone();
                async move { ping(&url).await }
            })
            .await;
        self.proc = Some(proc);
        result
    }

    /// Kills the server (SIGKILL, as a crash would) without restarting it.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the server again on the same port (empty: no persistence). Panics if it cannot.
    pub async fn restart(&mut self) {
        self.stop();
        let mut last = None;
        // The old socket may linger for a moment; the port is ours, so just try again.
        for _ in 0..20 {
            match self.launch().await {
                Ok(()) => return,
                Err(e) => last = Some(e),
            }
            self.stop();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("redis restart on port {}: {:#}", self.port, last.unwrap());
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The server's working directory (its log is `redis.log` there).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

async fn ping(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    anyhow::ensure!(pong == "PONG", "unexpected PING reply {pong}");
    Ok(())
}

/// A Redis Cluster of three masters, no replicas.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub async fn start() -> Option<RedisCluster> {
        let cli = require("redis-cli")?;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                Redis::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                    .await?,
            );
        }
        let mut cmd = Command::new(&cli);
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        run(&mut cmd).expect("redis-cli --cluster create");
        // Every node must agree the cluster is up before clients use it.
        for port in nodes.iter().map(|n| n.port) {
            wait_ready("redis cluster", Duration::from_secs(20), || {
                let out =
                    run(Command::new(&cli).args(["-p", &port.to_string(), "cluster", "info"]));
                async move {
                    let out = out?;
                    anyhow::ensure!(out.contains("cluster_state:ok"), "{out}");
                    Ok(())
                }
            })
            .await
            .expect("redis cluster ok");
        }
        Some(RedisCluster { nodes })
    }

    /// Node URLs, for `redis::cluster::ClusterClient`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }
}
