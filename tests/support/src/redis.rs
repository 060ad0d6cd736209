//! Redis: a single server (restartable on its port) and a 3-master cluster.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{Proc, free_port, require, run, wait_ready};

/// A `redis-server` on 127.0.0.1.
pub struct Redis {
    pub port: u16,
    pub url: String,
    bin: PathBuf,
    dir: TempDir,
    proc: Option<Proc>,
    args: Vec<String>,
}

impl Redis {
    /// Starts Redis, or `None` (skip) when it is not installed and not required.
    pub async fn start() -> Option<Redis> {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Option<Redis> {
        let bin = require("redis-server")?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port();
            let mut r = Redis {
                port,
                url: format!("redis://127.0.0.1:{port}"),
                bin: bin.clone(),
                dir: tempfile::Builder::new()
                    .prefix("pushcluster-redis-")
                    .tempdir()
                    .unwrap(),
                proc: None,
                args: extra.iter().map(|s| s.to_string()).collect(),
            };
            match r.launch().await {
                Ok(()) => return Some(r),
                Err(e) => last = Some(e),
            }
        }
        panic!("redis-server did not start: {:#}", last.unwrap());
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
        let result = wait_ready("redis", Duration::from_secs(10), || {
            let url = url.clone();
            let alive = proc.check_running(&log);
            async move {
                alive?;
                ping(&url).await
            }
        })
        .await;
        self.proc = Some(proc);
        result
    }

    /// Kills the server (as a crash would) without restarting it.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await.expect("redis restart");
    }

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
