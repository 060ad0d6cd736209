//! MongoDB for tests: the real one from `MONGODB_URI`, else a FerretDB started for the test,
//! on PostgreSQL (the process's shared cluster, see [`crate::postgres`]) or, with
//! `PUSHCLUSTER_FERRETDB_BACKEND=sqlite`, on SQLite in the test's temp dir.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mongodb::bson::doc;
use tempfile::TempDir;

use crate::postgres::Postgres;
use crate::{Proc, free_port, require, retry_start};

/// Selects FerretDB's storage: `postgresql` (the default) or `sqlite`.
pub const BACKEND_ENV: &str = "PUSHCLUSTER_FERRETDB_BACKEND";

/// The server behind a [`Mongo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A real MongoDB (`MONGODB_URI`).
    MongoDb,
    FerretDbPostgres,
    FerretDbSqlite,
}

impl Backend {
    /// FerretDB's backend from [`BACKEND_ENV`]; panics on an unknown value.
    fn ferretdb_from_env() -> Backend {
        match std::env::var(BACKEND_ENV).as_deref() {
            Err(_) | Ok("") | Ok("postgresql") | Ok("postgres") => Backend::FerretDbPostgres,
            Ok("sqlite") => Backend::FerretDbSqlite,
            Ok(other) => panic!("{BACKEND_ENV}={other:?}: expected `postgresql` or `sqlite`"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::MongoDb => "mongodb",
            Backend::FerretDbPostgres => "ferretdb-postgresql",
            Backend::FerretDbSqlite => "ferretdb-sqlite",
        }
    }
}

/// A MongoDB-compatible server and a database name unique to this test.
pub struct Mongo {
    pub uri: String,
    pub database: String,
    /// True when this is a real MongoDB from `MONGODB_URI`.
    pub real: bool,
    pub backend: Backend,
    /// FerretDB's debug listener (Prometheus text at `/debug/metrics`, e.g.
    /// `ferretdb_client_requests_total{command}`); none for `MONGODB_URI`.
    pub debug_addr: Option<std::net::SocketAddr>,
    /// PostgreSQL under FerretDB (shared by the process's tests).
    postgres: Option<&'static Postgres>,
    // Declared before `_dir`: the server is killed before its directory is removed.
    _proc: Option<Proc>,
    _dir: Option<TempDir>,
}

fn unique_db() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pushcluster_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Mongo {
    /// `MONGODB_URI` if set, else a FerretDB started for this test; `None` to skip.
    pub async fn start() -> Option<Mongo> {
        if let Ok(uri) = std::env::var("MONGODB_URI") {
            ping(&uri).await.expect("MONGODB_URI does not answer");
            return Some(Mongo {
                uri,
                database: unique_db(),
                real: true,
                backend: Backend::MongoDb,
                debug_addr: None,
                postgres: None,
                _proc: None,
                _dir: None,
            });
        }
        let backend = Backend::ferretdb_from_env();
        let bin = require("ferretdb")?;
        let postgres = match backend {
            Backend::FerretDbPostgres => Some(
                Postgres::shared()?
                    .unwrap_or_else(|e| panic!("PostgreSQL for FerretDB did not start: {e:#}")),
            ),
            _ => None,
        };
        Some(
            retry_start("ferretdb", || {
                let bin = bin.clone();
                async move {
                    let dir = tempfile::Builder::new()
                        .prefix("pushcluster-ferretdb-")
                        .tempdir()?;
                    let port = free_port();
                    let debug_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
                    let mut cmd = Command::new(&bin);
                    match postgres {
                        Some(pg) => {
                            cmd.arg("--handler=postgresql")
                                .arg(format!("--postgresql-url={}", pg.url("postgres")));
                        }
                        None => {
                            let data = dir.path().join("data");
                            std::fs::create_dir_all(&data)?;
                            cmd.arg("--handler=sqlite")
                                .arg(format!("--sqlite-url=file:{}/", data.display()));
                        }
                    }
                    cmd.arg(format!("--listen-addr=127.0.0.1:{port}"))
                        .arg(format!("--state-dir={}", dir.path().display()))
                        .arg(format!("--debug-addr={debug_addr}"))
                        .args(["--telemetry=disable", "--log-level=warn"]);
                    let mut proc = Proc::spawn("ferretdb", cmd, &dir.path().join("ferretdb.log"))?;
                    let uri = format!("mongodb://127.0.0.1:{port}/");
                    proc.wait_ready(Duration::from_secs(20), || {
                        let uri = uri.clone();
                        async move { ping(&uri).await }
                    })
                    .await?;
                    Ok(Mongo {
                        uri,
                        database: unique_db(),
                        real: false,
                        backend,
                        debug_addr: Some(debug_addr),
                        postgres,
                        _proc: Some(proc),
                        _dir: Some(dir),
                    })
                }
            })
            .await,
        )
    }

    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.uri)
            .await
            .expect("mongodb client")
    }

    pub async fn db(&self) -> mongodb::Database {
        self.client().await.database(&self.database)
    }

    /// The server processes behind this store, by name (none for `MONGODB_URI`): FerretDB,
    /// and PostgreSQL (shared by the process's tests; its backends are in its process group).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut pids: Vec<(&'static str, u32)> = Vec::new();
        if let Some(p) = &self._proc {
            pids.push(("ferretdb", p.pid()));
        }
        if let Some(pg) = self.postgres {
            pids.push(("postgres", pg.pid()));
        }
        pids
    }

    /// Kills the server (FerretDB only): "MongoDB down" for failure tests.
    pub fn kill(&mut self) {
        if let Some(p) = self._proc.as_mut() {
            p.kill();
        }
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        if self.real {
            // Leave a real MongoDB as we found it.
            let (uri, db) = (self.uri.clone(), self.database.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let c = mongodb::Client::with_uri_str(&uri).await.ok()?;
                    c.database(&db).drop().await.ok()
                })
            })
            .join();
        }
    }
}

async fn ping(uri: &str) -> anyhow::Result<()> {
    let mut opts = mongodb::options::ClientOptions::parse(uri).await?;
    opts.server_selection_timeout = Some(Duration::from_secs(2));
    opts.connect_timeout = Some(Duration::from_secs(2));
    let client = mongodb::Client::with_options(opts)?;
    client
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await?;
    Ok(())
}
