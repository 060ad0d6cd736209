//! Real services for pushcluster's tests.
//!
//! Each service starts as a child process on free loopback ports with its own temp dir, is
//! waited on until it really answers, and is killed (with its temp dir removed) on drop — also
//! when the test panics. Tools are found in `$PUSHCLUSTER_TOOLS/bin` (default
//! `~/.cache/pushcluster/tools/bin`, filled by `make tools`), then on `PATH`.
//!
//! No silent skips: [`require`] fails the test when a tool is missing and `CI=true` or
//! `PUSHCLUSTER_REQUIRE_SERVICES=1`; otherwise the test is skipped with a loud message.
//!
//! - [`redis`]: a Redis server, restartable on the same port, and a 3-master Redis Cluster.
//! - [`mongo`]: FerretDB (MongoDB wire protocol, SQLite backend) or `MONGODB_URI`.
//! - [`squid`]: an HTTP forward proxy with basic auth and a port ACL.
//! - [`dnsmasq`]: a DNS server with given A records, and a tiny resolver for tests.
//! - [`kube`]: etcd + kube-apiserver (+ kube-controller-manager), with a kubeconfig.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod dnsmasq;
pub mod kube;
pub mod mongo;
pub mod redis;
pub mod squid;

/// Where `make tools` puts everything.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("PUSHCLUSTER_TOOLS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/pushcluster/tools"),
    }
}

/// Finds a tool in the tools dir, then on `PATH`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let cached = tools_dir().join("bin").join(name);
    if cached.exists() {
        return Some(cached);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// True when missing services must fail tests rather than skip them.
pub fn services_required() -> bool {
    let on = |v: &str| std::env::var(v).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    on("CI") || on("PUSHCLUSTER_REQUIRE_SERVICES")
}

/// Finds a tool, or fails (CI) / skips loudly (locally) when it is missing.
pub fn require(name: &str) -> Option<PathBuf> {
    if let Some(p) = find_tool(name) {
        return Some(p);
    }
    let msg = format!(
        "`{name}` not found in {}/bin or on PATH: run `make tools`",
        tools_dir().display()
    );
    if services_required() {
        panic!("{msg} (required because CI or PUSHCLUSTER_REQUIRE_SERVICES is set)");
    }
    eprintln!("\n*** SKIPPED: {msg} ***\n");
    None
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// A child process killed (SIGKILL, whole process group) on drop.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    /// Spawns `cmd` in its own process group, with stdout/stderr to `log` (appended).
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("failed to start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    pub fn check_running(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            anyhow::bail!("{} exited with {status}:\n{tail}", self.name);
        }
        Ok(())
    }

    /// Kills the process group and reaps the child.
    pub fn kill(&mut self) {
        let pgid = self.child.id() as i32;
        // Negative pid: the whole group (helpers such as squid's auth programs included).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it succeeds or `timeout` passes; returns the last error on timeout.
pub async fn wait_ready<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("{what} not ready after {timeout:?}: {e:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Connects to a TCP address, for readiness checks.
pub async fn tcp_ready(addr: SocketAddr) -> anyhow::Result<()> {
    tokio::net::TcpStream::connect(addr).await?;
    Ok(())
}

/// Runs a command to completion, failing with its output.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
