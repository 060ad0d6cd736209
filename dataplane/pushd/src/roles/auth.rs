//! `pushd auth`: verifies client tokens for push nodes over gRPC (callers must present the
//! internal token).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use prometheus_client::registry::Registry;
use pushcluster_auth::grpc::AuthService;
use pushcluster_auth::keys::ReloadingVerifier;
use pushcluster_auth::{ClaimRules, KeySources};
use pushcluster_config::{
    ConfigError, InternalArgs, JwtClaimArgs, JwtKeyArgs, LogArgs, ShutdownArgs,
};
use pushcluster_proto::grpc::auth_server::AuthServer;
use pushcluster_server::Shutdown;
use pushcluster_server::grpc::{GrpcMetrics, GrpcServer};
use pushcluster_server::ops::Ops;
use pushcluster_server::role;

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PUSHD_ADMIN_LISTEN", default_value = "0.0.0.0:9083")]
    pub admin_listen: std::net::SocketAddr,
    /// Address of the Auth gRPC service.
    #[arg(long, env = "PUSHD_GRPC_LISTEN", default_value = "0.0.0.0:7003")]
    pub grpc_listen: std::net::SocketAddr,
    /// HS256 secret (or use --jwt-secret-file, which is reloaded when it changes). At least
    /// one of the secret, --jwt-public-key-file and --jwt-jwks-file is required.
    #[arg(long, env = "PUSHD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret; re-read when it changes (no restart needed).
    #[arg(long, env = "PUSHD_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub jwt: JwtKeyArgs,
    #[command(flatten)]
    pub jwt_claims: JwtClaimArgs,
    #[command(flatten)]
    pub internal: InternalArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The claim flags (`--jwt-issuer`, `--jwt-audience`, `--jwt-leeway`) as checked rules
/// (shared with standalone).
pub fn claim_rules(a: &JwtClaimArgs) -> Result<ClaimRules, ConfigError> {
    if a.jwt_leeway.subsec_nanos() != 0 {
        return Err(ConfigError("--jwt-leeway must be whole seconds".into()));
    }
    let rules = ClaimRules {
        issuer: a.jwt_issuer.clone(),
        audiences: a.jwt_audience.iter().map(|s| s.trim().to_owned()).collect(),
        leeway_secs: a.jwt_leeway.as_secs(),
    };
    rules.check().map_err(ConfigError)?;
    Ok(rules)
}

pub async fn run(args: AuthArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    args.jwt
        .validate(args.jwt_secret.is_some() || args.jwt_secret_file.is_some())?;
    let internal = super::Internal::from_args(&args.internal)?;
    let rules = claim_rules(&args.jwt_claims)?;
    let verifier = Arc::new(ReloadingVerifier::new(
        KeySources {
            hs256_secret: args.jwt_secret.map(String::into_bytes),
            hs256_secret_file: args.jwt_secret_file,
            rsa_public_key_files: args.jwt.jwt_public_key_file,
            jwks_file: args.jwt.jwt_jwks_file,
        },
        rules,
    )?);
    let watcher = verifier.watch(Duration::from_secs(2));
    let mut registry = Registry::default();
    verifier.metrics().register(&mut registry);
    verifier.cache().metrics().register(&mut registry);
    let grpc_metrics = GrpcMetrics::new(&mut registry);
    let ops = Ops::new(registry);
    let bound = role::bind(None, args.grpc_listen, args.admin_listen).await?;
    let shutdown = Shutdown::default();
    let grpc = GrpcServer::new(internal.token.clone(), grpc_metrics)
        .service(AuthServer::new(AuthService { verifier }))
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
    watcher.abort();
    Ok(())
}
