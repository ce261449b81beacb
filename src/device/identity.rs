//! Whether two paths end up on the same storage: the same file (device and inode, after
//! symlinks) or the same block device (device number), a loop device standing for its backing
//! file.
//!
//! Names cannot be compared: `/dev/disk/by-id/…`, a symlink of the user's and `/dev/sdb` are
//! one card, and `/dev/loop3` is the file it is bound to. `flash` asks this before writing
//! anything, so that a batch never writes two nodes to one card and the base image is never
//! its own target.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What a path stores its bytes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A regular file: its file system's device and its inode.
    Inode { dev: u64, ino: u64 },
    /// A block device: its `major:minor`.
    Device { major: u32, minor: u32 },
}

impl Identity {
    /// The block device `major:minor`.
    pub(crate) fn device((major, minor): (u32, u32)) -> Identity {
        Identity::Device { major, minor }
    }

    /// The identity of what `path` names, symlinks followed; `None` when it cannot be read
    /// (there is then nothing to compare).
    pub fn of_path(path: &Path) -> Option<Identity> {
        let meta = std::fs::metadata(path).ok()?;
        Some(if meta.file_type().is_block_device() {
            let rdev = meta.rdev();
            Identity::Device {
                major: rustix::fs::major(rdev),
                minor: rustix::fs::minor(rdev),
            }
        } else {
            Identity::Inode {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        })
    }
}

/// The identity of a loop device's backing file as sysfs names it (the kernel appends
/// " (deleted)" to a file removed since).
pub(crate) fn backing_identity(name: &str) -> Option<Identity> {
    Identity::of_path(Path::new(name.strip_suffix(" (deleted)").unwrap_or(name)))
}

/// Whether the two sets of identities share one.
pub fn overlap(a: &[Identity], b: &[Identity]) -> bool {
    a.iter().any(|x| b.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("base.img");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let other = dir.path().join("other.img");
        std::fs::write(&other, b"x").unwrap();
        assert_eq!(Identity::of_path(&file), Identity::of_path(&link));
        assert_ne!(Identity::of_path(&file), Identity::of_path(&other));
        assert_eq!(Identity::of_path(&dir.path().join("missing")), None);
    }
}
