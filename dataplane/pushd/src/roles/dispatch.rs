//! `pushd dispatch`: the outbox workers. Takes accepted batches from MongoDB (named by
//! collect's `Wake`, or claimed when their lease ran out), looks their users up in Redis and
//! streams deliveries to push nodes. With a push vendor configured (`--apns-…`, `--fcm-…`,
//! `--hms-…`, `--xiaomi-…`, `--vivo-…`) it also sends notifications to offline users' devices,
//! reading devices and writing per-device records in MongoDB.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use prometheus_client::registry::Registry;
use pushcluster_config::{InternalArgs, LogArgs, MongoArgs, OutboxArgs, RedisArgs, ShutdownArgs};
use pushcluster_dispatch::carried;
use pushcluster_dispatch::service::DispatchService;
use pushcluster_dispatch::{DispatchConfig, Dispatcher, worker};
use pushcluster_node::grpc::GrpcTransport;
use pushcluster_node::grpc::addressing::{Addressing, DEFAULT_TEMPLATE, NodeResolver};
use pushcluster_proto::grpc::dispatch_server::DispatchServer;
use pushcluster_server::Shutdown;
use pushcluster_server::grpc::{GrpcMetrics, GrpcServer};
use pushcluster_server::ops::Ops;
use pushcluster_server::role;

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PUSHD_ADMIN_LISTEN", default_value = "0.0.0.0:9082")]
    pub admin_listen: SocketAddr,
    /// Address of the Dispatch gRPC service collect hands messages to.
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7002")]
    pub grpc_listen: SocketAddr,
    /// How a push node's id (`ip:port`) becomes an address. Placeholders: {ip}, {ip_dashed},
    /// {port}, {service}, {namespace}, {cluster_domain}. Use `{ip}:{port}` outside Kubernetes.
    #[arg(long, env = "PUSHD_NODE_ADDR_TEMPLATE", default_value = DEFAULT_TEMPLATE)]
    pub node_addr_template: String,
    /// The push pods' headless Service.
    #[arg(long, env = "PUSHD_PUSH_SERVICE", default_value = "push-headless")]
    pub push_service: String,
    #[arg(long, env = "PUSHD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    #[arg(long, env = "PUSHD_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// DNS server for node names (default: the system's resolv.conf).
    #[arg(long, env = "PUSHD_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// The outbox (and, with a push vendor, devices and mobile records).
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Outbox batches dispatched at once.
    #[arg(long, env = "PUSHD_DISPATCH_IN_FLIGHT", default_value_t = 8)]
    pub in_flight: usize,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub mobile: pushcluster_mobile::MobileArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

pub async fn run(args: DispatchArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Validate before connecting anywhere.
    let mobile = args.mobile.config()?;
    let internal = super::Internal::from_args(&args.internal)?;
    let routes = super::push::connect_routes(&args.redis).await?;
    let resolver = NodeResolver::new(args.dns_server).map_err(anyhow::Error::msg)?;
    let transport = GrpcTransport::new(
        Addressing {
            template: args.node_addr_template.clone(),
            service: args.push_service.clone(),
            namespace: args.namespace.clone(),
            cluster_domain: args.cluster_domain.clone(),
        },
        resolver,
        internal.client.clone(),
    );
    let mut registry = Registry::default();
    let metrics = pushcluster_telemetry::Metrics::new(&mut registry);
    let grpc_metrics = GrpcMetrics::new(&mut registry);
    let commands = super::collect::mongo_commands(&mut registry);
    let store = super::collect::mongo_store(&args.mongo, commands).await?;
    let config = DispatchConfig {
        owner: format!("dispatch-{}-{}", std::process::id(), args.grpc_listen),
        in_flight: args.in_flight.max(1),
        lease: args.outbox.outbox_lease,
        claim_every: args.outbox.claim_every,
        ..DispatchConfig::default()
    };
    let mut dispatcher =
        Dispatcher::new(store.clone(), Arc::new(routes), transport, config).with_metrics(metrics);
    let mut retries = None;
    if let Some(mobile) = pushcluster_mobile::mobile_push(mobile, store, &mut registry)? {
        retries = Some(mobile.clone());
        dispatcher = dispatcher.with_mobile(mobile);
    }
    let ops = Ops::new(registry);
    let bound = role::bind(None, args.grpc_listen, args.admin_listen).await?;
    let shutdown = Shutdown::default();
    if let Some(mobile) = retries {
        let shutdown = shutdown.clone();
        pushcluster_mobile::spawn_retries(mobile, async move { shutdown.wait().await });
    }
    let (work, queue) = worker::queue(4096);
    let stopping = shutdown.clone();
    let workers = tokio::spawn(worker::run(dispatcher, queue, async move {
        stopping.wait().await
    }));
    let grpc = GrpcServer::new(internal.token.clone(), grpc_metrics)
        .service(
            DispatchServer::new(DispatchService { work })
                .max_decoding_message_size(carried::MAX_WAKE_BYTES),
        )
        .tls(internal.tls.clone())
        .serve(bound.grpc, &shutdown);
    role::run_until(
        role::Serving {
            ops,
            http: None,
            limits: Default::default(),
            admin: bound.admin,
            shutdown,
            grace: args.shutdown.grace_period,
        },
        grpc,
        stop,
        async {},
    )
    .await;
    // The batches in flight finish (or stay in the outbox for the next worker).
    let _ = workers.await;
    Ok(())
}
