//! [`VerdictCache`]: recent verdicts on tokens, so that a flood of one token costs one
//! verification (or one round trip to the auth role).
//!
//! - Keyed by a SHA-256 of the token ([`TokenHash`]); the token itself is never stored.
//! - Bounded in entries: valid and invalid verdicts each have their own bound, so a flood of
//!   distinct bad tokens cannot push the good verdicts out. Each kind keeps two maps
//!   ("generations"): new entries go into the young one; when it is half the bound it becomes
//!   the old one and the previous old one is dropped. Memory stays under the bound with O(1)
//!   work per insert, and recently inserted verdicts survive longest.
//! - Bounded in time: an invalid verdict lives [`CachePolicy::invalid_ttl`]; a valid one until
//!   the token's `exp`, at most [`CachePolicy::valid_ttl_max`].
//! - Verdicts that can change on their own are not stored: "not yet valid" (`nbf`), "missing",
//!   and "auth unavailable".
//! - [`VerdictCache::clear`] (on a key reload) forgets everything and starts a new epoch; a
//!   verdict reached with the keys of an earlier epoch is not stored afterwards.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

use crate::AuthError;

/// SHA-256 of a token: what the cache stores instead of the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// How many verdicts a cache keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Most valid verdicts kept (0: none are cached).
    pub max_valid: usize,
    /// Most invalid verdicts kept (0: none are cached).
    pub max_invalid: usize,
    /// A valid verdict is kept until the token expires, and at most this long: a key removed
    /// from the auth role stops working on push nodes within this time.
    pub valid_ttl_max: Duration,
    /// How long an invalid verdict is kept.
    pub invalid_ttl: Duration,
}

impl CachePolicy {
    /// Push nodes in front of the auth role: valid and invalid verdicts.
    pub const REMOTE: CachePolicy = CachePolicy {
        max_valid: 100_000,
        max_invalid: 10_000,
        valid_ttl_max: Duration::from_secs(60),
        invalid_ttl: Duration::from_secs(5),
    };
    /// The verifier itself (standalone, auth role): invalid verdicts only; checking a valid
    /// token again is cheap and keeps key removals immediate.
    pub const LOCAL: CachePolicy = CachePolicy {
        max_valid: 0,
        ..CachePolicy::REMOTE
    };
}

/// Labels of `pushd_auth_verdict_cache_hits_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HitLabels {
    /// `valid` or `invalid`.
    pub verdict: String,
}

/// Metrics of a verdict cache. Cheap to clone.
#[derive(Clone, Default)]
pub struct CacheMetrics {
    /// Token checks answered from the cache, by verdict.
    pub hits: Family<HitLabels, Counter>,
    /// Token checks the cache could not answer.
    pub misses: Counter,
    /// Verdicts held.
    pub entries: Gauge,
}

impl CacheMetrics {
    /// Registers under `pushd_auth_verdict_cache_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("pushd_auth_verdict_cache");
        r.register(
            "hits",
            "Token checks answered from the verdict cache (keyed by a hash of the token), by verdict",
            self.hits.clone(),
        );
        r.register(
            "misses",
            "Token checks the verdict cache could not answer",
            self.misses.clone(),
        );
        r.register("entries", "Verdicts in the cache", self.entries.clone());
    }

    fn hit(&self, verdict: &str) {
        self.hits
            .get_or_create(&HitLabels {
                verdict: verdict.to_owned(),
            })
            .inc();
    }
}

struct Entry<T> {
    value: T,
    /// Unix milliseconds after which the entry is not used.
    until_ms: u64,
}

/// Two maps; together at most `max` entries.
struct Generations<T> {
    young: HashMap<TokenHash, Entry<T>>,
    old: HashMap<TokenHash, Entry<T>>,
    half: usize,
}

impl<T> Generations<T> {
    fn new(max: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            half: max / 2,
        }
    }

    fn get(&self, key: &TokenHash, now_ms: u64) -> Option<&T> {
        self.young
            .get(key)
            .or_else(|| self.old.get(key))
            .filter(|e| e.until_ms > now_ms)
            .map(|e| &e.value)
    }

    fn insert(&mut self, key: TokenHash, value: T, until_ms: u64) {
        if self.half == 0 {
            return;
        }
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, Entry { value, until_ms });
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    fn clear(&mut self) {
        self.young = HashMap::new();
        self.old = HashMap::new();
    }
}

struct State {
    valid: Generations<String>,
    invalid: Generations<AuthError>,
    epoch: u64,
}

/// Recent verdicts, keyed by [`TokenHash`]; see the module docs.
pub struct VerdictCache {
    state: Mutex<State>,
    policy: CachePolicy,
    metrics: CacheMetrics,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl VerdictCache {
    pub fn new(policy: CachePolicy) -> Self {
        VerdictCache {
            state: Mutex::new(State {
                valid: Generations::new(policy.max_valid),
                invalid: Generations::new(policy.max_invalid),
                epoch: 0,
            }),
            policy,
            metrics: CacheMetrics::default(),
        }
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// The cached verdict on `token`, or `verify`'s — which is then cached. `verify` returns
    /// the verdict and, for a valid token, its expiry (Unix seconds). An empty token is
    /// [`AuthError::Missing`] without asking.
    pub async fn verify_with<F, Fut>(&self, token: &str, verify: F) -> Result<String, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (Result<String, AuthError>, Option<u64>)>,
    {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let key = TokenHash::of(token);
        if let Some(verdict) = self.get(&key) {
            return verdict;
        }
        let epoch = self.epoch();
        let (verdict, exp) = verify().await;
        self.insert(key, &verdict, exp, epoch);
        verdict
    }

    /// The current epoch: read it before verifying, pass it to [`VerdictCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.state.lock().expect("lock").epoch
    }

    /// The cached verdict on `key`, if any.
    pub fn get(&self, key: &TokenHash) -> Option<Result<String, AuthError>> {
        self.get_at(key, pushcluster_proto::delivery::now_ms())
    }

    pub fn get_at(&self, key: &TokenHash, now_ms: u64) -> Option<Result<String, AuthError>> {
        let state = self.state.lock().expect("lock");
        let found = match state.valid.get(key, now_ms) {
            Some(user) => Some(Ok(user.clone())),
            None => state.invalid.get(key, now_ms).map(|e| Err(e.clone())),
        };
        drop(state);
        match &found {
            Some(Ok(_)) => self.metrics.hit("valid"),
            Some(Err(_)) => self.metrics.hit("invalid"),
            None => {
                self.metrics.misses.inc();
            }
        }
        found
    }

    /// Remembers a verdict reached under `epoch`. `exp`: the token's expiry in Unix seconds
    /// (a valid verdict without it is not stored).
    pub fn insert(
        &self,
        key: TokenHash,
        verdict: &Result<String, AuthError>,
        exp: Option<u64>,
        epoch: u64,
    ) {
        self.insert_at(
            key,
            verdict,
            exp,
            epoch,
            pushcluster_proto::delivery::now_ms(),
        );
    }

    pub fn insert_at(
        &self,
        key: TokenHash,
        verdict: &Result<String, AuthError>,
        exp: Option<u64>,
        epoch: u64,
        now_ms: u64,
    ) {
        let mut state = self.state.lock().expect("lock");
        if state.epoch != epoch {
            return; // the keys changed while this verdict was reached
        }
        match verdict {
            Ok(user) => {
                let Some(exp_ms) = exp.map(|s| s.saturating_mul(1000)) else {
                    return;
                };
                let until = exp_ms.min(now_ms.saturating_add(ms(self.policy.valid_ttl_max)));
                if until > now_ms {
                    state.valid.insert(key, user.clone(), until);
                }
            }
            Err(e @ (AuthError::Invalid(_) | AuthError::Expired)) => {
                let until = now_ms.saturating_add(ms(self.policy.invalid_ttl));
                state.invalid.insert(key, e.clone(), until);
            }
            Err(AuthError::NotYetValid | AuthError::Missing | AuthError::Unavailable(_)) => {}
        }
        self.metrics
            .entries
            .set((state.valid.len() + state.invalid.len()) as i64);
    }

    /// Forgets every verdict and starts a new epoch (call after the keys changed).
    pub fn clear(&self) {
        let mut state = self.state.lock().expect("lock");
        state.valid.clear();
        state.invalid.clear();
        state.epoch += 1;
        self.metrics.entries.set(0);
    }

    /// Verdicts held.
    pub fn len(&self) -> usize {
        let state = self.state.lock().expect("lock");
        state.valid.len() + state.invalid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
