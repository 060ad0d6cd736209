//! [`ClaimRules`]: what a token's registered claims must say once its signature checks out.
//!
//! - `sub` (the user id) and `exp` are always required.
//! - `nbf`, when present, is honoured.
//! - `iss` must equal the configured issuer, when one is configured (then a token without
//!   `iss` is refused).
//! - `aud` (a string or an array) must name one of the configured audiences, when any are
//!   configured (then a token without `aud` is refused). Without configured audiences `aud`
//!   is not looked at.
//! - `exp` and `nbf` are compared with the clock allowing [`ClaimRules::leeway_secs`] of skew.
//!
//! [`refusal`] turns a verification error into the reason a client sees: it names the claim
//! that failed and never repeats the token.

use std::time::Duration;

use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, Validation};

use crate::AuthError;

/// The default leeway on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// The largest accepted leeway: clocks further apart are a problem to fix, not to tolerate.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The claim checks applied to every token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// Required `iss`; `None`: any issuer, or none.
    pub issuer: Option<String>,
    /// Accepted audiences; a token's `aud` must name at least one. Empty: `aud` is not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most [`MAX_LEEWAY`]).
    pub leeway_secs: u64,
}

impl Default for ClaimRules {
    fn default() -> Self {
        ClaimRules {
            issuer: None,
            audiences: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY.as_secs(),
        }
    }
}

impl ClaimRules {
    /// Checks the rules themselves (config time): a message naming the bad setting.
    pub fn check(&self) -> Result<(), String> {
        if self.issuer.as_deref().is_some_and(str::is_empty) {
            return Err("the JWT issuer (--jwt-issuer) must not be empty".into());
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err("a JWT audience (--jwt-audience) must not be empty".into());
        }
        if self.leeway_secs > MAX_LEEWAY.as_secs() {
            return Err(format!(
                "the JWT leeway (--jwt-leeway) is {}s; at most {}s is allowed",
                self.leeway_secs,
                MAX_LEEWAY.as_secs()
            ));
        }
        Ok(())
    }

    /// jsonwebtoken's settings for tokens of `alg` under these rules.
    pub(crate) fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            v.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            // Otherwise jsonwebtoken refuses every token that carries an `aud`.
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audiences);
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        v.validate_nbf = true;
        v.leeway = self.leeway_secs;
        v
    }
}

/// Why a token whose header named a usable key was refused: which claim failed, or that the
/// signature or the encoding is bad. Never quotes the token.
pub(crate) fn refusal(e: &Error) -> AuthError {
    let invalid = |m: &str| AuthError::Invalid(m.to_owned());
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => invalid("bad signature"),
        ErrorKind::InvalidIssuer => invalid("`iss` is not the accepted issuer"),
        ErrorKind::InvalidAudience => invalid("`aud` names none of the accepted audiences"),
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::Invalid(format!("missing or malformed claim `{claim}`"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::Invalid(format!("malformed claim `{claim}`"))
        }
        ErrorKind::Json(j) => match missing_field(j) {
            Some(claim) => AuthError::Invalid(format!("missing claim `{claim}`")),
            None if j.is_data() => invalid(
                "claims of the wrong type: `sub` must be a string, `exp` and `nbf` integers",
            ),
            None => invalid("claims are not a JSON object"),
        },
        _ => malformed(e),
    }
}

/// Why a token's encoding or header is unusable. Never quotes the token.
pub(crate) fn malformed(e: &Error) -> AuthError {
    let m = match e.kind() {
        ErrorKind::Base64(_) => "malformed token: not base64url",
        ErrorKind::Utf8(_) => "malformed token: not UTF-8",
        ErrorKind::Json(j) if j.is_data() => {
            "malformed token header: unknown `alg` or fields of the wrong type"
        }
        ErrorKind::Json(_) => "malformed token header: not a JSON object",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token's algorithm does not match its key"
        }
        _ => "malformed token: expected three base64url parts separated by dots",
    };
    AuthError::Invalid(m.to_owned())
}

/// The field of serde's "missing field `x`" error, if that is what `j` is.
fn missing_field(j: &serde_json::Error) -> Option<&'static str> {
    let text = j.to_string();
    ["sub", "exp"]
        .into_iter()
        .find(|f| text.starts_with(&format!("missing field `{f}`")))
}

#[cfg(test)]
mod tests;
