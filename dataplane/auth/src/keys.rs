//! Verification keys that can change without a restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{AuthError, JwtVerifier, TokenVerifier};

/// An HS256 secret from a value or a file; a file is re-read when it changes.
pub struct ReloadingVerifier {
    current: RwLock<Arc<JwtVerifier>>,
    source: Option<(PathBuf, RwLock<Option<SystemTime>>)>,
}

fn read_secret(path: &PathBuf) -> std::io::Result<(Vec<u8>, Option<SystemTime>)> {
    let bytes = std::fs::read(path)?;
    let secret = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
    let mtime = std::fs::metadata(path)?.modified().ok();
    Ok((secret, mtime))
}

impl ReloadingVerifier {
    /// A fixed secret.
    pub fn fixed(secret: &[u8]) -> Self {
        ReloadingVerifier {
            current: RwLock::new(Arc::new(JwtVerifier::hs256(secret))),
            source: None,
        }
    }

    /// A secret read from `path` (trimmed), re-read by [`ReloadingVerifier::reload_if_changed`].
    pub fn from_file(path: PathBuf) -> std::io::Result<Self> {
        let (secret, mtime) = read_secret(&path)?;
        Ok(ReloadingVerifier {
            current: RwLock::new(Arc::new(JwtVerifier::hs256(&secret))),
            source: Some((path, RwLock::new(mtime))),
        })
    }

    /// Re-reads the key file if its modification time changed. Returns true on a reload.
    pub fn reload_if_changed(&self) -> bool {
        let Some((path, seen)) = &self.source else {
            return false;
        };
        match read_secret(path) {
            Ok((secret, mtime)) if mtime != *seen.read().expect("lock") && !secret.is_empty() => {
                *self.current.write().expect("lock") = Arc::new(JwtVerifier::hs256(&secret));
                *seen.write().expect("lock") = mtime;
                tracing::info!(path = %path.display(), "reloaded JWT key");
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read JWT key file; keeping the old key");
                false
            }
        }
    }

    /// Polls the key file every `every` until the returned task is dropped/aborted.
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
        let v = self.current.read().expect("lock").clone();
        v.verify_sync(token)
    }
}
