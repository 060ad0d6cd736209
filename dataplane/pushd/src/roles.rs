//! The cluster roles, one process each: `pushd auth|collect|dispatch|push`.
//!
//! Every role serves `/metrics`, `/healthz` and `/readyz` on `--admin-listen` and its gRPC
//! service on `--grpc-listen`; push and collect also serve their public surface on `--listen`
//! (client WebSockets, the HTTP API; `/healthz` and `/readyz` there too, for load balancers).
//! The lifecycle (bind and announce, serve, drain on SIGTERM within `--grace-period`) is
//! `pushcluster_server::role`; each role file here is wiring: flags → typed config → the
//! role's services.
//!
//! Internal gRPC (`Dispatch`, `Node`, `Auth`) always requires the internal token
//! (`--internal-token-file` / `PUSHD_INTERNAL_TOKEN`), and mutual TLS with `--tls-*`.

use std::sync::Arc;
use std::time::Duration;

use pushcluster_config::{ApiKeyArgs, HttpArgs, InternalArgs};
use pushcluster_server::Secrets;
use pushcluster_server::grpc::{InternalClient, Tls, TlsFiles};
use pushcluster_server::http::HttpLimits;
use tokio::task::JoinHandle;

pub mod auth;
pub mod collect;
pub mod dispatch;
pub mod push;

/// How often secret and certificate files are checked for changes.
pub const FILE_POLL: Duration = Duration::from_secs(2);

/// The bounds of the public surface, from the flags.
pub fn http_limits(args: &HttpArgs) -> anyhow::Result<HttpLimits> {
    args.validate()?;
    Ok(HttpLimits {
        request_timeout: args.http_request_timeout,
        header_timeout: args.http_header_timeout,
        max_in_flight: args.http_max_in_flight,
        ..HttpLimits::default()
    })
}

/// The API keys (HTTP API and gRPC `Submit`) from the flags.
pub fn api_keys_list(
    args: &ApiKeyArgs,
) -> Result<Arc<Secrets>, pushcluster_server::secret::SecretError> {
    Secrets::new(
        "API key",
        "give --api-key (PUSHD_API_KEY) or --api-key-file",
        args.api_key.iter().cloned(),
        args.api_key_file.clone(),
    )
}

/// The API keys, re-read from `--api-key-file` on change (until the handle is aborted).
pub fn api_keys(args: &ApiKeyArgs) -> anyhow::Result<(Arc<Secrets>, Option<JoinHandle<()>>)> {
    let keys = api_keys_list(args)?;
    let watcher = keys.watch(FILE_POLL);
    Ok((keys, watcher))
}

/// How a role authenticates internal gRPC: the token it requires and sends, TLS if on.
pub struct Internal {
    pub token: Arc<Secrets>,
    pub tls: Option<Arc<Tls>>,
    pub client: InternalClient,
    watchers: Vec<JoinHandle<()>>,
}

impl Internal {
    /// Reads and checks the token and certificates; starts watching their files.
    pub fn from_args(args: &InternalArgs) -> anyhow::Result<Internal> {
        let token = Secrets::new(
            "internal token",
            "give --internal-token-file (PUSHD_INTERNAL_TOKEN_FILE) or PUSHD_INTERNAL_TOKEN; every role of a cluster needs the same one",
            args.internal_token.iter().cloned(),
            args.internal_token_file.clone(),
        )?;
        let mut watchers: Vec<JoinHandle<()>> = token.watch(FILE_POLL).into_iter().collect();
        let tls = match args.tls_files() {
            Some((cert, key, ca)) => {
                let tls = Tls::load(TlsFiles { cert, key, ca })?;
                watchers.push(tls.watch(FILE_POLL));
                Some(tls)
            }
            None => None,
        };
        let client = InternalClient::new(token.clone(), tls.clone(), args.tls_server_name.clone());
        tracing::info!(tls = tls.is_some(), "internal gRPC authenticated by token");
        Ok(Internal {
            token,
            tls,
            client,
            watchers,
        })
    }
}

impl Drop for Internal {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
    }
}
