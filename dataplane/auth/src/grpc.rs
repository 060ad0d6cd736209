//! The auth role over gRPC: the service, and the client push nodes use on every connect.
//!
//! A refusal travels as `UNAUTHENTICATED` with the message `code|reason` ([`AuthError::code`]),
//! so the push node answers its client with the same code and reason as standalone does.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::grpc::auth_client::AuthClient;
use pushcluster_proto::grpc::auth_server::Auth;
use pushcluster_proto::grpc::{VerifyRequest, VerifyResponse};
use pushcluster_server::grpc::{InternalChannel, InternalClient};
use tonic::transport::Endpoint;
use tonic::{Code, Request, Response, Status};

use crate::cache::{CachePolicy, VerdictCache};
use crate::{AuthError, TokenVerifier};

/// The `Auth` gRPC service over any [`TokenVerifier`].
pub struct AuthService {
    pub verifier: Arc<dyn TokenVerifier>,
}

/// `exp` of a token, read without verification (only used after verification succeeded).
fn expiry(token: &str) -> u64 {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["exp"].as_u64())
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn verify(
        &self,
        req: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let token = req.into_inner().token;
        match self.verifier.verify(&token).await {
            Ok(user) => Ok(Response::new(VerifyResponse {
                user,
                expires_at: expiry(&token),
            })),
            Err(AuthError::Unavailable(m)) => Err(Status::unavailable(m)),
            Err(e) => Err(Status::unauthenticated(format!("{}|{}", e.code(), e))),
        }
    }
}

/// Verifies tokens by asking the auth role, with a short timeout. Verdicts are cached by a
/// hash of the token ([`CachePolicy::REMOTE`]): a valid one until the token expires (at most
/// a minute), an invalid one for a few seconds — a flood of one bad token costs one round trip.
pub struct RemoteVerifier {
    client: AuthClient<InternalChannel>,
    timeout: Duration,
    cache: VerdictCache,
}

impl RemoteVerifier {
    /// `addr` like `http://auth:7003`, over the internal channel (internal token on every
    /// call, mutual TLS when configured); connects lazily, reconnects by itself.
    pub fn new(
        internal: &InternalClient,
        addr: &str,
        timeout: Duration,
    ) -> Result<Self, AuthError> {
        let bad = |e: String| AuthError::Unavailable(format!("bad auth address {addr}: {e}"));
        let endpoint = Endpoint::from_shared(addr.to_owned())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout);
        Ok(RemoteVerifier {
            client: AuthClient::new(
                internal
                    .connect_lazy(endpoint, None)
                    .map_err(|e| bad(e.to_string()))?,
            ),
            timeout,
            cache: VerdictCache::new(CachePolicy::REMOTE),
        })
    }

    /// The verdict cache (its metrics, for the registry).
    pub fn cache(&self) -> &VerdictCache {
        &self.cache
    }

    /// One round trip to the auth role: the verdict and, when valid, the token's expiry.
    async fn ask(&self, token: &str) -> (Result<String, AuthError>, Option<u64>) {
        let mut client = self.client.clone();
        let request = client.verify(VerifyRequest {
            token: token.to_owned(),
        });
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => (
                Err(AuthError::Unavailable("auth service timed out".into())),
                None,
            ),
            Ok(Ok(resp)) => {
                let VerifyResponse { user, expires_at } = resp.into_inner();
                (Ok(user), Some(expires_at))
            }
            Ok(Err(status)) => match verdict(&status) {
                Some(e) => (Err(e), None),
                None => (
                    Err(AuthError::Unavailable(format!(
                        "auth service: {}",
                        status.message()
                    ))),
                    None,
                ),
            },
        }
    }
}

/// A token verdict from the auth role's reply; `None` when the reply is not one (the call
/// itself failed, or the auth role refused the caller rather than the token).
fn verdict(status: &Status) -> Option<AuthError> {
    if status.code() != Code::Unauthenticated {
        return None;
    }
    let (code, text) = status.message().split_once('|')?;
    Some(AuthError::from_code(code, text))
}

#[async_trait]
impl TokenVerifier for RemoteVerifier {
    async fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.cache
            .verify_with(token, async || self.ask(token).await)
            .await
    }
}

#[cfg(test)]
mod tests;
