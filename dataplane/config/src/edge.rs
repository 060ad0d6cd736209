//! Flags of the edge: HTTP limits, API keys, and the internal token and TLS of gRPC between
//! roles. Roles turn them into `pushcluster_server` types before binding any socket.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::ConfigError;

/// Bounds of every HTTP listener (client, API and admin surfaces).
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// A request not answered within this gets 408 (WebSockets: only the handshake counts).
    #[arg(long, env = "PUSHD_HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http_request_timeout: Duration,
    /// A connection that has not sent a whole request head within this is closed.
    #[arg(long, env = "PUSHD_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,
    /// HTTP requests handled at once per listener; past it requests are refused at once with
    /// 503 and Retry-After (load shedding).
    #[arg(long, env = "PUSHD_HTTP_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub http_max_in_flight: usize,
}

impl HttpArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.http_request_timeout.is_zero() || self.http_header_timeout.is_zero() {
            return Err(ConfigError(
                "--http-request-timeout and --http-header-timeout must be positive".into(),
            ));
        }
        if self.http_max_in_flight == 0 {
            return Err(ConfigError("--http-max-in-flight must be positive".into()));
        }
        Ok(())
    }
}

/// The keys business systems authenticate with (HTTP API and gRPC `Submit`). `Debug` shows
/// how many, never a key.
#[derive(Clone, Args)]
pub struct ApiKeyArgs {
    /// Key business systems send as `Authorization: Bearer <key>` (HTTP API and gRPC Submit).
    /// Repeat the flag or separate with commas: any listed key is accepted, so a key rotates
    /// without downtime. At least 16 bytes each.
    #[arg(
        long,
        env = "PUSHD_API_KEY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub api_key: Vec<String>,
    /// File with more API keys, one per line (`#` comments); re-read when it changes.
    #[arg(long, env = "PUSHD_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// How the roles authenticate each other on gRPC (`Dispatch`, `Node`, `Auth`). `Debug` never
/// shows the token.
#[derive(Clone, Args)]
pub struct InternalArgs {
    /// File holding the internal token every role sends and requires on internal gRPC, one
    /// per line: every line is accepted, the first is sent (rotate: add the new token second,
    /// then move it first, then drop the old). Re-read when it changes.
    #[arg(long, env = "PUSHD_INTERNAL_TOKEN_FILE")]
    pub internal_token_file: Option<PathBuf>,
    /// The internal token itself (prefer --internal-token-file: a file can rotate).
    #[arg(long, env = "PUSHD_INTERNAL_TOKEN", hide_env_values = true)]
    pub internal_token: Option<String>,
    /// This role's certificate (PEM chain) for mutual TLS on internal gRPC; with --tls-key
    /// and --tls-ca. Servers then require client certificates from the CA, clients verify
    /// servers. Re-read when they change.
    #[arg(long, env = "PUSHD_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PUSHD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA bundle (PEM) peers' certificates must chain to.
    #[arg(long, env = "PUSHD_TLS_CA", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// The name every server certificate must carry (default: the host of the address
    /// dialed, e.g. `demo-dispatch` or a push node's DNS name).
    #[arg(long, env = "PUSHD_TLS_SERVER_NAME", requires = "tls_cert")]
    pub tls_server_name: Option<String>,
}

impl InternalArgs {
    /// The TLS files, when TLS is on.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(c), Some(k), Some(a)) => Some((c.clone(), k.clone(), a.clone())),
            _ => None,
        }
    }
}

impl std::fmt::Debug for ApiKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyArgs")
            .field(
                "api_key",
                &format_args!("<{} redacted>", self.api_key.len()),
            )
            .field("api_key_file", &self.api_key_file)
            .finish()
    }
}

impl std::fmt::Debug for InternalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalArgs")
            .field("internal_token_file", &self.internal_token_file)
            .field(
                "internal_token",
                &self.internal_token.as_ref().map(|_| "<redacted>"),
            )
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_ca", &self.tls_ca)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        keys: ApiKeyArgs,
        #[command(flatten)]
        internal: InternalArgs,
    }

    #[test]
    fn keys_are_a_list_and_never_printed() {
        let cli = Cli::try_parse_from([
            "t",
            "--api-key=first-key-0123456789,second-key-0123456789",
            "--api-key",
            "third-key-0123456789",
            "--internal-token=internal-0123456789",
        ])
        .unwrap();
        assert_eq!(cli.keys.api_key.len(), 3);
        let debug = format!("{cli:?}");
        assert!(!debug.contains("0123456789"), "{debug}");
        assert!(debug.contains("<3 redacted>"), "{debug}");
    }

    #[test]
    fn tls_needs_all_three_files() {
        let e = Cli::try_parse_from(["t", "--tls-cert=c.pem"]).unwrap_err();
        assert!(e.to_string().contains("--tls-key"), "{e}");
        let cli = Cli::try_parse_from(["t", "--tls-cert=c", "--tls-key=k", "--tls-ca=a"]).unwrap();
        assert!(cli.internal.tls_files().is_some());
    }
}
