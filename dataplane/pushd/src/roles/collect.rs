//! `pushd collect`: the HTTP API and gRPC `Submit`; stores in MongoDB, hands to dispatch.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use pushcluster_collect::{Collect, SubmitService};
use pushcluster_config::{LimitsArgs, LogArgs, MongoArgs, OutboxArgs, ShutdownArgs};
use pushcluster_dispatch::handoff::RemoteHandoff;
use pushcluster_proto::grpc::collect_server::CollectServer;
use pushcluster_server::ops::Ops;
use pushcluster_server::{Handler, Shutdown, respond};
use pushcluster_store::mongo::{CommandCounter, MongoStore};
use pushcluster_telemetry::Metrics;

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Address of the HTTP API (`/v1/messages`) and /healthz, /readyz, /metrics.
    #[arg(long, env = "PUSHD_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
    /// Address of the Collect gRPC service (`Submit`).
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7004")]
    pub grpc_listen: SocketAddr,
    /// The dispatch role's gRPC address, e.g. http://dispatch:7002.
    #[arg(long, env = "PUSHD_DISPATCH_ADDR")]
    pub dispatch_addr: String,
    /// Key business systems send as `Authorization: Bearer <key>`.
    #[arg(long, env = "PUSHD_API_KEY", hide_env_values = true)]
    pub api_key: String,
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
    if args.api_key.len() < 16 {
        anyhow::bail!("PUSHD_API_KEY must be at least 16 bytes");
    }
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let commands = mongo_commands(&mut registry);
    let ops = Ops::new(registry);
    let store = mongo_store(&args.mongo, commands).await?;
    store.set_handoff_lease(args.outbox.handoff_lease);
    let collect = Arc::new(Collect {
        store: store.clone(),
        handoff: Arc::new(RemoteHandoff::new(&args.dispatch_addr).map_err(anyhow::Error::msg)?),
        api_key: args.api_key.clone(),
        limits,
        metrics: metrics.clone(),
    });
    let bound = super::bind(args.listen, args.grpc_listen).await?;
    let shutdown = Shutdown::default();
    // Every replica may sweep: one at a time holds the sweep lease.
    let sweeper = tokio::spawn(crate::standalone::sweep(
        store,
        metrics,
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    let grpc = super::serve_grpc(
        tonic::service::Routes::new(CollectServer::new(SubmitService {
            collect: collect.clone(),
        })),
        bound.grpc,
        &shutdown,
        None,
    );
    let r = super::run_until(
        super::Serving {
            ops: ops.clone(),
            http: bound.http,
            handler: handler(ops, collect),
            shutdown,
            grace: args.shutdown.grace_period,
        },
        grpc,
        stop,
        async {},
    )
    .await;
    sweeper.abort();
    r
}

/// Labels of `pushd_mongo_commands_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
}

/// Registers `pushd_mongo_commands_total{command}` (every command this process's store sends,
/// from the driver's command events: benchmarks report commands per message) and returns
/// the store's hook that counts them.
pub(crate) fn mongo_commands(registry: &mut Registry) -> CommandCounter {
    let family = Family::<CommandLabels, Counter>::default();
    registry.sub_registry_with_prefix("pushd_mongo").register(
        "commands",
        "MongoDB commands sent, by command name",
        family.clone(),
    );
    Arc::new(move |name: &str| {
        family
            .get_or_create(&CommandLabels {
                command: name.to_owned(),
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

fn handler(ops: Arc<Ops>, collect: Arc<Collect>) -> Handler {
    Arc::new(move |req| {
        let (ops, collect) = (ops.clone(), collect.clone());
        Box::pin(async move {
            let path = req.uri().path().to_owned();
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
