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
//! - [`apns`]: a fake APNs server (HTTP/2 over TLS, scripted replies) for the APNs sender.
//! - [`fcm`], [`hms`], [`xiaomi`], [`vivo`]: fake FCM, Huawei Push Kit, Xiaomi and vivo
//!   servers (auth checked as the vendor does, scripted with the vendor's reply bodies), on
//!   [`https`], their shared TLS + HTTP/2 / HTTP/1.1 server.
//! - [`redis`]: a Redis server, restartable on the same port, and a 3-master Redis Cluster.
//! - [`mongo`]: FerretDB (MongoDB wire protocol) on PostgreSQL or SQLite, or `MONGODB_URI`.
//! - [`postgres`]: a private PostgreSQL cluster per test process, under FerretDB.
//! - [`squid`]: an HTTP forward proxy with basic auth and a port ACL.
//! - [`dnsmasq`]: a DNS server with given A records, and a tiny resolver for tests.
//! - [`kube`]: etcd + kube-apiserver (+ kube-controller-manager), with a kubeconfig.
//! - [`kubenode`]: a whole single-node Kubernetes (kubelet, containerd, CNI, kube-proxy, CoreDNS)
//!   in its own namespaces, and images for it without a registry.
//! - [`kubepki`]: a CA, certificates and kubeconfigs for test control planes (`openssl`).
//! - [`pki`]: a CA and certificates for mutual TLS between pushd roles.
//! - [`Helm`], [`Kubectl`]: the built `helm` and `kubectl` binaries.
//! - [`node`]: Node.js and the npm tools (TypeScript, terser, playwright-core) for the web client.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

pub mod apns;
pub mod dnsmasq;
pub mod fcm;
pub mod hms;
pub mod https;
pub mod kube;
pub mod kubenode;
pub mod kubepki;
pub mod mongo;
pub mod node;
pub mod pki;
pub mod postgres;
pub mod redis;
pub mod squid;
pub mod tools;
pub mod vivo;
pub mod xiaomi;

pub use tools::{Helm, Kubectl, Tool};

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
///
/// ```no_run
/// let Some(helm) = pushcluster_test_support::require("helm") else { return };
/// ```
pub fn require(name: &str) -> Option<PathBuf> {
    find_tool(name).or_else(|| missing(name, services_required()))
}

fn missing(name: &str, required: bool) -> Option<PathBuf> {
    let msg = format!(
        "`{name}` not found in {}/bin or on PATH: run `make tools`",
        tools_dir().display()
    );
    skip_or_fail(&msg, required)
}

/// Something a test needs is not there (`msg` says what): fails the test when services are
/// required (see [`services_required`]), else skips it with a loud message.
pub fn unavailable<T>(msg: &str) -> Option<T> {
    skip_or_fail(msg, services_required())
}

fn skip_or_fail<T>(msg: &str, required: bool) -> Option<T> {
    if required {
        panic!("{msg} (required because CI or PUSHCLUSTER_REQUIRE_SERVICES is set)");
    }
    // Straight to fd 2: libtest captures `eprintln!` of passing tests, which would hide this.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {msg} ***\n");
    None
}

/// A free TCP port on 127.0.0.1 (bound, then released). Callers retry their start when the
/// port was taken in between (see [`retry_start`]).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free TCP ports on 127.0.0.1 (all bound at once, then released).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// Runs `attempt` up to 5 times (each picks new ports, so a port taken by a parallel test only
/// costs a retry); panics with the last error.
pub async fn retry_start<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for _ in 0..5 {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
    }
    panic!(
        "{what} did not start: {:#}",
        last.expect("at least one attempt")
    );
}

/// The last `lines` lines of a log file.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns on one thread that lives as long as the process: the parent-death signal fires when
/// the spawning *thread* exits, so children must not be spawned from short-lived threads.
fn spawn_guarded(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pushcluster-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (reply, result) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("spawner thread gone"))?;
    result
        .recv()
        .map_err(|_| std::io::Error::other("spawner thread gone"))?
}

/// A child process in its own process group, killed (SIGKILL to the whole group) and reaped on
/// drop, also when the test panics; killed by the kernel (parent-death signal) if the test
/// process itself dies.
pub struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
    reaped: bool,
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
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // Killed too when the test process dies without unwinding (SIGKILL, timeout).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child =
            spawn_guarded(cmd).map_err(|e| anyhow::anyhow!("failed to start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_owned(),
            log: log.to_owned(),
            reaped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file receiving the process's stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails (with the end of its log) if the process has already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.reaped = true;
            anyhow::bail!(
                "{} exited with {status}; end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// Waits until `check` succeeds while the process runs; on timeout the error carries the
    /// end of the process's log.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        timeout: Duration,
        mut check: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let name = self.name.clone();
        let result = wait_ready(&name, timeout, || {
            let alive = self.check_running();
            let fut = check();
            async move {
                alive?;
                fut.await
            }
        })
        .await;
        result.map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\nend of {}:\n{}",
                self.log.display(),
                log_tail(&self.log, 30)
            )
        })
    }

    /// Kills the process group and reaps the child.
    pub fn kill(&mut self) {
        if !self.reaped {
            self.kill_group();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Proc {
    /// SIGKILL to the whole group: helpers such as squid's auth programs included. Only while
    /// the child is not reaped, so its pid (= pgid) cannot have been reused.
    fn kill_group(&self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: killpg only sends a signal.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it succeeds or `timeout` passes; returns the last error on timeout.
pub async fn wait_ready<F, Fut>(what: &str, timeout: Duration, check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    poll_until(what, timeout, Duration::from_millis(50), check).await
}

/// [`wait_ready`] with a pause of `every` between checks (checks that start processes, such
/// as kubectl, should not run twenty times a second on a shared machine).
pub async fn poll_until<F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<()>
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
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Like [`wait_ready`], but panics with the last error after `secs` (for test bodies).
pub async fn eventually<F, Fut>(what: &str, secs: u64, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Err(e) = wait_ready(what, Duration::from_secs(secs), check).await {
        panic!("{e:#}");
    }
}

/// Prints `[TAG  12.3s] what` straight to fd 2 (libtest would hide `eprintln!` of a passing
/// test): the progress of a long test.
pub fn progress(start: Instant, tag: &str, what: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "[{tag} {:>6.1}s] {what}",
        start.elapsed().as_secs_f64()
    );
}

/// The value of the unlabelled metric `name` in a Prometheus text exposition.
pub fn metric_value(text: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .ok_or_else(|| anyhow::anyhow!("no metric {name}"))?
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("metric {name}: {e}"))
}

/// Connects to a TCP address, for readiness checks.
pub async fn tcp_ready(addr: SocketAddr) -> anyhow::Result<()> {
    tokio::net::TcpStream::connect(addr).await?;
    Ok(())
}

/// One `GET path` over HTTP/1.0 (for health and metrics endpoints): status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status line from {addr}{path}"))?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((code, body))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_skips_locally() {
        assert_eq!(missing("pushcluster-no-such-tool", false), None);
        assert_eq!(find_tool("pushcluster-no-such-tool"), None);
    }

    #[test]
    #[should_panic(expected = "run `make tools`")]
    fn missing_tool_fails_when_required() {
        missing("pushcluster-no-such-tool", true);
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>();
        assert!(a != b && b != c && a != c);
    }
}
