//! A kept PKI directory: a cluster's CA material, generated once and kept private in
//! pinode's state directory (`clusters/NAME/DIR/`), like the cluster token, so that a node
//! prepared next month trusts the same CA. kubeadm's PKI and K3s's CA both live in one.
//!
//! The directory is made whole in a private temporary directory and renamed into place, so
//! it either does not exist or holds every file; when several pinode processes start a
//! cluster at once, one rename wins and the others read the winner's files. The directory
//! is 0700 and every file 0600 from its creation; under sudo they belong to the invoking
//! user. Whether pinode may generate one at all (not under CI) is the caller's decision.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::invoker::Invoker;

/// More than this is not a PEM file pinode wrote.
const MAX_FILE: u64 = 64 * 1024;

/// One kept PKI directory: where it is, the files it holds, and how to talk about it.
pub(super) struct KeptPki {
    pub(super) dir: PathBuf,
    /// The files' names in the directory, in the order `generate` makes them.
    pub(super) names: Vec<&'static str>,
    /// What it holds, in the note when it is generated ("the K3s cluster's CA").
    pub(super) what: &'static str,
    /// Where a lost file can be restored from ("a server's /etc/kubernetes/pki").
    pub(super) restore: &'static str,
}

impl KeptPki {
    /// Whether the directory exists (whole or damaged: [`KeptPki::read`] says which).
    pub(super) fn exists(&self) -> bool {
        std::fs::symlink_metadata(&self.dir).is_ok()
    }

    /// The kept files, generating them with `generate` (one contents per name, in order)
    /// if the directory does not exist yet; with a note for the user when they were.
    pub(super) fn kept(
        &self,
        generate: impl FnOnce() -> Result<Vec<SecretString>, String>,
    ) -> Result<(Vec<SecretString>, Option<String>), String> {
        let dir = &self.dir;
        if self.exists() {
            return self.read().map(|files| (files, None));
        }
        let parent = dir.parent().unwrap_or(Path::new("."));
        let invoker = Invoker::current();
        invoker
            .create_dir_all(parent, 0o700)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let files = generate()?;
        if files.len() != self.names.len() {
            return Err(format!(
                "{}: {} files made, {} expected",
                self.what,
                files.len(),
                self.names.len()
            ));
        }
        let prefix = format!(
            ".{}-",
            dir.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
        for (name, contents) in self.names.iter().zip(&files) {
            write_private(&temp.path().join(name), contents, invoker)
                .map_err(|e| format!("cannot write {} in {}: {e}", self.what, parent.display()))?;
        }
        invoker.give_back_tree(temp.path());
        let staged = temp.keep();
        match std::fs::rename(&staged, dir) {
            Ok(()) => {
                if let Ok(d) = std::fs::File::open(parent) {
                    let _ = d.sync_all();
                }
            }
            Err(_) if self.exists() => {
                // Another pinode got there first: use its files.
                let _ = std::fs::remove_dir_all(&staged);
                return self.read().map(|files| (files, None));
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(format!("cannot create {}: {e}", dir.display()));
            }
        }
        Ok((
            files,
            Some(format!(
                "note: generated {} and kept it in {} (back it up: nodes prepared later need \
                 it, and whoever has it controls the cluster)",
                self.what,
                dir.display()
            )),
        ))
    }

    /// Reads every kept file: each private (0600), a regular file, present, and text.
    pub(super) fn read(&self) -> Result<Vec<SecretString>, String> {
        use crate::input::InputError;
        let mut files = Vec::new();
        for name in &self.names {
            let file = self.dir.join(name);
            let bytes = crate::input::read_private(&file, MAX_FILE).map_err(|e| match e {
                InputError::Io { source, .. } => format!(
                    "cannot read {} of {}: {source}; do not delete the directory, nodes may \
                     trust it: run pinode as the user whose state it is, or restore the file \
                     from a backup or {}",
                    file.display(),
                    self.what,
                    self.restore
                ),
                other => other.to_string(),
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{} is not a PEM file", file.display()))?;
            files.push(SecretString::from(text));
        }
        Ok(files)
    }
}

/// Writes one file, 0600 from its creation, synced.
fn write_private(path: &Path, contents: &SecretString, invoker: &Invoker) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    out.write_all(contents.expose_secret().as_bytes())?;
    out.sync_all()?;
    invoker.give_back_file(&out)
}
