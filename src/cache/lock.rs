//! Advisory locks between pinode processes sharing a cache: one per image, so that two
//! processes asking for the same image produce one download, and `cache clean` never pulls
//! an image out from under a running download.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// An exclusive lock, released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock at `path`, waiting for its holder; `on_wait` runs once if it must wait.
    pub(crate) fn acquire(path: &Path, on_wait: impl FnOnce()) -> std::io::Result<Lock> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                file.lock()?;
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        Ok(Lock { _file: file })
    }

    /// A shared lock at `path`: held while a base image is read, so that `cache clean`
    /// (which needs the exclusive lock) leaves it alone. Waits for an exclusive holder.
    pub(crate) fn shared(path: &Path) -> std::io::Result<Lock> {
        let file = open(path)?;
        file.lock_shared()?;
        Ok(Lock { _file: file })
    }

    /// Takes the lock at `path` if nobody holds it.
    pub(crate) fn try_acquire(path: &Path) -> std::io::Result<Option<Lock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}
