//! Secrets — the PII key, API tokens, the Kafka SASL password, Alertmanager
//! credentials — come from the environment or from files, never from
//! `yujing.toml`, which is readable by more people than the secrets should be.
//! A secret named `NAME` is looked up, in order, as the environment variable
//! `NAME`, the file that `NAME_FILE` names, and `$CREDENTIALS_DIRECTORY/NAME`
//! (systemd's `LoadCredential=`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A secret's value. Its `Debug` shows only its length, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Where a secret was found, for messages (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Env(String),
    File(PathBuf),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Env(name) => write!(f, "${name}"),
            Found::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The secret `name`, if set anywhere; an error if a file that should hold it
/// cannot be read. Empty values count as unset; one trailing newline of a file
/// is not part of it.
pub fn read(name: &str) -> Result<Option<(Secret, Found)>> {
    if let Ok(v) = std::env::var(name)
        && !v.is_empty()
    {
        return Ok(Some((Secret(v), Found::Env(name.to_string()))));
    }
    let from_file = std::env::var_os(format!("{name}_FILE"))
        .map(PathBuf::from)
        .map(|p| (p, true));
    let from_credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|d| Path::new(&d).join(name))
        .map(|p| (p, false));
    for (path, named) in from_file.into_iter().chain(from_credentials) {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let value = text.strip_suffix('\n').unwrap_or(&text);
                let value = value.strip_suffix('\r').unwrap_or(value);
                if !value.is_empty() {
                    return Ok(Some((Secret(value.to_string()), Found::File(path))));
                }
            }
            // A credentials directory need not hold every secret; a named file must exist.
            Err(e) if named || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&path, e));
            }
            Err(_) => {}
        }
    }
    Ok(None)
}

/// [`read`], with an error naming every place looked in when it is unset.
pub fn require(name: &str, what: &str) -> Result<Secret> {
    read(name)?.map(|(s, _)| s).ok_or_else(|| {
        Error::Other(format!(
            "{what}: set ${name}, or ${name}_FILE to a file holding it, or a systemd credential `{name}`"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret("hunter2hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(14 bytes)");
    }

    #[test]
    fn a_file_named_by_name_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        // A name no other test uses: the environment is shared by the test threads.
        let name = "YUJING_SECRET_TEST_A";
        // SAFETY: only this test reads or writes these two variables.
        unsafe { std::env::set_var(format!("{name}_FILE"), &path) };
        let got = read(name).unwrap().unwrap();
        assert_eq!(got.0.expose(), "abc");
        assert_eq!(got.1, Found::File(path));
        unsafe { std::env::set_var(format!("{name}_FILE"), dir.path().join("missing")) };
        assert!(
            read(name).is_err(),
            "a named file that is missing is an error"
        );
        unsafe { std::env::remove_var(format!("{name}_FILE")) };
        assert!(read(name).unwrap().is_none());
        assert!(
            require(name, "the test token")
                .unwrap_err()
                .to_string()
                .contains("_FILE")
        );
    }
}
