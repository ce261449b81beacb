//! The image cache: downloads and their decompressed base images, content-addressed by the
//! SHA-256 of the uncompressed image (the hash the catalog publishes).
//!
//! ```text
//! CACHE/images/<sha256>/entry.json        what it is, where it came from, what was checked
//! CACHE/images/<sha256>/<file name>       the download as served (.img.xz, …)
//! CACHE/images/<sha256>/image.img         the decompressed base image, sparse
//! CACHE/images/<sha256>.lock              held while a pinode process works on the entry
//! CACHE/catalogs/<hash of URL>.json       the last copy of each catalog, for --offline
//! CACHE/CACHEDIR.TAG                       marks the directory as a cache (bford.info/cachedir)
//! ```
//!
//! `cache clean` empties a directory only when it is recognisably pinode's: tagged, or (for a
//! cache from before the tag) holding nothing but that layout. A mistaken `--cache-dir ~`
//! or `/` is refused, and even in a pinode cache only entries of the layout are deleted.
//!
//! Nothing unverified is ever used: a download becomes `image.img` only after the SHA-256 of
//! the decompressed bytes matched; a base image whose size or modification time changed since
//! it was verified is hashed again, and deleted (and rebuilt) if it no longer matches.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::decompress::{Format, decompress, hash_file, is_corrupt_input, is_oversize};
use super::lock::Lock;
use crate::digest::Sha256Hex;
use crate::fetch::{FetchError, Http, display_url};
use crate::invoker::Invoker;
use crate::progress::Progress;

const ENTRY: &str = "entry.json";
const IMAGE: &str = "image.img";
/// Helm chart archives, by the SHA-256 their repository's index publishes.
const CHARTS: &str = "charts";
/// The Cache Directory Tagging Specification's file: backup tools skip the directory, and
/// pinode knows the directory is its own to empty.
const TAG: &str = "CACHEDIR.TAG";
const TAG_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";
/// The most bytes taken for a download or a decompressed image whose size nobody states (an
/// https URL with only `os.sha256`): far above any SD card image, yet a bound.
pub(crate) const MAX_UNSTATED_SIZE: u64 = 64 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(
        "{what}: SHA-256 mismatch (expected {expected}, got {actual}); the corrupt download was deleted from the cache, run again to download it anew"
    )]
    Corrupt {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: {message}; the corrupt download was deleted from the cache")]
    Undecodable { what: String, message: String },
    #[error("{what}: {message}")]
    Size { what: String, message: String },
    #[error("{0} is not in the cache, and --offline forbids downloading it")]
    Offline(String),
    #[error("cannot find a cache directory (no HOME?); pass --cache-dir")]
    NoDirectory,
    #[error(
        "{path}: not a pinode cache ({why}); nothing was deleted (check --cache-dir and \
         PINODE_CACHE_DIR)",
        path = .path.display()
    )]
    NotACache { path: PathBuf, why: String },
}

/// Gives the cache's contents back to the invoking user when dropped (under sudo), whichever
/// way the operation that wrote them ended.
pub(crate) struct HandBack<'c>(&'c Cache);

impl Drop for HandBack<'_> {
    fn drop(&mut self) {
        if let Some(owner) = self.0.owner {
            owner.give_back_tree(&self.0.root);
        }
    }
}

/// What pinode wants in the cache: an image known by the SHA-256 of its uncompressed bytes.
/// An `entry.json` whose `sha256` is not one is not read at all (see `Sha256Hex`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wanted {
    pub sha256: Sha256Hex,
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub release_date: Option<String>,
    #[serde(default)]
    pub init_format: Option<String>,
    /// Expected bytes of the uncompressed image.
    #[serde(default)]
    pub(crate) extract_size: Option<u64>,
    /// Expected bytes and SHA-256 of the download, when the source says.
    #[serde(default)]
    pub(crate) download_size: Option<u64>,
    #[serde(default)]
    pub(crate) download_sha256: Option<Sha256Hex>,
    /// Where the facts above were read in this run (not stored).
    #[serde(skip)]
    pub origin: Origin,
}

/// Where the facts of a [`Wanted`] (name, URL, release date, init format, sizes) come from in
/// this run. The rule: only a source contacted now may rewrite what a cache entry already
/// records. A kept catalog copy, the entry's own record or a bare URL with a SHA-256 (which
/// states no name, date or init format) fills a new entry but never overwrites an old one,
/// so `download ALIAS` offline cannot turn an entry's facts back to an older copy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A catalog fetched in this run, or a catalog file the user named.
    Contacted,
    /// Anything else. `fallback` is set when this happened without `--offline` because the
    /// catalog could not be reached: the line that tells the user which copy was used.
    Recorded { fallback: Option<String> },
}

impl Default for Origin {
    /// The cautious one: facts of unknown origin rewrite nothing.
    fn default() -> Self {
        Origin::Recorded { fallback: None }
    }
}

impl Origin {
    /// The line telling the user that a kept copy stood in for an unreachable catalog.
    pub fn fallback(&self) -> Option<&str> {
        match self {
            Origin::Recorded { fallback } => fallback.as_deref(),
            Origin::Contacted => None,
        }
    }
}

impl Wanted {
    fn label(&self) -> String {
        if self.name.is_empty() {
            display_url(&self.url)
        } else {
            format!("{} ({})", self.name, display_url(&self.url))
        }
    }

    /// The file name the download is kept under: the URL's last segment, sanitised.
    fn download_name(&self) -> String {
        file_name_of(&self.url)
    }
}

/// The last path segment of `url` (no query or fragment), safe as a file name.
pub(crate) fn file_name_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean == IMAGE || clean == ENTRY || clean.starts_with('.') {
        "download".into()
    } else {
        clean
    }
}

/// A file in an entry and what it was checked against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    pub(crate) file: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// The stamp of a verified base image: if either changes, it is hashed again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Stamp {
    pub(crate) size: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = fs::metadata(path)?;
        Ok(Stamp {
            size: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

/// `entry.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    #[serde(flatten)]
    pub(crate) wanted: Wanted,
    pub(crate) download: Option<FileRecord>,
    /// Set once image.img matched `wanted.sha256`.
    image_verified: Option<Stamp>,
    pub(crate) added: String,
    last_used: String,
}

/// A verified base image ready to use.
#[derive(Debug, Clone)]
pub struct CachedImage {
    pub path: PathBuf,
    pub(crate) entry: Entry,
    /// Bytes fetched from the network by this call (0 when the cache had it).
    pub downloaded_bytes: u64,
    pub resumed_from: u64,
    pub decompressed: bool,
    /// Problems found and repaired on the way (a stale image rebuilt, …), for warnings.
    pub notes: Vec<String>,
}

impl CachedImage {
    /// What the cache entry records about the image (name, URL, date, init format).
    pub fn facts(&self) -> &Wanted {
        &self.entry.wanted
    }
}

/// One entry as `cache list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub sha256: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub release_date: Option<String>,
    pub(crate) url: String,
    pub(crate) download_bytes: u64,
    pub image_bytes: u64,
    /// Bytes the entry occupies on disk (the image is sparse).
    pub disk_bytes: u64,
    pub complete: bool,
    pub partial_bytes: u64,
    last_used: Option<String>,
    pub(crate) path: PathBuf,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
    /// Under sudo, the cache that is the invoking user's: what pinode writes there is given
    /// back to them, so that their own runs without sudo can use and clean it.
    owner: Option<&'static Invoker>,
}

impl Cache {
    /// `dir`, or the invoking user's `$XDG_CACHE_HOME/pinode` (`~/.cache/pinode`), theirs
    /// also under sudo (see [`crate::invoker`]).
    ///
    /// Under sudo an explicit `dir` is the invoking user's, like the default, when pinode
    /// creates it or it already belongs to them; one that exists and belongs to someone else
    /// (a cache that root shares, say) keeps its owner, and so does what pinode adds to it.
    pub fn open(dir: Option<&Path>) -> Result<Cache, CacheError> {
        let invoker = Invoker::current();
        match dir {
            Some(d) => Ok(Cache {
                root: d.to_path_buf(),
                owner: (invoker.sudo
                    && match fs::metadata(d) {
                        Ok(meta) => meta.uid() == invoker.uid,
                        Err(_) => true,
                    })
                .then_some(invoker),
            }),
            None => Ok(Cache {
                root: invoker.cache_dir().ok_or(CacheError::NoDirectory)?,
                owner: invoker.sudo.then_some(invoker),
            }),
        }
    }

    /// Creates the cache directory (and, under sudo, its missing parents as the invoking
    /// user's); returns a guard that gives what was written back to them when dropped.
    fn prepare_root(&self) -> Result<HandBack<'_>, CacheError> {
        if let Some(owner) = self.owner {
            owner
                .create_dir_all(&self.root, 0o755)
                .map_err(|source| CacheError::Io {
                    path: self.root.clone(),
                    source,
                })?;
        }
        Ok(HandBack(self))
    }

    /// Creates the cache directory and tags it ([`TAG`]), unless it already holds things
    /// pinode did not put there (a mistaken `--cache-dir ~` must not hide a home directory
    /// from backups). Tagging is best effort: the cache works without it.
    fn create_root(&self) -> Result<(), CacheError> {
        fs::create_dir_all(&self.root).map_err(|source| CacheError::Io {
            path: self.root.clone(),
            source,
        })?;
        if !self.root.join(TAG).exists() && self.foreign_entry().is_none() {
            let text = format!(
                "{TAG_SIGNATURE}\n# This file is a cache directory tag created by pinode.\n\
                 # For information about cache directory tags see https://bford.info/cachedir/\n"
            );
            let _ = crate::cleanup::write_atomic(&self.root.join(TAG), text.as_bytes());
        }
        Ok(())
    }

    /// Whether the directory carries a valid [`TAG`] (its first bytes, read bounded).
    fn tagged(&self) -> bool {
        use std::io::Read;
        // Through crate::input: a FIFO or device named like the tag is no tag, and is
        // refused without waiting for a writer.
        let Ok((file, _)) = crate::input::open_regular(&self.root.join(TAG)) else {
            return false;
        };
        let mut head = Vec::with_capacity(TAG_SIGNATURE.len());
        file.take(TAG_SIGNATURE.len() as u64)
            .read_to_end(&mut head)
            .is_ok()
            && head == TAG_SIGNATURE.as_bytes()
    }

    /// The first thing in the directory that pinode's layout does not have, if any.
    fn foreign_entry(&self) -> Option<String> {
        let names = |dir: &Path| -> Vec<(String, bool)> {
            fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    (e.file_name().to_string_lossy().into_owned(), is_dir)
                })
                .collect()
        };
        for (name, is_dir) in names(&self.root) {
            let known = match name.as_str() {
                "images" | "catalogs" | "releases" | CHARTS => is_dir,
                TAG => !is_dir,
                _ => false,
            };
            if !known {
                return Some(name);
            }
        }
        for (name, is_dir) in names(&self.images()) {
            if !is_entry_name(&name, is_dir) {
                return Some(format!("images/{name}"));
            }
        }
        for (name, is_dir) in names(&self.root.join("catalogs")) {
            if !is_catalog_name(&name, is_dir) {
                return Some(format!("catalogs/{name}"));
            }
        }
        None
    }

    /// Refuses a directory that is not recognisably a pinode cache.
    fn recognise(&self) -> Result<(), CacheError> {
        if self.tagged() {
            return Ok(());
        }
        match self.foreign_entry() {
            None => Ok(()),
            Some(name) => Err(CacheError::NotACache {
                path: self.root.clone(),
                why: format!("no {TAG}, and it holds {name}, which pinode never writes there"),
            }),
        }
    }

    /// A directory of the cache for files that are not OS images (`releases/…`: the K3s
    /// release files of `cluster.airgap`), created, the invoking user's under sudo.
    pub(crate) fn files_dir(&self, rel: &Path) -> Result<PathBuf, CacheError> {
        let _hand_back = self.prepare_root()?;
        self.create_root()?;
        let dir = self.root.join(rel);
        fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    /// Under sudo, gives what was written to the cache back to the invoking user.
    pub(crate) fn give_back(&self) {
        drop(HandBack(self));
    }

    /// The directory of Helm chart archives (see `crate::ci::chart_source`), created in a
    /// tagged cache; what is written there is handed back to the invoking user (under sudo)
    /// when the guard drops.
    pub(crate) fn charts_dir(&self) -> Result<(PathBuf, HandBack<'_>), CacheError> {
        let hand_back = self.prepare_root()?;
        Ok((self.files_dir(Path::new(CHARTS))?, hand_back))
    }

    fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    fn entry_dir(&self, sha: &Sha256Hex) -> PathBuf {
        self.images().join(sha.as_str())
    }

    /// The lock file of the entry for `sha`.
    pub(crate) fn lock_path(&self, sha: &str) -> PathBuf {
        self.images().join(format!("{sha}.lock"))
    }

    /// Where the last copy of the catalog at `url` is kept.
    pub(crate) fn catalog_copy(&self, url: &str) -> PathBuf {
        let digest = hex::encode(Sha256::digest(url.as_bytes()));
        self.root
            .join("catalogs")
            .join(format!("{}.json", &digest[..16]))
    }

    /// Keeps `bytes` as the last copy of the catalog at `url` (best effort).
    pub(crate) fn save_catalog(&self, url: &str, bytes: &[u8]) {
        let path = self.catalog_copy(url);
        let Ok(_hand_back) = self.prepare_root() else {
            return;
        };
        if let Some(dir) = path.parent()
            && self.create_root().is_ok()
            && fs::create_dir_all(dir).is_ok()
        {
            let _ = crate::cleanup::write_atomic(&path, bytes);
        }
    }

    /// The verified base image for `wanted`: from the cache, from a kept download, or
    /// downloaded now (unless `http` is `None`, i.e. offline). `on_wait` is called if another
    /// pinode process holds the entry.
    pub fn obtain(
        &self,
        wanted: &Wanted,
        http: Option<&Http>,
        progress: &dyn Progress,
        on_wait: impl FnOnce(),
    ) -> Result<CachedImage, CacheError> {
        let dir = self.entry_dir(&wanted.sha256);
        let io_at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        let _hand_back = self.prepare_root()?;
        self.create_root()?;
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let lock_path = self.lock_path(wanted.sha256.as_str());
        let _lock = Lock::acquire(&lock_path, on_wait).map_err(io_at(&lock_path))?;

        let now = now();
        let existing = read_entry(&dir);
        let rewrite = existing.is_none() || wanted.origin == Origin::Contacted;
        let mut entry = existing.unwrap_or_else(|| Entry {
            wanted: wanted.clone(),
            download: None,
            image_verified: None,
            added: now.clone(),
            last_used: now.clone(),
        });
        // The hash is the identity. Facts from a source contacted now win (see `Origin`);
        // aliases only ever add a name to find the entry by. The URL is kept without
        // credentials or query (they may be secrets).
        entry.wanted = if rewrite {
            Wanted {
                aliases: merge(&entry.wanted.aliases, &wanted.aliases),
                url: display_url(&wanted.url),
                ..wanted.clone()
            }
        } else {
            Wanted {
                aliases: merge(&entry.wanted.aliases, &wanted.aliases),
                ..entry.wanted.clone()
            }
        };
        entry.last_used = now;
        let mut result = CachedImage {
            path: dir.join(IMAGE),
            entry: entry.clone(),
            downloaded_bytes: 0,
            resumed_from: 0,
            decompressed: false,
            notes: Vec::new(),
        };
        let image = dir.join(IMAGE);

        // 1. A base image that was verified and has not changed since.
        if image.exists() {
            let stamp = Stamp::of(&image).map_err(io_at(&image))?;
            if entry.image_verified.as_ref() == Some(&stamp) {
                write_entry(&dir, &entry)?;
                result.entry = entry;
                return Ok(result);
            }
            let bar = progress.task("checking", stamp.size);
            let hashed = hash_file(&image, &bar).map_err(io_at(&image))?;
            bar.finish();
            if hashed.sha256 == wanted.sha256 {
                entry.image_verified = Some(Stamp::of(&image).map_err(io_at(&image))?);
                write_entry(&dir, &entry)?;
                result.entry = entry;
                return Ok(result);
            }
            fs::remove_file(&image).map_err(io_at(&image))?;
            entry.image_verified = None;
            result.notes.push(format!(
                "cache: the base image of {} no longer matched its SHA-256; deleted and rebuilt",
                wanted.label()
            ));
        }

        // 2. The download: kept from before, or fetched now.
        let download_path = dir.join(wanted.download_name());
        let kept = entry.download.as_ref().is_some_and(|d| {
            dir.join(&d.file) == download_path
                && fs::metadata(&download_path).is_ok_and(|m| m.len() == d.size)
        });
        if !kept {
            let Some(http) = http else {
                return Err(CacheError::Offline(wanted.label()));
            };
            let part = dir.join(format!("{}.part", wanted.download_name()));
            let bar = progress.task("downloading", wanted.download_size.unwrap_or(0));
            let limit = wanted.download_size.unwrap_or(MAX_UNSTATED_SIZE);
            let got = match crate::fetch::download(http, &wanted.url, &part, limit, &bar) {
                Ok(got) => got,
                Err(FetchError::Oversize { .. }) => {
                    // Never a prefix of the right file: keeping it would only fill the disk.
                    bar.finish();
                    let _ = fs::remove_file(&part);
                    let _ = fs::remove_file(part.with_extension("part.meta"));
                    return Err(CacheError::Size {
                        what: wanted.label(),
                        message: match wanted.download_size {
                            Some(size) => format!(
                                "the server sent more than the {size} bytes the catalog gives \
                                 as image_download_size; stopped, and the partial download was \
                                 deleted"
                            ),
                            None => format!(
                                "the server sent more than {limit} bytes; stopped, and the \
                                 partial download was deleted"
                            ),
                        },
                    });
                }
                Err(e) => {
                    // Keep a partial download for the next run; an empty one is noise.
                    if fs::metadata(&part).is_ok_and(|m| m.len() == 0) {
                        let _ = fs::remove_file(&part);
                        let _ = fs::remove_file(part.with_extension("part.meta"));
                    }
                    return Err(e.into());
                }
            };
            bar.finish();
            result.downloaded_bytes = got.size - got.resumed_from;
            result.resumed_from = got.resumed_from;
            if let Some(size) = wanted.download_size
                && size != got.size
            {
                let _ = fs::remove_file(&part);
                return Err(CacheError::Size {
                    what: wanted.label(),
                    message: format!(
                        "the server sent {} bytes, the catalog says {size}; the download was \
                         deleted from the cache",
                        got.size
                    ),
                });
            }
            if let Some(sha) = &wanted.download_sha256
                && *sha != got.sha256
            {
                let _ = fs::remove_file(&part);
                return Err(CacheError::Corrupt {
                    what: wanted.label(),
                    expected: sha.to_string(),
                    actual: got.sha256,
                });
            }
            fs::rename(&part, &download_path).map_err(io_at(&download_path))?;
            // This URL was contacted: the entry says where its download came from.
            entry.wanted.url = display_url(&wanted.url);
            entry.download = Some(FileRecord {
                file: wanted.download_name(),
                size: got.size,
                sha256: got.sha256,
            });
            write_entry(&dir, &entry)?;
        }

        // 3. The base image, verified on the way.
        let format = Format::sniff(&download_path).map_err(io_at(&download_path))?;
        // A download that failed its check is deleted and forgotten before the error.
        let forget_download = |entry: &mut Entry| -> Result<(), CacheError> {
            let _ = fs::remove_file(&download_path);
            entry.download = None;
            write_entry(&dir, entry)
        };
        match format {
            None => {
                // A raw download: its hash (taken while downloading) is the image's; it
                // becomes the image.
                let sha = entry
                    .download
                    .as_ref()
                    .map(|d| d.sha256.clone())
                    .unwrap_or_default();
                if sha != wanted.sha256 {
                    forget_download(&mut entry)?;
                    return Err(CacheError::Corrupt {
                        what: wanted.label(),
                        expected: wanted.sha256.to_string(),
                        actual: sha,
                    });
                }
                fs::rename(&download_path, &image).map_err(io_at(&image))?;
                entry.download = None;
            }
            Some(format) => {
                let tmp = crate::cleanup::TempFile::new_in(&dir, "image").map_err(io_at(&dir))?;
                let compressed = fs::metadata(&download_path).map(|m| m.len()).unwrap_or(0);
                let bar = progress.task("decompressing", compressed);
                let limit = wanted.extract_size.unwrap_or(MAX_UNSTATED_SIZE);
                let out = decompress(&download_path, format, tmp.as_file(), limit, &bar);
                bar.finish();
                let out = match out {
                    Ok(out) => out,
                    Err(e) if is_oversize(&e) => {
                        forget_download(&mut entry)?;
                        return Err(CacheError::Size {
                            what: wanted.label(),
                            message: format!(
                                "decompresses to more than the {limit} bytes the catalog gives \
                                 as extract_size; stopped, and the download was deleted from \
                                 the cache"
                            ),
                        });
                    }
                    Err(e) if is_corrupt_input(&e) => {
                        forget_download(&mut entry)?;
                        return Err(CacheError::Undecodable {
                            what: wanted.label(),
                            message: e.to_string(),
                        });
                    }
                    Err(e) => {
                        return Err(CacheError::Io {
                            path: tmp.path().to_path_buf(),
                            source: e,
                        });
                    }
                };
                if out.sha256 != wanted.sha256 {
                    forget_download(&mut entry)?;
                    return Err(CacheError::Corrupt {
                        what: wanted.label(),
                        expected: wanted.sha256.to_string(),
                        actual: out.sha256,
                    });
                }
                tmp.as_file().sync_all().map_err(io_at(&image))?;
                tmp.persist(&image).map_err(|source| CacheError::Io {
                    path: image.clone(),
                    source,
                })?;
                result.decompressed = true;
            }
        }
        if let Some(size) = wanted.extract_size {
            let actual = fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
            if actual != size {
                result.notes.push(format!(
                    "{}: the image has {actual} bytes, the catalog says {size} (its SHA-256 matched)",
                    wanted.label()
                ));
            }
        }
        entry.image_verified = Some(Stamp::of(&image).map_err(io_at(&image))?);
        write_entry(&dir, &entry)?;
        result.entry = entry;
        Ok(result)
    }

    /// Every entry (complete or not), newest use first.
    pub fn list(&self) -> Result<Vec<Listing>, CacheError> {
        let images = self.images();
        let read = match fs::read_dir(&images) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CacheError::Io {
                    path: images,
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for item in read.flatten() {
            let dir = item.path();
            let sha = item.file_name().to_string_lossy().into_owned();
            if !is_entry_name(&sha, true) || !item.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let entry = read_entry(&dir);
            let mut listing = Listing {
                sha256: sha,
                name: String::new(),
                aliases: Vec::new(),
                release_date: None,
                url: String::new(),
                download_bytes: 0,
                image_bytes: 0,
                disk_bytes: 0,
                complete: false,
                partial_bytes: 0,
                last_used: None,
                path: dir.clone(),
            };
            for file in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let Ok(m) = file.metadata() else { continue };
                listing.disk_bytes += m.blocks() * 512;
                let name = file.file_name().to_string_lossy().into_owned();
                if name == IMAGE {
                    listing.image_bytes = m.len();
                } else if name.ends_with(".part") {
                    listing.partial_bytes += m.len();
                } else if entry
                    .as_ref()
                    .and_then(|e| e.download.as_ref())
                    .is_some_and(|d| d.file == name)
                {
                    listing.download_bytes = m.len();
                }
            }
            if let Some(e) = entry {
                listing.complete = e.image_verified.is_some() && listing.image_bytes > 0;
                listing.name = e.wanted.name;
                listing.aliases = e.wanted.aliases;
                listing.release_date = e.wanted.release_date;
                listing.url = display_url(&e.wanted.url);
                listing.last_used = Some(e.last_used);
            }
            out.push(listing);
        }
        out.sort_by(|a, b| b.last_used.cmp(&a.last_used));
        Ok(out)
    }

    /// Removes every entry nobody is using (and the catalog copies); returns the bytes freed
    /// and the entries skipped because another pinode process holds them.
    ///
    /// Refuses (deleting nothing) a directory that is not recognisably a pinode cache, and
    /// deletes only the entries of its layout.
    pub fn clean(&self) -> Result<(u64, Vec<String>), CacheError> {
        if !self.root.exists() {
            return Ok((0, Vec::new()));
        }
        self.recognise()?;
        let mut freed = 0;
        let mut busy = Vec::new();
        for listing in self.list()? {
            let lock_path = self.lock_path(&listing.sha256);
            let lock = Lock::try_acquire(&lock_path).map_err(|source| CacheError::Io {
                path: lock_path.clone(),
                source,
            })?;
            let Some(_lock) = lock else {
                busy.push(listing.sha256);
                continue;
            };
            fs::remove_dir_all(&listing.path).map_err(|source| CacheError::Io {
                path: listing.path.clone(),
                source,
            })?;
            // The lock file stays: a process waiting on it must not end up holding a lock
            // on a deleted file while a newcomer locks a fresh one.
            freed += listing.disk_bytes;
        }
        let catalogs = self.root.join("catalogs");
        for item in fs::read_dir(&catalogs).into_iter().flatten().flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if is_catalog_name(&name, item.file_type().is_ok_and(|t| t.is_dir())) {
                let path = item.path();
                freed += item.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
                fs::remove_file(&path).map_err(|source| CacheError::Io { path, source })?;
            }
        }
        // Only once empty: anything else in it is not pinode's to delete.
        let _ = fs::remove_dir(&catalogs);
        // The air-gap release files (see crate::engine::airgap): downloaded again when needed;
        // a release a run is using (its lock held shared) is left alone, as busy images are.
        let releases = self.root.join(RELEASES);
        for item in fs::read_dir(&releases).into_iter().flatten().flatten() {
            if !item.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = item.file_name().to_string_lossy().into_owned();
            let lock_path = release_lock(&releases, &name);
            let lock = Lock::try_acquire(&lock_path).map_err(|source| CacheError::Io {
                path: lock_path.clone(),
                source,
            })?;
            let Some(_lock) = lock else {
                busy.push(format!("{}/{name}", RELEASES));
                continue;
            };
            let path = item.path();
            freed += disk_bytes(&path);
            fs::remove_dir_all(&path).map_err(|source| CacheError::Io { path, source })?;
            // The lock files stay, as the images' do.
        }
        let charts = self.root.join(CHARTS);
        for item in fs::read_dir(&charts).into_iter().flatten().flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if is_chart_name(&name, item.file_type().is_ok_and(|t| t.is_dir())) {
                let path = item.path();
                freed += item.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
                fs::remove_file(&path).map_err(|source| CacheError::Io { path, source })?;
            }
        }
        let _ = fs::remove_dir(&charts);
        Ok((freed, busy))
    }

    /// Whether the image with this SHA-256 is in the cache, verified.
    pub(crate) fn has_image(&self, sha: &Sha256Hex) -> bool {
        read_entry(&self.entry_dir(sha)).is_some_and(|e| e.image_verified.is_some())
    }

    /// Complete entries whose recorded aliases include `alias` (for --offline without a
    /// catalog copy).
    pub(crate) fn find_by_alias(&self, alias: &str, date: Option<&str>) -> Option<Wanted> {
        let images = fs::read_dir(self.images()).ok()?;
        images
            .flatten()
            .filter_map(|d| read_entry(&d.path()))
            .filter(|e| e.image_verified.is_some())
            .map(|e| e.wanted)
            .filter(|w| w.aliases.iter().any(|a| a == alias))
            .filter(|w| date.is_none_or(|d| w.release_date.as_deref() == Some(d)))
            .max_by(|a, b| a.release_date.cmp(&b.release_date))
    }
}

/// `images/<sha256>` (a directory) or `images/<sha256>.lock`.
fn is_entry_name(name: &str, is_dir: bool) -> bool {
    let is_sha = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if is_dir {
        is_sha(name)
    } else {
        name.strip_suffix(".lock").is_some_and(is_sha)
    }
}

/// `catalogs/<16 hex>.json`, or a temporary file of one being saved.
/// A file of `charts/` (see `crate::ci::chart_source`): `<sha256>.tgz`, a record
/// `<32 hex digits>.json`, or a temporary file of an atomic write.
fn is_chart_name(name: &str, is_dir: bool) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    !is_dir
        && (name.strip_suffix(".tgz").is_some_and(|s| hex(s, 64))
            || name.strip_suffix(".json").is_some_and(|s| hex(s, 32))
            || crate::cleanup::is_temp_name(name))
}

fn is_catalog_name(name: &str, is_dir: bool) -> bool {
    let is_copy = name
        .strip_suffix(".json")
        .is_some_and(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    !is_dir && (is_copy || name.starts_with(".tmp") || crate::cleanup::is_temp_name(name))
}

/// Bytes a directory tree takes on disk (not following links).
fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for item in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = item.path().symlink_metadata() else {
            continue;
        };
        total += if meta.is_dir() {
            disk_bytes(&item.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

fn merge(old: &[String], new: &[String]) -> Vec<String> {
    let mut all = new.to_vec();
    for a in old {
        if !all.contains(a) {
            all.push(a.clone());
        }
    }
    all
}

fn read_entry(dir: &Path) -> Option<Entry> {
    let bytes = crate::input::read_regular(&dir.join(ENTRY), 1 << 20, "a cache entry").ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_entry(dir: &Path, entry: &Entry) -> Result<(), CacheError> {
    let io = |source| CacheError::Io {
        path: dir.join(ENTRY),
        source,
    };
    let text = serde_json::to_vec_pretty(entry).unwrap_or_default();
    crate::cleanup::write_atomic(&dir.join(ENTRY), &text).map_err(io)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where the K3s release files of `cluster.airgap` are kept, one directory per tag (see
/// `crate::engine::airgap`).
pub(crate) const RELEASES: &str = "releases/k3s";

/// The lock of the release `version` under `parent` (`CACHE/releases/k3s`): held shared by
/// a run while it uses the release's files, exclusive by `cache clean` while it deletes them.
pub(crate) fn release_lock(parent: &Path, version: &str) -> PathBuf {
    parent.join(format!("{version}.lock"))
}
