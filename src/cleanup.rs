//! Temporary files that do not outlive their run.
//!
//! `prepare` streams a whole node image (tokens and keys included) into a temporary file
//! before renaming it into place, and decompression fills another in the cache. An
//! interrupted run must not leave them behind, whatever stopped it:
//!
//! - every temporary pinode creates is a `TempFile`, registered in one process-wide list
//!   from creation until it is persisted or dropped;
//! - on SIGINT, SIGTERM or SIGHUP, the handler [`install`]ed by `main` removes every
//!   registered path, then lets the signal end the process as it would have (the shell sees
//!   130 or 143);
//! - a run killed outright (SIGKILL, power loss) cannot clean up, so temporaries carry their
//!   creator's process id in their name and are locked (`flock`) while alive: the next
//!   pinode process that creates a temporary in the same directory removes those whose
//!   creator is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Every temporary pinode creates starts with this (and is then `PID.LABEL.RANDOM`).
const PREFIX: &str = ".pinode-tmp.";

struct Registry {
    next: u64,
    paths: BTreeMap<u64, PathBuf>,
    swept: BTreeSet<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    paths: BTreeMap::new(),
    swept: BTreeSet::new(),
});

/// The registry, even after a panic elsewhere poisoned it (cleanup must still happen).
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `name` is a pinode temporary file's name.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// A temporary file in a chosen directory, removed when dropped, on SIGINT/SIGTERM, or by
/// the next run if this one is killed.
#[derive(Debug)]
pub(crate) struct TempFile {
    // Declared first, dropped first: the file is deleted, then unregistered.
    temp: tempfile::NamedTempFile,
    _registration: Registration,
}

/// A path in the registry, until dropped.
#[derive(Debug)]
struct Registration(u64);

impl Registry {
    fn register(&mut self, path: &Path) -> Registration {
        let id = self.next;
        self.next += 1;
        self.paths.insert(id, path.to_path_buf());
        Registration(id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        registry().paths.remove(&self.0);
    }
}

impl TempFile {
    /// Creates `DIR/.pinode-tmp.PID.LABEL.RANDOM` (mode 0600), first removing the dead
    /// temporaries of earlier runs in `dir`.
    pub(crate) fn new_in(dir: &Path, label: &str) -> io::Result<TempFile> {
        sweep_once(dir);
        // Created and registered under the registry's lock, which the signal handler takes
        // (and keeps) too: a signal removes the file or comes before it exists, never between.
        let mut registry = registry();
        let temp = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}.{label}.", std::process::id()))
            .tempfile_in(dir)?;
        let registration = registry.register(temp.path());
        drop(registry);
        // Held for the file's lifetime: tells a later sweep that its creator is alive.
        temp.as_file().try_lock().map_err(io::Error::other)?;
        Ok(TempFile {
            temp,
            _registration: registration,
        })
    }

    pub(crate) fn as_file(&self) -> &File {
        self.temp.as_file()
    }

    pub(crate) fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Renames the file to `to`. Done under the registry's lock, which the signal handler
    /// takes too: a signal arriving now removes the temporary or nothing, never the result.
    pub(crate) fn persist(self, to: &Path) -> io::Result<()> {
        self.rename_with(|temp| temp.persist(to))
    }

    /// [`TempFile::persist`], failing with `AlreadyExists` (the temporary removed) when `to`
    /// exists: for files that must be created once, such as the kept cluster token.
    pub(crate) fn persist_noclobber(self, to: &Path) -> io::Result<()> {
        self.rename_with(|temp| temp.persist_noclobber(to))
    }

    /// Renames with `rename` under the registry's lock, then unregisters the path.
    fn rename_with(
        self,
        rename: impl FnOnce(tempfile::NamedTempFile) -> Result<File, tempfile::PersistError>,
    ) -> io::Result<()> {
        let TempFile {
            temp,
            _registration: registration,
        } = self;
        let guard = registry();
        let result = rename(temp).map(|_| ()).map_err(|e| e.error);
        drop(guard);
        drop(registration);
        result
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// An exclusive lock whose file exists only while it is held: two runs writing the same
/// outputs exclude each other, and a finished (or interrupted) run leaves no lock file in
/// the user's folder. (A run killed outright leaves an empty one, which the next run takes
/// over and removes.)
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    _file: File,
    _registration: Registration,
}

impl LockFile {
    /// Takes the lock at `path`, or `None` when another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<LockFile>> {
        use std::fs::TryLockError;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        loop {
            // Opened (perhaps created) and registered under the registry's lock, as
            // `TempFile::new_in` does: a signal never falls between the two.
            let mut registry = registry();
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
            // The previous holder removes the file when done: if it did so between our
            // open and our lock, we hold a lock on a file nobody else will see. Try again.
            let ours = file.metadata()?;
            let same = std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino());
            if same {
                return Ok(Some(LockFile {
                    path: path.to_path_buf(),
                    _registration: registry.register(path),
                    _file: file,
                }));
            }
            drop(registry);
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed while still locked, so that no one can take a lock on it in between.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A file that exists only while held, created only if nobody else's is there
/// (`O_CREAT|O_EXCL`): the lock convention of a tool pinode cooperates with, such as
/// kubectl's `FILE.lock`, where the file's existence is the lock. Removed when dropped and
/// on SIGINT/SIGTERM/SIGHUP; a run killed outright leaves it, as that tool would.
#[derive(Debug)]
pub(crate) struct CreatedLock {
    path: PathBuf,
    _registration: Registration,
}

impl CreatedLock {
    /// Creates `path` (mode 0600), failing with `AlreadyExists` when it is there.
    pub(crate) fn create(path: &Path) -> io::Result<CreatedLock> {
        use std::os::unix::fs::OpenOptionsExt;
        // Created and registered under the registry's lock, as `TempFile::new_in` does.
        let mut registry = registry();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        Ok(CreatedLock {
            path: path.to_path_buf(),
            _registration: registry.register(path),
        })
    }
}

impl Drop for CreatedLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `contents` to `path` (mode 0600) through a registered temporary file, fsync and a
/// rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, contents, 0o600)
}

/// [`write_atomic`] with `mode`, set on the temporary file before the rename (never by path
/// afterwards, when the path could be a symlink planted in a shared directory).
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, contents, mode, |_| Ok(()))
}

/// [`write_atomic_mode`], with `before_rename` applied to the written, synced temporary
/// file (for example to give it to another owner) before it takes the name.
pub(crate) fn write_atomic_with(
    path: &Path,
    contents: &[u8],
    mode: u32,
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = TempFile::new_in(dir, "write")?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    before_rename(temp.as_file())?;
    temp.persist(path)
}

/// Creates `path` holding `contents` (mode 0600) unless it exists: written whole to a
/// registered temporary in the same directory, synced, `before_rename` applied (to give it
/// to another owner), then linked into place without replacing anything, and the directory
/// synced so that the new name survives a crash too. `Ok(false)` when `path` was there
/// already (another process made it first; ours is removed): for files made once and read
/// ever after, such as the kept cluster token and host keys, where several pinode
/// processes starting at once must all end up with the one that won.
pub(crate) fn create_once(
    path: &Path,
    label: &str,
    contents: &[u8],
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<bool> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = TempFile::new_in(dir, label)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    before_rename(temp.as_file())?;
    match temp.persist_noclobber(path) {
        Ok(()) => {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes every registered temporary (the signal handler's work).
fn remove_all() {
    let registry = registry();
    for path in registry.paths.values() {
        let _ = std::fs::remove_file(path);
    }
    // The lock stays held: nothing may be persisted between this and the process's end.
    std::mem::forget(registry);
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP: remove the registered temporaries,
/// then die of the signal; should the default action not end the process, `exit` is called
/// with the signal number (the binary ends the process with status 128 + signal number, as
/// the shell reports it: the library never ends the process itself).
///
/// Uses `signal-hook`'s iterator: the handler proper only wakes a thread, which does the
/// file work outside signal context, where locks and allocation are allowed.
pub fn install(exit: fn(i32)) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("pinode-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                remove_all();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                exit(signal);
            }
        })?;
    Ok(())
}

/// Sweeps `dir` once per process.
fn sweep_once(dir: &Path) {
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !registry().swept.insert(key) {
        return;
    }
    sweep(dir);
}

/// Removes the temporaries in `dir` left by pinode processes that are gone: the process id
/// in the name is not running, and nobody holds the file's lock (a process of another PID
/// namespace writing to a shared directory holds it). Only regular files of this user
/// named [`PREFIX`]… are considered; anything else is never touched.
fn sweep(dir: &Path) -> usize {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let uid = rustix::process::geteuid().as_raw();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() || meta.uid() != uid || alive(pid) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(entry.path())
        else {
            continue;
        };
        if file.try_lock().is_ok() && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether a process with this id runs (in this PID namespace).
fn alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_until_persisted_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let temp = TempFile::new_in(dir.path(), "a").unwrap();
        let path = temp.path().to_path_buf();
        assert!(is_temp_name(&path.file_name().unwrap().to_string_lossy()));
        assert!(registry().paths.values().any(|p| p == &path));
        temp.persist(&dir.path().join("done")).unwrap();
        assert!(!registry().paths.values().any(|p| p == &path));
        assert!(dir.path().join("done").exists() && !path.exists());

        let temp = TempFile::new_in(dir.path(), "b").unwrap();
        let path = temp.path().to_path_buf();
        drop(temp);
        assert!(!path.exists());
        assert!(!registry().paths.values().any(|p| p == &path));
    }

    #[test]
    fn sweep_removes_only_dead_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let live = TempFile::new_in(dir.path(), "live").unwrap();
        // A dead process's temporary (no process has so high an id).
        let dead = dir.path().join(format!("{PREFIX}999999999.prepare.abc"));
        std::fs::write(&dead, b"secret").unwrap();
        let user = dir.path().join("notes.txt");
        std::fs::write(&user, b"mine").unwrap();
        assert_eq!(sweep(dir.path()), 1);
        assert!(!dead.exists());
        assert!(user.exists());
        assert!(live.path().exists());
    }

    #[test]
    fn create_once_keeps_the_first_and_leaves_no_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(create_once(&path, "t", b"first", |_| Ok(())).unwrap());
        assert!(!create_once(&path, "t", b"second", |_| Ok(())).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let lock = dir.path().join("config.lock");
        let held = CreatedLock::create(&lock).unwrap();
        let again = CreatedLock::create(&lock).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        drop(held);
        assert!(!lock.exists());
    }
}
