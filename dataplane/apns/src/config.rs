//! The typed configuration of an [`ApnsSender`](crate::ApnsSender), validated before any
//! socket is opened. Secrets (the signing key, proxy credentials) never appear in `Debug`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::retry::RetryPolicy;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid APNs configuration: {0}")]
    Invalid(String),
    #[error("failed to read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `api.push.apple.com:443`.
    Production,
    /// `api.sandbox.push.apple.com:443`.
    Sandbox,
    /// Any `https://HOST:PORT` (tests, a relay).
    Custom { host: String, port: u16 },
}

impl Endpoint {
    /// The host name the TLS certificate must match.
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Production => "api.push.apple.com",
            Endpoint::Sandbox => "api.sandbox.push.apple.com",
            Endpoint::Custom { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Production | Endpoint::Sandbox => 443,
            Endpoint::Custom { port, .. } => *port,
        }
    }

    /// `host:port`, IPv6 hosts in brackets.
    pub fn authority(&self) -> String {
        let host = self.host();
        if host.contains(':') {
            format!("[{host}]:{}", self.port())
        } else {
            format!("{host}:{}", self.port())
        }
    }
}

impl FromStr for Endpoint {
    type Err = ConfigError;

    /// `production`, `sandbox` or `https://HOST:PORT` (port defaults to 443).
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "production" => return Ok(Endpoint::Production),
            "sandbox" => return Ok(Endpoint::Sandbox),
            _ => {}
        }
        let uri: http::Uri = s.parse().map_err(|_| {
            invalid(format!(
                "--apns-endpoint {s:?} is not production, sandbox or https://HOST:PORT"
            ))
        })?;
        if uri.scheme_str() != Some("https") || uri.path().len() > 1 || uri.query().is_some() {
            return Err(invalid(format!(
                "--apns-endpoint {s:?} must be production, sandbox or https://HOST:PORT"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| invalid("--apns-endpoint has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint::Custom {
            host,
            port: uri.port_u16().unwrap_or(443),
        })
    }
}

/// The ES256 key (`AuthKey_XXXX.p8`, PKCS#8) that signs provider tokens.
#[derive(Clone)]
pub struct SigningKey(pub(crate) Vec<u8>);

impl SigningKey {
    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as Apple hands it out.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, ConfigError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|e| invalid(format!("the APNs key is not a PKCS#8 PEM private key: {e}")))?;
        Ok(SigningKey(der.secret_pkcs8_der().to_vec()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// `user:password` for the proxy's basic auth.
#[derive(Clone, PartialEq, Eq)]
pub enum ProxyCredentials {
    /// Given inline (URL userinfo or environment variable).
    Inline { user: String, password: String },
    /// Read from this file (`user:password`) at every connect, so a fixed Secret takes
    /// effect without a restart.
    File(PathBuf),
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyCredentials::Inline { user, .. } => {
                write!(f, "Inline {{ user: {user:?}, password: <redacted> }}")
            }
            ProxyCredentials::File(path) => write!(f, "File({path:?})"),
        }
    }
}

impl ProxyCredentials {
    /// Parses `user:password`.
    pub fn parse(text: &str) -> Result<ProxyCredentials, ConfigError> {
        let text = text.trim_end_matches(['\r', '\n']);
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(ProxyCredentials::Inline {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(invalid("proxy credentials must be `user:password`")),
        }
    }
}

/// The HTTP forward proxy that APNs traffic (and only APNs traffic) goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<ProxyCredentials>,
    /// An `https://` proxy: TLS to the proxy (verified against `host`), then CONNECT inside it,
    /// then TLS to APNs inside the tunnel.
    pub tls: bool,
}

impl ProxyConfig {
    /// Parses `http(s)://[user:password@]host:port`. Percent-escapes in the userinfo are
    /// decoded.
    pub fn parse(url: &str) -> Result<ProxyConfig, ConfigError> {
        let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            return Err(invalid(
                "--apns-proxy must be http://[user:password@]host:port or https://…",
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let authority: http::uri::Authority = hostport
            .parse()
            .map_err(|_| invalid("--apns-proxy has an invalid host:port"))?;
        let port = authority
            .port_u16()
            .ok_or_else(|| invalid("--apns-proxy needs an explicit port"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let credentials = match userinfo {
            Some(u) => Some(ProxyCredentials::parse(&percent_decode(u)?)?),
            None => None,
        };
        Ok(ProxyConfig {
            host,
            port,
            credentials,
            tls,
        })
    }

    /// `http(s)://host:port`, without credentials: safe to log.
    pub fn redacted_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(s: &str) -> Result<String, ConfigError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    invalid("--apns-proxy has a bad percent-escape in its credentials")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("--apns-proxy credentials are not UTF-8"))
}

/// Everything an [`ApnsSender`](crate::ApnsSender) needs.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    pub key: SigningKey,
    /// The key's 10-character id (JWT header `kid`).
    pub key_id: String,
    /// The team id (JWT claim `iss`).
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    pub endpoint: Endpoint,
    /// Extra trusted roots (PEM), on top of the Mozilla roots. For tests and private relays.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// `None`: connect directly. Environment variables (`HTTPS_PROXY`…) are never read.
    pub proxy: Option<ProxyConfig>,
    /// Most requests in flight across all connections.
    pub concurrency: usize,
    /// HTTP/2 connections kept open (requests are spread round-robin).
    pub connections: usize,
    /// Time from writing a request to its complete response; past it the outcome is unknown.
    pub request_timeout: Duration,
    /// TCP connect (to APNs or to the proxy), CONNECT and TLS handshake, each.
    pub connect_timeout: Duration,
    /// First wait before reconnecting a slot after a failed connect (doubles, up to 30 s).
    pub reconnect_delay: Duration,
    /// HTTP/2 PING period on every connection, idle or not.
    pub keepalive_interval: Duration,
    /// A PING unanswered for this long closes the connection.
    pub keepalive_timeout: Duration,
    /// Provider token period: `iat` is aligned to multiples of it (20–60 minutes).
    pub token_period: Duration,
    pub retry: RetryPolicy,
}

/// The shortest time between two provider tokens that Apple accepts.
pub const TOKEN_MIN_INTERVAL: Duration = Duration::from_secs(20 * 60);
/// The age at which Apple rejects a provider token.
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(60 * 60);

impl ApnsConfig {
    /// A configuration with the defaults for everything but the identity and the endpoint.
    pub fn new(
        key: SigningKey,
        key_id: impl Into<String>,
        team_id: impl Into<String>,
        topic: impl Into<String>,
        endpoint: Endpoint,
    ) -> ApnsConfig {
        ApnsConfig {
            key,
            key_id: key_id.into(),
            team_id: team_id.into(),
            topic: topic.into(),
            endpoint,
            extra_roots: Vec::new(),
            proxy: None,
            concurrency: 256,
            connections: 1,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_delay: Duration::from_millis(500),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            token_period: Duration::from_secs(30 * 60),
            retry: RetryPolicy::default(),
        }
    }

    /// Adds the certificates of a PEM file's text to the trusted roots.
    pub fn add_roots_pem(&mut self, pem: &[u8]) -> Result<(), ConfigError> {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(format!("--apns-ca-file: {e}")))?;
            self.extra_roots.push(cert);
            n += 1;
        }
        if n == 0 {
            return Err(invalid("--apns-ca-file holds no certificate"));
        }
        Ok(())
    }

    /// Checks the values that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id_ok = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if !id_ok(&self.key_id) {
            return Err(invalid("--apns-key-id must be the key's alphanumeric id"));
        }
        if !id_ok(&self.team_id) {
            return Err(invalid("--apns-team-id must be the alphanumeric team id"));
        }
        if self.topic.is_empty()
            || self
                .topic
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(invalid("--apns-topic must be the app's bundle id"));
        }
        if self.concurrency == 0 || self.connections == 0 {
            return Err(invalid(
                "--apns-concurrency and --apns-connections must be positive",
            ));
        }
        if self.token_period < TOKEN_MIN_INTERVAL || self.token_period >= TOKEN_MAX_AGE {
            return Err(invalid(
                "the provider token period must be at least 20 and less than 60 minutes",
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(invalid("APNs timeouts must be positive"));
        }
        if self.keepalive_interval.is_zero() || self.keepalive_timeout.is_zero() {
            return Err(invalid(
                "APNs keep-alive interval and timeout must be positive",
            ));
        }
        crate::token::check_key(&self.key)
            .map_err(|e| invalid(format!("the APNs key cannot sign ES256 tokens: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
