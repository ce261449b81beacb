//! A first boot without internet (`cluster.airgap`, K3s): the pinned release's files,
//! downloaded once into pinode's cache and verified, for the boot partition.
//!
//! The facts, from k3s-io/k3s (release assets of every tag, e.g. v1.33.5+k3s1; docs
//! `docs.k3s.io/installation/airgap`, "Manually Deploy Images Method"; the importer in
//! `pkg/agent/containerd/containerd.go`, `preloadFile`), collected in
//! /work/notes/i20/facts-airgap.md:
//! - a release publishes `k3s-arm64` (the arm64 binary), `k3s-airgap-images-arm64.tar.zst`
//!   (also `.tar.gz` and `.tar`: pinode takes the smallest, zstd, which K3s imports from
//!   `agent/images/` like `.tar`, `.tar.gz`, `.tar.lz4` and `.tar.bz2`) and
//!   `sha256sum-arm64.txt`, the SHA-256 of every arm64 asset in `sha256sum` format;
//! - the assets live under `<release_url>/<tag>/`, the tag URL-encoded (`+` is `%2B`);
//! - `install.sh` with `INSTALL_K3S_SKIP_DOWNLOAD=true` installs the binary already at
//!   `/usr/local/bin/k3s` and downloads nothing. It is not a release asset and has no
//!   published sum: pinode takes the one of the pinned tag from the repository
//!   (`raw.githubusercontent.com/k3s-io/k3s/<tag>/install.sh`, the script as released with
//!   that tag, where get.k3s.io serves whatever is newest), and pins it on first use: its
//!   SHA-256 is recorded in the cache beside it and every later use checks it.
//!
//! ```text
//! CACHE/releases/k3s/<tag>/sha256sum-arm64.txt
//! CACHE/releases/k3s/<tag>/k3s-arm64
//! CACHE/releases/k3s/<tag>/k3s-airgap-images-arm64.tar.zst
//! CACHE/releases/k3s/<tag>/install.sh          and install.sh.sha256 (pinned on first use)
//! ```
//!
//! Nothing unverified is used: a download becomes its final name only once its SHA-256
//! matched; a mismatch deletes it. A cached file is hashed again before every use.
//!
//! Two locks beside the release's directory (`CACHE/releases/k3s/<tag>.lock` and
//! `<tag>.fetch.lock`, see [`crate::cache::lock`]): a run holds the first shared from before
//! the files are checked until its cards or images are written (kept in [`AirgapFiles`]), so
//! that `cache clean`, which needs it exclusive, leaves the directory of a release in use
//! alone; and the second exclusive while it checks and downloads, so that two runs never
//! share a `.part` (one's hash mismatch would delete the other's download).

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::cache::lock::Lock;
use crate::cache::store::{Cache, CacheError};
use crate::engine::k3s::K3sSpec;
use crate::fetch::{FetchError, Http, display_url};
use crate::progress::Progress;

/// The arm64 binary.
pub const BINARY: &str = "k3s-arm64";
/// The images K3s needs to start (pause, CoreDNS, …), zstd-compressed.
pub const IMAGES: &str = "k3s-airgap-images-arm64.tar.zst";
/// The release's SHA-256 list for arm64.
pub const SUMS: &str = "sha256sum-arm64.txt";
/// The installer, named as on the boot partition and in the cache.
pub const INSTALLER: &str = "install.sh";

/// Bounds on what is downloaded: far above the real files (the binary is about 70 MiB, the
/// archive under 200 MiB, the installer some 40 KiB, the list a few hundred bytes), yet bounds.
const MAX_BINARY: u64 = 512 << 20;
const MAX_IMAGES: u64 = 2 << 30;
const MAX_INSTALLER: u64 = 1 << 20;
const MAX_SUMS: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum AirgapError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{url}: SHA-256 mismatch (the release's {SUMS} says {expected}, the download is {actual}); the corrupt download was deleted from the cache"
    )]
    Corrupt {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: {message}")]
    Sums { url: String, message: String },
    #[error(
        "{path}: the cached installer no longer has the SHA-256 recorded when it was first downloaded ({expected}, now {actual}); it was deleted, run again to download it anew",
        path = .path.display()
    )]
    InstallerChanged {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{0} is not in the cache, and --offline forbids downloading it")]
    Offline(String),
}

/// Where a pinned release's files come from.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    release_url: String,
    installer_url: String,
}

impl Release {
    /// The release `spec` pins; `None` without a pinned version (validation refuses that
    /// with `cluster.airgap`).
    pub fn of(spec: &K3sSpec) -> Option<Release> {
        let version = spec.version.clone()?;
        let default_installer = K3sSpec::default().install_url;
        // The online default, get.k3s.io, is whatever installer is newest: the tag's own is
        // taken instead. A URL the profile sets is its author's choice, used as it is.
        let installer_url = if spec.install_url == default_installer {
            format!(
                "https://raw.githubusercontent.com/k3s-io/k3s/{}/install.sh",
                encode_tag(&version)
            )
        } else {
            spec.install_url.clone()
        };
        Some(Release {
            release_url: spec.release_url.trim_end_matches('/').to_string(),
            installer_url,
            version,
        })
    }

    /// The URL of a release asset.
    pub fn asset_url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.release_url, encode_tag(&self.version))
    }

    pub fn installer_url(&self) -> &str {
        &self.installer_url
    }
}

/// A tag in a URL path: K3s tags carry `+` (`v1.33.5+k3s1`), which GitHub's release URLs
/// spell `%2B`. The other characters of a tag validation accepts need no encoding.
fn encode_tag(tag: &str) -> String {
    tag.replace('+', "%2B")
}

/// One verified file in the cache.
#[derive(Debug, Clone)]
pub struct ReleaseFile {
    /// The name on the boot partition (that of the release asset).
    pub name: &'static str,
    pub path: PathBuf,
    pub len: u64,
    pub sha256: String,
}

/// The files a node installs K3s from, verified.
#[derive(Debug, Clone)]
pub struct AirgapFiles {
    pub version: String,
    pub files: Vec<ReleaseFile>,
    /// Downloaded now (not found in the cache).
    pub downloaded: Vec<&'static str>,
    /// The release directory's shared lock, held while these files may still be read (the
    /// run's cards or images written): `cache clean` leaves the directory alone meanwhile.
    _in_use: std::sync::Arc<Lock>,
}

impl AirgapFiles {
    /// Bytes on the boot partition.
    pub fn total(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// The files as [`crate::bootfs::content::BulkFile`]s under `dir` on the boot partition.
    pub fn bulk(&self, dir: &str) -> Vec<crate::bootfs::content::BulkFile> {
        self.files
            .iter()
            .map(|f| crate::bootfs::content::BulkFile {
                path: format!("{dir}/{}", f.name),
                source: f.path.clone(),
                len: f.len,
            })
            .collect()
    }
}

/// The files of `release`, from the cache or downloaded into it (`http` is `None` offline).
pub fn obtain(
    cache: &Cache,
    http: Option<&Http>,
    release: &Release,
    progress: &dyn Progress,
) -> Result<AirgapFiles, AirgapError> {
    let parent = cache.files_dir(Path::new(crate::cache::store::RELEASES))?;
    let lock_io = |path: PathBuf| move |source| AirgapError::Io { path, source };
    // In use first (before the directory is created or read), then the right to download.
    let in_use_path = crate::cache::store::release_lock(&parent, &release.version);
    let in_use = Lock::shared(&in_use_path).map_err(lock_io(in_use_path.clone()))?;
    let fetch_path = parent.join(format!("{}.fetch.lock", release.version));
    let _fetching = Lock::acquire(&fetch_path, || {}).map_err(lock_io(fetch_path.clone()))?;
    let dir = cache.files_dir(&Path::new(crate::cache::store::RELEASES).join(&release.version))?;
    let mut downloaded = Vec::new();
    let sums_path = dir.join(SUMS);
    let sums_url = release.asset_url(SUMS);
    if !sums_path.is_file() {
        let http = http.ok_or_else(|| AirgapError::Offline(display_url(&sums_url)))?;
        let body = http.get_small(&sums_url, MAX_SUMS)?;
        crate::cleanup::write_atomic_mode(&sums_path, &body, 0o644).map_err(|source| {
            AirgapError::Io {
                path: sums_path.clone(),
                source,
            }
        })?;
        downloaded.push(SUMS);
    }
    let text = crate::input::read_text(&sums_path, MAX_SUMS, "a SHA-256 list").map_err(|e| {
        AirgapError::Sums {
            url: display_url(&sums_url),
            message: e.to_string(),
        }
    })?;
    let mut files = Vec::new();
    for (name, limit) in [(BINARY, MAX_BINARY), (IMAGES, MAX_IMAGES)] {
        let expected = sum_of(&text, name).ok_or_else(|| AirgapError::Sums {
            url: display_url(&sums_url),
            message: format!("lists no SHA-256 for {name}; is this a K3s release?"),
        })?;
        let url = release.asset_url(name);
        let (file, fresh) = verified(&dir, name, &url, &expected, limit, http, progress)?;
        if fresh {
            downloaded.push(name);
        }
        files.push(file);
    }
    let (installer, fresh) = installer(&dir, release.installer_url(), http, progress)?;
    if fresh {
        downloaded.push(INSTALLER);
    }
    files.push(installer);
    cache.give_back();
    Ok(AirgapFiles {
        version: release.version.clone(),
        files,
        downloaded,
        _in_use: std::sync::Arc::new(in_use),
    })
}

/// What air-gap places on every boot partition, for `profile check` and `render`: the
/// files, where they come from, and their sizes when they are in the cache already (not
/// verified here: `prepare` and `flash` verify before use).
pub fn describe(release: &Release, cache: Option<&Cache>) -> String {
    let dir = cache.map(|c| c.root.join("releases/k3s").join(&release.version));
    let sizes: Option<Vec<u64>> = dir.and_then(|dir| {
        [BINARY, IMAGES, INSTALLER]
            .iter()
            .map(|name| {
                fs::symlink_metadata(dir.join(name))
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
            })
            .collect()
    });
    let size = |i: usize| {
        sizes
            .as_ref()
            .map(|s| format!(" {}", crate::ui::size::binary(s[i])))
            .unwrap_or_default()
    };
    let total = match &sizes {
        Some(s) => format!(
            "{} on the boot partition",
            crate::ui::size::binary(s.iter().sum())
        ),
        None => "sizes known once prepare or flash downloaded them".to_string(),
    };
    format!(
        "K3s {} from the boot partition: {BINARY}{}, {IMAGES}{}, {INSTALLER}{} ({total}); \
         release files from {}, verified against its {SUMS}; installer from {}",
        release.version,
        size(0),
        size(1),
        size(2),
        display_url(&release.asset_url("")),
        display_url(release.installer_url()),
    )
}

/// The SHA-256 `sha256sum` output lists for `name` (`<hex>  <name>`, or `*<name>` for
/// binary mode), lower-cased.
fn sum_of(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (hash, file) = line.trim().split_once(char::is_whitespace)?;
        let file = file.trim_start();
        let file = file.strip_prefix('*').unwrap_or(file);
        let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (ok && file == name).then(|| hash.to_ascii_lowercase())
    })
}

/// `dir/name` with SHA-256 `expected`: the cached copy when it still matches, else
/// downloaded (resumably, through a `.part`) and checked. `true` when downloaded now.
fn verified(
    dir: &Path,
    name: &'static str,
    url: &str,
    expected: &str,
    limit: u64,
    http: Option<&Http>,
    progress: &dyn Progress,
) -> Result<(ReleaseFile, bool), AirgapError> {
    let path = dir.join(name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AirgapError::Io { path, source }
    };
    if path.is_file() {
        let (sha256, len) = hash(&path, limit).map_err(io(&path))?;
        if sha256 == expected {
            return Ok((
                ReleaseFile {
                    name,
                    path,
                    len,
                    sha256,
                },
                false,
            ));
        }
        // Changed since it was verified (a disk error, a hand edit): downloaded anew.
        fs::remove_file(&path).map_err(io(&path))?;
    }
    let http = http.ok_or_else(|| AirgapError::Offline(display_url(url)))?;
    let part = dir.join(format!("{name}.part"));
    let task = progress.task(name, 0);
    let result = crate::fetch::download(http, url, &part, limit, &task);
    task.finish();
    let got = match result {
        Ok(got) => got,
        Err(e @ FetchError::Oversize { .. }) => {
            remove_part(&part);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    if got.sha256 != expected {
        remove_part(&part);
        return Err(AirgapError::Corrupt {
            url: display_url(url),
            expected: expected.to_string(),
            actual: got.sha256,
        });
    }
    fs::rename(&part, &path).map_err(io(&path))?;
    remove_part(&part);
    Ok((
        ReleaseFile {
            name,
            path,
            len: got.size,
            sha256: got.sha256,
        },
        true,
    ))
}

/// The installer: the cached copy, checked against the SHA-256 recorded when it was first
/// downloaded, or downloaded now and recorded.
fn installer(
    dir: &Path,
    url: &str,
    http: Option<&Http>,
    progress: &dyn Progress,
) -> Result<(ReleaseFile, bool), AirgapError> {
    let path = dir.join(INSTALLER);
    let record = dir.join(format!("{INSTALLER}.sha256"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AirgapError::Io { path, source }
    };
    let recorded = crate::input::read_text(&record, 4096, "a SHA-256 record")
        .ok()
        .and_then(|t| sum_of(&t, INSTALLER));
    if let (true, Some(expected)) = (path.is_file(), &recorded) {
        let (sha256, len) = hash(&path, MAX_INSTALLER).map_err(io(&path))?;
        if &sha256 != expected {
            fs::remove_file(&path).map_err(io(&path))?;
            return Err(AirgapError::InstallerChanged {
                path,
                expected: expected.clone(),
                actual: sha256,
            });
        }
        let file = ReleaseFile {
            name: INSTALLER,
            path,
            len,
            sha256,
        };
        return Ok((file, false));
    }
    let http = http.ok_or_else(|| AirgapError::Offline(display_url(url)))?;
    let part = dir.join(format!("{INSTALLER}.part"));
    let task = progress.task(INSTALLER, 0);
    let result = crate::fetch::download(http, url, &part, MAX_INSTALLER, &task);
    task.finish();
    let got = result.inspect_err(|_| remove_part(&part))?;
    fs::rename(&part, &path).map_err(io(&path))?;
    remove_part(&part);
    let line = format!("{}  {INSTALLER}\n", got.sha256);
    crate::cleanup::write_atomic_mode(&record, line.as_bytes(), 0o644).map_err(io(&record))?;
    Ok((
        ReleaseFile {
            name: INSTALLER,
            path,
            len: got.size,
            sha256: got.sha256,
        },
        true,
    ))
}

/// Deletes a `.part` and its download record.
fn remove_part(part: &Path) {
    let _ = fs::remove_file(part);
    let mut meta = part.as_os_str().to_owned();
    meta.push(".meta");
    let _ = fs::remove_file(PathBuf::from(meta));
}

/// SHA-256 and length of a regular file of at most `limit` bytes.
fn hash(path: &Path, limit: u64) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let (file, meta) = crate::input::open_regular(path).map_err(std::io::Error::other)?;
    if meta.len() > limit {
        return Err(std::io::Error::other(format!(
            "larger than {limit} bytes, which is not a K3s release file"
        )));
    }
    let mut hasher = Sha256::new();
    let mut reader = file.take(limit);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_urls_carry_the_encoded_tag() {
        let spec = K3sSpec {
            version: Some("v1.33.5+k3s1".into()),
            ..K3sSpec::default()
        };
        let release = Release::of(&spec).unwrap();
        assert_eq!(
            release.asset_url(BINARY),
            "https://github.com/k3s-io/k3s/releases/download/v1.33.5%2Bk3s1/k3s-arm64"
        );
        assert_eq!(
            release.installer_url(),
            "https://raw.githubusercontent.com/k3s-io/k3s/v1.33.5%2Bk3s1/install.sh"
        );
        let custom = K3sSpec {
            install_url: "https://example.org/install.sh".into(),
            release_url: "https://mirror.example.org/k3s/".into(),
            ..spec
        };
        let release = Release::of(&custom).unwrap();
        assert_eq!(release.installer_url(), "https://example.org/install.sh");
        assert_eq!(
            release.asset_url(SUMS),
            "https://mirror.example.org/k3s/v1.33.5%2Bk3s1/sha256sum-arm64.txt"
        );
        assert!(Release::of(&K3sSpec::default()).is_none());
    }

    #[test]
    fn sums_are_read_as_sha256sum_writes_them() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let text = format!("{a}  k3s-arm64\n{b} *{IMAGES}\nshort  k3s\n");
        assert_eq!(sum_of(&text, BINARY), Some(a));
        assert_eq!(sum_of(&text, IMAGES), Some("b".repeat(64)));
        assert_eq!(sum_of(&text, "k3s"), None);
        assert_eq!(sum_of(&text, "k3s-arm6"), None);
    }
}
