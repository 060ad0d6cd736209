//! Command line: `pushd <role|tool> [flags]`; every flag is also an env var `PUSHD_…`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pushcluster_config::{
    ConnArgs, HttpArgs, JwtClaimArgs, JwtKeyArgs, LimitsArgs, LogArgs, OutboxArgs, SecretArgs,
    ShutdownArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "pushd",
    version,
    about = "pushcluster: WebSocket push notifications"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process, on an embedded store: no Redis or MongoDB needed.
    Standalone(StandaloneArgs),
    /// Auth role: verifies client tokens over gRPC.
    Auth(crate::roles::auth::AuthArgs),
    /// Collect role: HTTP API and gRPC Submit; stores in MongoDB's outbox, wakes dispatch.
    Collect(crate::roles::collect::CollectArgs),
    /// Dispatch role: the outbox workers; look users up in Redis, stream to push nodes.
    Dispatch(crate::roles::dispatch::DispatchArgs),
    /// Push role: holds client WebSockets; routes users to this node in Redis.
    Push(crate::roles::push::PushArgs),
    /// Print a client token for a user: HS256 with PUSHD_JWT_SECRET, or RS256 with
    /// --rsa-private-key-file.
    Token(TokenArgs),
    /// Post a message to a running server's HTTP API.
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Address for WebSocket clients (`/ws`), the HTTP API (`/v1/…`), the demo page and
    /// /healthz, /readyz.
    #[arg(long, env = "PUSHD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "PUSHD_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Directory of the embedded message store (created if missing).
    #[arg(long, env = "PUSHD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// How often expired messages are swept.
    #[arg(long, env = "PUSHD_SWEEP_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,
    /// Development only: put the API key into the demo page at `/`, which then shows a form
    /// that sends messages. Anyone who can load the page gets the key, so this is refused
    /// unless --listen is a loopback address. `make run` sets it.
    #[arg(long, env = "PUSHD_DEV_API_KEY_IN_PAGE", default_value_t = false)]
    pub dev_api_key_in_page: bool,
    #[command(flatten)]
    pub secrets: SecretArgs,
    #[command(flatten)]
    pub jwt: JwtKeyArgs,
    #[command(flatten)]
    pub jwt_claims: JwtClaimArgs,
    #[command(flatten)]
    pub limits: LimitsArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// Mobile push: APNs, FCM, Huawei, Xiaomi, vivo (each off unless configured).
    #[command(flatten)]
    pub mobile: pushcluster_mobile::MobileArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// User id (the token's `sub`).
    #[arg(long)]
    pub user: String,
    /// Lifetime, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// HS256 secret to sign with.
    #[arg(
        long,
        env = "PUSHD_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "rsa_private_key_file"
    )]
    pub jwt_secret: Option<String>,
    /// Sign RS256 with this RSA private key (PEM, PKCS#8 or PKCS#1) instead of the secret.
    #[arg(long, env = "PUSHD_JWT_RSA_PRIVATE_KEY_FILE")]
    pub rsa_private_key_file: Option<PathBuf>,
    /// Key id (`kid`) to put in an RS256 token's header.
    #[arg(long, env = "PUSHD_JWT_KID", requires = "rsa_private_key_file")]
    pub kid: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Recipients (repeat the flag or separate with commas).
    #[arg(long, required = true, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Payload: any JSON value.
    #[arg(long)]
    pub payload: String,
    #[arg(long)]
    pub ttl_secs: Option<u64>,
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Base URL of the server's HTTP API.
    #[arg(long, env = "PUSHD_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[arg(long, env = "PUSHD_API_KEY", hide_env_values = true)]
    pub api_key: String,
}
