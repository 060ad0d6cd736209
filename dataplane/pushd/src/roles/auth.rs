//! `pushd auth`: verifies client tokens for push nodes over gRPC.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use prometheus_client::registry::Registry;
use pushcluster_auth::grpc::AuthService;
use pushcluster_auth::keys::ReloadingVerifier;
use pushcluster_config::{LogArgs, ShutdownArgs};
use pushcluster_proto::grpc::auth_server::AuthServer;
use pushcluster_server::Shutdown;
use pushcluster_server::ops::Ops;

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "PUSHD_LISTEN", default_value = "0.0.0.0:8083")]
    pub listen: std::net::SocketAddr,
    /// Address of the Auth gRPC service.
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7003")]
    pub grpc_listen: std::net::SocketAddr,
    /// HS256 secret (or use --jwt-secret-file, which is reloaded when it changes).
    #[arg(
        long,
        env = "PUSHD_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "jwt_secret_file"
    )]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret; re-read when it changes (no restart needed).
    #[arg(long, env = "PUSHD_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

pub async fn run(args: AuthArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let verifier = Arc::new(match (&args.jwt_secret_file, &args.jwt_secret) {
        (Some(path), _) => ReloadingVerifier::from_file(path.clone())?,
        (None, Some(secret)) => ReloadingVerifier::fixed(secret.as_bytes()),
        (None, None) => anyhow::bail!("--jwt-secret or --jwt-secret-file is required"),
    });
    let watcher = verifier.watch(Duration::from_secs(2));
    let ops = Ops::new(Registry::default());
    let bound = super::bind(args.listen, args.grpc_listen).await?;
    let shutdown = Shutdown::default();
    let grpc = super::serve_grpc(
        tonic::service::Routes::new(AuthServer::new(AuthService { verifier })),
        bound.grpc,
        &shutdown,
        None,
    );
    let handler = super::ops_handler(ops.clone());
    let r = super::run_until(
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
    .await;
    watcher.abort();
    r
}
