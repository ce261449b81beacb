//! The FAT boot partition, edited offline through `fatfs` on a byte range of the disk.
//!
//! Nothing is mounted: the partition is a `Slice` of an [`OverlayDisk`], so every write lands
//! in the overlay and the base image stays untouched until the caller decides otherwise.

pub mod apply;
pub mod cmdline;
pub mod config_txt;
pub mod content;
pub mod manifest;
pub mod state;

use std::io::{self, Read, Seek, Write};

use crate::disk::{OverlayDisk, Partition, Slice};

type Storage<'d> = fatfs::StdIoWrapper<Watchdog<Slice<&'d mut OverlayDisk>>>;
type Fs<'d> = fatfs::FileSystem<Storage<'d>, Clock, fatfs::LossyOemCpConverter>;

/// A corrupt FAT can link a cluster chain into a loop, and a FAT driver following it would
/// never stop. A whole patch of a full-size 512 MiB boot partition moves about 24 KiB (measured)
/// so I/O beyond this budget in one session means a loop, and becomes an error instead of
/// a hang.
const IO_BUDGET: u64 = 8 << 20;

/// Files pinode reads from the boot partition are small text files; anything bigger than this
/// is not what we think it is, and refusing it keeps memory bounded.
pub(crate) const MAX_TEXT_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BootFsError {
    #[error("partition {index} is not a readable FAT file system ({reason})")]
    NotFat { index: u32, reason: String },
    #[error("{path}: {source}")]
    File { path: String, source: io::Error },
    #[error(
        "{path} on the boot partition is {len} bytes; pinode only edits files up to {max} bytes"
    )]
    TooLarge { path: String, len: u64, max: u64 },
    #[error("the FAT file system could not be closed cleanly: {0}")]
    Close(io::Error),
    #[error("the boot partition has no {0}; is this a Raspberry Pi OS image?")]
    Missing(&'static str),
    #[error("{0} on the boot partition is not UTF-8 text")]
    NotText(&'static str),
    /// Checked before anything is written, so nothing was.
    #[error(
        "the boot partition has no room for {what}: {needed} needed, {free} free (of a \
         {total} partition); nothing was written. A Raspberry Pi OS Bullseye image's boot \
         partition is 256 MiB; use a Bookworm or later image (512 MiB), or set \
         cluster.airgap: false",
        needed = crate::ui::size::binary(*.needed),
        free = crate::ui::size::binary(*.free),
        total = crate::ui::size::binary(*.total)
    )]
    NoRoom {
        what: String,
        needed: u64,
        free: u64,
        total: u64,
    },
}

/// A FAT directory entry's timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub(crate) created: fatfs::DateTime,
    pub(crate) modified: fatfs::DateTime,
    accessed: fatfs::Date,
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    #[default]
    Unchanged,
}

/// Free space on the partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FatSpace {
    pub(crate) free: u64,
    pub(crate) total: u64,
    pub(crate) cluster: u64,
}

impl FatSpace {
    /// What a file of `len` bytes occupies: whole clusters.
    pub(crate) fn occupied(&self, len: u64) -> u64 {
        len.div_ceil(self.cluster.max(1)) * self.cluster.max(1)
    }
}

/// The FAT variant, as the spec decides it: by cluster count, not by what the boot sector says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

impl std::fmt::Display for FatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FatKind::Fat12 => "fat12",
            FatKind::Fat16 => "fat16",
            FatKind::Fat32 => "fat32",
        })
    }
}

/// An open boot partition.
pub struct BootFs<'d> {
    fs: Fs<'d>,
    /// What is left of [`IO_BUDGET`]; [`BootFs::write_from`] adds what a large file needs.
    budget: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<'d> BootFs<'d> {
    /// Opens the FAT file system of `partition` on `disk`.
    pub fn open(disk: &'d mut OverlayDisk, partition: &Partition) -> Result<Self, BootFsError> {
        check_fat_links(
            &mut Slice::new(&mut *disk, partition.start, partition.size),
            partition.index,
        )?;
        let budget = std::rc::Rc::new(std::cell::Cell::new(IO_BUDGET));
        let slice = Watchdog {
            inner: Slice::new(disk, partition.start, partition.size),
            left: budget.clone(),
        };
        let options = fatfs::FsOptions::new().time_provider(Clock::from_env());
        let fs = fatfs::FileSystem::new(slice, options).map_err(|e| BootFsError::NotFat {
            index: partition.index,
            reason: describe(&e),
        })?;
        Ok(BootFs { fs, budget })
    }

    pub(crate) fn fat_kind(&self) -> FatKind {
        match self.fs.fat_type() {
            fatfs::FatType::Fat12 => FatKind::Fat12,
            fatfs::FatType::Fat16 => FatKind::Fat16,
            fatfs::FatType::Fat32 => FatKind::Fat32,
        }
    }

    /// Volume label from the boot sector, trimmed.
    pub fn label(&self) -> String {
        self.fs.volume_label().trim_end().to_string()
    }

    /// Whether a file (not a directory) exists at `path`.
    pub(crate) fn is_file(&self, path: &str) -> Result<bool, BootFsError> {
        match self.fs.root_dir().open_file(path) {
            Ok(_) => Ok(true),
            Err(fatfs::Error::NotFound | fatfs::Error::InvalidInput) => Ok(false),
            Err(e) => Err(file_error(path, e)),
        }
    }

    /// Reads a file of at most `MAX_TEXT_FILE` bytes; `None` if it does not exist.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, BootFsError> {
        let mut file = match self.fs.root_dir().open_file(path) {
            Ok(file) => file,
            Err(fatfs::Error::NotFound | fatfs::Error::InvalidInput) => return Ok(None),
            Err(e) => return Err(file_error(path, e)),
        };
        let mut contents = Vec::new();
        let read = (&mut file)
            .take(MAX_TEXT_FILE + 1)
            .read_to_end(&mut contents)
            .map_err(|source| BootFsError::File {
                path: path.to_string(),
                source,
            })?;
        if read as u64 > MAX_TEXT_FILE {
            return Err(BootFsError::TooLarge {
                path: path.to_string(),
                len: read as u64,
                max: MAX_TEXT_FILE,
            });
        }
        Ok(Some(contents))
    }

    /// Makes `path` hold exactly `contents`, creating parent directories as needed. A file that
    /// already holds these bytes is left alone, so repeating a patch changes nothing.
    pub(crate) fn write(&mut self, path: &str, contents: &[u8]) -> Result<Change, BootFsError> {
        let existing = self.read(path)?;
        if existing.as_deref() == Some(contents) {
            return Ok(Change::Unchanged);
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.create_dir_all(parent)?;
        }
        let root = self.fs.root_dir();
        let mut file = root.create_file(path).map_err(|e| file_error(path, e))?;
        file.truncate().map_err(|e| file_error(path, e))?;
        file.write_all(contents)
            .and_then(|()| file.flush())
            .map_err(|source| BootFsError::File {
                path: path.to_string(),
                source,
            })?;
        Ok(if existing.is_some() {
            Change::Updated
        } else {
            Change::Created
        })
    }

    /// The timestamps of a file or directory; `None` if absent.
    pub fn times(&self, path: &str) -> Result<Option<Times>, BootFsError> {
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (Some(parent), name),
            None => (None, path),
        };
        let dir = match parent {
            Some(parent) => match self.fs.root_dir().open_dir(parent) {
                Ok(dir) => dir,
                Err(fatfs::Error::NotFound | fatfs::Error::InvalidInput) => return Ok(None),
                Err(e) => return Err(file_error(path, e)),
            },
            None => self.fs.root_dir(),
        };
        for entry in dir.iter() {
            let entry = entry.map_err(|e| file_error(path, e))?;
            if entry.file_name().eq_ignore_ascii_case(name) {
                return Ok(Some(Times {
                    created: entry.created(),
                    modified: entry.modified(),
                    accessed: entry.accessed(),
                }));
            }
        }
        Ok(None)
    }

    /// Sets the timestamps of a file (to put back a file exactly as it was).
    fn set_times(&mut self, path: &str, times: Times) -> Result<(), BootFsError> {
        let mut file = self
            .fs
            .root_dir()
            .open_file(path)
            .map_err(|e| file_error(path, e))?;
        file.set_created(times.created);
        file.set_modified(times.modified);
        file.set_accessed(times.accessed);
        file.flush().map_err(|source| BootFsError::File {
            path: path.to_string(),
            source,
        })
    }

    /// Overwrites a file's contents with zeros where they lie, before it is rewritten or
    /// removed: FAT frees clusters without clearing them, so an old Wi-Fi key or password
    /// hash would otherwise stay readable on the card. `false` if there was no such file.
    pub(crate) fn scrub(&mut self, path: &str) -> Result<bool, BootFsError> {
        let mut file = match self.fs.root_dir().open_file(path) {
            Ok(file) => file,
            Err(fatfs::Error::NotFound | fatfs::Error::InvalidInput) => return Ok(false),
            Err(e) => return Err(file_error(path, e)),
        };
        let len = file
            .seek(io::SeekFrom::End(0))
            .and_then(|len| file.seek(io::SeekFrom::Start(0)).map(|_| len));
        let len = len.map_err(|source| BootFsError::File {
            path: path.to_string(),
            source,
        })?;
        let zeros = vec![0u8; len.min(MAX_TEXT_FILE) as usize];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])
                .map_err(|source| BootFsError::File {
                    path: path.to_string(),
                    source,
                })?;
            left -= n as u64;
        }
        file.flush().map_err(|source| BootFsError::File {
            path: path.to_string(),
            source,
        })?;
        Ok(true)
    }

    /// Removes a file; `false` if there was none.
    pub(crate) fn remove(&mut self, path: &str) -> Result<bool, BootFsError> {
        match self.fs.root_dir().remove(path) {
            Ok(()) => Ok(true),
            Err(fatfs::Error::NotFound | fatfs::Error::InvalidInput) => Ok(false),
            Err(e) => Err(file_error(path, e)),
        }
    }

    fn create_dir_all(&mut self, path: &str) -> Result<(), BootFsError> {
        let mut dir = self.fs.root_dir();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            dir = dir.create_dir(part).map_err(|e| file_error(path, e))?;
        }
        Ok(())
    }

    /// Free bytes and the cluster size: a file of `n` bytes takes `n` rounded up to whole
    /// clusters.
    pub(crate) fn space(&self) -> Result<FatSpace, BootFsError> {
        let stats = self.fs.stats().map_err(|e| file_error("/", e))?;
        let cluster = u64::from(stats.cluster_size());
        Ok(FatSpace {
            free: u64::from(stats.free_clusters()) * cluster,
            total: u64::from(stats.total_clusters()) * cluster,
            cluster,
        })
    }

    /// The size of a file; `None` if there is none.
    pub(crate) fn file_len(&self, path: &str) -> Result<Option<u64>, BootFsError> {
        let mut file = match self.fs.root_dir().open_file(path) {
            Ok(file) => file,
            Err(fatfs::Error::NotFound | fatfs::Error::InvalidInput) => return Ok(None),
            Err(e) => return Err(file_error(path, e)),
        };
        file.seek(io::SeekFrom::End(0))
            .map(Some)
            .map_err(|source| BootFsError::File {
                path: path.to_string(),
                source,
            })
    }

    /// Writes a large file (an air-gap release file) from `source`, `len` bytes, streamed:
    /// never held in memory here. The I/O budget grows by what the file needs (its bytes,
    /// plus as much again for scrubbing an older copy), so a looping chain is still caught.
    pub(crate) fn write_from(
        &mut self,
        path: &str,
        source: &mut dyn Read,
        len: u64,
    ) -> Result<(), BootFsError> {
        self.budget
            .set(self.budget.get().saturating_add(len.saturating_mul(2)));
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.create_dir_all(parent)?;
        }
        let file_err = |source| BootFsError::File {
            path: path.to_string(),
            source,
        };
        let mut file = self
            .fs
            .root_dir()
            .create_file(path)
            .map_err(|e| file_error(path, e))?;
        file.truncate().map_err(|e| file_error(path, e))?;
        let copied = io::copy(&mut source.take(len), &mut file).map_err(file_err)?;
        if copied != len {
            return Err(file_err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ended after {copied} of {len} bytes"),
            )));
        }
        file.flush().map_err(file_err)
    }

    /// Grows the I/O budget by `bytes` (scrubbing and removing a large file).
    pub(crate) fn allow(&mut self, bytes: u64) {
        self.budget.set(self.budget.get().saturating_add(bytes));
    }

    /// Flushes FSInfo and clears the volume's dirty flag. Must be called after writing.
    pub(crate) fn close(self) -> Result<(), BootFsError> {
        self.fs.unmount().map_err(|e| BootFsError::Close(e.into()))
    }
}

/// Refuses a FAT whose cluster chains link to clusters that do not exist.
///
/// lamfat 0.4.3 follows a chain without checking its links: an entry that points at cluster 1
/// (or past the last cluster) makes it compute `cluster - 2` below zero, a panic in a debug
/// build, and in a release build a wrapped sector number, so that a read, or a write, lands in
/// the FAT or the root directory. Found by fuzzing (fuzz/, target `boot_fat`). So the FAT that
/// lamfat will use is checked here first, with the boot sector read as lamfat reads it, and
/// such a volume is refused as corrupt: pinode does not write into a file system that
/// fsck.fat would have to repair. A boot sector that does not add up is left to lamfat to
/// refuse. Costs one read of the FAT (about 300 KiB on a Raspberry Pi OS boot partition).
fn check_fat_links<T: Read + Seek>(part: &mut T, index: u32) -> Result<(), BootFsError> {
    let mut bs = [0u8; 512];
    if part
        .seek(io::SeekFrom::Start(0))
        .and_then(|_| part.read_exact(&mut bs))
        .is_err()
    {
        return Ok(());
    }
    let u16_at = |i: usize| u16::from_le_bytes([bs[i], bs[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bs[i], bs[i + 1], bs[i + 2], bs[i + 3]]);
    let bytes_per_sector = u32::from(u16_at(11));
    let sectors_per_cluster = u32::from(bs[13]);
    let reserved = u32::from(u16_at(14));
    let fats = u32::from(bs[16]);
    let root_entries = u32::from(u16_at(17));
    let fat32 = u16_at(22) == 0;
    let sectors_per_fat = if fat32 {
        u32_at(36)
    } else {
        u32::from(u16_at(22))
    };
    let total_sectors = match u16_at(19) {
        0 => u32_at(32),
        n => u32::from(n),
    };
    if bytes_per_sector == 0 || sectors_per_cluster == 0 {
        return Ok(());
    }
    let root_dir_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
    let Some(clusters) = fats
        .checked_mul(sectors_per_fat)
        .and_then(|n| n.checked_add(reserved))
        .and_then(|n| n.checked_add(root_dir_sectors))
        .and_then(|first_data| total_sectors.checked_sub(first_data))
        .map(|data| data / sectors_per_cluster)
    else {
        return Ok(());
    };
    // Entry width as lamfat decides it: by cluster count. Values from `bad` up are the bad
    // cluster mark and end-of-chain marks; 0 is a free cluster.
    let (bits, bad): (u64, u32) = match clusters {
        0..4085 => (12, 0xff7),
        4085..65525 => (16, 0xfff7),
        _ => (32, 0x0fff_fff7),
    };
    let end = clusters.saturating_add(2);
    let corrupt = |reason: String| BootFsError::NotFat {
        index,
        reason: format!("{reason}; the file system is corrupt (repair it with fsck.fat)"),
    };
    if fat32 {
        let root = u32_at(44) & 0x0fff_ffff;
        if root < 2 || root >= end {
            return Err(corrupt(format!(
                "the root directory starts at cluster {root}, which does not exist"
            )));
        }
    }
    let extended_flags = if fat32 { u16_at(40) } else { 0 };
    let active = if extended_flags & 0x80 != 0 {
        u32::from(extended_flags & 0x0f)
    } else {
        0
    };
    let fat_start = (u64::from(reserved) + u64::from(active) * u64::from(sectors_per_fat))
        * u64::from(bytes_per_sector);
    let fat_len = (u64::from(end) * bits)
        .div_ceil(8)
        .min(u64::from(sectors_per_fat) * u64::from(bytes_per_sector));
    if part.seek(io::SeekFrom::Start(fat_start)).is_err() {
        return Ok(());
    }
    // Whole entries at a time (FAT12 packs two in three bytes, and has at most 6 KiB).
    let chunk_len: u64 = if bits == 12 { fat_len } else { 64 * 1024 };
    let mut chunk = Vec::new();
    let mut first = 0u64; // number of the first entry in `chunk`
    let mut done = 0u64;
    while done < fat_len {
        let n = chunk_len.min(fat_len - done);
        chunk.resize(n as usize, 0);
        if part.read_exact(&mut chunk).is_err() {
            return Ok(());
        }
        let entries = n * 8 / bits;
        for i in 0..entries {
            let cluster = first + i;
            let value = match bits {
                12 => {
                    let at = (cluster + cluster / 2) as usize;
                    let pair = chunk
                        .get(at..at + 2)
                        .map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
                    if cluster % 2 == 1 {
                        pair >> 4
                    } else {
                        pair & 0xfff
                    }
                }
                16 => {
                    let at = (i * 2) as usize;
                    u32::from(u16::from_le_bytes([chunk[at], chunk[at + 1]]))
                }
                _ => {
                    let at = (i * 4) as usize;
                    u32::from_le_bytes([chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]])
                        & 0x0fff_ffff
                }
            };
            if cluster >= 2
                && cluster < u64::from(end)
                && (value == 1 || (value >= end && value < bad))
            {
                return Err(corrupt(format!(
                    "the FAT links cluster {cluster} to cluster {value}, which does not exist"
                )));
            }
        }
        first += entries;
        done += n;
    }
    Ok(())
}

/// Counts the bytes moved through it and fails once [`IO_BUDGET`] is spent.
struct Watchdog<T> {
    inner: T,
    /// Shared with [`BootFs`], which adds the size of each large file it writes.
    left: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<T> Watchdog<T> {
    fn spend(&mut self, n: usize) -> io::Result<()> {
        let left = self.left.get().checked_sub(n as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the FAT file system is corrupt (a cluster chain loops back on itself)",
            )
        })?;
        self.left.set(left);
        Ok(())
    }
}

impl<T: Read> Read for Watchdog<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.spend(n)?;
        Ok(n)
    }
}

impl<T: Write> Write for Watchdog<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.spend(buf.len())?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: io::Seek> io::Seek for Watchdog<T> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn file_error(path: &str, e: fatfs::Error<io::Error>) -> BootFsError {
    BootFsError::File {
        path: path.to_string(),
        source: e.into(),
    }
}

fn describe(e: &fatfs::Error<io::Error>) -> String {
    match e {
        fatfs::Error::CorruptedFileSystem => "invalid or corrupt boot sector".to_string(),
        fatfs::Error::UnexpectedEof => "the partition ends inside the file system".to_string(),
        other => other.to_string(),
    }
}

/// Timestamps for files pinode writes: `SOURCE_DATE_EPOCH` when set (reproducible images in
/// CI), the current time otherwise. FAT stores local time without a zone; we store UTC.
#[derive(Debug, Clone, Copy)]
struct Clock {
    unix_seconds: i64,
}

impl Clock {
    pub(crate) fn from_env() -> Self {
        let from_env = crate::edge::settings().source_date_epoch;
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        };
        Clock {
            unix_seconds: from_env.unwrap_or_else(now),
        }
    }

    fn date_time(&self) -> fatfs::DateTime {
        // FAT can represent 1980-01-01 to 2107-12-31.
        let t = time::OffsetDateTime::from_unix_timestamp(self.unix_seconds)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let year = t.year().clamp(1980, 2107) as u16;
        let (month, day, hour, min, sec) = if (1980..=2107).contains(&t.year()) {
            (
                u8::from(t.month()) as u16,
                t.day() as u16,
                t.hour() as u16,
                t.minute() as u16,
                t.second() as u16,
            )
        } else {
            (1, 1, 0, 0, 0)
        };
        fatfs::DateTime::new(
            fatfs::Date::new(year, month, day),
            fatfs::Time::new(hour, min, sec, 0),
        )
    }
}

impl fatfs::TimeProvider for Clock {
    fn get_current_date(&self) -> fatfs::Date {
        self.date_time().date
    }

    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.date_time()
    }
}
