//! [`SecretRef`]: the one type for "a value, or `_env`, or `_file`" in a profile.
//!
//! A profile names its secrets (the Wi-Fi passphrase, the cluster and runner tokens, a
//! plaintext password) by one of a few keys: the value itself (`psk`), an environment
//! variable (`psk_env`, `token_env`, `password_env`) or a file (`psk_file`, `token_file`).
//! Butane's single `Resource{source, inline, local}` is the model: the keys are read into a
//! `SecretRef` once ([`pick`], which also holds the "only one of" rule), resolved once
//! ([`SecretRef::resolve`], reading the environment only through [`crate::edge::Settings`]),
//! and displayed once (its `Display` names the variable or the file, never the value).
//! Error messages name the variable or the path, never the value.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::edge::{Settings, VarError};

/// The largest secret file pinode reads (a passphrase or a token, not a document).
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Where a secret comes from.
#[derive(Debug, Clone)]
enum SecretSource {
    /// Written in the profile itself.
    Inline(SecretString),
    /// The name of an environment variable.
    Env(String),
    /// A path (`~` expands; relative to the profile's directory).
    File(String),
}

/// A secret named by a profile, with the profile field that names it (for errors found
/// when it is resolved, e.g. a missing environment variable).
#[derive(Debug, Clone)]
pub struct SecretRef {
    source: SecretSource,
    /// Dotted path of the key, e.g. `defaults.wifi.psk_env`.
    pub(crate) field: String,
}

/// Why a secret could not be read. The texts name the variable or the file, never the value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    #[error("environment variable {var} is empty")]
    EnvEmpty { var: String },
    #[error("environment variable {var} is not set{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    EnvNotSet { var: String, hint: Option<String> },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUtf8 { var: String },
    #[error(
        "cannot expand {path}: the home of the invoking user (uid {uid}) is unknown; write the full path"
    )]
    UnknownHome { path: String, uid: u32 },
    #[error(transparent)]
    Read(#[from] crate::input::InputError),
    #[error("{} is empty", .0.display())]
    FileEmpty(PathBuf),
}

/// The keys a profile offers for one secret, in the order messages name them: each with its
/// form and the value given, if any.
pub(crate) struct SecretKeys<'a> {
    /// The mapping holding the keys, e.g. `defaults.wifi`.
    pub(crate) parent: &'a str,
    pub(crate) keys: &'a [(&'a str, SecretKind, Option<&'a String>)],
}

/// The form of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretKind {
    Inline,
    Env,
    File,
}

/// What [`pick`] found among a secret's keys.
pub enum Picked {
    /// None of the keys is given.
    Missing,
    One(SecretRef),
    /// More than one is given; the message says which to keep ("give only one of …").
    Several(String),
}

/// The one secret `keys` give: the "exactly one of" rule, in one place.
pub(crate) fn pick(keys: &SecretKeys<'_>) -> Picked {
    let given: Vec<_> = keys
        .keys
        .iter()
        .filter_map(|(name, kind, value)| value.map(|v| (*name, *kind, v)))
        .collect();
    match given.as_slice() {
        [] => Picked::Missing,
        [(name, kind, value)] => Picked::One(SecretRef {
            source: match kind {
                SecretKind::Inline => SecretSource::Inline(SecretString::from(value.to_string())),
                SecretKind::Env => SecretSource::Env(value.to_string()),
                SecretKind::File => SecretSource::File(value.to_string()),
            },
            field: field(keys.parent, name),
        }),
        _ => {
            let names: Vec<&str> = keys.keys.iter().map(|(n, ..)| *n).collect();
            Picked::Several(match names.as_slice() {
                [a, b] => format!("give {a} or {b}, not both"),
                [rest @ .., last] => format!("give only one of {} and {last}", rest.join(", ")),
                [] => String::new(),
            })
        }
    }
}

fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl SecretRef {
    /// Reads the secret: the environment through `settings`, files below `base_dir`.
    pub(crate) fn resolve(
        &self,
        settings: &Settings,
        base_dir: &Path,
    ) -> Result<SecretString, SecretError> {
        match &self.source {
            SecretSource::Inline(value) => Ok(value.clone()),
            SecretSource::Env(var) => from_env(settings, var),
            SecretSource::File(path) => from_file(path, base_dir),
        }
    }
}

impl SecretError {
    /// Whether the problem is the environment's (a variable not set, empty, not UTF-8) rather
    /// than the profile's: `profile check` may run where the secrets are not, so it only
    /// warns about these unless `--strict`.
    pub(crate) fn is_environment(&self) -> bool {
        matches!(
            self,
            SecretError::EnvEmpty { .. }
                | SecretError::EnvNotSet { .. }
                | SecretError::EnvNotUtf8 { .. }
        )
    }
}

impl SecretRef {
    /// A warning when the secret is a file that group or others may read (the path and the
    /// mode, never the content): anyone on the machine could join the cluster or the network.
    pub(crate) fn exposed_file(&self, base_dir: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let SecretSource::File(path) = &self.source else {
            return None;
        };
        let full = expand_path(path, base_dir).ok()?;
        let mode = std::fs::metadata(&full).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            let shown = crate::ui::quoted(&full.display().to_string());
            format!("{shown} is readable by group or others (mode {mode:04o}); chmod 600 {shown}")
        })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Inline(_) => write!(f, "the profile ({})", self.field),
            SecretSource::Env(var) => write!(f, "environment variable {var}"),
            SecretSource::File(path) => write!(f, "file {path}"),
        }
    }
}

/// Reads a secret from the environment variable `var`.
fn from_env(settings: &Settings, var: &str) -> Result<SecretString, SecretError> {
    match settings.var(var) {
        Ok("") => Err(SecretError::EnvEmpty { var: var.into() }),
        Ok(value) => Ok(SecretString::from(value.to_string())),
        Err(VarError::NotPresent) => Err(SecretError::EnvNotSet {
            var: var.into(),
            hint: crate::invoker::Invoker::current().missing_env_hint(var),
        }),
        Err(VarError::NotUnicode) => Err(SecretError::EnvNotUtf8 { var: var.into() }),
    }
}

/// Reads a secret from a file. One trailing line break is dropped (`echo secret > file`
/// writes one); everything else, including other whitespace, is part of the secret.
fn from_file(path: &str, base_dir: &Path) -> Result<SecretString, SecretError> {
    let full = expand_path(path, base_dir)?;
    let mut text = crate::input::read_text(&full, MAX_SECRET_FILE, "a secret file")?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(SecretError::FileEmpty(full));
    }
    Ok(SecretString::from(text))
}

/// Expands a leading `~/` to the invoking user's home (under sudo, theirs, not root's: see
/// [`crate::invoker`]) and resolves relative paths against the profile's directory.
///
/// When that home is unknown (an account the user database does not know, and no `$HOME`)
/// `~/…` is an error, not a folder named `~` next to the profile.
pub(crate) fn expand_path(path: &str, base_dir: &Path) -> Result<PathBuf, SecretError> {
    let invoker = crate::invoker::Invoker::current();
    if let Some(home) = invoker.expand_tilde(path) {
        return Ok(home);
    }
    if path.starts_with("~/") {
        return Err(SecretError::UnknownHome {
            path: path.to_string(),
            uid: invoker.uid,
        });
    }
    let p = Path::new(path);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::Environment;
    use secrecy::ExposeSecret;

    fn file_ref(path: &str) -> SecretRef {
        SecretRef {
            source: SecretSource::File(path.into()),
            field: "x".into(),
        }
    }

    #[test]
    fn file_secret_drops_one_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::default();
        std::fs::write(dir.path().join("psk"), "  pass word \n\n").unwrap();
        let s = file_ref("psk").resolve(&settings, dir.path()).unwrap();
        assert_eq!(s.expose_secret(), "  pass word \n");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let empty = file_ref("empty")
            .resolve(&settings, dir.path())
            .unwrap_err();
        assert!(empty.to_string().contains("empty"));
        let missing = file_ref("nope").resolve(&settings, dir.path()).unwrap_err();
        assert!(missing.to_string().contains("nope"));
    }

    #[test]
    fn env_secret_errors_name_the_variable() {
        let settings = Settings::from_environment(Environment::from_pairs([("EMPTY", "")]));
        let env = |var: &str| SecretRef {
            source: SecretSource::Env(var.into()),
            field: "x".into(),
        };
        let err = env("PINODE_TEST_SURELY_UNSET_VARIABLE")
            .resolve(&settings, Path::new("."))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("PINODE_TEST_SURELY_UNSET_VARIABLE")
        );
        let err = env("EMPTY").resolve(&settings, Path::new(".")).unwrap_err();
        assert_eq!(err.to_string(), "environment variable EMPTY is empty");
    }

    #[test]
    fn only_one_source() {
        let (a, b) = ("A".to_string(), "b".to_string());
        let keys = [
            ("psk", SecretKind::Inline, Some(&a)),
            ("psk_env", SecretKind::Env, Some(&a)),
            ("psk_file", SecretKind::File, Some(&b)),
        ];
        let Picked::Several(m) = pick(&SecretKeys {
            parent: "w",
            keys: &keys,
        }) else {
            panic!()
        };
        assert_eq!(m, "give only one of psk, psk_env and psk_file");
        let keys = [
            ("token_env", SecretKind::Env, Some(&a)),
            ("token_file", SecretKind::File, None),
        ];
        let Picked::One(r) = pick(&SecretKeys {
            parent: "cluster",
            keys: &keys,
        }) else {
            panic!()
        };
        assert_eq!(r.field, "cluster.token_env");
        assert_eq!(r.to_string(), "environment variable A");
    }
}
