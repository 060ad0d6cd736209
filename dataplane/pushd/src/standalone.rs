//! `pushd standalone`: auth, collect, dispatch and push in one process, joined by in-process
//! channels, on the embedded redb store and the in-memory route table.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::StatusCode;
use prometheus_client::registry::Registry;
use pushcluster_auth::keys::ReloadingVerifier;
use pushcluster_auth::{ClaimRules, KeySources};
use pushcluster_collect::Collect;
use pushcluster_config::ConfigError;
use pushcluster_dispatch::{Dispatcher, MemoryRouteTable};
use pushcluster_proto::api::Limits;
use pushcluster_proto::delivery::{NodeId, now_ms};
use pushcluster_push::local::LocalTransport;
use pushcluster_push::{Hub, PushConfig, PushService};
use pushcluster_server::ops::Ops;
use pushcluster_server::{Handler, Shutdown, respond};
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
    pub data_dir: PathBuf,
    /// Client JWT keys (HS256 secret, RS256 PEM and JWKS files; files are re-read on change).
    pub keys: KeySources,
    /// What client JWTs' claims must say (`iss`, `aud`, leeway).
    pub claims: ClaimRules,
    pub api_key: String,
    pub limits: Limits,
    pub push: PushConfig,
    pub grace_period: Duration,
    pub sweep_interval: Duration,
    /// APNs, when `--apns-key-file` is given: mobile push for messages with a notification.
    pub apns: Option<pushcluster_apns::ApnsConfig>,
    /// Development only: the demo page carries the API key (`--dev-api-key-in-page`).
    pub dev_api_key_in_page: bool,
}

impl Config {
    pub fn from_args(a: StandaloneArgs) -> Result<Config, ConfigError> {
        a.secrets.validate()?;
        a.jwt.validate(a.secrets.jwt_secret.is_some())?;
        a.conn.validate()?;
        let keys = KeySources {
            hs256_secret: a.secrets.jwt_secret.map(String::into_bytes),
            rsa_public_key_files: a.jwt.jwt_public_key_file,
            jwks_file: a.jwt.jwt_jwks_file,
            ..KeySources::default()
        };
        keys.load().map_err(|e| ConfigError(e.to_string()))?;
        let claims = crate::roles::auth::claim_rules(&a.jwt_claims)?;
        let apns = crate::mobile::apns_config(&a.apns).map_err(|e| ConfigError(e.to_string()))?;
        if a.dev_api_key_in_page && !a.listen.ip().is_loopback() {
            return Err(ConfigError(format!(
                "--dev-api-key-in-page hands the API key to whoever loads the page; it needs a \
                 loopback --listen address, not {}",
                a.listen
            )));
        }
        Ok(Config {
            listen: a.listen,
            data_dir: a.data_dir,
            keys,
            claims,
            api_key: a.secrets.api_key,
            limits: a.limits.limits()?,
            push: PushConfig {
                send_queue: a.conn.send_queue,
                ping_interval: a.conn.ping_interval,
                idle_timeout: a.conn.idle_timeout,
                write_timeout: a.conn.write_timeout,
                read_buffer: a.conn.ws_read_buffer,
                ..PushConfig::default()
            },
            grace_period: a.shutdown.grace_period,
            sweep_interval: a.sweep_interval,
            apns,
            dev_api_key_in_page: a.dev_api_key_in_page,
        })
    }
}

/// Runs until `stop` completes, then drains within the grace period.
pub async fn run(config: Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let store: Arc<dyn MessageStore> = Arc::new(RedbStore::open(&config.data_dir)?);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let keys = Arc::new(ReloadingVerifier::new(
        config.keys.clone(),
        config.claims.clone(),
    )?);
    keys.metrics().register(&mut registry);
    keys.cache().metrics().register(&mut registry);
    let key_watcher = keys.watch(KEY_POLL);
    let mobile = crate::mobile::mobile_push(config.apns.clone(), store.clone(), &mut registry)?;
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
        api_key: config.api_key.clone(),
        limits: config.limits,
        metrics: metrics.clone(),
    });
    let push = Arc::new(PushService {
        hub: hub.clone(),
        store: store.clone(),
        verifier: keys,
        metrics: metrics.clone(),
        config: config.push.clone(),
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
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
    let server = tokio::spawn(pushcluster_server::serve(
        listener,
        handler(
            ops.clone(),
            collect,
            push,
            Web::new(
                config
                    .dev_api_key_in_page
                    .then_some(config.api_key.as_str()),
            ),
        ),
        shutdown.clone(),
    ));
    ops.set_ready(true);
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "pushd standalone ready");
    // One machine-readable line on stdout, for scripts and tests.
    println!("pushd listening on http://{addr}");

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
    Ok(())
}

fn handler(ops: Arc<Ops>, collect: Arc<Collect>, push: Arc<PushService>, web: Web) -> Handler {
    let web = Arc::new(web);
    Arc::new(move |req| {
        let (ops, collect, push, web) = (ops.clone(), collect.clone(), push.clone(), web.clone());
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            if path == "/ws" {
                return pushcluster_push::upgrade::handle(req, push).await;
            }
            if let Some(resp) = web.handle(req.method(), &path) {
                return resp;
            }
            if let Some(resp) = ops.handle(&path) {
                return resp;
            }
            if let Some(resp) = collect.handle(req).await {
                return resp;
            }
            respond::error(StatusCode::NOT_FOUND, format!("no route for {path}"), None)
        })
    })
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
