//! `pushd collect`: the HTTP API and gRPC `Submit`; stores in MongoDB, hands to dispatch.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use pushcluster_collect::{Collect, SubmitService};
use pushcluster_config::{
    ApiKeyArgs, HttpArgs, InternalArgs, LimitsArgs, LogArgs, MongoArgs, OutboxArgs, ShutdownArgs,
};
use pushcluster_dispatch::handoff::RemoteHandoff;
use pushcluster_proto::grpc::collect_server::CollectServer;
use pushcluster_server::Shutdown;
use pushcluster_server::grpc::{GrpcMetrics, GrpcServer};
use pushcluster_server::ops::Ops;
use pushcluster_server::role;
use pushcluster_store::mongo::{CommandCounter, MongoStore};
use pushcluster_telemetry::Metrics;

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Address of the HTTP API (`/v1/messages`, `/v1/devices`; also /healthz, /readyz).
    #[arg(long, env = "PUSHD_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
    /// Address of the Collect gRPC service (`Submit`; same API keys as HTTP).
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7004")]
    pub grpc_listen: SocketAddr,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PUSHD_ADMIN_LISTEN", default_value = "0.0.0.0:9081")]
    pub admin_listen: SocketAddr,
    /// The dispatch role's gRPC address, e.g. http://dispatch:7002.
    #[arg(long, env = "PUSHD_DISPATCH_ADDR")]
    pub dispatch_addr: String,
    #[command(flatten)]
    pub api_keys: ApiKeyArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

pub async fn run(args: CollectArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let limits = args.limits.limits()?;
    let http_limits = super::http_limits(&args.http)?;
    let (api_keys, keys_watcher) = super::api_keys(&args.api_keys)?;
    let internal = super::Internal::from_args(&args.internal)?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let grpc_metrics = GrpcMetrics::new(&mut registry);
    let commands = mongo_commands(&mut registry);
    let ops = Ops::new(registry);
    let store = mongo_store(&args.mongo, commands).await?;
    store.set_handoff_lease(args.outbox.handoff_lease);
    let handoff =
        RemoteHandoff::new(&internal.client, &args.dispatch_addr).map_err(anyhow::Error::msg)?;
    let collect = Arc::new(Collect {
        store: store.clone(),
        handoff: Arc::new(handoff),
        api_keys: api_keys.clone(),
        limits,
        metrics: metrics.clone(),
    });
    let bound = role::bind(Some(args.listen), args.grpc_listen, args.admin_listen).await?;
    let shutdown = Shutdown::default();
    // Every replica may sweep: one at a time holds the sweep lease.
    let sweeper = tokio::spawn(crate::standalone::sweep(
        store,
        metrics,
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    // The public gRPC API: the API keys, no client certificates (business systems hold none).
    let grpc = GrpcServer::new(api_keys, grpc_metrics)
        .service(CollectServer::new(SubmitService {
            collect: collect.clone(),
        }))
        .serve(bound.grpc, &shutdown);
    role::run_until(
        role::Serving {
            ops,
            http: bound.http.map(|l| (l, collect.router())),
            limits: http_limits,
            admin: bound.admin,
            shutdown,
            grace: args.shutdown.grace_period,
        },
        grpc,
        stop,
        async {},
    )
    .await;
    sweeper.abort();
    if let Some(w) = keys_watcher {
        w.abort();
    }
    Ok(())
}

/// Labels of `pushd_mongo_commands_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    /// Empty for commands on no collection (`hello`, `ping`).
    collection: String,
}

/// Registers `pushd_mongo_commands_total{command,collection}` (every command this process's store sends,
/// from the driver's command events: benchmarks report commands per message) and returns
/// the store's hook that counts them.
pub(crate) fn mongo_commands(registry: &mut Registry) -> CommandCounter {
    let family = Family::<CommandLabels, Counter>::default();
    registry.sub_registry_with_prefix("pushd_mongo").register(
        "commands",
        "MongoDB commands sent, by command name and collection",
        family.clone(),
    );
    Arc::new(move |name: &str, collection: &str| {
        family
            .get_or_create(&CommandLabels {
                command: name.to_owned(),
                collection: collection.to_owned(),
            })
            .inc();
    })
}

/// The MongoDB store, usable even while MongoDB is down (503s until it answers); indexes are
/// ensured in the background. `commands` counts what it sends ([`mongo_commands`]).
pub(crate) async fn mongo_store(
    args: &MongoArgs,
    commands: CommandCounter,
) -> anyhow::Result<Arc<MongoStore>> {
    let (uri, db) = (args.mongodb_uri.clone(), args.mongodb_database.clone());
    let store = Arc::new(MongoStore::connect_with(&uri, &db, Some(commands)).await?);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            match MongoStore::connect(&uri, &db).await {
                Ok(_) => return tracing::info!("MongoDB indexes ready"),
                Err(e) => tracing::warn!(error = %e, "MongoDB not ready; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
    Ok(store)
}
