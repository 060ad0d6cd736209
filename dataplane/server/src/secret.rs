//! Bearer secrets: the API keys business systems send, and the internal token the roles send
//! each other.
//!
//! A [`Secrets`] is a *list*, so a secret rotates without downtime: add the new one, roll the
//! callers over, remove the old one. Values come from flags/env and from an optional file (one
//! per line; blank lines and `#` comments ignored) that is re-read when it changes — a bad new
//! version is logged and the last good list stays in use. A presented secret is compared with
//! every accepted one in constant time ([`subtle`]). Values never reach logs or `Debug`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use subtle::{Choice, ConstantTimeEq};

use crate::watch::Stamps;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why secrets cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no {what} configured: {hint}")]
    None {
        what: &'static str,
        hint: &'static str,
    },
    #[error("failed to read the {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} #{index}{origin} is too short: it must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort {
        what: &'static str,
        index: usize,
        origin: String,
    },
    #[error(
        "{what} #{index}{origin} must be visible ASCII without spaces (it is sent in a header)"
    )]
    NotToken {
        what: &'static str,
        index: usize,
        origin: String,
    },
}

/// One secret value. Its `Debug` prints nothing of it.
#[derive(Clone)]
struct Secret(Box<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The secrets in use.
#[derive(Debug)]
struct Loaded {
    secrets: Vec<Secret>,
}

/// A reloadable list of accepted bearer secrets (see the module docs).
pub struct Secrets {
    /// What they are, for messages: "API key", "internal token".
    what: &'static str,
    /// How to configure them, for the "none configured" message.
    hint: &'static str,
    inline: Vec<Secret>,
    file: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    stamps: Mutex<Stamps>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("what", &self.what)
            .field("count", &self.current().secrets.len())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn check(what: &'static str, index: usize, origin: &str, s: &str) -> Result<Secret, SecretError> {
    let origin = origin.to_owned();
    if s.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort {
            what,
            index,
            origin,
        });
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SecretError::NotToken {
            what,
            index,
            origin,
        });
    }
    Ok(Secret(s.as_bytes().into()))
}

impl Secrets {
    /// `inline`: values from flags/env (empty strings are ignored); `file`: one per line.
    /// `hint` says how to configure them when none is given.
    pub fn new(
        what: &'static str,
        hint: &'static str,
        inline: impl IntoIterator<Item = String>,
        file: Option<PathBuf>,
    ) -> Result<Arc<Secrets>, SecretError> {
        let inline = inline
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| check(what, i + 1, "", &s))
            .collect::<Result<Vec<_>, _>>()?;
        let stamps = Stamps::new(file.iter().cloned().collect());
        let secrets = Secrets {
            what,
            hint,
            inline,
            file,
            current: RwLock::new(Arc::new(Loaded {
                secrets: Vec::new(),
            })),
            stamps: Mutex::new(stamps),
        };
        let loaded = secrets.load()?;
        *secrets.current.write().expect("secrets lock") = Arc::new(loaded);
        Ok(Arc::new(secrets))
    }

    fn load(&self) -> Result<Loaded, SecretError> {
        let mut all = self.inline.clone();
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
                what: self.what,
                path: path.clone(),
                source,
            })?;
            let origin = format!(" of {}", path.display());
            for (i, line) in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .enumerate()
            {
                all.push(check(self.what, i + 1, &origin, line)?);
            }
        }
        if all.is_empty() {
            return Err(SecretError::None {
                what: self.what,
                hint: self.hint,
            });
        }
        Ok(Loaded { secrets: all })
    }

    fn current(&self) -> Arc<Loaded> {
        self.current.read().expect("secrets lock").clone()
    }

    /// Whether `given` is one of the accepted secrets. Constant time in the secrets' bytes:
    /// every accepted secret is compared, none short-circuits.
    pub fn matches(&self, given: &[u8]) -> bool {
        let current = self.current();
        let mut ok = Choice::from(0);
        for s in &current.secrets {
            ok |= s.0.ct_eq(given);
        }
        ok.into()
    }

    /// What callers send: the file's first secret if there is a file, else the first value
    /// given inline (rotation: add the new secret as the file's second line, let every server
    /// reload, move it first, then drop the old one).
    pub fn outgoing(&self) -> String {
        let current = self.current();
        let first = match &self.file {
            Some(_) => current.secrets.get(self.inline.len()),
            None => None,
        }
        .or(current.secrets.first())
        .expect("a loaded list is never empty");
        String::from_utf8(first.0.to_vec()).expect("secrets are ASCII")
    }

    /// How many secrets are accepted now.
    pub fn len(&self) -> usize {
        self.current().secrets.len()
    }

    /// Always false: a list without secrets is refused by [`Secrets::new`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file if it changed. `Ok(true)`: a new list is in use.
    pub fn reload(&self) -> Result<bool, SecretError> {
        if self.file.is_none() || !self.stamps.lock().expect("stamps lock").changed() {
            return Ok(false);
        }
        let loaded = self.load()?;
        *self.current.write().expect("secrets lock") = Arc::new(loaded);
        Ok(true)
    }

    /// Re-reads the file every `every` when it changed; logs the outcome (never a value).
    pub fn watch(self: &Arc<Self>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        self.file.as_ref()?;
        let me = self.clone();
        Some(crate::watch::every(every, move || match me.reload() {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(what = me.what, count = me.len(), file = ?me.file, "secrets reloaded")
            }
            Err(e) => {
                tracing::warn!(error = %e, "secrets file changed but is unusable; keeping the last good ones")
            }
        }))
    }
}

#[cfg(test)]
mod tests;
