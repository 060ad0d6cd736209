//! Where verification keys come from ([`KeySources`]) and reading them into a [`JwtVerifier`],
//! with errors that name the file and what is wrong with it ([`KeyError`]).
//!
//! - HS256: a secret given as a value, or a file holding it (trimmed).
//! - RS256, PEM: one RSA public key per file, `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY`
//!   (PKCS#1). A file's key id (`kid`) is its name without the extension: `2025-06.pem` → `2025-06`.
//! - RS256, JWKS: a JSON Web Key Set (`{"keys":[…]}`). RSA keys for signatures (`use` absent
//!   or `sig`, `alg` absent or `RS256`) are used; other keys are skipped with a log line.
//!
//! Key ids are unique across all files. A key without a `kid` is allowed only when it is the
//! only RSA key, since tokens without a `kid` are checked against a single RSA key only.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;

use crate::verify::{JwtVerifier, PinnedKey};

/// RSA keys shorter than this are refused.
pub const MIN_RSA_BITS: usize = 2048;

/// The secret and files that verification keys are read from.
#[derive(Clone, Default)]
pub struct KeySources {
    /// An HS256 secret given as a value (ignored when empty).
    pub hs256_secret: Option<Vec<u8>>,
    /// A file holding the HS256 secret; takes precedence over `hs256_secret`.
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM files with one RSA public key each.
    pub rsa_public_key_files: Vec<PathBuf>,
    /// A JSON Web Key Set file.
    pub jwks_file: Option<PathBuf>,
}

impl fmt::Debug for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySources")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("rsa_public_key_files", &self.rsa_public_key_files)
            .field("jwks_file", &self.jwks_file)
            .finish()
    }
}

/// Why the configured keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no JWT verification key configured: give an HS256 secret, RSA public key files or a JWKS file"
    )]
    NoKeys,
    #[error("failed to read JWT key file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("bad JWT key file {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl KeyError {
    /// The file at fault, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            KeyError::NoKeys => None,
            KeyError::Read { path, .. } | KeyError::Invalid { path, .. } => Some(path),
        }
    }

    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            KeyError::NoKeys => "no_keys",
            KeyError::Read { .. } => "read_error",
            KeyError::Invalid { .. } => "invalid",
        }
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|error| KeyError::Read {
        path: path.to_owned(),
        error,
    })?;
    String::from_utf8(bytes).map_err(|_| invalid(path, "not UTF-8 text"))
}

impl KeySources {
    /// Every file read by [`KeySources::load`], in order.
    pub fn files(&self) -> Vec<&Path> {
        self.hs256_secret_file
            .iter()
            .chain(&self.rsa_public_key_files)
            .chain(&self.jwks_file)
            .map(PathBuf::as_path)
            .collect()
    }

    /// Reads every source. Fails on the first bad file, or when there is no key at all.
    pub fn load(&self) -> Result<JwtVerifier, KeyError> {
        let hs256 = match (&self.hs256_secret_file, &self.hs256_secret) {
            (Some(path), _) => {
                let secret = read_text(path)?;
                let secret = secret.trim();
                if secret.is_empty() {
                    return Err(invalid(path, "the HS256 secret file is empty"));
                }
                Some(PinnedKey::hs256(
                    secret.as_bytes(),
                    path.display().to_string(),
                ))
            }
            (None, Some(secret)) if !secret.is_empty() => Some(PinnedKey::hs256(secret, "secret")),
            (None, _) => None,
        };
        let mut rsa: Vec<(PinnedKey, &Path)> = Vec::new();
        for path in &self.rsa_public_key_files {
            let key = read_pem(path)?;
            let kid = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty());
            rsa.push((
                PinnedKey::rs256(kid, &key, path.display().to_string()),
                path,
            ));
        }
        if let Some(path) = &self.jwks_file {
            for key in read_jwks(path)? {
                rsa.push((key, path));
            }
        }
        check_key_ids(&rsa)?;
        let rsa: Vec<PinnedKey> = rsa.into_iter().map(|(k, _)| k).collect();
        if hs256.is_none() && rsa.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(JwtVerifier::new(hs256, rsa))
    }
}

/// Unique `kid`s; a key without one only if it is the only RSA key.
fn check_key_ids(keys: &[(PinnedKey, &Path)]) -> Result<(), KeyError> {
    for (i, (key, path)) in keys.iter().enumerate() {
        match key.kid() {
            None if keys.len() > 1 => {
                return Err(invalid(
                    path,
                    format!(
                        "key {} has no `kid`; with several RSA keys configured every key needs one",
                        key.origin()
                    ),
                ));
            }
            None => {}
            Some(kid) => {
                if let Some((other, _)) = keys[..i].iter().find(|(k, _)| k.kid() == Some(kid)) {
                    return Err(invalid(
                        path,
                        format!("key id `{kid}` is already used by {}", other.origin()),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_size(path: &Path, what: &str, key: &RsaPublicKey) -> Result<(), KeyError> {
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(invalid(
            path,
            format!("{what} is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"),
        ));
    }
    Ok(())
}

/// The one RSA public key in a PEM file.
fn read_pem(path: &Path) -> Result<RsaPublicKey, KeyError> {
    let text = read_text(path)?;
    let (label, block) = pem_block(&text).map_err(|m| invalid(path, m))?;
    let key = match label {
        "PUBLIC KEY" => RsaPublicKey::from_public_key_pem(block)
            .map_err(|e| invalid(path, format!("not an RSA public key: {e}")))?,
        "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_pem(block)
            .map_err(|e| invalid(path, format!("not an RSA public key: {e}")))?,
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            return Err(invalid(
                path,
                "holds a private key; give its public key (`openssl pkey -in KEY -pubout`)",
            ));
        }
        "CERTIFICATE" => {
            return Err(invalid(
                path,
                "holds a certificate; give its public key (`openssl x509 -in CERT -pubkey -noout`)",
            ));
        }
        other => {
            return Err(invalid(
                path,
                format!("holds a `{other}`; expected `PUBLIC KEY` or `RSA PUBLIC KEY`"),
            ));
        }
    };
    check_size(path, "the key", &key)?;
    Ok(key)
}

/// The single PEM block of `text` (text around it is allowed): its label and the block itself.
fn pem_block(text: &str) -> Result<(&str, &str), String> {
    const BEGIN: &str = "-----BEGIN ";
    let start = text
        .find(BEGIN)
        .ok_or("not a PEM file (no `-----BEGIN …-----` line)")?;
    let rest = &text[start + BEGIN.len()..];
    let label = rest
        .split_once("-----")
        .map(|(l, _)| l)
        .filter(|l| !l.contains('\n'))
        .ok_or("malformed `-----BEGIN` line")?;
    let end_line = format!("-----END {label}-----");
    let end = text[start..]
        .find(&end_line)
        .map(|i| start + i + end_line.len())
        .ok_or_else(|| format!("no `{end_line}` line"))?;
    if text[end..].contains(BEGIN) {
        return Err("holds several PEM blocks; give one key per file".into());
    }
    Ok((label, &text[start..end]))
}

/// The usable RS256 keys of a JWKS file.
fn read_jwks(path: &Path) -> Result<Vec<PinnedKey>, KeyError> {
    let text = read_text(path)?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| invalid(path, format!("not valid JSON: {e}")))?;
    let entries = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(path, "not a JSON Web Key Set: no `keys` array"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, jwk) in entries.iter().enumerate() {
        let origin = format!("{}#{i}", path.display());
        match jwk_key(jwk).map_err(|m| invalid(path, format!("key #{i}: {m}")))? {
            Jwk::Rsa { kid, key } => {
                check_size(path, &format!("key #{i}"), &key)?;
                keys.push(PinnedKey::rs256(kid, &key, origin));
            }
            Jwk::Unused(reason) => {
                tracing::info!(key = %origin, reason, "skipping a JWKS key pushd does not use");
                skipped.push(format!("#{i}: {reason}"));
            }
        }
    }
    if keys.is_empty() {
        let why = if skipped.is_empty() {
            "the set is empty".to_owned()
        } else {
            format!("skipped {}", skipped.join("; "))
        };
        return Err(invalid(
            path,
            format!("no usable RS256 signature key ({why})"),
        ));
    }
    Ok(keys)
}

/// One entry of a JWKS.
enum Jwk {
    Rsa {
        kid: Option<String>,
        key: RsaPublicKey,
    },
    /// A valid entry pushd does not use, and why.
    Unused(String),
}

/// Reads one JWKS entry; `Err` when the entry is broken.
fn jwk_key(jwk: &Value) -> Result<Jwk, String> {
    let field = |name: &str| -> Result<Option<&str>, String> {
        match jwk.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let kid = field("kid")?.map(str::to_owned);
    let kty = field("kty")?.ok_or("no `kty`")?;
    if kty != "RSA" {
        return Ok(Jwk::Unused(format!("key type {kty}")));
    }
    if let Some(u) = field("use")?
        && u != "sig"
    {
        return Ok(Jwk::Unused(format!("`use` is {u}")));
    }
    if let Some(alg) = field("alg")?
        && alg != "RS256"
    {
        return Ok(Jwk::Unused(format!("algorithm {alg}")));
    }
    let number = |name: &str| -> Result<BigUint, String> {
        let text = field(name)?.ok_or_else(|| format!("no `{name}`"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("`{name}` is not base64url: {e}"))?;
        Ok(BigUint::from_bytes_be(&bytes))
    };
    let key = RsaPublicKey::new(number("n")?, number("e")?)
        .map_err(|e| format!("not a valid RSA public key: {e}"))?;
    Ok(Jwk::Rsa { kid, key })
}

#[cfg(test)]
mod tests;
