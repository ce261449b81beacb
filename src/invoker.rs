//! The user pinode works for.
//!
//! `sudo pinode flash` runs as root, but the person who typed it owns the profile, the SSH
//! key it names, the image cache and the kept cluster token. Every per-user location must
//! therefore mean *theirs*: otherwise a card flashed with sudo gets root's key and a token
//! generated into root's state directory, and can never join the nodes the same person
//! prepared without sudo. This module is the one place that answers "who, and where": the
//! invoking user (from `SUDO_UID`/`SUDO_GID`/`SUDO_USER` when running as root under sudo,
//! else the process's own user), their home (from the passwd database, not `$HOME`, which
//! sudo resets to root's, unless `$HOME` was passed on purpose), their cache and state directories, and how to give what pinode
//! creates there back to them.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, CWD};
use rustix::process::{Gid, Uid};

/// The passwd database is a few KB; a bigger one is not something to load whole.
const MAX_PASSWD: u64 = 4 << 20;

/// How deep [`Invoker::give_back_tree`] walks: the cache is `root/images/<sha>/file`.
const MAX_TREE_DEPTH: usize = 4;

/// The user pinode works for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    /// Their login name, when known.
    pub name: Option<String>,
    pub uid: u32,
    pub gid: u32,
    /// Their home directory, when known.
    pub home: Option<PathBuf>,
    /// True when pinode runs as root on behalf of another user (under sudo).
    pub sudo: bool,
}

impl Invoker {
    /// The invoking user of this process (computed once).
    pub fn current() -> &'static Invoker {
        static CURRENT: OnceLock<Invoker> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            Invoker::from_parts(
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
                var("SUDO_UID").as_deref(),
                var("SUDO_GID").as_deref(),
                var("SUDO_USER").as_deref(),
                std::env::home_dir(),
                Path::new("/etc/passwd"),
            )
        })
    }

    /// The invoker from the process's ids, sudo's variables, `$HOME` and a passwd file.
    /// Sudo's variables count only when running as root: anyone can set them otherwise.
    pub fn from_parts(
        euid: u32,
        egid: u32,
        sudo_uid: Option<&str>,
        sudo_gid: Option<&str>,
        sudo_user: Option<&str>,
        env_home: Option<PathBuf>,
        passwd: &Path,
    ) -> Invoker {
        let sudo_ids = match (sudo_uid.map(str::parse::<u32>), sudo_gid.map(str::parse)) {
            (Some(Ok(uid)), Some(Ok(gid))) if euid == 0 && uid != 0 => Some((uid, gid)),
            _ => None,
        };
        match sudo_ids {
            Some((uid, gid)) => {
                let entry = passwd_entry(passwd, |e| e.uid == uid);
                // sudo sets HOME to root's; any other value was passed on purpose (`sudo
                // HOME=… pinode`, or a sudo configured to keep it) and wins, like it would
                // without sudo.
                let root_home = passwd_entry(passwd, |e| e.uid == 0).map(|e| e.home);
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
                let entry = passwd_entry(passwd, |e| e.uid == euid);
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
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.base_dir("XDG_CACHE_HOME", ".cache")
            .map(|d| d.join("pinode"))
    }

    /// Their state directory for pinode: `$XDG_STATE_HOME/pinode`, else
    /// `~/.local/state/pinode`.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.base_dir("XDG_STATE_HOME", ".local/state")
            .map(|d| d.join("pinode"))
    }

    /// The XDG base directory `var`, as etcetera would pick it for this user. Under sudo the
    /// variable counts only when sudo kept it (`sudo -E`): sudo's own reset removes it, so a
    /// value present then is the invoking user's.
    fn base_dir(&self, var: &str, default: &str) -> Option<PathBuf> {
        std::env::var_os(var)
            .map(PathBuf::from)
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
        for created in missing.iter().rev() {
            self.give_back(created)?;
        }
        Ok(())
    }

    /// Under sudo, makes `path` (not a symlink's target) belong to the invoking user.
    pub fn give_back(&self, path: &Path) -> std::io::Result<()> {
        if !self.sudo {
            return Ok(());
        }
        rustix::fs::chownat(
            CWD,
            path,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)
    }

    /// Under sudo, makes the open `file` belong to the invoking user (before it is renamed
    /// into place, so that there is no moment when the path is root's).
    pub fn give_back_file(&self, file: &std::fs::File) -> std::io::Result<()> {
        if !self.sudo {
            return Ok(());
        }
        rustix::fs::fchown(
            file,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        )
        .map_err(std::io::Error::from)
    }

    /// Under sudo, gives every root-owned entry under `root` (itself included, symlinks not
    /// followed, a few levels deep) back to the invoking user: for trees such as the cache,
    /// which many steps write into. Best effort: a file that vanished meanwhile is skipped.
    pub fn give_back_tree(&self, root: &Path) {
        if !self.sudo {
            return;
        }
        fn walk(invoker: &Invoker, path: &Path, depth: usize) {
            let Ok(meta) = std::fs::symlink_metadata(path) else {
                return;
            };
            if meta.uid() == 0 {
                let _ = invoker.give_back(path);
            }
            if meta.is_dir()
                && depth < MAX_TREE_DEPTH
                && let Ok(entries) = std::fs::read_dir(path)
            {
                for entry in entries.flatten() {
                    walk(invoker, &entry.path(), depth + 1);
                }
            }
        }
        walk(self, root, 0);
    }

    /// What to tell someone whose `*_env` variable is missing: under sudo, that sudo's
    /// environment reset is the likely cause, and how to pass it.
    pub fn missing_env_hint(&self, var: &str) -> Option<String> {
        self.sudo.then(|| {
            format!(
                "sudo does not pass your environment: run `sudo -E pinode ...` or \
                 `sudo {var}=... pinode ...`, or name a file with the `_file` form instead"
            )
        })
    }
}

/// One line of the passwd database.
struct PasswdEntry {
    name: String,
    uid: u32,
    home: PathBuf,
}

/// The first entry of `passwd` that `wanted` accepts (a bounded read; `None` if unreadable).
fn passwd_entry(passwd: &Path, wanted: impl Fn(&PasswdEntry) -> bool) -> Option<PasswdEntry> {
    let mut text = String::new();
    std::fs::File::open(passwd)
        .ok()?
        .take(MAX_PASSWD)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 {
            return None;
        }
        let entry = PasswdEntry {
            name: fields[0].to_string(),
            uid: fields[2].parse().ok()?,
            home: PathBuf::from(fields[5]),
        };
        (entry.home.is_absolute() && wanted(&entry)).then_some(entry)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwd(dir: &Path) -> PathBuf {
        let p = dir.join("passwd");
        std::fs::write(
            &p,
            "root:x:0:0:root:/root:/bin/bash\n\
             alice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
        )
        .unwrap();
        p
    }

    #[test]
    fn under_sudo_the_invoker_is_the_sudo_user_with_their_passwd_home() {
        let dir = tempfile::tempdir().unwrap();
        let p = passwd(dir.path());
        let who = Invoker::from_parts(
            0,
            0,
            Some("1000"),
            Some("1000"),
            Some("alice"),
            Some("/root".into()),
            &p,
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
            &p,
        );
        assert_eq!(kept.home.as_deref(), Some(Path::new("/srv/alice")));
    }

    #[test]
    fn sudo_variables_count_only_for_root() {
        let dir = tempfile::tempdir().unwrap();
        let p = passwd(dir.path());
        let who = Invoker::from_parts(
            1000,
            1000,
            Some("0"),
            Some("0"),
            Some("root"),
            Some("/home/alice".into()),
            &p,
        );
        assert!(!who.sudo);
        assert_eq!(who.uid, 1000);
        assert_eq!(who.home.as_deref(), Some(Path::new("/home/alice")));
        // Plain root (no sudo): root's own home.
        let root = Invoker::from_parts(0, 0, None, None, None, Some("/root".into()), &p);
        assert!(!root.sudo);
        assert_eq!(root.home.as_deref(), Some(Path::new("/root")));
    }
}
