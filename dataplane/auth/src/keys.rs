//! Verification keys that can change without a restart.
//!
//! [`ReloadingVerifier`] polls the key files' modification time and size. When any changed it
//! reads *all* sources again and swaps the whole key set at once; if the new files are bad it
//! logs a warning, counts the failure and keeps verifying with the last good keys. The
//! [`ClaimRules`] stay the same across reloads.
//!
//! Failed verdicts are kept in a [`VerdictCache`] for a few seconds, so a flood of one bad
//! token costs one verification; every successful reload forgets them (a token refused for an
//! unknown `kid` may verify with the new keys).

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cache::{CachePolicy, VerdictCache};
use crate::load::{KeyError, KeySources};
use crate::{AuthError, ClaimRules, JwtVerifier, TokenVerifier};

/// Labels of `pushd_auth_key_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok`, or why the new files were refused (`read_error`, `invalid`, `no_keys`).
    pub result: String,
}

/// Metrics of the key files. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyMetrics {
    /// Reloads after a key file changed, by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Verification keys in use.
    pub keys: Gauge,
}

impl KeyMetrics {
    /// Registers under `pushd_auth_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("pushd_auth");
        r.register(
            "key_reloads",
            "Reloads of the JWT key files after a change, by result; on failure the last good keys stay in use",
            self.reloads.clone(),
        );
        r.register("keys", "JWT verification keys in use", self.keys.clone());
    }

    fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.to_owned(),
            })
            .inc();
    }
}

/// What a file looked like when last read: `None` if it could not be stat'ed.
type Stamp = Option<(Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// The keys of `v` for a log line: where each came from and its `kid`.
fn describe(v: &JwtVerifier) -> Vec<String> {
    v.keys()
        .map(|k| match k.kid() {
            Some(kid) => format!("{} (kid {kid})", k.origin()),
            None => k.origin().to_owned(),
        })
        .collect()
}

/// A [`JwtVerifier`] over [`KeySources`], re-read when a key file changes.
pub struct ReloadingVerifier {
    current: RwLock<Arc<JwtVerifier>>,
    sources: KeySources,
    rules: ClaimRules,
    /// Stamps of `sources.files()` as of the last attempt (good or bad).
    seen: Mutex<Vec<Stamp>>,
    metrics: KeyMetrics,
    /// Recent failed verdicts.
    failures: VerdictCache,
}

impl ReloadingVerifier {
    /// A fixed HS256 secret (nothing to reload).
    pub fn fixed(secret: &[u8], rules: ClaimRules) -> Self {
        let sources = KeySources {
            hs256_secret: Some(secret.to_vec()),
            ..KeySources::default()
        };
        let verifier = JwtVerifier::hs256(secret);
        Self::with(sources, rules, verifier, Vec::new())
    }

    /// Reads every source now; a bad file is an error naming it.
    pub fn new(sources: KeySources, rules: ClaimRules) -> Result<Self, KeyError> {
        let stamps = sources.files().into_iter().map(stamp).collect();
        let verifier = sources.load()?;
        tracing::info!(keys = ?describe(&verifier), ?rules, "loaded JWT keys");
        Ok(Self::with(sources, rules, verifier, stamps))
    }

    fn with(
        sources: KeySources,
        rules: ClaimRules,
        verifier: JwtVerifier,
        stamps: Vec<Stamp>,
    ) -> Self {
        let metrics = KeyMetrics::default();
        metrics.keys.set(verifier.key_count() as i64);
        ReloadingVerifier {
            current: RwLock::new(Arc::new(verifier.with_rules(rules.clone()))),
            sources,
            rules,
            seen: Mutex::new(stamps),
            metrics,
            failures: VerdictCache::new(CachePolicy::LOCAL),
        }
    }

    pub fn metrics(&self) -> &KeyMetrics {
        &self.metrics
    }

    /// The cache of failed verdicts (its metrics, for the registry).
    pub fn cache(&self) -> &VerdictCache {
        &self.failures
    }

    /// The keys in use now.
    pub fn current(&self) -> Arc<JwtVerifier> {
        self.current.read().expect("lock").clone()
    }

    /// Re-reads the key files if any changed. Returns true when new keys are in use.
    pub fn reload_if_changed(&self) -> bool {
        let files = self.sources.files();
        if files.is_empty() {
            return false;
        }
        let stamps: Vec<Stamp> = files.iter().map(|p| stamp(p)).collect();
        {
            let mut seen = self.seen.lock().expect("lock");
            if *seen == stamps {
                return false;
            }
            // Remember even a bad version, so it is reported once, not on every poll.
            *seen = stamps;
        }
        match self.sources.load() {
            Ok(verifier) => {
                tracing::info!(keys = ?describe(&verifier), "reloaded JWT keys");
                self.metrics.keys.set(verifier.key_count() as i64);
                self.metrics.reload("ok");
                *self.current.write().expect("lock") =
                    Arc::new(verifier.with_rules(self.rules.clone()));
                // After the swap: a verdict reached with the old keys is either cleared
                // here or refused by the new epoch.
                self.failures.clear();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWT key files changed but cannot be used; keeping the last good keys");
                self.metrics.reload(e.metric_label());
                false
            }
        }
    }

    /// Polls the key files every `every` until the returned task is dropped/aborted.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                me.reload_if_changed();
            }
        })
    }
}

#[async_trait]
impl TokenVerifier for ReloadingVerifier {
    async fn verify(&self, token: &str) -> Result<String, AuthError> {
        // Only failures are kept ([`CachePolicy::LOCAL`]).
        self.failures
            .verify_with(token, async || (self.current().verify_sync(token), None))
            .await
    }
}

#[cfg(test)]
mod tests;
