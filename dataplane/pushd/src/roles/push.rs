//! `pushd push`: holds client WebSockets; dispatch streams deliveries to it over gRPC.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use prometheus_client::registry::Registry;
use pushcluster_auth::grpc::RemoteVerifier;
use pushcluster_config::{
    ConnArgs, HttpArgs, InternalArgs, LogArgs, MongoArgs, RedisArgs, ShutdownArgs,
};
use pushcluster_node::NodeId;
use pushcluster_node::grpc::NodeService;
use pushcluster_push::heartbeat::{beat, heartbeat};
use pushcluster_push::{Admission, AdmissionLimits, Hub, PushConfig, PushService};
use pushcluster_routing::redis::{RedisRouteTable, RedisTarget};
use pushcluster_server::Shutdown;
use pushcluster_server::grpc::{GrpcMetrics, GrpcServer};
use pushcluster_server::ops::Ops;
use pushcluster_server::role;
use pushcluster_store::mongo::MongoStore;
use pushcluster_telemetry::Metrics;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Address for client WebSockets (`/ws`; also /healthz, /readyz).
    #[arg(long, env = "PUSHD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of the Node gRPC service dispatch streams deliveries to.
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7001")]
    pub grpc_listen: SocketAddr,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PUSHD_ADMIN_LISTEN", default_value = "0.0.0.0:9080")]
    pub admin_listen: SocketAddr,
    /// This node's identity: the pod IP (Downward API `status.podIP`).
    #[arg(long, env = "PUSHD_NODE_IP")]
    pub node_ip: IpAddr,
    /// The auth role's gRPC address, e.g. http://auth:7003.
    #[arg(long, env = "PUSHD_AUTH_ADDR")]
    pub auth_addr: String,
    /// Timeout of a token check on connect.
    #[arg(long, env = "PUSHD_AUTH_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub auth_timeout: Duration,
    /// Also serve the demo page (`/`, `/demo.js`) and the JavaScript SDK
    /// (`/sdk/pushcluster.js`) next to `/ws`.
    #[arg(long, env = "PUSHD_DEMO_PAGE", default_value_t = false)]
    pub demo_page: bool,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

pub fn redis_target(r: &RedisArgs) -> RedisTarget {
    if r.redis_cluster {
        RedisTarget::Cluster(
            r.redis_url
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
        )
    } else {
        RedisTarget::Standalone(r.redis_url.clone())
    }
}

/// Connects to Redis, retrying until it answers or `stop` is near (a push node must start
/// even while Redis restarts).
pub async fn connect_routes(r: &RedisArgs) -> anyhow::Result<RedisRouteTable> {
    let target = redis_target(r);
    let mut delay = Duration::from_millis(200);
    for attempt in 1.. {
        match RedisRouteTable::connect(&target, r.route_ttl).await {
            Ok(t) => return Ok(t),
            Err(e) if attempt < 30 => {
                tracing::warn!(error = %e, attempt, "Redis not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!()
}

/// The push settings and admission limits of the connection flags (push role and standalone).
pub(crate) fn push_config(c: &ConnArgs) -> (PushConfig, AdmissionLimits) {
    let config = PushConfig {
        send_queue: c.send_queue,
        send_queue_bytes: c.send_queue_bytes,
        ping_interval: c.ping_interval,
        idle_timeout: c.idle_timeout,
        write_timeout: c.write_timeout,
        read_buffer: c.ws_read_buffer,
        reorder_window: c.reorder_window,
        ..PushConfig::default()
    };
    let limits = AdmissionLimits {
        max_connections: c.max_connections,
        max_per_user: c.max_connections_per_user,
        rate_per_ip: c.connect_rate_per_ip,
        burst_per_ip: c.connect_burst_per_ip,
    };
    (config, limits)
}

pub async fn run(args: PushArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    args.conn.validate()?;
    let http_limits = super::http_limits(&args.http)?;
    let internal = super::Internal::from_args(&args.internal)?;
    let verifier = RemoteVerifier::new(&internal.client, &args.auth_addr, args.auth_timeout)?;
    let (config, admission_limits) = push_config(&args.conn);
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    verifier.cache().metrics().register(&mut registry);
    let grpc_metrics = GrpcMetrics::new(&mut registry);
    let admission = Admission::new(admission_limits);
    admission.register(&mut registry);
    let commands = super::collect::mongo_commands(&mut registry);
    let ops = Ops::new(registry);
    let store = Arc::new(
        MongoStore::connect_with(
            &args.mongo.mongodb_uri,
            &args.mongo.mongodb_database,
            Some(commands),
        )
        .await?,
    );
    let routes = connect_routes(&args.redis).await?;
    let bound = role::bind(Some(args.listen), args.grpc_listen, args.admin_listen).await?;
    let node = NodeId(SocketAddr::new(args.node_ip, bound.grpc_addr.port()).to_string());
    tracing::info!(%node, "push node identity");
    let every = routes.ttl() / 3;
    let hub = Arc::new(Hub::new(node, Arc::new(routes), metrics.clone()));
    // Alive before the first route is written (readers skip entries of dead nodes).
    beat(&hub).await;
    let push = Arc::new(PushService {
        hub: hub.clone(),
        store,
        verifier: Arc::new(verifier),
        admission,
        metrics,
        config,
    });
    let shutdown = Shutdown::default();
    let beats = tokio::spawn(heartbeat(hub.clone(), every, shutdown.clone()));
    let grpc = GrpcServer::new(internal.token.clone(), grpc_metrics)
        .service(NodeService::server(hub.clone()))
        .tls(internal.tls.clone())
        .keepalive(Some(Duration::from_secs(20)))
        .serve(bound.grpc, &shutdown);
    let drain = {
        let (hub, metrics) = (hub.clone(), push.metrics.clone());
        async move {
            // Unroute first (one pass), so dispatch stops sending here; then close every
            // client with "going away, reconnect" and wait for them to go.
            hub.drain().await;
            while metrics.connections.get() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    role::run_until(
        role::Serving {
            ops,
            http: bound.http.map(|l| {
                let mut routes = push.router();
                if args.demo_page {
                    routes = routes.merge(crate::web::Web::new(None).router());
                }
                (l, routes)
            }),
            limits: http_limits,
            admin: bound.admin,
            shutdown,
            grace: args.shutdown.grace_period,
        },
        grpc,
        stop,
        drain,
    )
    .await;
    beats.abort();
    Ok(())
}
