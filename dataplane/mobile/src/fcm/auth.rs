//! The service-account key and Google's OAuth JWT grant: an RS256 JWT `{iss: client_email,
//! scope: firebase.messaging, aud: token_uri, iat, exp ≤ iat + 1 h}` with `kid` =
//! `private_key_id`, posted to `token_uri` for an access token (about an hour).

use std::fmt;
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use serde::{Deserialize, Serialize};

use crate::args::ConfigError;
use crate::http::DirectClient;
use crate::token::{Fetched, TokenError};

/// The OAuth scope of FCM sends.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The lifetime asked of a grant JWT (Google's maximum).
const GRANT_LIFETIME: Duration = Duration::from_secs(3600);
const VENDOR: &str = "fcm";

/// The fields of a service-account key file that matter here.
#[derive(Clone)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    /// `private_key_id`: the JWT's `kid`.
    pub key_id: String,
    /// Where tokens come from (`https://oauth2.googleapis.com/token`; a fake in tests).
    pub token_uri: String,
    key: EncodingKey,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("key_id", &self.key_id)
            .field("token_uri", &self.token_uri)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
    token_uri: Option<String>,
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(format!("FCM service-account key: {}", msg.into()))
}

/// The key's PEM (PKCS#8, as Google hands it out, or PKCS#1) as a signing key.
fn rsa_key(pem: &str) -> Result<EncodingKey, ConfigError> {
    let pem = pem.trim();
    let key = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())
    } else {
        RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())
    }
    .map_err(|e| invalid(format!("`private_key` is not an RSA PEM key: {e}")))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| invalid(format!("`private_key`: {e}")))?;
    Ok(EncodingKey::from_rsa_der(der.as_bytes()))
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceAccount {
    /// Parses and checks a key file (its RSA key must sign).
    pub fn from_json(text: &[u8]) -> Result<ServiceAccount, ConfigError> {
        let f: KeyFile =
            serde_json::from_slice(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if f.kind.as_deref() != Some("service_account") {
            return Err(invalid("`type` must be \"service_account\""));
        }
        let need = |v: Option<String>, name: &str| {
            v.filter(|s| !s.is_empty())
                .ok_or_else(|| invalid(format!("`{name}` is missing")))
        };
        let pem = need(f.private_key, "private_key")?;
        let key = rsa_key(&pem)?;
        let token_uri = need(f.token_uri, "token_uri")?;
        if !token_uri.starts_with("https://") {
            return Err(invalid("`token_uri` must be an https:// URL"));
        }
        let account = ServiceAccount {
            project_id: need(f.project_id, "project_id")?,
            client_email: need(f.client_email, "client_email")?,
            key_id: need(f.private_key_id, "private_key_id")?,
            token_uri,
            key,
        };
        account
            .grant(SystemTime::now())
            .map_err(|e| invalid(format!("the key cannot sign RS256: {e}")))?;
        Ok(account)
    }

    /// The signed grant JWT at `now`.
    pub fn grant(&self, now: SystemTime) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + GRANT_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// Exchanges a fresh grant for an access token.
pub async fn fetch(client: &DirectClient, account: &ServiceAccount) -> Result<Fetched, TokenError> {
    let refused = |detail: String| TokenError::Refused {
        vendor: VENDOR,
        detail,
    };
    let jwt = account
        .grant(SystemTime::now())
        .map_err(|e| refused(format!("cannot sign the grant: {e}")))?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", &jwt)
        .finish();
    let request = crate::http::post(
        &account.token_uri,
        "application/x-www-form-urlencoded",
        None,
        form,
    )
    .map_err(|e| refused(format!("bad token request: {e}")))?;
    crate::token::oauth_reply(client.exchange(request).await, VENDOR)
}
