//! `pushd push`: holds client WebSockets; dispatch streams deliveries to it over gRPC.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use http::StatusCode;
use prometheus_client::registry::Registry;
use pushcluster_auth::grpc::RemoteVerifier;
use pushcluster_config::{ConnArgs, LogArgs, MongoArgs, RedisArgs, ShutdownArgs};
use pushcluster_dispatch::RouteTable;
use pushcluster_dispatch::routes::redis::RedisRouteTable;
use pushcluster_proto::delivery::NodeId;
use pushcluster_proto::grpc::node_server::NodeServer;
use pushcluster_push::grpc::{NodeService, heartbeat};
use pushcluster_push::{Hub, PushConfig, PushService};
use pushcluster_server::ops::Ops;
use pushcluster_server::{Handler, Shutdown, respond};
use pushcluster_store::mongo::MongoStore;
use pushcluster_telemetry::Metrics;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Address for client WebSockets (`/ws`) and /healthz, /readyz, /metrics.
    #[arg(long, env = "PUSHD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of the Node gRPC service dispatch streams deliveries to.
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7001")]
    pub grpc_listen: SocketAddr,
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
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

pub fn redis_target(r: &RedisArgs) -> pushcluster_dispatch::routes::redis::RedisTarget {
    use pushcluster_dispatch::routes::redis::RedisTarget;
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

pub async fn run(args: PushArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    args.conn.validate()?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let verifier = Arc::new(RemoteVerifier::new(&args.auth_addr, args.auth_timeout)?);
    verifier.cache().metrics().register(&mut registry);
    let ops = Ops::new(registry);
    let store = Arc::new(
        MongoStore::connect_lazy(&args.mongo.mongodb_uri, &args.mongo.mongodb_database).await?,
    );
    let routes = connect_routes(&args.redis).await?;
    let bound = super::bind(args.listen, args.grpc_listen).await?;
    let node = NodeId(SocketAddr::new(args.node_ip, bound.grpc_addr.port()).to_string());
    tracing::info!(%node, "push node identity");
    let hub = Arc::new(Hub::new(node, Arc::new(routes.clone()), metrics.clone()));
    let push = Arc::new(PushService {
        hub: hub.clone(),
        store,
        verifier,
        metrics,
        config: PushConfig {
            send_queue: args.conn.send_queue,
            ping_interval: args.conn.ping_interval,
            idle_timeout: args.conn.idle_timeout,
            write_timeout: args.conn.write_timeout,
            read_buffer: args.conn.ws_read_buffer,
            ..PushConfig::default()
        },
    });
    let shutdown = Shutdown::default();
    let beat = tokio::spawn(heartbeat(hub.clone(), routes.clone(), shutdown.clone()));
    let grpc = super::serve_grpc(
        tonic::service::Routes::new(NodeServer::new(NodeService { hub: hub.clone() })),
        bound.grpc,
        &shutdown,
        Some(Duration::from_secs(20)),
    );
    let drain = {
        let (hub, metrics) = (hub.clone(), push.metrics.clone());
        async move {
            // Unroute first, so dispatch stops sending here; then close every client with
            // "going away, reconnect" and wait for them to go.
            for user in hub.user_names() {
                let _ = routes.remove(&user, hub.node()).await;
            }
            hub.drain();
            while metrics.connections.get() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let r = super::run_until(
        super::Serving {
            ops: ops.clone(),
            http: bound.http,
            handler: handler(
                ops,
                push,
                args.demo_page.then(|| crate::web::Web::new(None)),
            ),
            shutdown,
            grace: args.shutdown.grace_period,
        },
        grpc,
        stop,
        drain,
    )
    .await;
    beat.abort();
    r
}

fn handler(ops: Arc<Ops>, push: Arc<PushService>, web: Option<crate::web::Web>) -> Handler {
    let web = Arc::new(web);
    Arc::new(move |req| {
        let (ops, push, web) = (ops.clone(), push.clone(), web.clone());
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            if path == "/ws" {
                return pushcluster_push::upgrade::handle(req, push).await;
            }
            if let Some(resp) = web
                .as_ref()
                .as_ref()
                .and_then(|w| w.handle(req.method(), &path))
            {
                return resp;
            }
            ops.handle(&path).unwrap_or_else(|| {
                respond::error(StatusCode::NOT_FOUND, format!("no route for {path}"), None)
            })
        })
    })
}
