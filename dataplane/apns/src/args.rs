//! `ApnsArgs`: the `--apns-…` flags (each also `PUSHD_APNS_…`), for a role to flatten.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::config::{ApnsConfig, ConfigError, Endpoint, ProxyConfig, ProxyCredentials, SigningKey};

/// APNs (Apple push). Disabled unless `--apns-key-file` is given.
#[derive(Clone, Args)]
pub struct ApnsArgs {
    /// The provider token signing key (`AuthKey_XXXXXXXXXX.p8`, PKCS#8 PEM).
    #[arg(long, env = "PUSHD_APNS_KEY_FILE")]
    pub apns_key_file: Option<PathBuf>,
    /// The key's id (JWT header `kid`).
    #[arg(long, env = "PUSHD_APNS_KEY_ID")]
    pub apns_key_id: Option<String>,
    /// The Apple developer team id (JWT claim `iss`).
    #[arg(long, env = "PUSHD_APNS_TEAM_ID")]
    pub apns_team_id: Option<String>,
    /// The app's bundle id, sent as `apns-topic`.
    #[arg(long, env = "PUSHD_APNS_TOPIC")]
    pub apns_topic: Option<String>,
    /// `production`, `sandbox` or `https://HOST:PORT`.
    #[arg(long, env = "PUSHD_APNS_ENDPOINT", default_value = "production")]
    pub apns_endpoint: String,
    /// Extra trusted CA certificates (PEM), added to the Mozilla roots.
    #[arg(long, env = "PUSHD_APNS_CA_FILE")]
    pub apns_ca_file: Option<PathBuf>,
    /// HTTP forward proxy for APNs only: `http://[user:password@]host:port`, or `https://…`
    /// for TLS to the proxy as well (HTTP CONNECT; TLS stays end to end to APNs). Prefer the
    /// credentials file or variable below.
    #[arg(long, env = "PUSHD_APNS_PROXY", hide_env_values = true)]
    pub apns_proxy: Option<String>,
    /// File holding `user:password` for the proxy, re-read at every connect.
    #[arg(long, env = "PUSHD_APNS_PROXY_CREDENTIALS_FILE")]
    pub apns_proxy_credentials_file: Option<PathBuf>,
    /// `user:password` for the proxy.
    #[arg(long, env = "PUSHD_APNS_PROXY_CREDENTIALS", hide_env_values = true)]
    pub apns_proxy_credentials: Option<String>,
    /// How often a request written without a response is sent again (same apns-id and
    /// collapse id, so a duplicate replaces the first copy on the device).
    #[arg(long, env = "PUSHD_APNS_UNKNOWN_RETRIES", default_value_t = 0)]
    pub apns_unknown_retries: u32,
    /// Most APNs requests in flight.
    #[arg(long, env = "PUSHD_APNS_CONCURRENCY", default_value_t = 256)]
    pub apns_concurrency: usize,
    /// HTTP/2 connections kept open to APNs.
    #[arg(long, env = "PUSHD_APNS_CONNECTIONS", default_value_t = 1)]
    pub apns_connections: usize,
    /// Past this, a written request without a response is `unknown`.
    #[arg(long, env = "PUSHD_APNS_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub apns_request_timeout: Duration,
}

impl fmt::Debug for ApnsArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = self.apns_proxy.as_deref().map(|p| {
            ProxyConfig::parse(p)
                .map(|p| p.redacted_url())
                .unwrap_or_else(|_| "<invalid>".into())
        });
        f.debug_struct("ApnsArgs")
            .field("apns_key_file", &self.apns_key_file)
            .field("apns_key_id", &self.apns_key_id)
            .field("apns_team_id", &self.apns_team_id)
            .field("apns_topic", &self.apns_topic)
            .field("apns_endpoint", &self.apns_endpoint)
            .field("apns_ca_file", &self.apns_ca_file)
            .field("apns_proxy", &proxy)
            .field(
                "apns_proxy_credentials_file",
                &self.apns_proxy_credentials_file,
            )
            .field(
                "apns_proxy_credentials",
                &self.apns_proxy_credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("apns_unknown_retries", &self.apns_unknown_retries)
            .field("apns_concurrency", &self.apns_concurrency)
            .field("apns_connections", &self.apns_connections)
            .field("apns_request_timeout", &self.apns_request_timeout)
            .finish()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl ApnsArgs {
    /// Reads the files and validates everything: `Ok(None)` when APNs is not configured.
    pub fn config(&self) -> Result<Option<ApnsConfig>, ConfigError> {
        let Some(key_file) = &self.apns_key_file else {
            return Ok(None);
        };
        let need = |v: &Option<String>, flag: &str| {
            v.clone().ok_or_else(|| {
                ConfigError::Invalid(format!("{flag} is required with --apns-key-file"))
            })
        };
        let key = SigningKey::from_pem(&read("the APNs key", key_file)?)?;
        let mut config = ApnsConfig::new(
            key,
            need(&self.apns_key_id, "--apns-key-id")?,
            need(&self.apns_team_id, "--apns-team-id")?,
            need(&self.apns_topic, "--apns-topic")?,
            self.apns_endpoint.parse::<Endpoint>()?,
        );
        if let Some(ca) = &self.apns_ca_file {
            config.add_roots_pem(&read("the APNs CA", ca)?)?;
        }
        config.proxy = self.proxy()?;
        config.concurrency = self.apns_concurrency;
        config.connections = self.apns_connections;
        config.request_timeout = self.apns_request_timeout;
        config.retry.unknown_retries = self.apns_unknown_retries;
        config.validate()?;
        Ok(Some(config))
    }

    fn proxy(&self) -> Result<Option<ProxyConfig>, ConfigError> {
        let Some(url) = &self.apns_proxy else {
            if self.apns_proxy_credentials.is_some() || self.apns_proxy_credentials_file.is_some() {
                return Err(ConfigError::Invalid(
                    "APNs proxy credentials given without --apns-proxy".into(),
                ));
            }
            return Ok(None);
        };
        let mut proxy = ProxyConfig::parse(url)?;
        let given = [
            proxy.credentials.is_some(),
            self.apns_proxy_credentials.is_some(),
            self.apns_proxy_credentials_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ConfigError::Invalid(
                "give the APNs proxy credentials once: in --apns-proxy, PUSHD_APNS_PROXY_CREDENTIALS or --apns-proxy-credentials-file".into(),
            ));
        }
        if let Some(text) = &self.apns_proxy_credentials {
            proxy.credentials = Some(ProxyCredentials::parse(text)?);
        }
        if let Some(path) = &self.apns_proxy_credentials_file {
            // Fail now on an unreadable or malformed file; it is re-read at every connect.
            let text = read("the APNs proxy credentials", path)?;
            ProxyCredentials::parse(&String::from_utf8_lossy(&text))?;
            proxy.credentials = Some(ProxyCredentials::File(path.clone()));
        }
        Ok(Some(proxy))
    }
}

#[cfg(test)]
mod tests;
