//! The push node's [`TokenVerifier`] in a cluster: asks the auth role, over the internal
//! channel (internal token on every call, mutual TLS when configured), with a short timeout.
//! Verdicts are cached for a token's remaining lifetime (bounded).
//!
//! Same protocol as `pushcluster_auth::grpc::RemoteVerifier` (the `Auth.Verify` answer and its
//! `code|message` refusals), which cannot carry the internal token yet: when it accepts an
//! [`InternalChannel`], this file goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_auth::{AuthError, TokenVerifier};
use pushcluster_proto::grpc::auth_client::AuthClient;
use pushcluster_proto::grpc::{VerifyRequest, VerifyResponse};
use pushcluster_server::grpc::{ClientError, InternalChannel, InternalClient};
use tonic::Code;
use tonic::transport::Endpoint;

/// Most verdicts cached.
const CACHE_MAX: usize = 100_000;

/// Verifies tokens by asking the auth role.
pub struct AuthRoleVerifier {
    client: AuthClient<InternalChannel>,
    timeout: Duration,
    /// token → (user, expiry in Unix seconds).
    cache: Mutex<HashMap<String, (String, u64)>>,
}

/// The auth address cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthAddrError {
    #[error("bad auth address {addr}: {reason}")]
    Address { addr: String, reason: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl AuthRoleVerifier {
    /// `addr` like `http://auth:7003`; connects lazily, reconnects by itself.
    pub fn new(
        internal: &InternalClient,
        addr: &str,
        timeout: Duration,
    ) -> Result<Self, AuthAddrError> {
        let endpoint = Endpoint::from_shared(addr.to_owned())
            .map_err(|e| AuthAddrError::Address {
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?
            .connect_timeout(timeout)
            .timeout(timeout);
        Ok(AuthRoleVerifier {
            client: AuthClient::new(internal.connect_lazy(endpoint, None)?),
            timeout,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn remember(&self, token: &str, user: &str, expires_at: u64, now: u64) {
        let mut cache = self.cache.lock().expect("lock");
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, exp)| *exp > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        if expires_at > now {
            cache.insert(token.to_owned(), (user.to_owned(), expires_at));
        }
    }
}

/// The auth role's refusal (`code|message`) as an [`AuthError`].
fn refusal(status: &tonic::Status) -> AuthError {
    let msg = status.message();
    let (code, text) = msg.split_once('|').unwrap_or(("invalid_token", msg));
    match code {
        "token_expired" => AuthError::Expired,
        "missing_token" => AuthError::Missing,
        _ => AuthError::Invalid(text.trim_start_matches("invalid token: ").to_owned()),
    }
}

#[async_trait]
impl TokenVerifier for AuthRoleVerifier {
    async fn verify(&self, token: &str) -> Result<String, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let now = pushcluster_proto::delivery::now_ms() / 1000;
        if let Some((user, exp)) = self.cache.lock().expect("lock").get(token)
            && *exp > now
        {
            return Ok(user.clone());
        }
        let mut client = self.client.clone();
        let request = VerifyRequest {
            token: token.to_owned(),
        };
        let reply = tokio::time::timeout(self.timeout, client.verify(request))
            .await
            .map_err(|_| AuthError::Unavailable("auth service timed out".into()))?;
        match reply {
            Ok(resp) => {
                let VerifyResponse { user, expires_at } = resp.into_inner();
                self.remember(token, &user, expires_at, now);
                Ok(user)
            }
            // The auth role refusing *us* (wrong internal token or certificate) is an outage
            // for the client, not a bad client token.
            Err(status)
                if status.code() == Code::Unauthenticated && status.message().contains('|') =>
            {
                Err(refusal(&status))
            }
            Err(status) => Err(AuthError::Unavailable(status.message().to_owned())),
        }
    }
}
