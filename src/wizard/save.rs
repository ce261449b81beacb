//! Saving the wizard's profile and its secret files, all or nothing.
//!
//! Everything is written to temporary files in the profile's directory first (secrets with
//! mode 0600 from the start), then renamed into place, secrets before the profile that names
//! them. Until the last question is answered nothing exists, so interrupting the wizard leaves
//! no file behind; a failure while saving removes what was already renamed.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::{Answers, Secret, render_profile};

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("internal error: the profile the wizard wrote does not load: {0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Write(#[from] super::yaml::Error),
}

/// What was written.
#[derive(Debug)]
pub struct Saved {
    pub profile: PathBuf,
    pub secret_files: Vec<PathBuf>,
}

/// The secret files `answers` asks for, relative to the profile's directory.
pub fn secret_files(answers: &Answers) -> Vec<(&str, &secrecy::SecretString)> {
    let mut files = Vec::new();
    let secrets = [
        answers.wifi.as_ref().map(|w| &w.psk),
        answers.runner.as_ref().map(|r| &r.token),
    ];
    for secret in secrets.into_iter().flatten() {
        if let Secret::File { file, value } = secret {
            files.push((file.as_str(), value));
        }
    }
    files
}

/// Writes `profile_path` and its secret files.
pub fn save(answers: &Answers, profile_path: &Path) -> Result<Saved, SaveError> {
    let dir = profile_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SaveError::Io { path, source }
    };
    let mut staged = Vec::new();
    for (name, value) in secret_files(answers) {
        // Beside the profile, named the way the profile names it.
        let path = profile_path.with_file_name(name);
        // Created 0600 (the secret is never readable by others) and registered: Ctrl-C
        // before the rename removes it (see crate::cleanup).
        let mut temp = crate::cleanup::TempFile::new_in(&dir, "secret").map_err(io(&path))?;
        temp.write_all(value.expose_secret().as_bytes())
            .and_then(|()| temp.write_all(b"\n"))
            .and_then(|()| temp.as_file().sync_all())
            .map_err(io(&path))?;
        staged.push((temp, path));
    }
    let mut temp = crate::cleanup::TempFile::new_in(&dir, "profile").map_err(io(profile_path))?;
    let text = render_profile(answers)?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io(profile_path))?;
    // A password hash can be cracked offline: a profile holding one is private (0600) like
    // the secret files, set on the temporary file before the rename. Without a hash the
    // profile holds nothing secret and stays shareable (0644).
    use std::os::unix::fs::PermissionsExt;
    let mode = if answers.password_hash.is_some() {
        0o600
    } else {
        0o644
    };
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(profile_path))?;
    staged.push((temp, profile_path.to_path_buf()));
    // Under sudo, the profile and its secrets are the invoking user's, not root's.
    let invoker = crate::invoker::Invoker::current();
    for (temp, path) in &staged {
        invoker.give_back_file(temp.as_file()).map_err(io(path))?;
    }

    let mut done: Vec<PathBuf> = Vec::new();
    for (temp, path) in staged {
        if let Err(e) = temp.persist(&path) {
            for written in &done {
                let _ = std::fs::remove_file(written);
            }
            return Err(SaveError::Io { path, source: e });
        }
        done.push(path);
    }
    if let Err(e) = crate::profile::LoadedProfile::load(profile_path) {
        for written in &done {
            let _ = std::fs::remove_file(written);
        }
        return Err(SaveError::Invalid(e.to_string()));
    }
    let profile = done.pop().unwrap_or_else(|| profile_path.to_path_buf());
    Ok(Saved {
        profile,
        secret_files: done,
    })
}
