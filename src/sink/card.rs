//! Writing a composed image (base + node overlay) to a card, then reading it back.
//!
//! The order protects the card from a half-finished write: the first MiB (partition table,
//! boot sector) is zeroed first and written last, after everything else is on the medium, so
//! an interrupted write leaves a card with no partition table (nothing mounts it, nothing
//! boots it, and the next run simply overwrites it), never a card that looks complete. A stale
//! backup GPT at the end of the card is zeroed too.
//!
//! Reading the base, writing and hashing overlap: one thread composes 4 MiB buffers, the
//! caller's thread writes them with direct I/O, another hashes them (only when the card is
//! to be read back: a plain write costs what `dd` costs). The read-back pipelines
//! the same way. A fixed pool of buffers keeps memory flat whatever the image size.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::aligned::{AlignedBuf, Pool, Pooled};
use super::blockdev::Card;
use crate::disk::Composed;
use crate::disk::drop_cached_pages;
use crate::disk::usage::RangeSet;
use crate::progress::Task;

/// Size of each write and read: large enough that the card sees long sequential writes.
const IO_SIZE: usize = 4 << 20;
/// Written last: holds the partition table and the start of the boot partition.
const HEAD: u64 = 1 << 20;
/// Buffers in circulation per pipeline (one being filled, one written, one hashed, spare).
const BUFFERS: usize = 4;
/// The most buffer memory one card's write holds at a time, whatever the image size: the
/// pool of the write ([`BUFFERS`] x [`IO_SIZE`]) or of the read-back (the same, never both
/// at once), the head kept for last and the zeros written first. `flash` writing N cards at
/// once holds N times this.
pub const CARD_BUFFER_BYTES: u64 = (BUFFERS * IO_SIZE) as u64 + 2 * HEAD;
/// Slower than this, K3s on the card restarts in a loop (its datastore misses fsync
/// deadlines), so pinode says so.
const SLOW_CARD_BYTES_PER_SEC: f64 = 10e6;

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("{path}: write failed at byte {offset}: {source}{hint}", path = .path.display(), hint = io_hint(.source))]
    Write {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },
    #[error("{path}: reading the card back failed at byte {offset}: {source}{hint}", path = .path.display(), hint = io_hint(.source))]
    Read {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },
    #[error("reading the image failed: {0}")]
    Source(io::Error),
    #[error(
        "{path}: verify failed: the card does not hold what was written{at} (SHA-256 {actual}, \
         expected {expected}); the card may be failing or fake (its real capacity smaller than \
         it claims)",
        path = .path.display(),
        at = .first_bad.map(|o| format!(", first difference at byte {o}")).unwrap_or_default()
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
        first_bad: Option<u64>,
    },
    #[error("{path}: the card holds {have} bytes, the image needs {need}", path = .path.display())]
    TooSmall { path: PathBuf, need: u64, have: u64 },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
        Some(rustix::io::Errno::IO) => " (the card may be failing, or was removed)",
        Some(rustix::io::Errno::NOSPC) => " (the card ended early: fake capacity?)",
        Some(rustix::io::Errno::NOMEDIUM) | Some(rustix::io::Errno::NODEV) => {
            " (the card was removed)"
        }
        _ => "",
    }
}

/// What writing one card did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CardReport {
    /// Bytes written (and read back): the whole image, or only its allocated blocks.
    pub bytes: u64,
    /// Size of the image.
    pub image_bytes: u64,
    /// Whether only the allocated blocks were written (the default), not the whole image.
    pub allocation_aware: bool,
    /// How many separate byte ranges were written (1 for a full write).
    pub(crate) ranges: usize,
    pub write_seconds: f64,
    /// Sustained write speed, bytes per second, final flush included.
    pub write_bytes_per_sec: f64,
    /// SHA-256 of the written ranges in order (of the image, for a full write); only when
    /// the card is read back, which compares it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
    /// Whether the read-back matched (`None`: not verified).
    pub verified: Option<bool>,
    pub verify_seconds: Option<f64>,
    direct_io: bool,
}

impl CardReport {
    pub fn is_slow(&self) -> bool {
        // Small writes are all latency; judge only writes long enough to show the rate.
        self.bytes >= 32 << 20 && self.write_bytes_per_sec < SLOW_CARD_BYTES_PER_SEC
    }
}

/// Progress of the two passes.
pub(crate) struct Passes<'a> {
    pub(crate) write: &'a Task,
    pub(crate) verify: &'a Task,
}

/// Which bytes of the image go to the card.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Extent<'a> {
    /// Every byte (`--full`).
    Full,
    /// Only these ranges (the allocated blocks, metadata and everything outside a known file
    /// system, from [`crate::disk::usage`]). The rest of the card keeps whatever it held.
    Mapped(&'a RangeSet),
}

/// Writes `image` (all of it, or the ranges `extent` names) to `card`, flushes it to the
/// medium, and (unless `verify` is false) reads the same ranges back and compares SHA-256.
///
/// The digest (of the written ranges in order; for [`Extent::Full`] the SHA-256 of the image
/// itself) is computed only when `verify`: the read-back compares it.
pub(crate) fn write_card(
    card: &Card,
    image: Composed<'_>,
    extent: Extent<'_>,
    verify: bool,
    bars: Passes<'_>,
    hooks: &TestHooks,
) -> Result<CardReport, CardError> {
    let block = card.block.max(512);
    let padded = image.len.div_ceil(block) * block;
    if padded > card.len {
        return Err(CardError::TooSmall {
            path: card.path.clone(),
            need: image.len,
            have: card.len,
        });
    }
    let head_len = HEAD.min(padded);
    let ranges = match extent {
        Extent::Full => RangeSet::whole(0..padded),
        Extent::Mapped(map) => {
            // The head is always written whole: it is what makes the card valid, last.
            let mut ranges = map.clone();
            ranges.insert(0..head_len);
            ranges.aligned(block, padded)
        }
    };
    let ranges = &ranges;
    let written_bytes = ranges.bytes();
    let write_err = |offset: u64| {
        let path = card.path.clone();
        move |source| CardError::Write {
            path,
            offset,
            source,
        }
    };
    let started = Instant::now();

    // 1. Invalidate: no partition table until the whole image is on the card.
    let head_len = head_len as usize;
    let zeros = AlignedBuf::zeroed(HEAD as usize);
    card.file
        .write_all_at(&zeros[..head_len], 0)
        .map_err(write_err(0))?;
    let tail = card.len.saturating_sub(HEAD) / block * block;
    if tail >= padded && card.len - tail <= HEAD {
        card.file
            .write_all_at(&zeros[..(card.len - tail) as usize], tail)
            .map_err(write_err(tail))?;
    }
    card.file.sync_data().map_err(write_err(0))?;

    // 2. Everything after the head: hashed in order (the head's bytes first) when it is to
    // be read back, and then read, written and hashed on three threads; without the
    // read-back nobody needs the digest, and the bytes are read and written in turn on this
    // thread, as `dd` does: on a busy machine, handing each buffer to another thread costs a
    // wake-up per buffer, and a plain write should cost what `dd` costs (issue 20, item 6).
    let mut head = AlignedBuf::zeroed(head_len);
    image.read_at(0, &mut head).map_err(CardError::Source)?;
    let body = Body {
        card,
        image,
        ranges,
        from: head_len as u64,
        bar: bars.write,
        hooks,
    };
    let digest = if verify {
        let head_hash = Sha256::new_with_prefix(&head[..(image.len.min(head_len as u64)) as usize]);
        Some(body.write_hashed(head_hash)?)
    } else {
        body.write_plain()?;
        None
    };

    // 3. The rest is on the medium: now the head, and flush again.
    card.file.sync_data().map_err(write_err(head_len as u64))?;
    card.file.write_all_at(&head, 0).map_err(write_err(0))?;
    card.file.sync_data().map_err(write_err(0))?;
    bars.write.inc(head_len as u64);
    let write_seconds = started.elapsed().as_secs_f64().max(1e-6);
    bars.write.finish();

    let mut report = CardReport {
        bytes: written_bytes,
        image_bytes: image.len,
        allocation_aware: matches!(extent, Extent::Mapped(_)),
        ranges: ranges.len(),
        write_seconds,
        write_bytes_per_sec: written_bytes as f64 / write_seconds,
        sha256: digest.clone(),
        verified: None,
        verify_seconds: None,
        direct_io: card.direct,
    };
    let Some(digest) = digest else {
        return Ok(report);
    };
    hooks.before_verify();
    let started = Instant::now();
    let actual = read_back_hash(card, ranges, image.len, bars.verify)?;
    report.verify_seconds = Some(started.elapsed().as_secs_f64());
    bars.verify.finish();
    if actual != digest {
        return Err(CardError::Mismatch {
            path: card.path.clone(),
            expected: digest,
            actual,
            first_bad: first_difference(card, image, ranges).ok().flatten(),
        });
    }
    report.verified = Some(true);
    Ok(report)
}

/// What step 2 of [`write_card`] writes: the ranges after the head.
struct Body<'a, 'b> {
    card: &'a Card,
    image: Composed<'b>,
    ranges: &'a RangeSet,
    from: u64,
    bar: &'a Task,
    hooks: &'a TestHooks,
}

impl Body<'_, '_> {
    fn write_err(&self, offset: u64) -> impl FnOnce(io::Error) -> CardError + use<> {
        let path = self.card.path.clone();
        move |source| CardError::Write {
            path,
            offset,
            source,
        }
    }

    fn wrote(&self, offset: u64, len: usize) {
        self.bar.inc(len as u64);
        self.hooks.after_write(offset + len as u64);
    }

    /// Reads, writes and hashes on three threads, [`BUFFERS`] buffers in circulation; the
    /// SHA-256 of the head (already in `hasher`) and the body.
    fn write_hashed(&self, hasher: Sha256) -> Result<String, CardError> {
        let image = self.image;
        let ranges = self.ranges;
        let from = self.from;
        std::thread::scope(|scope| {
            let (chunk_tx, chunk_rx) = sync_channel::<io::Result<Pooled>>(BUFFERS);
            let (hash_tx, hash_rx) = sync_channel::<Arc<Pooled>>(BUFFERS);
            let hashing = scope.spawn(move || hash_in_order(hasher, hash_rx, image.len));
            scope.spawn(move || {
                let pool = Pool::new(BUFFERS, IO_SIZE);
                for piece in ranges.pieces(from, IO_SIZE as u64) {
                    let Some(mut buf) = pool.take() else { break };
                    let n = (piece.end - piece.start) as usize;
                    buf.offset = piece.start;
                    buf.filled = n;
                    let filled = image
                        .read_at(piece.start, &mut buf.space()[..n])
                        .map(|()| buf);
                    let failed = filled.is_err();
                    if chunk_tx.send(filled).is_err() || failed {
                        break;
                    }
                }
            });
            for chunk in chunk_rx {
                let chunk = Arc::new(chunk.map_err(CardError::Source)?);
                hash_tx
                    .send(Arc::clone(&chunk))
                    .map_err(|_| CardError::Internal("the hashing thread stopped"))?;
                self.card
                    .file
                    .write_all_at(chunk.bytes(), chunk.offset)
                    .map_err(self.write_err(chunk.offset))?;
                self.wrote(chunk.offset, chunk.bytes().len());
            }
            drop(hash_tx);
            hashing
                .join()
                .map_err(|_| CardError::Internal("the hashing thread failed"))
        })
    }

    /// Reads and writes in turn on this thread, one buffer.
    fn write_plain(&self) -> Result<(), CardError> {
        let mut buf = AlignedBuf::zeroed(IO_SIZE);
        for piece in self.ranges.pieces(self.from, IO_SIZE as u64) {
            let n = (piece.end - piece.start) as usize;
            self.image
                .read_at(piece.start, &mut buf[..n])
                .map_err(CardError::Source)?;
            self.card
                .file
                .write_all_at(&buf[..n], piece.start)
                .map_err(self.write_err(piece.start))?;
            self.wrote(piece.start, n);
        }
        Ok(())
    }
}

/// SHA-256 of the card's bytes in `ranges` (counting none past `len`), read past any cache.
fn read_back_hash(
    card: &Card,
    ranges: &RangeSet,
    len: u64,
    bar: &Task,
) -> Result<String, CardError> {
    if !card.direct {
        drop_cached_pages(&card.file);
    }
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Result<Pooled, CardError>>(BUFFERS);
        scope.spawn(move || {
            let pool = Pool::new(BUFFERS, IO_SIZE);
            for piece in ranges.pieces(0, IO_SIZE as u64) {
                let offset = piece.start;
                let Some(mut buf) = pool.take() else { break };
                let n = (piece.end - piece.start) as usize;
                buf.offset = offset;
                buf.filled = n;
                let read = card
                    .file
                    .read_exact_at(&mut buf.space()[..n], offset)
                    .map(|()| buf)
                    .map_err(|source| CardError::Read {
                        path: card.path.clone(),
                        offset,
                        source,
                    });
                let failed = read.is_err();
                if tx.send(read).is_err() || failed {
                    break;
                }
            }
        });
        let mut hasher = Sha256::new();
        for chunk in rx {
            let chunk = chunk?;
            let valid = len.saturating_sub(chunk.offset).min(chunk.filled as u64) as usize;
            hasher.update(&chunk.bytes()[..valid]);
            bar.inc(chunk.filled as u64);
        }
        Ok(hex::encode(hasher.finalize()))
    })
}

/// Hashes the pieces in the order they come, counting at most `len` bytes (the last piece
/// may carry padding).
fn hash_in_order(mut hasher: Sha256, pieces: Receiver<Arc<Pooled>>, len: u64) -> String {
    for piece in pieces {
        let valid = len.saturating_sub(piece.offset).min(piece.filled as u64) as usize;
        hasher.update(&piece.bytes()[..valid]);
    }
    hex::encode(hasher.finalize())
}

/// After a failed verify: where the card first differs from the image (a slow second pass,
/// only ever run on failure, to make the report useful).
fn first_difference(
    card: &Card,
    image: Composed<'_>,
    ranges: &RangeSet,
) -> io::Result<Option<u64>> {
    let mut expected = AlignedBuf::zeroed(IO_SIZE);
    let mut actual = AlignedBuf::zeroed(IO_SIZE);
    for piece in ranges.pieces(0, IO_SIZE as u64) {
        let offset = piece.start;
        let n = (piece.end - piece.start) as usize;
        image.read_at(offset, &mut expected[..n])?;
        card.file.read_exact_at(&mut actual[..n], offset)?;
        if let Some(i) = (0..n).find(|&i| expected[i] != actual[i]) {
            return Ok(Some(offset + i as u64).filter(|o| *o < image.len));
        }
    }
    Ok(None)
}

/// Places where a test can stop pinode to act on the card (`PINODE_TEST_PAUSE`, honoured only
/// with `PINODE_TEST_HOOKS=1`), so that an
/// interrupted write and a card that changes under the read-back are tested for real.
///
/// `PINODE_TEST_PAUSE=verify@FILE` stops before the read-back, `write:N@FILE` once N bytes
/// are written; `write:N:HOST@FILE` only on the card written for HOST (several cards written
/// at once: one of them is "pulled out" while the others go on). pinode creates FILE (with
/// its process id) and waits until FILE is removed.
#[derive(Debug, Default)]
pub struct TestHooks {
    pause_after: Option<u64>,
    pause_before_verify: bool,
    file: Option<PathBuf>,
    /// The one card (by its node's hostname) the pause applies to; every card when `None`.
    only: Option<String>,
    paused_write: std::sync::atomic::AtomicBool,
}

/// No pause: what a card other than the one named by `write:N:HOST` gets.
static NO_HOOKS: TestHooks = TestHooks {
    pause_after: None,
    pause_before_verify: false,
    file: None,
    only: None,
    paused_write: std::sync::atomic::AtomicBool::new(false),
};

impl TestHooks {
    /// The pause of `crate::edge::TestHooks::pause` (none unless `PINODE_TEST_HOOKS=1`).
    pub fn from_settings(settings: &crate::edge::Settings) -> TestHooks {
        let Some(spec) = settings.test.pause.as_deref() else {
            return TestHooks::default();
        };
        let Some((stage, file)) = spec.split_once('@') else {
            return TestHooks::default();
        };
        let (stage, only) = match stage.strip_prefix("write:").and_then(|s| s.split_once(':')) {
            Some((n, host)) => (format!("write:{n}"), Some(host.to_string())),
            None => (stage.to_string(), None),
        };
        TestHooks {
            pause_after: stage.strip_prefix("write:").and_then(|n| n.parse().ok()),
            pause_before_verify: stage == "verify",
            file: Some(PathBuf::from(file)),
            only,
            paused_write: Default::default(),
        }
    }

    /// The hooks for the card of node `host`: these, unless they name another card.
    pub(crate) fn for_card(&self, host: &str) -> &TestHooks {
        match &self.only {
            Some(only) if only != host => &NO_HOOKS,
            _ => self,
        }
    }

    fn after_write(&self, written: u64) {
        if let Some(limit) = self.pause_after
            && written >= limit
            && !self
                .paused_write
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.pause();
        }
    }

    fn before_verify(&self) {
        if self.pause_before_verify {
            self.pause();
        }
    }

    fn pause(&self) {
        let Some(file) = &self.file else { return };
        if std::fs::write(file, std::process::id().to_string()).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_cards_are_only_judged_on_long_writes() {
        let mut r = CardReport {
            bytes: 1 << 30,
            image_bytes: 1 << 30,
            allocation_aware: false,
            ranges: 1,
            write_seconds: 200.0,
            write_bytes_per_sec: 5e6,
            sha256: None,
            verified: None,
            verify_seconds: None,
            direct_io: true,
        };
        assert!(r.is_slow());
        r.write_bytes_per_sec = 20e6;
        assert!(!r.is_slow());
        r.bytes = 1 << 20;
        r.write_bytes_per_sec = 1e6;
        assert!(!r.is_slow());
    }
}
