//! The server under test, started by pushbench from a given `pushd` binary: `pushd
//! standalone`, or the local cluster (auth, collect, dispatch replicas, push nodes on
//! 127.0.0.2…, real Redis and FerretDB from the test-support harness). Every process runs in
//! its own process group with its log in a temp dir, and is killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use pushcluster_test_support::Proc;
use pushcluster_test_support::mongo::Mongo;
use pushcluster_test_support::redis::Redis;
use tempfile::TempDir;

/// Client token secret and API key of every server pushbench starts.
pub const JWT_SECRET: &str = "pushbench-jwt-secret-0123456789";
pub const API_KEY: &str = "pushbench-api-key-0123456789";

/// What to start.
#[derive(Debug, Clone)]
pub enum Topology {
    Standalone,
    Cluster {
        push_nodes: usize,
        dispatchers: usize,
    },
}

/// A running server under test.
pub struct Target {
    /// The HTTP API (`POST /v1/messages`).
    pub api: SocketAddr,
    /// Where clients connect (user `u` to `ws_nodes[u % len]`).
    pub ws_nodes: Vec<SocketAddr>,
    /// Every process whose CPU time is the server's, by name.
    pub procs: Vec<(String, u32)>,
    /// The processes that hold client connections (their RSS per connection is reported).
    pub conn_holders: Vec<u32>,
    /// `/metrics` of every pushd process, by name.
    pub metrics: Vec<(String, SocketAddr)>,
    /// Where messages are stored: `redb`, or the MongoDB server's kind.
    pub store: String,
    /// FerretDB's debug listener (its command counters).
    pub store_metrics: Option<SocketAddr>,
    /// Kept for their drop: pushd processes first, then the services, then the log dir.
    _roles: Vec<Proc>,
    _redis: Option<Redis>,
    _mongo: Option<Mongo>,
    logs: TempDir,
}

impl Target {
    pub async fn start(pushd: &Path, edge: bool, topology: &Topology) -> anyhow::Result<Target> {
        let logs = tempfile::Builder::new()
            .prefix("pushbench-server-")
            .tempdir()?;
        match topology {
            Topology::Standalone => standalone(pushd, edge, logs).await,
            Topology::Cluster {
                push_nodes,
                dispatchers,
            } => cluster(pushd, edge, logs, *push_nodes, *dispatchers).await,
        }
    }

    /// Where the server processes write their logs.
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// Leaves the logs (and the standalone data) in place after the run, for a post-mortem.
    pub fn keep_logs(&mut self) {
        self.logs.disable_cleanup(true);
    }
}

async fn standalone(pushd: &Path, edge: bool, logs: TempDir) -> anyhow::Result<Target> {
    let data = logs.path().join("data");
    let mut role = spawn(
        pushd,
        edge,
        "standalone",
        &[
            "--listen=127.0.0.1:0".into(),
            format!("--data-dir={}", data.display()),
        ],
        logs.path(),
        false,
    )
    .await?;
    let pid = role.proc.pid();
    role.proc.check_running()?;
    Ok(Target {
        api: role.http,
        ws_nodes: vec![role.http],
        procs: vec![("pushd".into(), pid)],
        conn_holders: vec![pid],
        metrics: vec![("pushd".into(), role.metrics)],
        store: "redb".into(),
        store_metrics: None,
        _roles: vec![role.proc],
        _redis: None,
        _mongo: None,
        logs,
    })
}

async fn cluster(
    pushd: &Path,
    edge: bool,
    logs: TempDir,
    push_nodes: usize,
    dispatchers: usize,
) -> anyhow::Result<Target> {
    let redis = Redis::start()
        .await
        .context("redis-server not found: run `make tools`")?;
    let mongo = Mongo::start()
        .await
        .context("FerretDB not found (and no MONGODB_URI): run `make tools`")?;
    let dir = logs.path();
    let mut procs: Vec<(String, u32)> = Vec::new();
    let mut roles = Vec::new();
    let mut metrics = Vec::new();
    let mut add = |name: String, r: Role, roles: &mut Vec<Proc>| {
        procs.push((name.clone(), r.proc.pid()));
        metrics.push((name, r.metrics));
        roles.push(r.proc);
        (r.http, r.grpc)
    };
    let local = |s: &str| s.to_string();
    let auth = spawn(
        pushd,
        edge,
        "auth",
        &[
            local("--listen=127.0.0.1:0"),
            local("--grpc-listen=127.0.0.1:0"),
        ],
        dir,
        true,
    )
    .await?;
    let (_, auth_grpc) = add("auth".into(), auth, &mut roles);
    let redis_args = [format!("--redis-url={}", redis.url)];
    // Dispatch too: the outbox path's dispatch reads the outbox (older ones: mobile records).
    let mongo_args = [
        format!("--mongodb-uri={}", mongo.uri),
        format!("--mongodb-database={}", mongo.database),
    ];
    let mut dispatch_addrs = Vec::new();
    for i in 0..dispatchers.max(1) {
        let mut args = vec![
            local("--listen=127.0.0.1:0"),
            local("--grpc-listen=127.0.0.1:0"),
            local("--node-addr-template={ip}:{port}"),
            local("--push-service=push-headless"),
            local("--namespace=bench"),
        ];
        args.extend(redis_args.iter().cloned());
        args.extend(mongo_args.iter().cloned());
        let d = spawn(pushd, edge, "dispatch", &args, dir, true).await?;
        let (_, grpc) = add(format!("dispatch-{i}"), d, &mut roles);
        dispatch_addrs.push(format!("http://{grpc}"));
    }
    let mut args = vec![
        local("--listen=127.0.0.1:0"),
        local("--grpc-listen=127.0.0.1:0"),
        format!("--dispatch-addr={}", dispatch_addrs.join(",")),
    ];
    args.extend(mongo_args.iter().cloned());
    let collect = spawn(pushd, edge, "collect", &args, dir, true).await?;
    let (api, _) = add("collect".into(), collect, &mut roles);
    let mut ws_nodes = Vec::new();
    let mut conn_holders = Vec::new();
    for i in 0..push_nodes.max(1) {
        let ip = format!("127.0.0.{}", 2 + i);
        let mut args = vec![
            format!("--listen={ip}:0"),
            format!("--grpc-listen={ip}:0"),
            format!("--node-ip={ip}"),
            format!("--auth-addr=http://{auth_grpc}"),
        ];
        args.extend(redis_args.iter().cloned());
        args.extend(mongo_args.iter().cloned());
        let p = spawn(pushd, edge, "push", &args, dir, true).await?;
        conn_holders.push(p.proc.pid());
        let (http, _) = add(format!("push-{i}"), p, &mut roles);
        ws_nodes.push(http);
    }
    if let Some(pid) = redis.pid() {
        procs.push(("redis".into(), pid));
    }
    procs.extend(mongo.pids().into_iter().map(|(n, p)| (n.to_string(), p)));
    Ok(Target {
        api,
        ws_nodes,
        procs,
        conn_holders,
        metrics,
        store: mongo.backend.name().into(),
        store_metrics: mongo.debug_addr,
        _roles: roles,
        _redis: Some(redis),
        _mongo: Some(mongo),
        logs,
    })
}

struct Role {
    proc: Proc,
    http: SocketAddr,
    grpc: SocketAddr,
    /// Where `/metrics` is: the admin port of binaries with the edge layer, else `http`.
    metrics: SocketAddr,
}

/// The internal token every role of a benchmark cluster shares (binaries with the edge layer
/// refuse to start without one).
const INTERNAL_TOKEN: &str = "pushbench-internal-token-0123456789";

/// `args` adapted to the binary: with the edge layer every role gets an admin port, clients
/// are not rate-limited (thousands connect from few addresses), and auth and dispatch serve
/// no `--listen` (their health is on the admin port).
fn edge_args(role: &str, args: &[String], edge: bool) -> Vec<String> {
    if !edge {
        return args.to_vec();
    }
    let host = args
        .iter()
        .find_map(|a| {
            a.strip_prefix("--grpc-listen=")
                .or(a.strip_prefix("--listen="))
        })
        .and_then(|a| a.rsplit_once(':').map(|(h, _)| h.to_owned()))
        .unwrap_or_else(|| "127.0.0.1".into());
    let mut out: Vec<String> = args
        .iter()
        .filter(|a| !(matches!(role, "auth" | "dispatch") && a.starts_with("--listen=")))
        .cloned()
        .collect();
    out.push(format!("--admin-listen={host}:0"));
    if matches!(role, "standalone" | "push") {
        out.push("--connect-rate-per-ip=0".into());
    }
    out
}

/// Starts `pushd ROLE ARGS…` and waits for the addresses it prints (`grpc`: cluster roles
/// also print their gRPC address).
async fn spawn(
    pushd: &Path,
    edge: bool,
    role: &str,
    args: &[String],
    dir: &Path,
    grpc: bool,
) -> anyhow::Result<Role> {
    let args = edge_args(role, args, edge);
    let mut cmd = Command::new(pushd);
    cmd.arg(role)
        .args(&args)
        .env("PUSHD_INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("PUSHD_JWT_SECRET", JWT_SECRET)
        .env("PUSHD_API_KEY", API_KEY)
        .env(
            "RUST_LOG",
            std::env::var("PUSHBENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        );
    let log: PathBuf = dir.join(format!("{role}-{}.log", unique()));
    let mut proc = Proc::spawn(&format!("pushd {role}"), cmd, &log)?;
    let found = |prefix: &str| -> Option<SocketAddr> {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|a| a.trim().parse().ok())
    };
    let public = !(edge && matches!(role, "auth" | "dispatch"));
    proc.wait_ready(Duration::from_secs(60), || {
        let ready = (!public || found("pushd listening on http://").is_some())
            && (!grpc || found("pushd grpc on ").is_some())
            && (!edge || found("pushd admin on http://").is_some());
        async move {
            anyhow::ensure!(ready, "no listening line yet");
            Ok(())
        }
    })
    .await?;
    let admin = found("pushd admin on http://");
    let http = found("pushd listening on http://")
        .or(admin)
        .expect("seen above");
    let grpc = if grpc {
        found("pushd grpc on ").expect("seen above")
    } else {
        http
    };
    let metrics = admin.unwrap_or(http);
    Ok(Role {
        proc,
        http,
        grpc,
        metrics,
    })
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
