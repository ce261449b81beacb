//! Image files: base + overlay written as a sparse `HOST.img` (or `.img.xz` / `.img.zst`)
//! with a `.sha256` beside it, through a temporary name and an atomic rename.
//!
//! Reading, hashing and writing overlap: one thread composes chunks, one hashes them while the
//! caller's thread writes. Holes in the base are neither read nor written, only hashed, and
//! all-zero blocks inside data are skipped like `cp --sparse=always` does. A few 1 MiB chunks
//! are in flight at any time, so memory stays flat whatever the image size.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest, Sha256};

use crate::cleanup::TempFile;
use crate::disk::Overlay;
use crate::disk::compose::{CHUNK_SIZE, Chunk, Composed};
use crate::progress::Task;

/// Chunks in flight per channel.
const QUEUE: usize = 4;
/// Bytes written between two early flushes of an uncompressed image (see [`Flusher`]).
const FLUSH_EVERY: u64 = 128 << 20;
const ZERO_BLOCK: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Xz,
    Zst,
}

impl Compression {
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zst => ".zst",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}", path = .path.display())]
pub struct SinkError {
    pub(crate) path: PathBuf,
    pub(crate) source: io::Error,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenImage {
    /// The image file (compressed or not).
    pub path: PathBuf,
    /// Size of the uncompressed image.
    pub size: u64,
    /// SHA-256 of the uncompressed image.
    pub sha256: String,
    /// The `.sha256` file (`sha256sum -c` format) of the file written: the image's, or the
    /// compressed file's when compressed (never one naming a file that is not there).
    pub sha256_file: PathBuf,
    /// SHA-256 of the compressed file, when compressed (`sha256` stays the image's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_sha256: Option<String>,
    /// Bytes that hold data on disk (apparent size minus holes), uncompressed output only.
    #[serde(skip_serializing_if = "Option::is_none")]
    allocated_bytes: Option<u64>,
}

/// Writes the composed `image` to `dir/name.img[.xz|.zst]`, reporting the bytes done to
/// `progress` (finished at the end).
pub(crate) fn write_image(
    image: Composed<'_>,
    dir: &Path,
    name: &str,
    compression: Compression,
    progress: &Task,
) -> Result<WrittenImage, SinkError> {
    let Composed { base, len, overlay } = image;
    let image_name = format!("{name}.img");
    let final_path = dir.join(format!("{image_name}{}", compression.extension()));
    let err = |source| SinkError {
        path: final_path.clone(),
        source,
    };
    // Registered: removed on SIGINT/SIGTERM, and by the next run after a SIGKILL (it holds
    // the node's secrets until renamed into place).
    let temp = TempFile::new_in(dir, &image_name).map_err(err)?;

    let (digest, compressed_sha256) =
        std::thread::scope(|scope| -> io::Result<(String, Option<String>)> {
            let (chunk_tx, chunk_rx) = sync_channel::<io::Result<Chunk>>(QUEUE);
            let (hash_tx, hash_rx) = sync_channel::<Piece>(QUEUE);
            scope.spawn(move || {
                for chunk in image.chunks() {
                    let failed = chunk.is_err();
                    if chunk_tx.send(chunk).is_err() || failed {
                        break;
                    }
                }
            });
            let hasher = scope.spawn(move || hash_pieces(hash_rx));
            let written = match compression {
                Compression::None => {
                    let (flush_tx, flush_rx) = sync_channel::<()>(1);
                    let file = temp.as_file();
                    let flusher = scope.spawn(move || flush_when_asked(file, flush_rx));
                    let written = write_sparse(
                        file,
                        (base, overlay),
                        len,
                        chunk_rx,
                        &hash_tx,
                        &Flusher::new(flush_tx),
                        progress,
                    );
                    // The flusher ends once the writer is done (its sender is gone).
                    let flushed = flusher
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("flushing thread failed")));
                    written.and_then(|w| flushed.map(|()| w))
                }
                Compression::Xz | Compression::Zst => {
                    write_compressed(temp.as_file(), compression, chunk_rx, &hash_tx, progress)
                }
            };
            drop(hash_tx);
            let digest = hasher
                .join()
                .map_err(|_| io::Error::other("hashing thread failed"))?;
            Ok((digest, written?))
        })
        .map_err(err)?;

    temp.as_file().sync_all().map_err(err)?;
    let allocated_bytes = match compression {
        Compression::None => Some(allocated(temp.as_file()).map_err(err)?),
        _ => None,
    };
    // Under sudo the image is the invoking user's, before it has its name.
    crate::invoker::Invoker::current()
        .give_back_file(temp.as_file())
        .map_err(err)?;
    temp.persist(&final_path).map_err(err)?;
    // The checksum file names the file that is there, so `sha256sum -c` passes in the
    // folder: `HOST.img.xz.sha256` for `HOST.img.xz`, and no `HOST.img.sha256` naming an
    // image that was never written (the image's own SHA-256 is in the output and `--json`).
    let (sum, listed) = match &compressed_sha256 {
        Some(sum) => (sum, format!("{image_name}{}", compression.extension())),
        None => (&digest, image_name),
    };
    let sha256_file = dir.join(format!("{listed}.sha256"));
    write_atomic(&sha256_file, format!("{sum}  {listed}\n").as_bytes()).map_err(|source| {
        SinkError {
            path: sha256_file.clone(),
            source,
        }
    })?;
    progress.finish();
    Ok(WrittenImage {
        path: final_path,
        size: len,
        sha256: digest,
        sha256_file,
        compressed_sha256,
        allocated_bytes,
    })
}

/// What the hashing thread receives.
enum Piece {
    Data(Arc<Vec<u8>>),
    Zeros(u64),
}

fn hash_pieces(rx: Receiver<Piece>) -> String {
    let zeros = vec![0u8; CHUNK_SIZE];
    let mut hasher = Sha256::new();
    for piece in rx {
        match piece {
            Piece::Data(bytes) => hasher.update(&bytes[..]),
            Piece::Zeros(mut n) => {
                while n > 0 {
                    let k = n.min(CHUNK_SIZE as u64) as usize;
                    hasher.update(&zeros[..k]);
                    n -= k as u64;
                }
            }
        }
    }
    hex::encode(hasher.finalize())
}

/// Asks the flushing thread to write back what is written so far, every [`FLUSH_EVERY`]
/// bytes.
///
/// Why: the kernel starts writing dirty pages back only past `dirty_background_ratio` of
/// memory (gigabytes) or after 30 s, so without this the whole image was still in the page
/// cache when hashing ended, and the final `fsync` wrote it all while nothing else ran (on
/// the 3 GiB bench image, most of the 1.31x over the SHA-256 floor). Flushed as it is
/// written, the disk works while the image is hashed, and the final `fsync` only waits for
/// the last part.
struct Flusher {
    tx: std::sync::mpsc::SyncSender<()>,
    since: std::cell::Cell<u64>,
}

impl Flusher {
    fn new(tx: std::sync::mpsc::SyncSender<()>) -> Flusher {
        Flusher {
            tx,
            since: std::cell::Cell::new(0),
        }
    }

    /// `bytes` more were written.
    fn wrote(&self, bytes: u64) {
        let since = self.since.get() + bytes;
        if since < FLUSH_EVERY {
            self.since.set(since);
            return;
        }
        self.since.set(0);
        // A flush already pending covers these bytes too: no need to queue another, and
        // never wait for the flushing thread.
        let _ = self.tx.try_send(());
    }
}

/// The flushing thread: `fdatasync` each time it is asked, until the writer is done. Its
/// first error ends it and fails the write (the final `fsync` would meet it again anyway).
fn flush_when_asked(file: &File, asked: Receiver<()>) -> io::Result<()> {
    for () in asked {
        file.sync_data()?;
    }
    Ok(())
}

fn write_sparse(
    out: &File,
    source: (&File, &Overlay),
    len: u64,
    chunks: Receiver<io::Result<Chunk>>,
    hash: &SyncSender<Piece>,
    flusher: &Flusher,
    progress: &Task,
) -> io::Result<Option<String>> {
    let mut writer = SparseWriter {
        out,
        base: source.0,
        overlay: source.1,
        kernel_copy: true,
    };
    for chunk in chunks {
        match chunk? {
            Chunk::Hole { len, .. } => {
                send(hash, Piece::Zeros(len))?;
                progress.inc(len);
            }
            Chunk::Data { offset, bytes } => {
                let bytes = Arc::new(bytes);
                send(hash, Piece::Data(Arc::clone(&bytes)))?;
                writer.write(offset, &bytes)?;
                flusher.wrote(bytes.len() as u64);
                progress.inc(bytes.len() as u64);
            }
        }
    }
    out.set_len(len)?;
    Ok(None)
}

/// What a 4 KiB block of output needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    /// All zero: left as a hole.
    Zero,
    /// As in the base: copied inside the kernel (a shared extent on file systems that can).
    Base,
    /// Changed by the overlay: written from memory.
    Changed,
}

/// Writes the non-zero parts of the composed image. Unchanged data is copied from the base
/// with `copy_file_range`, which saves moving it through this process (and costs nothing on
/// Btrfs or XFS, which share the extents); where the kernel cannot, it is written from the
/// bytes already in memory.
struct SparseWriter<'a> {
    out: &'a File,
    base: &'a File,
    overlay: &'a Overlay,
    kernel_copy: bool,
}

impl SparseWriter<'_> {
    fn write(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let kind = |at: usize| {
            let end = (at + ZERO_BLOCK).min(bytes.len());
            let abs = offset + at as u64;
            if self
                .overlay
                .blocks_in(abs, offset + end as u64)
                .next()
                .is_some()
            {
                Block::Changed
            } else if is_zero(&bytes[at..end]) {
                Block::Zero
            } else {
                Block::Base
            }
        };
        let mut at = 0;
        while at < bytes.len() {
            let current = kind(at);
            let mut end = (at + ZERO_BLOCK).min(bytes.len());
            while end < bytes.len() && kind(end) == current {
                end = (end + ZERO_BLOCK).min(bytes.len());
            }
            match current {
                Block::Zero => {}
                Block::Changed => self.out.write_all_at(&bytes[at..end], offset + at as u64)?,
                Block::Base => self.copy(offset + at as u64, &bytes[at..end])?,
            }
            at = end;
        }
        Ok(())
    }

    /// Copies `bytes.len()` bytes at `offset` from the base, in the kernel when it can.
    fn copy(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while self.kernel_copy && done < bytes.len() {
            let (mut from, mut to) = (offset + done as u64, offset + done as u64);
            match rustix::fs::copy_file_range(
                self.base,
                Some(&mut from),
                self.out,
                Some(&mut to),
                bytes.len() - done,
            ) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(_) => self.kernel_copy = false,
            }
        }
        if done < bytes.len() {
            self.out
                .write_all_at(&bytes[done..], offset + done as u64)?;
        }
        Ok(())
    }
}

/// OR-folding has no early exit, which lets the compiler vectorise it; on 4 KiB that is
/// faster than stopping at the first non-zero byte.
fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

fn write_compressed(
    out: &File,
    compression: Compression,
    chunks: Receiver<io::Result<Chunk>>,
    hash: &SyncSender<Piece>,
    progress: &Task,
) -> io::Result<Option<String>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let sink = HashingWriter {
        inner: io::BufWriter::new(out),
        hasher: Sha256::new(),
    };
    let mut encoder: Box<dyn FinishWrite> = match compression {
        Compression::Xz => {
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads)
                .preset(6)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(io::Error::other)?;
            Box::new(liblzma::write::XzEncoder::new_stream(sink, stream))
        }
        _ => {
            let mut encoder = zstd::stream::write::Encoder::new(sink, 19)?;
            encoder.multithread(threads)?;
            encoder.long_distance_matching(true)?;
            Box::new(encoder)
        }
    };
    let zeros = vec![0u8; CHUNK_SIZE];
    for chunk in chunks {
        match chunk? {
            Chunk::Hole { mut len, .. } => {
                send(hash, Piece::Zeros(len))?;
                progress.inc(len);
                while len > 0 {
                    let k = len.min(CHUNK_SIZE as u64) as usize;
                    encoder.write_all(&zeros[..k])?;
                    len -= k as u64;
                }
            }
            Chunk::Data { bytes, .. } => {
                let bytes = Arc::new(bytes);
                send(hash, Piece::Data(Arc::clone(&bytes)))?;
                encoder.write_all(&bytes)?;
                progress.inc(bytes.len() as u64);
            }
        }
    }
    let mut sink = encoder.finish_box()?;
    sink.inner.flush()?;
    Ok(Some(hex::encode(sink.hasher.finalize())))
}

fn send(tx: &SyncSender<Piece>, piece: Piece) -> io::Result<()> {
    tx.send(piece)
        .map_err(|_| io::Error::other("hashing thread stopped"))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Sink<'a> = HashingWriter<io::BufWriter<&'a File>>;

/// Both encoders, behind one interface that hands the inner writer back when done.
trait FinishWrite<'a>: Write {
    fn finish_box(self: Box<Self>) -> io::Result<Sink<'a>>;
}

impl<'a> FinishWrite<'a> for liblzma::write::XzEncoder<Sink<'a>> {
    fn finish_box(self: Box<Self>) -> io::Result<Sink<'a>> {
        (*self).finish()
    }
}

impl<'a> FinishWrite<'a> for zstd::stream::write::Encoder<'static, Sink<'a>> {
    fn finish_box(self: Box<Self>) -> io::Result<Sink<'a>> {
        (*self).finish()
    }
}

/// Every file `prepare` may write for the node `name` (`NAME.img`, its compressed forms,
/// their `.sha256` files and the `.bmap`): the outputs of an earlier run that this one does
/// not rewrite are stale, and would be taken for this run's.
fn node_outputs(name: &str) -> Vec<String> {
    let image = format!("{name}.img");
    let mut all = Vec::new();
    for compression in [Compression::None, Compression::Xz, Compression::Zst] {
        let file = format!("{image}{}", compression.extension());
        all.push(format!("{file}.sha256"));
        all.push(file);
    }
    all.push(format!("{image}.bmap"));
    all
}

/// Removes the outputs of an earlier run for node `name` in `dir` that are not in
/// `produced` (a stale `.bmap` or `.xz` next to a new image). Only regular files with those
/// exact names are removed; returns their paths.
pub(crate) fn remove_stale_outputs(
    dir: &Path,
    name: &str,
    produced: &[PathBuf],
) -> Result<Vec<PathBuf>, SinkError> {
    let mut removed = Vec::new();
    for file in node_outputs(name) {
        let path = dir.join(&file);
        if produced.contains(&path) {
            continue;
        }
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(&path).map_err(|source| SinkError {
                path: path.clone(),
                source,
            })?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Bytes actually stored (st_blocks × 512).
fn allocated(file: &File) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.blocks() * 512)
}

/// Writes `contents` to `path` through a temporary file and a rename; the file is 0600.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, contents, 0o600)
}

/// Writes `contents` to `path` through a registered temporary file (see [`crate::cleanup`])
/// and a rename, with `mode`; under sudo the file is the invoking user's (see
/// [`crate::invoker`]).
///
/// The mode and owner are set on the temporary file (created 0600, then `fchmod`, `fchown`)
/// before the rename, never by path afterwards: in a directory others can write to, the path
/// could by then be a symlink to any file, which a chmod by path would make readable.
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    crate::cleanup::write_atomic_with(path, contents, mode, |file| {
        crate::invoker::Invoker::current().give_back_file(file)
    })
}
