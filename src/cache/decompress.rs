//! Streaming decompression to a sparse raw image, with the format taken from the magic
//! bytes rather than the file name.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use indicatif::ProgressBar;

use crate::disk::compression_of;

const BUFFER: usize = 1 << 20;
const BLOCK: usize = 4096;

/// A compression format pinode can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xz,
    Gzip,
    Zstd,
}

impl Format {
    /// Detects the format of `path` from its first bytes; `None` for anything else (raw).
    pub fn sniff(path: &Path) -> io::Result<Option<Format>> {
        let mut head = [0u8; 6];
        let mut file = File::open(path)?;
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
}

/// Decompresses `src` into `dst` (an empty file), leaving all-zero blocks as holes.
/// Returns the uncompressed size. `progress` counts compressed bytes consumed.
pub fn decompress(
    src: &Path,
    format: Format,
    dst: &File,
    progress: &ProgressBar,
) -> io::Result<u64> {
    let counted = Counting {
        inner: File::open(src)?,
        progress,
    };
    let input = io::BufReader::with_capacity(BUFFER, counted);
    let mut reader: Box<dyn Read> = match format {
        // Multi-stream aware: pixz and `xz -T` output may hold several streams.
        Format::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(input)),
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    };
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
                        format!("corrupt compressed image: {e}"),
                    ));
                }
            }
        }
        if filled == 0 {
            break;
        }
        for (i, block) in buf[..filled].chunks(BLOCK).enumerate() {
            if block.iter().fold(0u8, |a, b| a | b) != 0 {
                dst.write_all_at(block, offset + (i * BLOCK) as u64)?;
            }
        }
        offset += filled as u64;
    }
    dst.set_len(offset)?;
    Ok(offset)
}

/// Reports the bytes read through it to a progress bar.
struct Counting<'a, R> {
    inner: R,
    progress: &'a ProgressBar,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
