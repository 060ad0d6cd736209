//! Provider tokens: ES256 JWTs `{"alg":"ES256","kid":KEY_ID}.{"iss":TEAM_ID,"iat":…}`.
//!
//! One token is shared by every request. Its `iat` is aligned down to a multiple of the
//! period (30 minutes by default), so every replica of a team signs the same claims and Apple
//! sees one token per period, not one per process. A token is replaced when the clock crosses
//! into a new period, never sooner than 20 minutes after the last one was made (Apple answers
//! faster refreshes with 429 TooManyProviderTokenUpdates) and always before 60 minutes of age.
//! The only unscheduled refresh is after 403 ExpiredProviderToken, under the same 20-minute
//! floor; TooManyProviderTokenUpdates never triggers one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::clock::{Clock, unix_secs};
use crate::config::{SigningKey, TOKEN_MAX_AGE, TOKEN_MIN_INTERVAL};
use crate::metrics::ApnsMetrics;

/// Signing failed (a bad key; checked at configuration time).
#[derive(Debug, thiserror::Error)]
#[error("failed to sign an APNs provider token: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

/// A signed provider token.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderToken {
    jwt: Arc<str>,
    /// The `iat` claim, seconds since the Unix epoch.
    pub iat: u64,
    minted_at: SystemTime,
    /// `iat` is on the shared grid (not an early replacement after ExpiredProviderToken).
    aligned: bool,
}

impl std::fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderToken")
            .field("iat", &self.iat)
            .finish_non_exhaustive()
    }
}

impl ProviderToken {
    /// The compact JWT, for `authorization: bearer …`.
    pub fn jwt(&self) -> &str {
        &self.jwt
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// Checks that a key can sign ES256.
pub(crate) fn check_key(key: &SigningKey) -> Result<(), TokenError> {
    let header = Header::new(Algorithm::ES256);
    let claims = Claims {
        iss: "check",
        iat: 0,
    };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&key.0))?;
    Ok(())
}

/// The shared, self-refreshing provider token of one key.
pub struct ProviderTokens {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    period: Duration,
    clock: Arc<dyn Clock>,
    current: Mutex<Option<ProviderToken>>,
    metrics: ApnsMetrics,
}

impl ProviderTokens {
    pub fn new(
        key: &SigningKey,
        key_id: &str,
        team_id: &str,
        period: Duration,
        clock: Arc<dyn Clock>,
        metrics: ApnsMetrics,
    ) -> ProviderTokens {
        ProviderTokens {
            key: EncodingKey::from_ec_der(&key.0),
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            period: period.max(Duration::from_secs(1)),
            clock,
            current: Mutex::new(None),
            metrics,
        }
    }

    /// The token to use now, made or replaced if the schedule says so.
    pub fn current(&self) -> Result<ProviderToken, TokenError> {
        let now = self.clock.now();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = current.as_ref()
            && !self.due(token, now)
        {
            return Ok(token.clone());
        }
        let token = self.mint(self.aligned(now), true, now)?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// After 403 ExpiredProviderToken for `rejected`: a newer token if one exists or may be
    /// made now (20-minute floor), else `Err(wait)` with the time until one may be made.
    pub fn after_expired(
        &self,
        rejected: &ProviderToken,
    ) -> Result<Result<ProviderToken, Duration>, TokenError> {
        let now = self.clock.now();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = current.as_ref() {
            if token.jwt != rejected.jwt {
                return Ok(Ok(token.clone()));
            }
            let since = now.duration_since(token.minted_at).unwrap_or_default();
            if since < TOKEN_MIN_INTERVAL {
                return Ok(Err(TOKEN_MIN_INTERVAL - since));
            }
        }
        // Apple found our aligned token too old: its clock or ours is off. Use the newest
        // aligned `iat` that is newer than the rejected one, else the current time.
        let aligned = self.aligned(now);
        let (iat, on_grid) = if aligned > rejected.iat {
            (aligned, true)
        } else {
            (unix_secs(now), false)
        };
        tracing::warn!(
            old_iat = rejected.iat,
            new_iat = iat,
            "APNs provider token expired early; check the clock"
        );
        let token = self.mint(iat, on_grid, now)?;
        *current = Some(token.clone());
        Ok(Ok(token))
    }

    fn aligned(&self, now: SystemTime) -> u64 {
        let period = self.period.as_secs().max(1);
        unix_secs(now) / period * period
    }

    fn due(&self, token: &ProviderToken, now: SystemTime) -> bool {
        let age = unix_secs(now).saturating_sub(token.iat);
        // Keep a margin before Apple's 60-minute limit.
        if age + 5 * 60 >= TOKEN_MAX_AGE.as_secs() {
            return true;
        }
        // Grid values are a period (≥ 20 minutes) apart, so moving from one to the next keeps
        // the team's token changes at most one per period; an early token waits out the floor.
        let since_minted = now.duration_since(token.minted_at).unwrap_or_default();
        self.aligned(now) > token.iat && (token.aligned || since_minted >= TOKEN_MIN_INTERVAL)
    }

    fn mint(&self, iat: u64, aligned: bool, now: SystemTime) -> Result<ProviderToken, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat,
        };
        let jwt = jsonwebtoken::encode(&header, &claims, &self.key)?;
        self.metrics.token_refreshes.inc();
        tracing::info!(iat, key_id = %self.key_id, "new APNs provider token");
        Ok(ProviderToken {
            jwt: jwt.into(),
            iat,
            minted_at: now,
            aligned,
        })
    }
}

#[cfg(test)]
mod tests;
