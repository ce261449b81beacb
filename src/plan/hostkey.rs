//! Each node's SSH host key, made by pinode and kept in its state directory, and the
//! cluster's `known_hosts` file that names them.
//!
//! Why: a node whose host key pinode made is known before it first boots, so every SSH
//! connection pinode (or the user) makes to it checks the key strictly instead of trusting
//! whatever answers first. The key is kept (mode 0600) beside the cluster token, under
//! `clusters/CLUSTER/host-keys/HOST_ed25519`, so that re-flashing a node keeps its identity.
//! The public halves go to `clusters/CLUSTER/known_hosts`, one line per name a node answers
//! to (`HOST` and `HOST.local`), rewritten atomically.
//!
//! The key is ed25519 only: every OpenSSH since 6.5 offers it, and a client with a
//! `known_hosts` entry for a host asks for that host's key type first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{LineEnding, PrivateKey};

use crate::edge::Settings;
use crate::invoker::Invoker;

/// A kept private key file is a few hundred bytes; anything larger is not one pinode wrote.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// A known_hosts file of a cluster of a few hundred nodes; larger is not pinode's.
const MAX_KNOWN_HOSTS: u64 = 4 * 1024 * 1024;

/// Why a node's host key or its cluster's known_hosts could not be had. No variant carries
/// key material: the messages name files and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot {action} {path}: {source}", path = .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Names the file itself.
    #[error(transparent)]
    Input(crate::input::InputError),
    #[error("{path} is readable by others; chmod 600 it", path = .path.display())]
    Exposed { path: PathBuf },
    #[error(
        "{path} holds no unencrypted OpenSSH ed25519 private key; if the node has not been \
         flashed with it yet, delete it and run pinode again to make a new one, otherwise \
         restore it from a backup (or from the node's /etc/ssh/ssh_host_ed25519_key)",
        path = .path.display()
    )]
    Damaged { path: PathBuf },
    #[error("no randomness for the host key of {hostname}: {reason}")]
    NoRandomness { hostname: String, reason: String },
    #[error("cannot encode a host key: {0}")]
    Encode(ssh_key::Error),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HostKeyError {
    let path = path.to_path_buf();
    move |source| HostKeyError::Io {
        action,
        path,
        source,
    }
}

/// One node's SSH host key pair, OpenSSH formats.
#[derive(Clone)]
pub struct HostKey {
    /// The private key (`-----BEGIN OPENSSH PRIVATE KEY-----`…), as sshd reads it.
    private: SecretString,
    /// `ssh-ed25519 AAAA… root@HOST`, as `/etc/ssh/ssh_host_ed25519_key.pub` holds it.
    public: String,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately without the private key.
        f.debug_struct("HostKey")
            .field("public", &self.public)
            .finish()
    }
}

impl HostKey {
    /// The private key in OpenSSH format (a secret: goes only into secret files).
    pub(crate) fn private_openssh(&self) -> &str {
        self.private.expose_secret()
    }

    /// The public key line, `ssh-ed25519 AAAA… root@HOST`.
    pub fn public_line(&self) -> &str {
        &self.public
    }

    /// The public key without its comment, `ssh-ed25519 AAAA…`: the part a known_hosts line
    /// holds after the names.
    pub fn public_key(&self) -> &str {
        let mut fields = self.public.splitn(3, ' ');
        let kind = fields.next().unwrap_or("");
        let blob = fields.next().unwrap_or("");
        // Both halves of the line pinode made; the slice is the first two fields.
        &self.public[..kind.len() + 1 + blob.len()]
    }

    /// The host key of `hostname` in `cluster`, kept under `settings`' state directory:
    /// read when it is there, else made (from `PINODE_TEST_SEED` under the test hooks,
    /// per purpose `host-key:CLUSTER:HOST`) and kept. Also brings the node's lines in the
    /// cluster's known_hosts file up to date. Errors never contain key material.
    ///
    /// Under CI the key is made as anywhere else (a lost host key does not split the
    /// cluster, unlike a lost token): keep the CI machine's state directory (a cached
    /// `PINODE_STATE_DIR`) to keep its known_hosts.
    pub(crate) fn kept(
        cluster: &str,
        hostname: &str,
        settings: &Settings,
    ) -> Result<HostKey, HostKeyError> {
        let dir = cluster_dir(settings, cluster);
        let path = dir.join("host-keys").join(format!("{hostname}_ed25519"));
        let key = kept_key(&path, cluster, hostname)?;
        update_known_hosts(&dir.join("known_hosts"), hostname, key.public_key())?;
        Ok(key)
    }
}

/// `clusters/CLUSTER` in pinode's state directory (where the token is kept too).
pub fn cluster_dir(settings: &Settings, cluster: &str) -> PathBuf {
    super::cluster::state_dir(settings)
        .join("clusters")
        .join(cluster)
}

/// The cluster's known_hosts file, which every SSH connection pinode makes uses.
pub fn known_hosts_path(settings: &Settings, cluster: &str) -> PathBuf {
    cluster_dir(settings, cluster).join("known_hosts")
}

/// Reads the key kept at `path`, or makes it and keeps it there (0600, under sudo the
/// invoking user's, linked into place without replacing a key another run made meanwhile,
/// its name synced: a node flashed with a key pinode then lost in a crash could not be
/// checked again).
fn kept_key(path: &Path, cluster: &str, hostname: &str) -> Result<HostKey, HostKeyError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return read_key(path);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let invoker = Invoker::current();
    invoker
        .create_dir_all(dir, 0o700)
        .map_err(io("create", dir))?;
    let key = new_key(cluster, hostname)?;
    let created = crate::cleanup::create_once(
        path,
        "hostkey",
        key.private.expose_secret().as_bytes(),
        |f| invoker.give_back_file(f),
    )
    .map_err(io("create", path))?;
    if created { Ok(key) } else { read_key(path) }
}

/// A new ed25519 key for `hostname`, its seed from [`crate::entropy`].
fn new_key(cluster: &str, hostname: &str) -> Result<HostKey, HostKeyError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    let test_seed = crate::entropy::test_seed();
    crate::entropy::fill(
        seed.as_mut(),
        &format!("host-key:{cluster}:{hostname}"),
        test_seed.as_deref(),
    )
    .map_err(|e| HostKeyError::NoRandomness {
        hostname: hostname.to_string(),
        reason: e.to_string(),
    })?;
    let pair = Ed25519Keypair::from_seed(&seed);
    let private = PrivateKey::new(KeypairData::Ed25519(pair), format!("root@{hostname}"))
        .map_err(HostKeyError::Encode)?;
    from_private(&private)
}

/// Both halves of `private` in OpenSSH formats.
fn from_private(private: &PrivateKey) -> Result<HostKey, HostKeyError> {
    let text = private
        .to_openssh(LineEnding::LF)
        .map_err(HostKeyError::Encode)?;
    let public = private
        .public_key()
        .to_openssh()
        .map_err(HostKeyError::Encode)?;
    Ok(HostKey {
        private: SecretString::from(text.as_str()),
        public,
    })
}

/// Reads a kept key: a private regular file holding one unencrypted OpenSSH ed25519 key.
fn read_key(path: &Path) -> Result<HostKey, HostKeyError> {
    use crate::input::InputError;
    let bytes = crate::input::read_private(path, MAX_KEY_FILE).map_err(|e| match e {
        InputError::Exposed { path } => HostKeyError::Exposed { path },
        other => HostKeyError::Input(other),
    })?;
    let path = path.to_path_buf();
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(HostKeyError::Damaged { path });
    }
    let Ok(private) = PrivateKey::from_openssh(&bytes) else {
        return Err(HostKeyError::Damaged { path });
    };
    if private.is_encrypted() || private.key_data().ed25519().is_none() {
        return Err(HostKeyError::Damaged { path });
    }
    from_private(&private)
}

/// The names a node answers to on the local network.
pub fn names_of(hostname: &str) -> [String; 2] {
    [hostname.to_string(), format!("{hostname}.local")]
}

/// Sets `hostname`'s lines in the known_hosts file at `path` to `public` (one line per
/// name), leaving every other line as it was; the file is rewritten atomically, and not at
/// all when nothing changes. Lines are kept sorted by name, so the file does not depend on
/// the order in which nodes were prepared.
fn rewrite_known_hosts(path: &Path, hostname: &str, public: &str) -> Result<(), HostKeyError> {
    let old = match std::fs::symlink_metadata(path) {
        Ok(_) => crate::input::read_text(path, MAX_KNOWN_HOSTS, "a known_hosts file")
            .map_err(HostKeyError::Input)?,
        Err(_) => String::new(),
    };
    // (name, rest of the line): a name may have several lines (key types), all kept.
    let mut lines: BTreeSet<(String, String)> = BTreeSet::new();
    let mut others = Vec::new();
    let ours = names_of(hostname);
    for line in old.lines() {
        match line.split_once(' ') {
            Some((name, rest))
                if !name.starts_with('#') && !name.starts_with('@') && !name.contains(',') =>
            {
                if !ours.iter().any(|n| n == name) {
                    lines.insert((name.to_string(), rest.to_string()));
                }
            }
            _ if line.trim().is_empty() => {}
            _ => others.push(line.to_string()),
        }
    }
    for name in ours {
        lines.insert((name, public.to_string()));
    }
    let mut new: String = others.iter().map(|l| format!("{l}\n")).collect();
    for (name, key) in &lines {
        new.push_str(&format!("{name} {key}\n"));
    }
    if new == old {
        return Ok(());
    }
    let invoker = Invoker::current();
    crate::cleanup::write_atomic_with(path, new.as_bytes(), 0o644, |f| invoker.give_back_file(f))
        .map_err(io("write", path))
}

/// [`rewrite_known_hosts`] under an exclusive lock on the cluster's directory: several
/// pinode processes preparing nodes of one cluster at once would otherwise each read the
/// file before the others wrote it, and all but the last node's lines would be lost.
fn update_known_hosts(path: &Path, hostname: &str, public: &str) -> Result<(), HostKeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let lock = std::fs::File::open(dir)
        .and_then(|d| d.lock().map(|()| d))
        .map_err(io("lock", dir))?;
    let result = rewrite_known_hosts(path, hostname, public);
    drop(lock);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_made_once_kept_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host-keys/n1_ed25519");
        let made = kept_key(&path, "c", "n1").unwrap();
        assert!(made.public_line().starts_with("ssh-ed25519 AAAA"));
        assert!(made.public_line().ends_with(" root@n1"));
        assert!(
            made.private_openssh()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = kept_key(&path, "c", "n1").unwrap();
        assert_eq!(again.public_line(), made.public_line());
        assert_eq!(again.private_openssh(), made.private_openssh());
        assert!(!format!("{made:?}").contains("PRIVATE"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            kept_key(&path, "c", "n1")
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        std::fs::write(&path, "garbage").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = kept_key(&path, "c", "n1").unwrap_err().to_string();
        assert!(err.contains("no unencrypted OpenSSH ed25519"), "{err}");
    }

    #[test]
    fn known_hosts_holds_each_name_once_sorted_and_keeps_foreign_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            "# mine\nhost1,host2 ssh-rsa AAAAold\n@revoked * ssh-rsa R1\n@revoked * ssh-rsa R2\n\
             c ssh-rsa CRSA\nc ssh-ed25519 CED\n",
        )
        .unwrap();
        update_known_hosts(&path, "b", "ssh-ed25519 BBBB").unwrap();
        update_known_hosts(&path, "a", "ssh-ed25519 AAAA").unwrap();
        update_known_hosts(&path, "b", "ssh-ed25519 CCCC").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# mine\nhost1,host2 ssh-rsa AAAAold\n@revoked * ssh-rsa R1\n@revoked * ssh-rsa R2\n\
             a ssh-ed25519 AAAA\na.local ssh-ed25519 AAAA\nb ssh-ed25519 CCCC\n\
             b.local ssh-ed25519 CCCC\nc ssh-ed25519 CED\nc ssh-rsa CRSA\n"
        );
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        update_known_hosts(&path, "b", "ssh-ed25519 CCCC").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
    }
}
