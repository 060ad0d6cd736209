//! [`TokenCache`]: one vendor access token (FCM and HMS OAuth, vivo `authToken`), shared by
//! every request, fetched once at a time, replaced before it expires (a tenth of its life
//! early, at most five minutes) and after the vendor refused it.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::metrics::MobileMetrics;
use crate::retry::Verdict;
use crate::secret::Secret;

/// Why no access token could be had. Nothing was sent to a device either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached or did not answer.
    #[error("{vendor} token endpoint unreachable: {detail}")]
    Unreachable {
        vendor: &'static str,
        detail: String,
    },
    /// The token endpoint refused our credentials (or answered nonsense).
    #[error("{vendor} refused our credentials: {detail}")]
    Refused {
        vendor: &'static str,
        detail: String,
    },
}

impl TokenError {
    /// The verdict for the notifications that waited for the token: pending, for later;
    /// nothing was sent.
    pub fn verdict(&self) -> Verdict {
        Verdict::NoToken {
            reason: self.to_string(),
        }
    }
}

/// A fetched token and how long the vendor said it lives.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub token: Secret,
    pub lifetime: Duration,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// The current token of one vendor.
pub struct TokenCache {
    vendor: &'static str,
    /// Read by every request (a short lock, never held across an await).
    current: std::sync::Mutex<Option<Cached>>,
    /// Held while fetching, so one fetch runs at a time.
    fetching: Mutex<()>,
    metrics: MobileMetrics,
}

/// How early a token is replaced: a tenth of its life, at most five minutes.
fn margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(300))
}

impl TokenCache {
    pub fn new(vendor: &'static str, metrics: MobileMetrics) -> TokenCache {
        TokenCache {
            vendor,
            current: std::sync::Mutex::new(None),
            fetching: Mutex::new(()),
            metrics,
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current token if it is not due.
    fn fresh(&self) -> Option<Secret> {
        let c = self.cached();
        c.as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// The current token, fetched with `fetch` when there is none or it is due. Callers
    /// that arrive during a fetch wait for it (one fetch at a time).
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Secret, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, TokenError>>,
    {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token); // fetched while we waited
        }
        match fetch().await {
            Ok(f) => {
                self.metrics.token_refresh(self.vendor, true);
                tracing::info!(
                    vendor = self.vendor,
                    lifetime_s = f.lifetime.as_secs(),
                    "new vendor access token"
                );
                *self.cached() = Some(Cached {
                    token: f.token.clone(),
                    refresh_at: Instant::now() + f.lifetime - margin(f.lifetime),
                });
                Ok(f.token)
            }
            Err(e) => {
                self.metrics.token_refresh(self.vendor, false);
                tracing::warn!(vendor = self.vendor, error = %e, "failed to get a vendor access token");
                Err(e)
            }
        }
    }

    /// The vendor refused `token`: the next [`TokenCache::get`] fetches a new one (unless
    /// another caller did already).
    pub async fn refused(&self, token: &Secret) {
        let mut current = self.cached();
        if current.as_ref().is_some_and(|c| c.token == *token) {
            *current = None;
        }
    }
}

/// The token an attempt used, so that a refusal drops exactly that one.
#[derive(Default)]
pub struct Used(std::sync::Mutex<Option<Secret>>);

impl Used {
    pub fn set(&self, token: &Secret) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
    }

    /// The vendor refused the token last set: `cache` forgets it.
    pub async fn refused(&self, cache: &TokenCache) {
        let used = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(token) = used {
            cache.refused(&token).await;
        }
    }
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    expires_in: Option<u64>,
    /// Google: a string (`invalid_grant`); Huawei: a number (`1101`).
    error: Option<serde_json::Value>,
    error_description: Option<String>,
}

/// Reads an OAuth token endpoint's answer (`{access_token, expires_in}` or `{error, …}`).
pub fn oauth_reply(
    exchange: crate::http::Exchange,
    vendor: &'static str,
) -> Result<Fetched, TokenError> {
    exchange.classify(
        |v| {
            Err(TokenError::Unreachable {
                vendor,
                detail: v.reason().to_owned(),
            })
        },
        |status, _, body| {
            let reply: Option<TokenReply> = serde_json::from_slice(body).ok();
            match reply {
                Some(TokenReply {
                    access_token: Some(token),
                    expires_in,
                    ..
                }) if status.is_success() && !token.is_empty() => Ok(Fetched {
                    token: Secret::new(token),
                    lifetime: Duration::from_secs(expires_in.unwrap_or(3600)),
                }),
                _ if status.is_server_error() => Err(TokenError::Unreachable {
                    vendor,
                    detail: format!("token endpoint answered {status}"),
                }),
                reply => {
                    let (error, description) = reply
                        .map(|r| (r.error, r.error_description))
                        .unwrap_or_default();
                    let error = match error {
                        Some(serde_json::Value::String(s)) => Some(s),
                        Some(other) => Some(other.to_string()),
                        None => None,
                    };
                    Err(TokenError::Refused {
                        vendor,
                        detail: format!(
                            "{status} {} {}",
                            error.unwrap_or_default(),
                            description.unwrap_or_default()
                        )
                        .trim()
                        .to_owned(),
                    })
                }
            }
        },
    )
}

#[cfg(test)]
mod tests;
