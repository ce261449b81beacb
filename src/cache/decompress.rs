//! Streaming decompression to a sparse raw image, with the format taken from the magic
//! bytes rather than the file name, and the SHA-256 of the output computed on the way (the
//! catalog vouches for the uncompressed bytes, so this is the check that matters).
//!
//! xz is decoded with liblzma's multi-threaded decoder: files written by `xz -T0` (as pi-gen
//! does) have many blocks, which it decodes in parallel; a single-block file is decoded by
//! the same decoder in one thread. Memory stays bounded by the block size, not the image.

use crate::progress::Task;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use liblzma::stream::{Action, MtStreamBuilder, Status, Stream};
use sha2::{Digest, Sha256};

use crate::disk::compression_of;

const BUFFER: usize = 1 << 20;
const BLOCK: usize = 4096;
/// Decoder memory allowed per thread: liblzma uses fewer threads rather than more memory (it
/// never fails because of it). A thread holds about a block in and a block out plus the
/// dictionary: pi-gen's `xz -6 -T0` blocks are 24 MiB with an 8 MiB dictionary. Measured on
/// 2 cores: 64 MiB per thread gives the full speed at 122 MiB peak (xz -dc -T0: 138 MiB);
/// 48 MiB per thread was 45% slower.
const XZ_MEMLIMIT_PER_THREAD: u64 = 64 << 20;

/// A compression format pinode can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Xz,
    Gzip,
    Zstd,
}

impl Format {
    /// Detects the format of `path` from its first bytes; `None` for anything else (raw).
    pub(crate) fn sniff(path: &Path) -> io::Result<Option<Format>> {
        let mut head = [0u8; 6];
        let mut file = open_image(path)?;
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(match compression_of(&head[..n]) {
            Some("xz") => Some(Format::Xz),
            Some("gzip") => Some(Format::Gzip),
            Some("zstd") => Some(Format::Zstd),
            _ => None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::Xz => "xz",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
        }
    }
}

/// The compressed data could not be decoded (as opposed to a disk error while writing).
#[derive(Debug, thiserror::Error)]
#[error("corrupt {format} data: {message}")]
struct CorruptInput {
    pub(crate) format: &'static str,
    pub(crate) message: String,
}

/// Whether `e` came from undecodable input.
pub(crate) fn is_corrupt_input(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<CorruptInput>())
}

/// The output grew past the limit the caller gave (an "xz bomb", or the wrong file).
#[derive(Debug, thiserror::Error)]
#[error("the uncompressed data is larger than {limit} bytes")]
pub(crate) struct Oversize {
    pub(crate) limit: u64,
}

/// Whether `e` came from output beyond the limit.
pub(crate) fn is_oversize(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Oversize>())
}

/// The uncompressed image that was written.
#[derive(Debug, Clone)]
pub(crate) struct Decompressed {
    pub(crate) sha256: String,
}

/// Decompresses `src` into `dst` (an empty file), leaving all-zero blocks as holes, and
/// stops with an [`Oversize`] error as soon as the output passes `limit` bytes (100 KB of
/// xz can expand to terabytes). `progress` counts compressed bytes consumed.
pub(crate) fn decompress(
    src: &Path,
    format: Format,
    dst: &File,
    limit: u64,
    progress: &Task,
) -> io::Result<Decompressed> {
    let counted = Counting {
        inner: open_image(src)?,
        progress,
    };
    let input = io::BufReader::with_capacity(BUFFER, counted);
    let mut reader: Box<dyn Read> = match format {
        Format::Xz => Box::new(XzMtDecoder::new(input)?),
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER];
    let mut offset = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        CorruptInput {
                            format: format.as_str(),
                            message: e.to_string(),
                        },
                    ));
                }
            }
        }
        if filled == 0 {
            break;
        }
        if offset + filled as u64 > limit {
            return Err(io::Error::other(Oversize { limit }));
        }
        hasher.update(&buf[..filled]);
        for (i, block) in buf[..filled].chunks(BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                dst.write_all_at(block, offset + (i * BLOCK) as u64)?;
            }
        }
        offset += filled as u64;
    }
    dst.set_len(offset)?;
    Ok(Decompressed {
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The SHA-256 of a raw file, read once.
pub(crate) fn hash_file(path: &Path, progress: &Task) -> io::Result<Decompressed> {
    let mut file = open_image(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        progress.inc(n as u64);
    }
    Ok(Decompressed {
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Opens an image file to read: a FIFO or a character device is refused at once.
fn open_image(path: &Path) -> io::Result<File> {
    crate::input::open_image(path).map_err(|e| match e {
        crate::input::InputError::Io { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidInput, other),
    })
}

/// liblzma's multi-threaded .xz decoder as a reader, over every concatenated stream of the
/// input (the Rust binding offers no CONCATENATED flag for it, so streams are chained here,
/// skipping the stream padding between them).
struct XzMtDecoder<R> {
    input: R,
    stream: Stream,
    done: bool,
}

impl<R: BufRead> XzMtDecoder<R> {
    fn new(input: R) -> io::Result<Self> {
        Ok(XzMtDecoder {
            input,
            stream: new_mt_decoder()?,
            done: false,
        })
    }

    /// After a stream ended: skip padding; true when another stream follows.
    fn next_stream(&mut self) -> io::Result<bool> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            if zeros == 0 {
                self.stream = new_mt_decoder()?;
                return Ok(true);
            }
            self.input.consume(zeros);
        }
    }
}

fn new_mt_decoder() -> io::Result<Stream> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    MtStreamBuilder::new()
        .threads(threads)
        .memlimit_threading(XZ_MEMLIMIT_PER_THREAD * u64::from(threads))
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)
}

impl<R: BufRead> Read for XzMtDecoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.done {
                return Ok(0);
            }
            let input = self.input.fill_buf()?;
            let eof = input.is_empty();
            let (in_before, out_before) = (self.stream.total_in(), self.stream.total_out());
            let action = if eof { Action::Finish } else { Action::Run };
            let status = self
                .stream
                .process(input, out, action)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (self.stream.total_in() - in_before) as usize;
            let produced = (self.stream.total_out() - out_before) as usize;
            self.input.consume(consumed);
            if status == Status::StreamEnd {
                if !self.next_stream()? {
                    self.done = true;
                }
                if produced > 0 {
                    return Ok(produced);
                }
                continue;
            }
            if produced > 0 {
                return Ok(produced);
            }
            if eof && consumed == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the xz stream is truncated",
                ));
            }
        }
    }
}

/// Reports the bytes read through it to a progress bar.
struct Counting<'a, R> {
    inner: R,
    progress: &'a Task,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
