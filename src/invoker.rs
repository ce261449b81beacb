//! The user pinode works for.
//!
//! `sudo pinode flash` runs as root, but the person who typed it owns the profile, the SSH
//! key it names, the image cache and the kept cluster token. Every per-user location must
//! therefore mean *theirs*: otherwise a card flashed with sudo gets root's key and a token
//! generated into root's state directory, and can never join the nodes the same person
//! prepared without sudo. This module is the one place that answers "who, and where": the
//! invoking user (from `SUDO_UID`/`SUDO_GID`/`SUDO_USER` when running as root under sudo,
//! else the process's own user), their name and home (from the user database through NSS,
//! so that LDAP/sssd and systemd-homed users count; not `$HOME`, which sudo resets to
//! root's, unless `$HOME` was passed on purpose), their cache and state directories, and how
//! to give what pinode creates there back to them.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::process::{Gid, Uid};

/// How deep [`Invoker::give_back_tree`] walks: the cache is `root/images/<sha>/file`.
const MAX_TREE_DEPTH: usize = 4;

/// The user pinode works for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    /// Their login name, when known.
    pub(crate) name: Option<String>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Their home directory, when known.
    pub(crate) home: Option<PathBuf>,
    /// True when pinode runs as root on behalf of another user (under sudo).
    pub(crate) sudo: bool,
}

impl Invoker {
    /// The invoking user of this process (computed once).
    pub fn current() -> &'static Invoker {
        static CURRENT: OnceLock<Invoker> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let settings = crate::edge::settings();
            Invoker::from_parts(
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
                settings.sudo.uid.as_deref(),
                settings.sudo.gid.as_deref(),
                settings.sudo.user.as_deref(),
                settings.dirs.home.clone(),
                &system_account,
            )
        })
    }

    /// The invoker from the process's ids, sudo's variables, `$HOME` and `account` (the user
    /// database: [`system_account`], or a table in tests). Sudo's variables count only when
    /// running as root: anyone can set them otherwise.
    fn from_parts(
        euid: u32,
        egid: u32,
        sudo_uid: Option<&str>,
        sudo_gid: Option<&str>,
        sudo_user: Option<&str>,
        env_home: Option<PathBuf>,
        account: &dyn Fn(u32) -> Option<Account>,
    ) -> Invoker {
        let sudo_ids = match (sudo_uid.map(str::parse::<u32>), sudo_gid.map(str::parse)) {
            (Some(Ok(uid)), Some(Ok(gid))) if euid == 0 && uid != 0 => Some((uid, gid)),
            _ => None,
        };
        match sudo_ids {
            Some((uid, gid)) => {
                let entry = account(uid);
                // sudo sets HOME to root's; any other value was passed on purpose (`sudo
                // HOME=… pinode`, or a sudo configured to keep it) and wins, like it would
                // without sudo.
                let root_home = account(0).map(|e| e.home);
                let kept_home = env_home.filter(|h| {
                    h.is_absolute() && Some(h) != root_home.as_ref() && h != Path::new("/")
                });
                Invoker {
                    name: entry
                        .as_ref()
                        .map(|e| e.name.clone())
                        .or(sudo_user.map(str::to_string)),
                    uid,
                    gid,
                    home: kept_home.or(entry.map(|e| e.home)),
                    sudo: true,
                }
            }
            None => {
                let entry = account(euid);
                Invoker {
                    name: entry.as_ref().map(|e| e.name.clone()),
                    uid: euid,
                    gid: egid,
                    home: env_home
                        .filter(|h| h.is_absolute())
                        .or(entry.map(|e| e.home)),
                    sudo: false,
                }
            }
        }
    }

    /// Their cache directory for pinode: `$XDG_CACHE_HOME/pinode`, else `~/.cache/pinode`.
    pub(crate) fn cache_dir(&self) -> Option<PathBuf> {
        let dirs = &crate::edge::settings().dirs;
        self.base_dir(dirs.xdg_cache_home.as_deref(), ".cache")
            .map(|d| d.join("pinode"))
    }

    /// Their state directory for pinode: `$XDG_STATE_HOME/pinode`, else
    /// `~/.local/state/pinode`.
    pub(crate) fn state_dir(&self) -> Option<PathBuf> {
        let dirs = &crate::edge::settings().dirs;
        self.base_dir(dirs.xdg_state_home.as_deref(), ".local/state")
            .map(|d| d.join("pinode"))
    }

    /// The XDG base directory `var` (its value), as etcetera would pick it for this user. Under sudo the
    /// variable counts only when sudo kept it (`sudo -E`): sudo's own reset removes it, so a
    /// value present then is the invoking user's.
    fn base_dir(&self, var: Option<&Path>, default: &str) -> Option<PathBuf> {
        var.map(Path::to_path_buf)
            .filter(|p| p.is_absolute())
            .or_else(|| self.home.as_ref().map(|h| h.join(default)))
    }

    /// `~/rest` in this user's home; `None` when the home is unknown.
    pub fn expand_tilde(&self, path: &str) -> Option<PathBuf> {
        let rest = path.strip_prefix("~/")?;
        self.home.as_ref().map(|h| h.join(rest))
    }

    /// Creates `dir` and its missing parents with `mode`; under sudo, the directories it
    /// created belong to the invoking user (those that existed are left alone).
    pub fn create_dir_all(&self, dir: &Path, mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.as_os_str().is_empty() && std::fs::symlink_metadata(at).is_err() {
            missing.push(at.to_path_buf());
            match at.parent() {
                Some(parent) => at = parent,
                None => break,
            }
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)?;
        // Innermost first: while a directory is being given away, its parents pinode
        // created are still root's, so the user cannot swap one for a symlink meanwhile and
        // steer the chown of a deeper path elsewhere.
        for created in &missing {
            self.give_back(created)?;
        }
        Ok(())
    }

    /// This user as the owner arguments of the chown calls.
    fn owner(&self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }

    /// Under sudo, makes `path` (not a symlink's target) belong to the invoking user.
    fn give_back(&self, path: &Path) -> std::io::Result<()> {
        if !self.sudo {
            return Ok(());
        }
        let (uid, gid) = self.owner();
        rustix::fs::chownat(CWD, path, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(std::io::Error::from)
    }

    /// Under sudo, makes the open `file` belong to the invoking user (before it is renamed
    /// into place, so that there is no moment when the path is root's).
    pub(crate) fn give_back_file(&self, file: &std::fs::File) -> std::io::Result<()> {
        if !self.sudo {
            return Ok(());
        }
        let (uid, gid) = self.owner();
        rustix::fs::fchown(file, uid, gid).map_err(std::io::Error::from)
    }

    /// Under sudo, gives every root-owned entry under `root` (itself included, symlinks not
    /// followed, a few levels deep) back to the invoking user: for trees such as the cache,
    /// which many steps write into. Best effort: a file that vanished meanwhile is skipped.
    ///
    /// The walk holds a descriptor of each entry (`O_PATH`, never following a symlink; a
    /// directory is read through its own descriptor) and changes the owner through it, so a
    /// user who can write in the tree cannot steer it, by swapping an entry for a symlink
    /// meanwhile, onto a file elsewhere. A file with more than one link is left alone: pinode
    /// makes none, and the other link may be a system file hard-linked into the tree.
    pub(crate) fn give_back_tree(&self, root: &Path) {
        if !self.sudo {
            return;
        }
        if let Ok(fd) = open_entry(CWD, root) {
            self.give_back_at(fd, 0);
        }
    }

    /// [`Invoker::give_back_tree`] from the open entry `fd`, `depth` levels down.
    fn give_back_at(&self, fd: OwnedFd, depth: usize) {
        let Ok(stat) = rustix::fs::fstat(&fd) else {
            return;
        };
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        if stat.st_uid == 0 && (is_dir || stat.st_nlink == 1) {
            let (uid, gid) = self.owner();
            let _ = rustix::fs::chownat(&fd, "", uid, gid, AtFlags::EMPTY_PATH);
        }
        if !is_dir || depth >= MAX_TREE_DEPTH {
            return;
        }
        let Ok(entries) = rustix::fs::openat(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(rustix::fs::Dir::new) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            if let Ok(child) = open_entry(fd.as_fd(), name) {
                self.give_back_at(child, depth + 1);
            }
        }
    }

    /// What to tell someone whose `*_env` variable is missing: under sudo, that sudo's
    /// environment reset is the likely cause, and how to pass it.
    pub(crate) fn missing_env_hint(&self, var: &str) -> Option<String> {
        self.sudo.then(|| {
            format!(
                "sudo does not pass your environment: run `sudo -E pinode ...` or \
                 `sudo {var}=... pinode ...`, or name a file with the `_file` form instead"
            )
        })
    }
}

/// An `O_PATH` descriptor of `name` in `dir`, the entry itself even when it is a symlink.
fn open_entry<Fd: AsFd, P: rustix::path::Arg>(dir: Fd, name: P) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What pinode needs of a user's account.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    pub(crate) name: String,
    pub(crate) home: PathBuf,
}

/// The account of `uid` from the system's user database: `getpwuid_r` through nix, so every
/// NSS source counts (files, LDAP/sssd, systemd-homed), with nix's bounded buffer. `None`
/// when there is none, the lookup failed, or the home is not an absolute path.
fn system_account(uid: u32) -> Option<Account> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()?;
    user.dir.is_absolute().then_some(Account {
        name: user.name,
        home: user.dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user database of root and alice.
    fn accounts(uid: u32) -> Option<Account> {
        let (name, home) = match uid {
            0 => ("root", "/root"),
            1000 => ("alice", "/home/alice"),
            _ => return None,
        };
        Some(Account {
            name: name.into(),
            home: home.into(),
        })
    }

    #[test]
    fn under_sudo_the_invoker_is_the_sudo_user_with_their_passwd_home() {
        let who = Invoker::from_parts(
            0,
            0,
            Some("1000"),
            Some("1000"),
            Some("alice"),
            Some("/root".into()),
            &accounts,
        );
        assert!(who.sudo);
        assert_eq!((who.uid, who.gid), (1000, 1000));
        assert_eq!(who.home.as_deref(), Some(Path::new("/home/alice")));
        assert_eq!(
            who.expand_tilde("~/.ssh/id.pub").unwrap(),
            Path::new("/home/alice/.ssh/id.pub")
        );
        // A HOME passed on purpose through sudo counts.
        let kept = Invoker::from_parts(
            0,
            0,
            Some("1000"),
            Some("1000"),
            Some("alice"),
            Some("/srv/alice".into()),
            &accounts,
        );
        assert_eq!(kept.home.as_deref(), Some(Path::new("/srv/alice")));
    }

    #[test]
    fn sudo_variables_count_only_for_root() {
        let who = Invoker::from_parts(
            1000,
            1000,
            Some("0"),
            Some("0"),
            Some("root"),
            Some("/home/alice".into()),
            &accounts,
        );
        assert!(!who.sudo);
        assert_eq!(who.uid, 1000);
        assert_eq!(who.home.as_deref(), Some(Path::new("/home/alice")));
        // Plain root (no sudo): root's own home.
        let root = Invoker::from_parts(0, 0, None, None, None, Some("/root".into()), &accounts);
        assert!(!root.sudo);
        assert_eq!(root.home.as_deref(), Some(Path::new("/root")));
    }
}
