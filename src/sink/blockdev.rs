//! Opening a card for writing, and the few block-device requests pinode makes of the kernel.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::ioctl::{Getter, NoArg, ioctl, opcode};

/// `BLKRRPART`: re-read the partition table.
const BLKRRPART: rustix::ioctl::Opcode = opcode::none(0x12, 95);
/// `BLKSSZGET`: logical block size (declared `_IO` but returns an `int` through the pointer).
const BLKSSZGET: rustix::ioctl::Opcode = opcode::none(0x12, 104);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{}: permission denied: writing a card needs write access to the device (run pinode \
         with sudo, or as a member of the group that owns it)",
        .0.display()
    )]
    Permission(PathBuf),
    #[error(
        "{}: the device is busy: a partition is mounted or another program holds it (unmount \
         it, or pass --unmount)",
        .0.display()
    )]
    Busy(PathBuf),
    #[error("{}: no card in the reader", .0.display())]
    NoMedia(PathBuf),
    #[error("{}: the card is read-only (is its lock switch on?)", .0.display())]
    ReadOnly(PathBuf),
    #[error("{}: {source}", .path.display())]
    Other { path: PathBuf, source: io::Error },
}

/// A card opened exclusively for writing.
pub(crate) struct Card {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Size of the card in bytes.
    pub(crate) len: u64,
    /// Whether I/O bypasses the page cache (`O_DIRECT`); not every driver allows it.
    pub(crate) direct: bool,
    /// Logical block size: every direct I/O is a multiple of it.
    pub(crate) block: u64,
}

impl Card {
    /// Opens `path` read-write and exclusively (`O_EXCL` on a block device fails while any of
    /// its partitions is mounted or claimed), with direct I/O where the driver allows it.
    pub(crate) fn open(path: &Path) -> Result<Card, OpenError> {
        let open = |direct: bool| {
            let mut flags = rustix::fs::OFlags::EXCL;
            if direct {
                flags |= rustix::fs::OFlags::DIRECT;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(flags.bits() as i32)
                .open(path)
        };
        let (file, direct) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                (open(false).map_err(|e| classify(path, e))?, false)
            }
            Err(e) => return Err(classify(path, e)),
        };
        let mut file = file;
        let len = file.seek(SeekFrom::End(0)).map_err(|e| classify(path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| classify(path, e))?;
        let block = logical_block_size(&file).unwrap_or(512);
        Ok(Card {
            file,
            path: path.to_path_buf(),
            len,
            direct,
            block,
        })
    }
}

fn classify(path: &Path, e: io::Error) -> OpenError {
    let path = path.to_path_buf();
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::ACCESS) | Some(Errno::PERM) => OpenError::Permission(path),
        Some(Errno::BUSY) => OpenError::Busy(path),
        Some(Errno::NOMEDIUM) => OpenError::NoMedia(path),
        Some(Errno::ROFS) => OpenError::ReadOnly(path),
        _ => OpenError::Other { path, source: e },
    }
}

fn logical_block_size(file: &File) -> Option<u64> {
    // SAFETY: BLKSSZGET writes one C int through the pointer `Getter` provides.
    let size = unsafe { ioctl(file, Getter::<BLKSSZGET, std::ffi::c_int>::new()) }.ok()?;
    u64::try_from(size).ok().filter(|s| s.is_power_of_two())
}

/// Asks the kernel to read the new partition table, so that `/dev/sdX1` and `/dev/sdX2`
/// match what was written. Fails with `EINVAL` on devices without partition scanning (a
/// loop device set up without `-P`) and `EBUSY` if a partition is in use.
pub(crate) fn reread_partition_table(file: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    unsafe { ioctl(file, NoArg::<BLKRRPART>::new()) }.map_err(io::Error::from)
}

/// Unmounts a file system of the card (for `--unmount`).
pub(crate) fn unmount(mount_point: &str) -> io::Result<()> {
    rustix::mount::unmount(mount_point, rustix::mount::UnmountFlags::empty())
        .map_err(io::Error::from)
}
