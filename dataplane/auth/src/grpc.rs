//! The auth role over gRPC: the service, and the client push nodes use on every connect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pushcluster_proto::grpc::auth_client::AuthClient;
use pushcluster_proto::grpc::auth_server::Auth;
use pushcluster_proto::grpc::{VerifyRequest, VerifyResponse};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

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

/// Verifies tokens by asking the auth role, with a short timeout. Verdicts are cached only
/// for a token's remaining lifetime.
pub struct RemoteVerifier {
    client: AuthClient<Channel>,
    timeout: Duration,
    cache: Mutex<HashMap<String, (String, u64)>>,
}

const CACHE_MAX: usize = 100_000;

impl RemoteVerifier {
    /// `addr` like `http://auth:7003`; connects lazily.
    pub fn new(addr: &str, timeout: Duration) -> Result<Self, AuthError> {
        let endpoint = Channel::from_shared(addr.to_owned())
            .map_err(|e| AuthError::Unavailable(format!("bad auth address {addr}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        Ok(RemoteVerifier {
            client: AuthClient::new(endpoint.connect_lazy()),
            timeout,
            cache: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait]
impl TokenVerifier for RemoteVerifier {
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
        let reply = tokio::time::timeout(
            self.timeout,
            client.verify(VerifyRequest {
                token: token.to_owned(),
            }),
        )
        .await
        .map_err(|_| AuthError::Unavailable("auth service timed out".into()))?;
        match reply {
            Ok(resp) => {
                let VerifyResponse { user, expires_at } = resp.into_inner();
                let mut cache = self.cache.lock().expect("lock");
                if cache.len() >= CACHE_MAX {
                    cache.retain(|_, (_, exp)| *exp > now);
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                }
                if expires_at > now {
                    cache.insert(token.to_owned(), (user.clone(), expires_at));
                }
                Ok(user)
            }
            Err(status) if status.code() == Code::Unauthenticated => {
                let msg = status.message();
                let (code, text) = msg.split_once('|').unwrap_or(("invalid_token", msg));
                Err(match code {
                    "token_expired" => AuthError::Expired,
                    "missing_token" => AuthError::Missing,
                    _ => AuthError::Invalid(text.trim_start_matches("invalid token: ").to_owned()),
                })
            }
            Err(status) => Err(AuthError::Unavailable(status.message().to_owned())),
        }
    }
}
