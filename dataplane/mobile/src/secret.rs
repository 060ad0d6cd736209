//! [`Secret`]: a credential (client secret, app secret, access token) that never appears in
//! `Debug` or `Display`, and [`read_secret_file`] for the `--…-file` flags.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A secret string. Cheap to clone; printed as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself: only for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a secret from a file (a mounted Secret key): trimmed of surrounding whitespace,
/// never empty.
pub fn read_secret_file(
    what: &'static str,
    path: &Path,
) -> Result<Secret, crate::args::ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| crate::args::ConfigError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(crate::args::ConfigError::Invalid(format!(
            "{what} file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(text))
}
