//! `pushd standalone`: auth, collect, dispatch and push in one process, joined by in-process
//! channels, on the embedded redb store and the in-memory route table.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use pushcluster_auth::keys::ReloadingVerifier;
use pushcluster_auth::{ClaimRules, KeySources};
use pushcluster_collect::Collect;
use pushcluster_config::ConfigError;
use pushcluster_dispatch::handoff::LocalHandoff;
use pushcluster_dispatch::{DispatchConfig, Dispatcher, worker};
use pushcluster_node::{LocalTransport, NodeId};
use pushcluster_proto::api::Limits;
use pushcluster_proto::delivery::now_ms;
use pushcluster_push::{Admission, AdmissionLimits, Hub, PushConfig, PushService};
use pushcluster_routing::MemoryRouteTable;
use pushcluster_server::http::HttpLimits;
use pushcluster_server::ops::Ops;
use pushcluster_server::{Secrets, Shutdown};
use pushcluster_store::MessageStore;
use pushcluster_store::redb::RedbStore;
use pushcluster_telemetry::Metrics;

use crate::cli::StandaloneArgs;
use crate::web::Web;

/// How often the JWT key files are checked for changes.
const KEY_POLL: Duration = Duration::from_secs(2);

/// Validated configuration of `pushd standalone`.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: std::net::SocketAddr,
    pub admin_listen: std::net::SocketAddr,
    pub data_dir: PathBuf,
    /// Client JWT keys (HS256 secret, RS256 PEM and JWKS files; files are re-read on change).
    pub keys: KeySources,
    /// What client JWTs' claims must say (`iss`, `aud`, leeway).
    pub claims: ClaimRules,
    /// The API keys (`--api-key-file` is re-read on change).
    pub api_keys: Arc<Secrets>,
    pub limits: Limits,
    pub push: PushConfig,
    pub admission: AdmissionLimits,
    pub http: HttpLimits,
    pub grace_period: Duration,
    pub sweep_interval: Duration,
    pub outbox: pushcluster_config::OutboxArgs,
    /// The push vendors configured: mobile push for messages with a notification.
    pub mobile: pushcluster_mobile::MobileConfig,
    /// Development only: the demo page carries the API key (`--dev-api-key-in-page`).
    pub dev_api_key_in_page: bool,
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
        let claims = crate::roles::auth::claim_rules(&a.jwt_claims)?;
        let api_keys = crate::roles::api_keys_list(&a.secrets.api_keys)
            .map_err(|e| ConfigError(e.to_string()))?;
        let mobile = a.mobile.config().map_err(|e| ConfigError(e.to_string()))?;
        if a.dev_api_key_in_page && !a.listen.ip().is_loopback() {
            return Err(ConfigError(format!(
                "--dev-api-key-in-page hands the API key to whoever loads the page; it needs a \
                 loopback --listen address, not {}",
                a.listen
            )));
        }
        let (push, admission) = crate::roles::push::push_config(&a.conn);
        Ok(Config {
            listen: a.listen,
            admin_listen: a.admin_listen,
            data_dir: a.data_dir,
            keys,
            claims,
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
            outbox: a.outbox,
            mobile,
            dev_api_key_in_page: a.dev_api_key_in_page,
        })
    }
}

/// Runs until `stop` completes, then drains within the grace period.
pub async fn run(config: Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let redb = RedbStore::open(&config.data_dir)?;
    redb.set_handoff_lease(config.outbox.handoff_lease);
    let store: Arc<dyn MessageStore> = Arc::new(redb);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let keys = Arc::new(ReloadingVerifier::new(
        config.keys.clone(),
        config.claims.clone(),
    )?);
    keys.metrics().register(&mut registry);
    keys.cache().metrics().register(&mut registry);
    let key_watcher = keys.watch(KEY_POLL);
    let api_key_watcher = config.api_keys.watch(KEY_POLL);
    let mobile =
        pushcluster_mobile::mobile_push(config.mobile.clone(), store.clone(), &mut registry)?;
    let admission = Admission::new(config.admission);
    admission.register(&mut registry);
    let ops = Ops::new(registry);

    let routes = Arc::new(MemoryRouteTable::default());
    let node = NodeId("local".into());
    let hub = Arc::new(Hub::new(node.clone(), routes.clone(), metrics.clone()));
    let transport = Arc::new(LocalTransport {
        node,
        sink: hub.clone(),
    });
    let mut dispatcher =
        Dispatcher::new(store.clone(), routes, transport, DispatchConfig::default())
            .with_metrics(metrics.clone());
    let retries = mobile.clone();
    if let Some(mobile) = mobile {
        dispatcher = dispatcher.with_mobile(mobile);
    }
    let (work, queue) = worker::queue(4096);
    let collect = Arc::new(Collect {
        store: store.clone(),
        handoff: Arc::new(LocalHandoff(work)),
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
        let shutdown = shutdown.clone();
        pushcluster_mobile::spawn_retries(mobile, async move { shutdown.wait().await });
    }
    let stopping = shutdown.clone();
    let workers = tokio::spawn(worker::run(dispatcher, queue, async move {
        stopping.wait().await
    }));
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
        .merge(
            Web::new(
                config
                    .dev_api_key_in_page
                    .then(|| config.api_keys.outgoing())
                    .as_deref(),
            )
            .router(),
        );
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
    hub.drain().await;
    let drained = tokio::time::timeout(config.grace_period, async {
        while metrics.connections.get() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = server.await;
        let _ = admin_server.await;
        let _ = sweeper.await;
        let _ = workers.await;
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
