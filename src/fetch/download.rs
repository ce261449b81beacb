//! A resumable download into a `.part` file, hashed as it arrives.
//!
//! What is on disk is always a prefix of the file at the URL: an interrupted download (a
//! dropped connection, a killed process) continues with `Range: bytes=N-`, guarded by
//! `If-Range` with the validator (ETag or Last-Modified) saved next to the part, so a file
//! that changed on the server restarts from zero instead of being spliced. A server that
//! ignores Range (200 instead of 206) also restarts cleanly. The SHA-256 is computed while
//! writing; after a restart by a new process the kept prefix is hashed once more.
//!
//! Every download is bounded: it stops as soon as more than `limit` bytes arrive (or a
//! server announces more), since an endless body would otherwise fill the disk. Progress
//! means bytes beyond the most ever held: a server that answers every resume with the whole
//! file from byte 0, then drops it, makes no progress and runs out of retries, and the
//! number of requests has an overall cap besides.

use crate::progress::Task;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FetchError, Http, display_url, io_message};

const CHUNK: usize = 1 << 20;
/// Requests for one download, whatever happens (each one that fails without progress also
/// counts against the retries).
const MAX_ATTEMPTS: u32 = 1000;

/// What arrived.
#[derive(Debug, Clone)]
pub(crate) struct Downloaded {
    pub(crate) size: u64,
    pub(crate) sha256: String,
    /// Bytes that were already there from an earlier attempt or run.
    pub(crate) resumed_from: u64,
}

/// What is known about a `.part` file: which URL it is a prefix of (as a SHA-256: the URL
/// may carry credentials), and the server's validator for that version of the file.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct PartMeta {
    url_sha256: String,
    validator: Option<String>,
}

fn meta_path(part: &Path) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// Downloads `url` into `part` (created or continued). On success `part` holds the whole
/// file, synced; the caller verifies and renames it. `progress` counts bytes on disk. More
/// than `limit` bytes is an error ([`FetchError::Oversize`]); the part is left for the caller
/// to delete.
pub(crate) fn download(
    http: &Http,
    url: &str,
    part: &Path,
    limit: u64,
    progress: &Task,
) -> Result<Downloaded, FetchError> {
    let oversize = || FetchError::Oversize {
        url: display_url(url),
        limit,
    };
    let io = |source: std::io::Error| FetchError::Io {
        path: part.to_path_buf(),
        source,
    };
    let meta_file = meta_path(part);
    let meta: PartMeta = crate::input::read_regular(&meta_file, 64 << 10, "a download record")
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(part)
        .map_err(io)?;
    let mut validator = meta.validator.clone();
    let url_sha256 = hex::encode(Sha256::digest(url.as_bytes()));
    if meta.url_sha256 != url_sha256 {
        // Not a prefix of this URL (or no record of what it is): start over.
        file.set_len(0).map_err(io)?;
        validator = None;
    }
    let mut have = file.metadata().map_err(io)?.len();
    if have > limit {
        return Err(oversize());
    }
    let resumed_from = have;
    // The most bytes ever held: only getting past it is progress.
    let mut best = have;
    let mut hasher = Sha256::new();
    hash_prefix(&mut file, have, &mut hasher).map_err(io)?;
    progress.set_position(have);

    let mut failures = 0u32;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        if attempts > MAX_ATTEMPTS {
            return Err(FetchError::Transport {
                url: display_url(url),
                message: format!("no complete download in {MAX_ATTEMPTS} requests"),
                attempts: MAX_ATTEMPTS,
            });
        }
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", format!("bytes={have}-")));
            if let Some(v) = &validator {
                headers.push(("If-Range", v.clone()));
            }
        }
        let response = http.get(url, &headers)?;
        let status = response.status().as_u16();
        let total = match status {
            206 => match content_range(&response) {
                Some((start, total)) if start == have => total,
                _ => {
                    return Err(FetchError::Protocol {
                        url: display_url(url),
                        message: format!(
                            "asked for bytes from {have} on, got a different range ({})",
                            header(&response, "content-range").unwrap_or_default()
                        ),
                    });
                }
            },
            416 if have > 0 => {
                // Nothing after `have`: complete if the server's size says so.
                match unsatisfied_total(&response) {
                    Some(total) if total == have => {
                        file.sync_all().map_err(io)?;
                        return Ok(finish(hasher, have, resumed_from));
                    }
                    _ => {
                        restart(&mut file, &mut have, &mut hasher).map_err(io)?;
                        validator = None;
                        continue;
                    }
                }
            }
            200..=299 => {
                // The whole file: a first request, or a server that ignored Range / a file
                // that changed (If-Range). Start from zero.
                if have > 0 {
                    restart(&mut file, &mut have, &mut hasher).map_err(io)?;
                }
                validator = header(&response, "etag")
                    .filter(|e| !e.starts_with("W/"))
                    .or_else(|| header(&response, "last-modified"));
                let meta = PartMeta {
                    url_sha256: url_sha256.clone(),
                    validator: validator.clone(),
                };
                std::fs::write(&meta_file, serde_json::to_vec(&meta).unwrap_or_default()).map_err(
                    |source| FetchError::Io {
                        path: meta_file.clone(),
                        source,
                    },
                )?;
                response.content_length()
            }
            other => {
                return Err(FetchError::Status {
                    url: display_url(url),
                    status: other.to_string(),
                });
            }
        };
        if total.is_some_and(|t| t > limit) {
            return Err(oversize());
        }
        if let Some(total) = total {
            progress.set_length(total);
        }
        progress.set_position(have);
        file.seek(SeekFrom::Start(have)).map_err(io)?;
        let before = best;
        let outcome = copy_body(response, &mut file, &mut hasher, progress, &mut have, limit);
        best = best.max(have);
        match outcome {
            Ok(()) if total.is_none_or(|t| t == have) => {
                file.sync_all().map_err(io)?;
                let _ = std::fs::remove_file(&meta_file);
                return Ok(finish(hasher, have, resumed_from));
            }
            Ok(()) => {
                let message = format!(
                    "the connection ended after {have} of {} bytes",
                    total.unwrap_or(0)
                );
                failures = retry_or_give_up(http, url, before, have, failures, message)?;
            }
            Err(Body::Oversize) => return Err(oversize()),
            Err(Body::Disk(source)) => {
                return Err(FetchError::Io {
                    path: part.to_path_buf(),
                    source,
                });
            }
            Err(Body::Net(message)) => {
                failures = retry_or_give_up(http, url, before, have, failures, message)?;
            }
        }
    }
}

/// Counts a failed attempt (unless it got past `before`, the most bytes held before it)
/// and pauses, or gives up.
fn retry_or_give_up(
    http: &Http,
    url: &str,
    before: u64,
    have: u64,
    failures: u32,
    message: String,
) -> Result<u32, FetchError> {
    let failures = if have > before { 1 } else { failures + 1 };
    if failures > http.settings.retries {
        return Err(FetchError::Transport {
            url: display_url(url),
            message,
            attempts: failures,
        });
    }
    std::thread::sleep(http.settings.pause(failures));
    Ok(failures)
}

enum Body {
    Net(String),
    /// More than the limit arrived.
    Oversize,
    Disk(std::io::Error),
}

fn copy_body(
    mut response: reqwest::blocking::Response,
    file: &mut File,
    hasher: &mut Sha256,
    progress: &Task,
    have: &mut u64,
    limit: u64,
) -> Result<(), Body> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if *have > limit {
            return Err(Body::Oversize);
        }
        // Fill most of the buffer before writing: fewer, larger writes.
        let mut filled = 0;
        let mut eof = false;
        while filled < buf.len() / 2 {
            match response.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Keep what arrived: it is a valid prefix.
                    write_chunk(file, hasher, &buf[..filled], have, progress)
                        .map_err(Body::Disk)?;
                    return Err(Body::Net(io_message(&e)));
                }
            }
        }
        write_chunk(file, hasher, &buf[..filled], have, progress).map_err(Body::Disk)?;
        if eof {
            return Ok(());
        }
    }
}

fn write_chunk(
    file: &mut File,
    hasher: &mut Sha256,
    data: &[u8],
    have: &mut u64,
    progress: &Task,
) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    file.write_all(data)?;
    hasher.update(data);
    *have += data.len() as u64;
    progress.set_position(*have);
    Ok(())
}

fn restart(file: &mut File, have: &mut u64, hasher: &mut Sha256) -> std::io::Result<()> {
    file.set_len(0)?;
    *have = 0;
    *hasher = Sha256::new();
    Ok(())
}

/// Hashes the first `len` bytes of `file` (a part kept from an earlier run).
fn hash_prefix(file: &mut File, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        file.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(())
}

fn finish(hasher: Sha256, size: u64, resumed_from: u64) -> Downloaded {
    Downloaded {
        size,
        sha256: hex::encode(hasher.finalize()),
        resumed_from,
    }
}

fn header(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Content-Range: bytes START-END/TOTAL` as (START, Some(TOTAL)).
fn content_range(response: &reqwest::blocking::Response) -> Option<(u64, Option<u64>)> {
    let value = header(response, "content-range")?;
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// `Content-Range: bytes */TOTAL` on a 416.
fn unsatisfied_total(response: &reqwest::blocking::Response) -> Option<u64> {
    header(response, "content-range")?
        .strip_prefix("bytes */")?
        .trim()
        .parse()
        .ok()
}
