//! Configuration: clap argument groups, each flag also an environment variable `PUSHD_…`.
//! Roles flatten the groups they need and validate them into typed values before binding
//! any socket; a bad value exits with code 64 (EX_USAGE).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pushcluster_proto::api::Limits;
use pushcluster_telemetry::LogFormat;

mod edge;

pub use edge::{ApiKeyArgs, HttpArgs, InternalArgs};

/// Exit code for invalid configuration (sysexits EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LogFormatArg {
    #[default]
    Plain,
    Json,
}

/// Logging.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format on stderr (filter with RUST_LOG, default info).
    #[arg(long, env = "PUSHD_LOG_FORMAT", value_enum, default_value = "plain")]
    pub log_format: LogFormatArg,
}

impl LogArgs {
    pub fn format(&self) -> LogFormat {
        match self.log_format {
            LogFormatArg::Plain => LogFormat::Plain,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// Limits on accepted messages.
#[derive(Debug, Clone, Args)]
pub struct LimitsArgs {
    /// Largest accepted `payload`, in bytes (larger → 413).
    #[arg(long, env = "PUSHD_MAX_PAYLOAD_BYTES", default_value_t = 64 * 1024)]
    pub max_payload_bytes: usize,
    /// Most recipients in one message (more → 413).
    #[arg(long, env = "PUSHD_MAX_RECIPIENTS", default_value_t = 10_000)]
    pub max_recipients: usize,
    /// TTL of a message that gives no `ttl_secs`.
    #[arg(long, env = "PUSHD_DEFAULT_TTL_SECS", default_value_t = 86_400)]
    pub default_ttl_secs: u64,
    /// Largest accepted `ttl_secs`.
    #[arg(long, env = "PUSHD_MAX_TTL_SECS", default_value_t = 30 * 86_400)]
    pub max_ttl_secs: u64,
    /// Most messages in one batch request (a JSON array on `POST /v1/messages`, or one
    /// gRPC `SubmitMany`).
    #[arg(long, env = "PUSHD_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,
    /// Largest batch request body, in bytes.
    #[arg(long, env = "PUSHD_MAX_BATCH_BYTES", default_value_t = 16 << 20)]
    pub max_batch_bytes: usize,
}

impl LimitsArgs {
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        if self.max_payload_bytes == 0 || self.max_recipients == 0 {
            return Err(ConfigError(
                "--max-payload-bytes and --max-recipients must be positive".into(),
            ));
        }
        if self.default_ttl_secs == 0 || self.default_ttl_secs > self.max_ttl_secs {
            return Err(ConfigError(
                "--default-ttl-secs must be between 1 and --max-ttl-secs".into(),
            ));
        }
        if self.max_batch == 0 || self.max_batch_bytes == 0 {
            return Err(ConfigError(
                "--max-batch and --max-batch-bytes must be positive".into(),
            ));
        }
        Ok(Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_recipients: self.max_recipients,
            default_ttl_secs: self.default_ttl_secs,
            max_ttl_secs: self.max_ttl_secs,
            max_batch: self.max_batch,
            max_batch_bytes: self.max_batch_bytes,
        })
    }
}

/// Client connections of a push node.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Messages queued per connection; a client that falls further behind is closed
    /// (code 1013) and resumes on reconnect.
    #[arg(long, env = "PUSHD_SEND_QUEUE", default_value_t = 1024)]
    pub send_queue: usize,
    /// WebSocket ping period.
    #[arg(long, env = "PUSHD_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// Close a connection with no inbound frame (including pongs) for this long.
    #[arg(long, env = "PUSHD_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close a connection whose socket write takes longer than this.
    #[arg(long, env = "PUSHD_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
    /// Read buffer per connection, in bytes (memory per idle connection grows with it).
    #[arg(long, env = "PUSHD_WS_READ_BUFFER", default_value_t = 1024)]
    pub ws_read_buffer: usize,
    /// Bytes of messages queued per connection (besides --send-queue): a client that falls
    /// further behind is closed (1013) and resumes on reconnect, so a slow client cannot pin
    /// more than this. One message larger than the bound is still delivered alone.
    #[arg(long, env = "PUSHD_SEND_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub send_queue_bytes: usize,
    /// Connections one user may hold on this node; past it a new one is refused with 429
    /// before the upgrade (0: no limit).
    #[arg(long, env = "PUSHD_MAX_CONNECTIONS_PER_USER", default_value_t = 16)]
    pub max_connections_per_user: u32,
    /// Connections this node holds at most; past it new ones are refused with 503 and
    /// Retry-After before the upgrade (0: no limit).
    #[arg(long, env = "PUSHD_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,
    /// WebSocket connects per second per source IP (IPv6: per /64), a token bucket; past it
    /// 429 with Retry-After (0: no limit). Behind a proxy or SNAT every client shares one IP:
    /// raise it or turn it off there.
    #[arg(long, env = "PUSHD_CONNECT_RATE_PER_IP", default_value_t = 20.0)]
    pub connect_rate_per_ip: f64,
    /// Connects a source IP may make in a burst (the bucket's size).
    #[arg(long, env = "PUSHD_CONNECT_BURST_PER_IP", default_value_t = 100)]
    pub connect_burst_per_ip: u32,
    /// How long a device waits for a missing seq (another collect node's message still being
    /// stored) before it is sent what follows: within it, every device receives its messages
    /// in seq order. 0: never wait (a late message then arrives after later ones).
    #[arg(long, env = "PUSHD_REORDER_WINDOW", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reorder_window: Duration,
}

impl ConnArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.send_queue == 0 {
            return Err(ConfigError("--send-queue must be positive".into()));
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return Err(ConfigError(
                "--idle-timeout must be longer than a positive --ping-interval".into(),
            ));
        }
        if self.ws_read_buffer < 128 {
            return Err(ConfigError("--ws-read-buffer must be at least 128".into()));
        }
        if self.send_queue_bytes == 0 {
            return Err(ConfigError("--send-queue-bytes must be positive".into()));
        }
        if !self.connect_rate_per_ip.is_finite() || self.connect_rate_per_ip < 0.0 {
            return Err(ConfigError(
                "--connect-rate-per-ip must be a non-negative number".into(),
            ));
        }
        if self.connect_rate_per_ip > 0.0 && self.connect_burst_per_ip == 0 {
            return Err(ConfigError(
                "--connect-burst-per-ip must be positive when --connect-rate-per-ip is set".into(),
            ));
        }
        Ok(())
    }
}

/// Shared secrets.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// HS256 secret that client JWTs are signed with (optional when --jwt-public-key-file or
    /// --jwt-jwks-file is given).
    #[arg(long, env = "PUSHD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub api_keys: ApiKeyArgs,
}

impl SecretArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(ConfigError(
                "PUSHD_JWT_SECRET must be at least 16 bytes".into(),
            ));
        }
        Ok(())
    }
}

/// RS256 keys for client JWTs, besides or instead of the HS256 secret. Files are re-read
/// when they change; a bad new version is logged and the last good keys stay in use.
#[derive(Debug, Clone, Default, Args)]
pub struct JwtKeyArgs {
    /// PEM file with an RSA public key (`PUBLIC KEY` or `RSA PUBLIC KEY`) for RS256 tokens;
    /// repeat the flag or separate with commas. A file's key id (`kid`) is its name without
    /// the extension (`2025-06.pem` → `2025-06`). Re-read when it changes (no restart needed).
    #[arg(long, env = "PUSHD_JWT_PUBLIC_KEY_FILE", value_delimiter = ',')]
    pub jwt_public_key_file: Vec<PathBuf>,
    /// JSON Web Key Set file; its RS256 signature keys are chosen by the token's `kid`.
    /// Re-read when it changes; a bad new version is logged and the last good keys stay in use.
    #[arg(long, env = "PUSHD_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
}

impl JwtKeyArgs {
    /// `have_secret`: an HS256 secret (or secret file) is configured as well.
    pub fn validate(&self, have_secret: bool) -> Result<(), ConfigError> {
        if !have_secret && self.jwt_public_key_file.is_empty() && self.jwt_jwks_file.is_none() {
            return Err(ConfigError(
                "no JWT key: give PUSHD_JWT_SECRET, --jwt-public-key-file or --jwt-jwks-file"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// What a client JWT's claims must say besides `sub` and `exp` (the auth role and standalone);
/// checked into `pushcluster_auth::ClaimRules` by `pushd`.
#[derive(Debug, Clone, Args)]
pub struct JwtClaimArgs {
    /// Required `iss` claim: tokens from any other issuer, or without `iss`, are refused.
    /// Default: the issuer is not checked.
    #[arg(long, env = "PUSHD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Accepted audiences (repeat the flag or separate with commas): a token's `aud` (a
    /// string or an array) must name at least one; a token without `aud` is refused.
    /// Default: `aud` is not checked.
    #[arg(long, env = "PUSHD_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,
    /// Clock skew allowed when checking `exp` and `nbf`, in whole seconds (at most 5m).
    #[arg(long, env = "PUSHD_JWT_LEEWAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,
}

/// Graceful shutdown.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// On SIGTERM: how long to drain connections before exiting anyway.
    #[arg(long, env = "PUSHD_GRACE_PERIOD", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,
}

/// The outbox: how long accepted batches and claimed batches are leased.
#[derive(Debug, Clone, Args)]
pub struct OutboxArgs {
    /// How long a just-accepted batch stays leased to the dispatch it is handed to; a
    /// hand-off that is lost (the accepting node died, the wake-up failed) is dispatched by
    /// any worker once this runs out.
    #[arg(long, env = "PUSHD_HANDOFF_LEASE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handoff_lease: Duration,
    /// How long a batch claimed by a dispatch worker stays its own (a worker that dies
    /// leaves its batches to others after this).
    #[arg(long, env = "PUSHD_OUTBOX_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub outbox_lease: Duration,
    /// How often a dispatch worker looks for batches whose lease ran out.
    #[arg(long, env = "PUSHD_CLAIM_EVERY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub claim_every: Duration,
}

/// The route table in Redis (push and dispatch).
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis URL (`redis://[:password@]host:port[/db]`); with --redis-cluster a comma-separated
    /// list of cluster seed URLs.
    #[arg(
        long,
        env = "PUSHD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Use Redis Cluster (user keys are spread over 256 hash-tag buckets, so a batch of users
    /// is at most 256 pipelines).
    #[arg(long, env = "PUSHD_REDIS_CLUSTER", default_value_t = false)]
    pub redis_cluster: bool,
    /// Lifetime of a push node's liveness key; the node renews it every third of it. Route
    /// entries of a node whose liveness ran out are ignored (and cleaned) by readers.
    #[arg(long, env = "PUSHD_ROUTE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub route_ttl: Duration,
}

/// The message store in MongoDB (collect and push).
#[derive(Debug, Clone, Args)]
pub struct MongoArgs {
    /// MongoDB connection string (any deployment the official driver supports).
    #[arg(
        long,
        env = "PUSHD_MONGODB_URI",
        hide_env_values = true,
        default_value = "mongodb://127.0.0.1:27017"
    )]
    pub mongodb_uri: String,
    /// Database name.
    #[arg(long, env = "PUSHD_MONGODB_DATABASE", default_value = "pushcluster")]
    pub mongodb_database: String,
}
