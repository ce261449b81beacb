//! Secrets referenced by a profile: environment variables and files, read when a node is
//! prepared. Error messages name the variable or the path, never the value.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// The largest secret file pinode reads (a passphrase or a token, not a document).
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret from the environment variable `var`.
pub fn from_env(var: &str) -> Result<SecretString, String> {
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(format!("environment variable {var} is empty")),
        Ok(value) => Ok(SecretString::from(value)),
        Err(std::env::VarError::NotPresent) => {
            match crate::invoker::Invoker::current().missing_env_hint(var) {
                Some(hint) => Err(format!("environment variable {var} is not set ({hint})")),
                None => Err(format!("environment variable {var} is not set")),
            }
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {var} is not valid UTF-8"))
        }
    }
}

/// Reads a secret from a file. One trailing line break is dropped (`echo secret > file`
/// writes one); everything else, including other whitespace, is part of the secret.
pub fn from_file(path: &str, base_dir: &Path) -> Result<SecretString, String> {
    let full = expand_path(path, base_dir)?;
    let shown = full.display();
    let mut text = crate::input::read_text(&full, MAX_SECRET_FILE, "a secret file")
        .map_err(|e| e.to_string())?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(SecretString::from(text))
}

/// Expands a leading `~/` to the invoking user's home (under sudo, theirs, not root's: see
/// [`crate::invoker`]) and resolves relative paths against the profile's directory.
///
/// When that home is unknown (an account the user database does not know, and no `$HOME`)
/// `~/…` is an error, not a folder named `~` next to the profile.
pub fn expand_path(path: &str, base_dir: &Path) -> Result<PathBuf, String> {
    let invoker = crate::invoker::Invoker::current();
    if let Some(home) = invoker.expand_tilde(path) {
        return Ok(home);
    }
    if path.starts_with("~/") {
        return Err(format!(
            "cannot expand {path}: the home of the invoking user (uid {}) is unknown; \
             write the full path",
            invoker.uid
        ));
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
    use secrecy::ExposeSecret;

    #[test]
    fn file_secret_drops_one_line_break() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("psk"), "  pass word \n\n").unwrap();
        let s = from_file("psk", dir.path()).unwrap();
        assert_eq!(s.expose_secret(), "  pass word \n");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert!(
            from_file("empty", dir.path())
                .unwrap_err()
                .contains("empty")
        );
        let missing = from_file("nope", dir.path()).unwrap_err();
        assert!(missing.contains("nope"));
    }

    #[test]
    fn env_secret_errors_name_the_variable() {
        let err = from_env("PINODE_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert!(err.contains("PINODE_TEST_SURELY_UNSET_VARIABLE"));
    }
}
