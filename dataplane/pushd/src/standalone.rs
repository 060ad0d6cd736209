//! `pushd standalone`: auth, collect, dispatch and push in one process, joined by in-process
//! channels, on the embedded redb store and the in-memory route table.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use http::StatusCode;
use prometheus_client::registry::Registry;
use pushcluster_auth::KeySources;
use pushcluster_auth::keys::ReloadingVerifier;
use pushcluster_collect::Collect;
use pushcluster_config::ConfigError;
use pushcluster_dispatch::{Dispatcher, MemoryRouteTable};
use pushcluster_proto::api::Limits;
use pushcluster_proto::delivery::{NodeId, now_ms};
use pushcluster_push::local::LocalTransport;
use pushcluster_push::{Admission, AdmissionLimits, Hub, PushConfig, PushService};
use pushcluster_server::http::HttpLimits;
use pushcluster_server::ops::Ops;
use pushcluster_server::{Secrets, Shutdown, respond};
use pushcluster_store::MessageStore;
use pushcluster_store::redb::RedbStore;
use pushcluster_telemetry::Metrics;

use crate::cli::StandaloneArgs;

/// How often the JWT key files are checked for changes.
const KEY_POLL: Duration = Duration::from_secs(2);

/// A minimal browser client (`GET /`): connects with `?token=`, shows and acks messages.
const DEMO_PAGE: &str = include_str!("demo.html");

/// Validated configuration of `pushd standalone`.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: std::net::SocketAddr,
    pub admin_listen: std::net::SocketAddr,
    pub data_dir: PathBuf,
    /// Client JWT keys (HS256 secret, RS256 PEM and JWKS files; files are re-read on change).
    pub keys: KeySources,
    /// The API keys (`--api-key-file` is re-read on change).
    pub api_keys: Arc<Secrets>,
    pub limits: Limits,
    pub push: PushConfig,
    pub admission: AdmissionLimits,
    pub http: HttpLimits,
    pub grace_period: Duration,
    pub sweep_interval: Duration,
    /// APNs, when `--apns-key-file` is given: mobile push for messages with a notification.
    pub apns: Option<pushcluster_apns::ApnsConfig>,
}

impl Config {
    pub fn from_args(a: StandaloneArgs) -> Result<Config, ConfigError> {
        a.secrets.validate()?;
        a.jwt.validate(a.secrets.jwt_secret.is_some())?;
        a.conn.validate()?;
        a.http.validate()?;
        let keys = KeySources {
            hs256_secret: a.secrets.jwt_secret.map(String::into_bytes),
            rsa_public_key_files: a.jwt.jwt_public_key_file,
            jwks_file: a.jwt.jwt_jwks_file,
            ..KeySources::default()
        };
        keys.load().map_err(|e| ConfigError(e.to_string()))?;
        let api_keys = crate::roles::api_keys_list(&a.secrets.api_keys)
            .map_err(|e| ConfigError(e.to_string()))?;
        let apns = crate::mobile::apns_config(&a.apns).map_err(|e| ConfigError(e.to_string()))?;
        let (push, admission) = crate::roles::push::push_config(&a.conn);
        Ok(Config {
            listen: a.listen,
            admin_listen: a.admin_listen,
            data_dir: a.data_dir,
            keys,
            api_keys,
            limits: a.limits.limits()?,
            push,
            admission,
            http: HttpLimits {
                request_timeout: a.http.http_request_timeout,
                header_timeout: a.http.http_header_timeout,
                max_in_flight: a.http.http_max_in_flight,
                ..HttpLimits::default()
            },
            grace_period: a.shutdown.grace_period,
            sweep_interval: a.sweep_interval,
            apns,
        })
    }
}

/// Runs until `stop` completes, then drains within the grace period.
pub async fn run(config: Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let store: Arc<dyn MessageStore> = Arc::new(RedbStore::open(&config.data_dir)?);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let keys = Arc::new(ReloadingVerifier::new(config.keys.clone())?);
    keys.metrics().register(&mut registry);
    let key_watcher = keys.watch(KEY_POLL);
    let api_key_watcher = config.api_keys.watch(KEY_POLL);
    let mobile = crate::mobile::mobile_push(config.apns.clone(), store.clone(), &mut registry)?;
    let admission = Admission::new(config.admission);
    admission.register(&mut registry);
    let ops = Ops::new(registry);

    let routes = Arc::new(MemoryRouteTable::default());
    let hub = Arc::new(Hub::new(
        NodeId("local".into()),
        routes.clone(),
        metrics.clone(),
    ));
    let mut dispatcher = Dispatcher::new(routes, Arc::new(LocalTransport { hub: hub.clone() }))
        .with_metrics(metrics.clone());
    let retries = mobile.clone();
    if let Some(mobile) = mobile {
        dispatcher = dispatcher.with_mobile(mobile);
    }
    let collect = Arc::new(Collect {
        store: store.clone(),
        handoff: Arc::new(dispatcher),
        api_keys: config.api_keys.clone(),
        limits: config.limits,
        metrics: metrics.clone(),
    });
    let push = Arc::new(PushService {
        hub: hub.clone(),
        store: store.clone(),
        verifier: keys,
        admission,
        metrics: metrics.clone(),
        config: config.push.clone(),
    });

    let bind = |addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen on {addr}"))
    };
    let listener = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let (addr, admin_addr) = (listener.local_addr()?, admin.local_addr()?);
    let shutdown = Shutdown::default();
    if let Some(mobile) = retries {
        crate::mobile::spawn_retries(mobile, shutdown.clone());
    }
    let sweeper = tokio::spawn(sweep(
        store.clone(),
        metrics.clone(),
        config.sweep_interval,
        shutdown.clone(),
    ));
    // One listener for everything public: the client surface, the API surface, the demo page.
    let routes = push
        .router()
        .merge(collect.router())
        .merge(ops.health_routes())
        .route("/", get(demo_page));
    let server = tokio::spawn(pushcluster_server::http::serve(
        listener,
        routes,
        config.http.clone(),
        shutdown.clone(),
    ));
    let admin_server = tokio::spawn(pushcluster_server::ops::serve_admin(
        admin,
        ops.clone(),
        shutdown.clone(),
    ));
    ops.set_ready(true);
    tracing::info!(%addr, %admin_addr, data_dir = %config.data_dir.display(), "pushd standalone ready");
    // Machine-readable lines on stdout, for scripts and tests.
    println!("pushd listening on http://{addr}");
    println!("pushd admin on http://{admin_addr}");

    stop.await;
    tracing::info!(grace = ?config.grace_period, "draining");
    ops.set_ready(false);
    shutdown.trigger();
    hub.drain();
    let drained = tokio::time::timeout(config.grace_period, async {
        while metrics.connections.get() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = server.await;
        let _ = admin_server.await;
        let _ = sweeper.await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("drained; exiting"),
        Err(_) => tracing::warn!(
            open = metrics.connections.get(),
            "grace period over; exiting with connections open"
        ),
    }
    key_watcher.abort();
    if let Some(w) = api_key_watcher {
        w.abort();
    }
    Ok(())
}

async fn demo_page() -> pushcluster_server::Resp {
    respond::text(StatusCode::OK, DEMO_PAGE, "text/html; charset=utf-8")
}

/// Marks expired messages every `every` until shutdown (shared with the collect role).
pub(crate) async fn sweep(
    store: Arc<dyn MessageStore>,
    metrics: Metrics,
    every: Duration,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        match store.expire(now_ms()).await {
            Ok(n) => {
                metrics.messages_expired.inc_by(n);
            }
            Err(e) => {
                metrics.store_error(e.metric_label());
                tracing::warn!(error = %e, "expiry sweep failed");
            }
        }
    }
}
