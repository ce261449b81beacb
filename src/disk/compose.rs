//! The composed image: a base file with a node's overlay applied, the one view every sink
//! reads (image files, bmaps and cards). Nothing is copied: bytes are read from the base and
//! patched with the overlay's blocks on the way out, either at an offset ([`Composed::read_at`])
//! or streamed in order without holding the image in memory ([`Composed::chunks`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::overlay::{BLOCK_SIZE, Overlay};
use super::usage::ReadAt;

/// `len` bytes of `base` with `overlay` applied.
#[derive(Clone, Copy)]
pub struct Composed<'a> {
    pub(crate) base: &'a File,
    pub(crate) len: u64,
    pub(crate) overlay: &'a Overlay,
}

impl<'a> Composed<'a> {
    pub fn new(base: &'a File, len: u64, overlay: &'a Overlay) -> Self {
        Composed { base, len, overlay }
    }

    /// Fills `buf` with the image bytes at `offset` (zeros past the end, to pad the last
    /// block for direct I/O).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = (offset + buf.len() as u64).min(self.len);
        let valid = end.saturating_sub(offset) as usize;
        self.base.read_exact_at(&mut buf[..valid], offset)?;
        buf[valid..].fill(0);
        for (at, block) in self.overlay.blocks_in(offset, end) {
            let from = at.max(offset);
            let to = (at + block.len() as u64).min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&block[(from - at) as usize..(to - at) as usize]);
        }
        Ok(())
    }

    /// The whole image as ordered chunks, holes of the base skipped (see [`Chunks`]).
    pub(crate) fn chunks(&self) -> Chunks<'a> {
        Chunks {
            base: self.base,
            len: self.len,
            overlay: self.overlay,
            pos: 0,
            extent: None,
            holes_supported: true,
        }
    }
}

impl ReadAt for Composed<'_> {
    fn read_bytes_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_at(offset, buf)
    }
}

/// Size of the pieces the image is streamed in. Large enough to amortise system calls,
/// small enough that a few in flight keep memory flat.
pub(crate) const CHUNK_SIZE: usize = 1 << 20;

/// A piece of the composed image.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Bytes at `offset`.
    Data {
        #[allow(
            dead_code,
            reason = "the writers keep their own position; the tests check this"
        )]
        offset: u64,
        bytes: Vec<u8>,
    },
    /// `len` zero bytes at `offset` that the base stores as a hole: no need to read them.
    Hole {
        #[allow(
            dead_code,
            reason = "the writers keep their own position; the tests check this"
        )]
        offset: u64,
        len: u64,
    },
}

/// Yields a [`Composed`] image as ordered chunks.
///
/// Holes in the base (found with `SEEK_DATA`) that the overlay does not touch come out as
/// [`Chunk::Hole`], so a sparse base is never read in full.
pub(crate) struct Chunks<'a> {
    base: &'a File,
    len: u64,
    overlay: &'a Overlay,
    pos: u64,
    /// The base's data extent `start..end` found last, to ask the kernel once per extent.
    extent: Option<(u64, u64)>,
    holes_supported: bool,
}

impl Chunks<'_> {
    /// Start of the first byte at or after `pos` the base stores as data (`len` if none).
    fn data_from(&mut self, pos: u64) -> u64 {
        if !self.holes_supported {
            return pos;
        }
        if let Some((start, end)) = self.extent
            && pos < end
        {
            return start.max(pos);
        }
        let start = match rustix::fs::seek(self.base, rustix::fs::SeekFrom::Data(pos)) {
            Ok(start) => start.min(self.len),
            Err(rustix::io::Errno::NXIO) => self.len,
            Err(_) => {
                // Block devices and some file systems do not know about holes.
                self.holes_supported = false;
                return pos;
            }
        };
        let end = match rustix::fs::seek(self.base, rustix::fs::SeekFrom::Hole(start)) {
            Ok(end) => end.min(self.len),
            Err(_) => self.len,
        };
        self.extent = Some((start, end));
        start
    }

    /// The first overlay block at or after `pos`, as a byte offset.
    fn next_overlay_block(&self, pos: u64) -> Option<u64> {
        self.overlay
            .blocks_in(pos, u64::MAX)
            .map(|(offset, _)| offset)
            .next()
    }

    fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        if self.pos >= self.len {
            return Ok(None);
        }
        let pos = self.pos;
        let data = self.data_from(pos);
        let changed = self.next_overlay_block(pos).unwrap_or(self.len);
        if data > pos && changed > pos {
            // A hole in the base that the overlay does not touch.
            let end = data.min(changed).min(self.len);
            // Keep chunk boundaries aligned so later chunks line up with overlay blocks.
            let end = if end < self.len {
                end / BLOCK_SIZE as u64 * BLOCK_SIZE as u64
            } else {
                end
            };
            if end > pos {
                self.pos = end;
                return Ok(Some(Chunk::Hole {
                    offset: pos,
                    len: end - pos,
                }));
            }
        }
        let aligned_end = (pos / CHUNK_SIZE as u64 + 1) * CHUNK_SIZE as u64;
        let end = aligned_end.min(self.len);
        let mut bytes = vec![0u8; (end - pos) as usize];
        self.base.read_exact_at(&mut bytes, pos)?;
        for (offset, block) in self.overlay.blocks_in(pos, end) {
            let block_end = offset + BLOCK_SIZE as u64;
            let from = offset.max(pos);
            let to = block_end.min(end);
            bytes[(from - pos) as usize..(to - pos) as usize]
                .copy_from_slice(&block[(from - offset) as usize..(to - offset) as usize]);
        }
        self.pos = end;
        Ok(Some(Chunk::Data { offset: pos, bytes }))
    }
}

impl Iterator for Chunks<'_> {
    type Item = io::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::OverlayDisk;
    use std::io::{Seek, SeekFrom, Write};

    fn compose(file: &File, len: u64, overlay: &Overlay) -> Vec<u8> {
        let mut out = vec![0u8; len as usize];
        for chunk in Composed::new(file, len, overlay).chunks() {
            match chunk.unwrap() {
                Chunk::Data { offset, bytes } => {
                    out[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes)
                }
                Chunk::Hole { offset, len } => {
                    assert!(
                        out[offset as usize..(offset + len) as usize]
                            .iter()
                            .all(|b| *b == 0)
                    )
                }
            }
        }
        out
    }

    #[test]
    fn composes_sparse_base_and_overlay() {
        let len = 5 * CHUNK_SIZE as u64 + 123;
        let file = tempfile::tempfile().unwrap();
        file.set_len(len).unwrap();
        file.write_all_at(b"start", 0).unwrap();
        file.write_all_at(b"middle", 3 * CHUNK_SIZE as u64 + 7)
            .unwrap();
        file.write_all_at(b"end", len - 3).unwrap();
        let mut expected = vec![0u8; len as usize];
        expected[..5].copy_from_slice(b"start");
        expected[3 * CHUNK_SIZE + 7..3 * CHUNK_SIZE + 13].copy_from_slice(b"middle");
        expected[len as usize - 3..].copy_from_slice(b"end");

        let mut disk = OverlayDisk::new(file.try_clone().unwrap(), len);
        disk.seek(SeekFrom::Start(CHUNK_SIZE as u64 + 4000))
            .unwrap();
        disk.write_all(b"changed in a hole").unwrap();
        disk.seek(SeekFrom::Start(1)).unwrap();
        disk.write_all(b"T").unwrap();
        expected[CHUNK_SIZE + 4000..CHUNK_SIZE + 4017].copy_from_slice(b"changed in a hole");
        expected[1] = b'T';

        let (_, overlay) = disk.into_parts();
        assert_eq!(compose(&file, len, &overlay), expected);
    }

    #[test]
    fn reads_pad_and_apply_the_overlay() {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(&[1u8; 10_000], 0).unwrap();
        let mut disk = OverlayDisk::new(file.try_clone().unwrap(), 10_000);
        disk.seek(SeekFrom::Start(4095)).unwrap();
        disk.write_all(b"XY").unwrap();
        let (_, overlay) = disk.into_parts();
        let image = Composed::new(&file, 10_000, &overlay);
        let mut buf = vec![9u8; 8192];
        image.read_at(4096, &mut buf).unwrap();
        assert_eq!(buf[0], b'Y');
        assert_eq!(buf[1], 1);
        assert!(buf[10_000 - 4096..].iter().all(|b| *b == 0));
    }

    #[test]
    fn chunks_and_reads_at_offsets_give_the_same_bytes() {
        let len = 3 * CHUNK_SIZE as u64 + 777;
        let file = tempfile::tempfile().unwrap();
        file.set_len(len).unwrap();
        file.write_all_at(&[7u8; 5000], CHUNK_SIZE as u64 - 100)
            .unwrap();
        let mut disk = OverlayDisk::new(file.try_clone().unwrap(), len);
        disk.seek(SeekFrom::Start(2 * CHUNK_SIZE as u64 + 10))
            .unwrap();
        disk.write_all(b"overlay").unwrap();
        let (_, overlay) = disk.into_parts();
        let image = Composed::new(&file, len, &overlay);
        let mut read = vec![0u8; len as usize];
        image.read_at(0, &mut read).unwrap();
        assert_eq!(compose(&file, len, &overlay), read);
    }
}
