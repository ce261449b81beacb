//! Disks and images: opening them, their partition tables, byte-range views and the
//! copy-on-write overlay that keeps the base untouched.

pub(crate) mod compose;
pub(crate) mod overlay;
pub(crate) mod slice;
pub mod table;
pub mod usage;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

pub(crate) use compose::Composed;
pub(crate) use overlay::Overlay;
pub use overlay::OverlayDisk;
pub(crate) use slice::Slice;
pub use table::{Partition, PartitionTable, PartitionType, TableKind, read_partition_table};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the image is only {len} bytes long: too short to hold a partition table")]
    TooSmall { len: u64 },
    #[error("no partition table (the first sector lacks the 0x55AA boot signature)")]
    NoPartitionTable,
    #[error("the partition table lists no partitions")]
    NoPartitions,
    #[error("unreadable partition table: {0}")]
    BadTable(String),
    #[error(
        "partition {index} spans bytes {start}..{end} but the image is only {len} bytes long \
         (truncated image?)"
    )]
    PartitionOutOfBounds {
        index: u32,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("the device is in use (a partition is mounted?); unmount it first")]
    Busy,
    #[error("this is a {0}-compressed file; pinode patches raw images (decompress it first)")]
    Compressed(&'static str),
}

/// What kind of thing a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskKind {
    ImageFile,
    BlockDevice,
}

/// Opens an image file or a block device and finds its size.
///
/// Refuses compressed files up front: a partition-table parser would otherwise report
/// something confusing about an `.img.xz`.
pub fn open(path: &Path, writable: bool) -> Result<(File, u64, DiskKind), DiskError> {
    // Not a plain open: a FIFO would make it wait for a writer forever.
    let mut file = crate::input::open_no_wait(OpenOptions::new().read(true).write(writable), path)?;
    let mut meta = file.metadata()?;
    if writable && meta.file_type().is_block_device() {
        // Exclusive open: the kernel refuses it (EBUSY) while any partition of the device is
        // mounted or otherwise claimed, so a card in use is never written behind its back.
        drop(file);
        file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(code) if code == rustix::io::Errno::BUSY.raw_os_error() => DiskError::Busy,
                _ => DiskError::Io(e),
            })?;
        meta = file.metadata()?;
    }
    let kind = if meta.file_type().is_block_device() {
        DiskKind::BlockDevice
    } else if meta.is_file() {
        DiskKind::ImageFile
    } else {
        return Err(DiskError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file or a block device",
        )));
    };
    // The size of a block device is only known by seeking to its end.
    let len = match kind {
        DiskKind::ImageFile => meta.len(),
        DiskKind::BlockDevice => file.seek(SeekFrom::End(0))?,
    };
    file.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut file, &mut magic)?;
    if let Some(format) = compression_of(&magic[..n]) {
        return Err(DiskError::Compressed(format));
    }
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len, kind))
}

/// Names the compression format whose magic bytes start `head`, if any.
pub(crate) fn compression_of(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some("xz")
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if head.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `BLKFLSBUF`: drop the device's buffer cache.
const BLKFLSBUF: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 97);

/// Drops the cached pages of `file` (a card, or an image file), so that reading back sees the
/// medium, not memory.
pub(crate) fn drop_cached_pages(file: &File) {
    // SAFETY: BLKFLSBUF takes no argument. Failing only means there was nothing to drop or
    // the driver keeps no cache; the verify still reads what the kernel returns.
    let _ = unsafe { rustix::ioctl::ioctl(file, rustix::ioctl::NoArg::<BLKFLSBUF>::new()) };
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}
