//! A copy-on-write layer of changed blocks over a read-only base image.
//!
//! Preparing a node must never modify the cached base image, and patching a card must cost
//! the size of the change rather than the size of the card. Both follow from the same idea:
//! every write lands in an in-memory map of 4 KiB blocks, reads see those blocks first and the
//! base everywhere else. `prepare` streams "base + overlay" into a new file; `patch` writes the
//! changed blocks back in place ([`OverlayDisk::commit`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// Granularity of the overlay. 4 KiB matches page size and the alignment that direct I/O to
/// cards needs, and is a multiple of every FAT sector size.
pub(crate) const BLOCK_SIZE: usize = 4096;
const BLOCK: u64 = BLOCK_SIZE as u64;

/// Blocks read from the base are kept so that fatfs' many small reads (4-byte FAT entries,
/// 32-byte directory entries) do not each become a system call. Bounded so that memory stays
/// flat whatever the image size.
const CLEAN_CACHE_LIMIT: usize = 2048; // 8 MiB

type Block = Box<[u8; BLOCK_SIZE]>;

/// The changed blocks of an image, keyed by block index.
#[derive(Default, Clone)]
pub struct Overlay {
    blocks: BTreeMap<u64, Block>,
}

impl Overlay {
    /// Number of changed blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Bytes held in the overlay.
    pub fn bytes(&self) -> u64 {
        self.blocks.len() as u64 * BLOCK
    }

    /// Changed blocks in ascending order: `(byte offset, contents)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &[u8; BLOCK_SIZE])> {
        self.blocks
            .iter()
            .map(|(index, data)| (index * BLOCK, &**data))
    }

    /// Changed blocks that overlap the byte range `start..end`, in ascending order.
    pub(crate) fn blocks_in(
        &self,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = (u64, &[u8; BLOCK_SIZE])> {
        self.blocks
            .range(start / BLOCK..end.div_ceil(BLOCK))
            .map(|(index, data)| (index * BLOCK, &**data))
    }
}

/// A read-only base (an image file or a block device) seen through an `Overlay`.
///
/// Implements `Read + Write + Seek` over the whole disk so that partition-table readers and the
/// FAT driver can work on it as if it were the real thing. Writes never reach the base until
/// [`OverlayDisk::commit`] is called, so a failure half-way through leaves nothing changed.
pub struct OverlayDisk {
    base: File,
    len: u64,
    overlay: Overlay,
    clean: HashMap<u64, Block>,
    pos: u64,
}

impl OverlayDisk {
    /// Wraps `base`, whose usable size is `len` bytes.
    pub fn new(base: File, len: u64) -> Self {
        OverlayDisk {
            base,
            len,
            overlay: Overlay::default(),
            clean: HashMap::new(),
            pos: 0,
        }
    }

    /// Size of the disk in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The changes made so far.
    pub(crate) fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// Gives up the base file and the changes.
    #[cfg(test)]
    pub(crate) fn into_parts(self) -> (File, Overlay) {
        (self.base, self.overlay)
    }

    /// The base file (read-only use).
    pub(crate) fn base(&self) -> &File {
        &self.base
    }

    /// Writes the changed blocks to the base in place and flushes them to stable storage,
    /// all or nothing.
    ///
    /// A patched card must never be left half-customised (a `cmdline.txt` pointing at a
    /// first-boot script that was never written does not boot), so:
    /// 1. the blocks about to be replaced are read first, to be put back if a write fails;
    /// 2. on an image file, the space for every changed block is reserved (`fallocate`)
    ///    before the first write: a sparse image on a full disk fails here, untouched;
    /// 3. contiguous runs are written highest offset first (file data before the
    ///    directories and the FAT at the start of the partition), each flushed before the
    ///    next, so that a failure is known at the run it happened in;
    /// 4. everything is read back from the medium (the cache dropped first): a device can
    ///    lose writes without an error (a loop device over a full file system does, and so
    ///    do counterfeit cards);
    /// 5. on a failure, every run written so far (and the failed one) is put back.
    ///
    /// The base must have been opened for writing. Cost is proportional to the overlay.
    pub fn commit(&mut self) -> Result<u64, CommitError> {
        let runs = self.runs();
        if runs.is_empty() {
            return Ok(0);
        }
        let mut old = Vec::with_capacity(runs.len());
        for (offset, data) in &runs {
            let mut before = vec![0u8; data.len()];
            self.base
                .read_exact_at(&mut before, *offset)
                .map_err(CommitError::Read)?;
            old.push(before);
        }
        reserve(&self.base, &runs)?;
        let mut written = 0;
        for (i, (offset, data)) in runs.iter().enumerate() {
            if let Err(source) = write_durably(&self.base, data, *offset) {
                return Err(self.undo(&runs[..=i], &old[..=i], *offset, source));
            }
            written += data.len() as u64;
        }
        if let Some(offset) = first_difference(&self.base, &runs) {
            let source = io::Error::other("the device did not keep the bytes written there");
            return Err(self.undo(&runs, &old, offset, source));
        }
        Ok(written)
    }

    /// Puts `old` back over `runs` after a failure at `offset`, and checks that it stuck.
    fn undo(
        &self,
        runs: &[(u64, Vec<u8>)],
        old: &[Vec<u8>],
        offset: u64,
        source: io::Error,
    ) -> CommitError {
        let mut undo = None;
        for ((at, _), before) in runs.iter().zip(old).rev() {
            if let Err(e) = write_durably(&self.base, before, *at) {
                undo.get_or_insert(e);
            }
        }
        let restored: Vec<(u64, Vec<u8>)> = runs
            .iter()
            .zip(old)
            .map(|((at, _), before)| (*at, before.clone()))
            .collect();
        if undo.is_none()
            && let Some(at) = first_difference(&self.base, &restored)
        {
            undo = Some(io::Error::other(format!(
                "byte {at} still differs from the original"
            )));
        }
        match undo {
            None => CommitError::RolledBack { offset, source },
            Some(undo) => CommitError::Inconsistent {
                offset,
                source,
                undo,
            },
        }
    }

    /// The overlay as contiguous runs `(byte offset, bytes)`, clipped to the disk's end,
    /// highest offset first (the order [`OverlayDisk::commit`] writes them in).
    fn runs(&self) -> Vec<(u64, Vec<u8>)> {
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (offset, data) in self.overlay.iter() {
            let n = block_len(offset, self.len);
            if n == 0 {
                continue;
            }
            match runs.last_mut() {
                Some((start, bytes)) if *start + bytes.len() as u64 == offset => {
                    bytes.extend_from_slice(&data[..n])
                }
                _ => runs.push((offset, data[..n].to_vec())),
            }
        }
        runs.reverse();
        runs
    }

    /// Reads block `index` from the base.
    fn fetch(&self, index: u64) -> io::Result<Block> {
        let mut data: Block = Box::new([0u8; BLOCK_SIZE]);
        let offset = index * BLOCK;
        let n = block_len(offset, self.len);
        self.base.read_exact_at(&mut data[..n], offset)?;
        Ok(data)
    }

    /// Runs `f` on the current contents of block `index`: the overlay's if changed, else the
    /// base's (cached).
    fn with_block<R>(
        &mut self,
        index: u64,
        f: impl FnOnce(&[u8; BLOCK_SIZE]) -> R,
    ) -> io::Result<R> {
        if let Some(block) = self.overlay.blocks.get(&index) {
            return Ok(f(block));
        }
        if let Some(block) = self.clean.get(&index) {
            return Ok(f(block));
        }
        if self.clean.len() >= CLEAN_CACHE_LIMIT {
            self.clean.clear();
        }
        let block = self.fetch(index)?;
        let result = f(&block);
        self.clean.insert(index, block);
        Ok(result)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        let mut done = 0;
        while done < n {
            let at = offset + done as u64;
            let within = (at % BLOCK) as usize;
            let chunk = (BLOCK_SIZE - within).min(n - done);
            let dst = &mut buf[done..done + chunk];
            self.with_block(at / BLOCK, |block| {
                dst.copy_from_slice(&block[within..within + chunk])
            })?;
            done += chunk;
        }
        Ok(n)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("write past the end of the disk ({} bytes)", self.len),
            ));
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let chunk = (BLOCK_SIZE - within).min(buf.len() - done);
            let new = &buf[done..done + chunk];
            // Writing what is already there is not a change: keeping such blocks out of the
            // overlay is what makes a repeated patch byte-for-byte free.
            let same = self.with_block(index, |block| &block[within..within + chunk] == new)?;
            if !same {
                let mut block = match self
                    .overlay
                    .blocks
                    .remove(&index)
                    .or_else(|| self.clean.remove(&index))
                {
                    Some(block) => block,
                    None => self.fetch(index)?,
                };
                block[within..within + chunk].copy_from_slice(new);
                self.overlay.blocks.insert(index, block);
            }
            done += chunk;
        }
        Ok(buf.len())
    }
}

/// Why [`OverlayDisk::commit`] failed, and whether the base is as it was.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("reading the blocks to be replaced failed ({0}); nothing was changed")]
    Read(#[source] io::Error),
    #[error(
        "cannot reserve {bytes} bytes for the changes ({source}); nothing was changed \
         (free some space and try again)"
    )]
    Reserve {
        bytes: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "writing at byte {offset} failed ({source}); the blocks written before it were put \
         back, nothing was changed"
    )]
    RolledBack {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "writing at byte {offset} failed ({source}), and putting the old blocks back failed \
         too ({undo}): the image may be inconsistent, restore it from a copy"
    )]
    Inconsistent {
        offset: u64,
        source: io::Error,
        undo: io::Error,
    },
}

/// Allocates the disk space of every run of an image file before anything is written, so
/// that a full file system refuses the patch up front rather than in the middle of it (a
/// sparse image's holes need new blocks). Block devices have their space already; a file
/// system without `fallocate` is written without the reservation (the rollback still
/// applies).
fn reserve(base: &File, runs: &[(u64, Vec<u8>)]) -> Result<(), CommitError> {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    let is_file = base.metadata().map_err(CommitError::Read)?.is_file();
    if !is_file {
        return Ok(());
    }
    for (offset, data) in runs {
        match fallocate(base, FallocateFlags::KEEP_SIZE, *offset, data.len() as u64) {
            Ok(()) => {}
            Err(Errno::OPNOTSUPP | Errno::NOSYS) => return Ok(()),
            Err(e) => {
                return Err(CommitError::Reserve {
                    bytes: runs.iter().map(|(_, d)| d.len() as u64).sum(),
                    source: e.into(),
                });
            }
        }
    }
    Ok(())
}

/// Writes `data` at `offset` and waits until it is on stable storage, so that an I/O error
/// (reported by the device only on flush) is attributed to this write.
fn write_durably(base: &File, data: &[u8], offset: u64) -> io::Result<()> {
    base.write_all_at(data, offset)?;
    base.sync_data()
}

/// The first offset of `runs` where the medium does not hold the run's bytes, read after
/// dropping the cached pages (a block device's buffer cache would otherwise answer with what
/// was written, kept or not). A read error counts as a difference.
fn first_difference(base: &File, runs: &[(u64, Vec<u8>)]) -> Option<u64> {
    super::drop_cached_pages(base);
    for (offset, data) in runs {
        let mut back = vec![0u8; data.len()];
        if base.read_exact_at(&mut back, *offset).is_err() {
            return Some(*offset);
        }
        if let Some(i) = back.iter().zip(data).position(|(a, b)| a != b) {
            return Some(offset + i as u64);
        }
    }
    None
}

/// Bytes of the block starting at `offset` that lie inside a disk of `len` bytes.
fn block_len(offset: u64, len: u64) -> usize {
    (len.saturating_sub(offset)).min(BLOCK) as usize
}

impl Read for OverlayDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for OverlayDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.write_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for OverlayDisk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = resolve_seek(pos, self.pos, self.len)?;
        Ok(self.pos)
    }
}

impl std::fmt::Debug for OverlayDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayDisk")
            .field("len", &self.len)
            .field("changed_blocks", &self.overlay.len())
            .finish()
    }
}

/// Computes a new position for `Seek` on a stream of `len` bytes, refusing negative results.
pub(crate) fn resolve_seek(pos: SeekFrom, current: u64, len: u64) -> io::Result<u64> {
    let target = match pos {
        SeekFrom::Start(n) => Some(n),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => current.checked_add_signed(d),
    };
    target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative offset"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_with(contents: &[u8]) -> OverlayDisk {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(contents).unwrap();
        OverlayDisk::new(file, contents.len() as u64)
    }

    #[test]
    fn writes_stay_in_the_overlay_until_commit() {
        let base: Vec<u8> = (0..3 * BLOCK_SIZE + 100).map(|i| (i % 251) as u8).collect();
        let mut disk = disk_with(&base);
        disk.seek(SeekFrom::Start(4090)).unwrap();
        disk.write_all(b"hello world").unwrap();
        let mut back = vec![0; 11];
        disk.seek(SeekFrom::Start(4090)).unwrap();
        disk.read_exact(&mut back).unwrap();
        assert_eq!(back, b"hello world");
        assert_eq!(disk.overlay().len(), 2, "the write spans two blocks");
        let mut on_disk = vec![0; 11];
        disk.base().read_exact_at(&mut on_disk, 4090).unwrap();
        assert_eq!(on_disk, &base[4090..4101], "base untouched before commit");
        assert_eq!(disk.commit().unwrap(), 2 * BLOCK);
        disk.base().read_exact_at(&mut on_disk, 4090).unwrap();
        assert_eq!(on_disk, b"hello world");
    }

    #[test]
    fn identical_writes_are_not_changes() {
        let base = vec![7u8; 2 * BLOCK_SIZE];
        let mut disk = disk_with(&base);
        disk.write_all(&[7u8; 100]).unwrap();
        assert!(disk.overlay().is_empty());
    }

    #[test]
    fn partial_last_block_and_bounds() {
        let base = vec![1u8; BLOCK_SIZE + 10];
        let mut disk = disk_with(&base);
        disk.seek(SeekFrom::Start(BLOCK + 5)).unwrap();
        disk.write_all(&[9u8; 5]).unwrap();
        assert!(disk.write_all(&[9u8; 1]).is_err(), "no growth past the end");
        let mut rest = Vec::new();
        disk.seek(SeekFrom::Start(BLOCK)).unwrap();
        disk.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, [1, 1, 1, 1, 1, 9, 9, 9, 9, 9]);
        assert_eq!(disk.commit().unwrap(), 10);
        assert_eq!(disk.base().metadata().unwrap().len(), BLOCK + 10);
    }

    #[test]
    fn negative_seek_is_an_error() {
        let mut disk = disk_with(&[0u8; 10]);
        assert!(disk.seek(SeekFrom::Current(-1)).is_err());
    }
}
