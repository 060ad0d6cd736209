//! `pushd dispatch`: stateless; looks users up in Redis and streams deliveries to push nodes.
//! With a push vendor configured (`--apns-…`, `--fcm-…`, `--hms-…`, `--xiaomi-…`,
//! `--vivo-…`) it also sends notifications to offline users' devices, reading devices and
//! writing per-device records in MongoDB.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use prometheus_client::registry::Registry;
use pushcluster_config::{LogArgs, MongoArgs, RedisArgs, ShutdownArgs};
use pushcluster_dispatch::Dispatcher;
use pushcluster_dispatch::service::DispatchService;
use pushcluster_dispatch::transport::addressing::{Addressing, DEFAULT_TEMPLATE, NodeResolver};
use pushcluster_dispatch::transport::grpc::GrpcTransport;
use pushcluster_proto::grpc::dispatch_server::DispatchServer;
use pushcluster_server::Shutdown;
use pushcluster_server::ops::Ops;

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "PUSHD_LISTEN", default_value = "0.0.0.0:8082")]
    pub listen: SocketAddr,
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
    /// Devices and mobile records (used only with a push vendor).
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub mobile: pushcluster_mobile::MobileArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

pub async fn run(args: DispatchArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Validate before connecting anywhere.
    let mobile = args.mobile.config()?;
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
    );
    let mut registry = Registry::default();
    let metrics = pushcluster_telemetry::Metrics::new(&mut registry);
    let mut dispatcher = Dispatcher::new(Arc::new(routes), transport).with_metrics(metrics);
    let mut retries = None;
    if mobile.is_enabled() {
        let store = super::collect::mongo_store(&args.mongo).await?;
        if let Some(mobile) = pushcluster_mobile::mobile_push(mobile, store, &mut registry)? {
            retries = Some(mobile.clone());
            dispatcher = dispatcher.with_mobile(mobile);
        }
    }
    let ops = Ops::new(registry);
    let bound = super::bind(args.listen, args.grpc_listen).await?;
    let shutdown = Shutdown::default();
    if let Some(mobile) = retries {
        let shutdown = shutdown.clone();
        pushcluster_mobile::spawn_retries(mobile, async move { shutdown.wait().await });
    }
    let grpc = super::serve_grpc(
        tonic::service::Routes::new(DispatchServer::new(DispatchService { dispatcher })),
        bound.grpc,
        &shutdown,
        None,
    );
    let handler = super::ops_handler(ops.clone());
    super::run_until(
        super::Serving {
            ops,
            http: bound.http,
            handler,
            shutdown,
            grace: args.shutdown.grace_period,
        },
        grpc,
        stop,
        async {},
    )
    .await
}
