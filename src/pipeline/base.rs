//! The base image every node of a run starts from: a local file used in place (a compressed
//! one is decompressed once into a temporary sparse file next to the output), or a catalog
//! alias / URL obtained through the image cache and used there, read-only.
//!
//! The base is located and obtained once per run, and its OS (generation, first-boot route)
//! is detected once, lazily, when the first node is customised: every node of the run is
//! rendered for the same OS.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cache::decompress::{Format, decompress, hash_file};
use crate::cache::lock::Lock;
use crate::cache::resolve::{ImageRef, ResolveError, Resolver};
use crate::cache::store::MAX_UNSTATED_SIZE;
use crate::image::Image;
use crate::osinfo::OsInfo;
use crate::profile::LoadedProfile;
use crate::progress::Progress;

use super::PipelineError;

/// Why a local base image could not be opened: a mismatching SHA-256 is told apart, so that
/// it can be reported at the profile's `os.sha256`.
enum OpenError {
    Mismatch { path: PathBuf, message: String },
    Other(PipelineError),
}

impl From<PipelineError> for OpenError {
    fn from(e: PipelineError) -> Self {
        OpenError::Other(e)
    }
}

impl From<OpenError> for PipelineError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Mismatch { path, message } => PipelineError::path(path, message),
            OpenError::Other(e) => e,
        }
    }
}

/// The SHA-256 a raw image must have, and what named it (`os.sha256`, a `.sha256` file).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) sha256: &'a str,
    pub(crate) named_by: &'a str,
}

/// What a file checked by [`check_image_file`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFileKind {
    /// A disk image: a partition table (MBR, or GPT behind its protective MBR).
    Raw,
    /// A compressed image (xz, gzip, zstd), checked once decompressed.
    Compressed,
}

/// Whether `path` can be a base image: a regular file (or a block device) that is a disk
/// image (its first sector has the boot signature) or a compressed one. The one rule for
/// every image a person names: `prepare --image`, `inspect`, a local `os.image` and the
/// wizard's image file (which asks again when this refuses), so that a wrong file is turned
/// away at once with the reason, not after minutes of work or at boot.
pub fn check_image_file(path: &Path) -> Result<ImageFileKind, PipelineError> {
    use std::io::Read;
    // A FIFO or a device like /dev/zero is refused here, at once, with its kind named.
    let file = crate::input::open_image(path)?;
    let failed = |e: std::io::Error| PipelineError::path(path, e);
    if Format::sniff(path).map_err(failed)?.is_some() {
        return Ok(ImageFileKind::Compressed);
    }
    let mut sector = Vec::with_capacity(512);
    file.take(512).read_to_end(&mut sector).map_err(failed)?;
    if sector.len() < 512 {
        let len = sector.len() as u64;
        return Err(PipelineError::path(
            path,
            crate::disk::DiskError::TooSmall { len },
        ));
    }
    if sector[510..512] != [0x55, 0xaa] {
        return Err(PipelineError::path(
            path,
            format!(
                "not a disk image: {}",
                crate::disk::DiskError::NoPartitionTable
            ),
        ));
    }
    Ok(ImageFileKind::Raw)
}

/// What `cluster.airgap` puts on cards beyond the base image, obtained once per run with the
/// base (see [`BaseImage::for_profile`]): the K3s release files every node installs from, and
/// the runners' charts the founder's HelmCharts embed (`chartContent`).
#[derive(Debug, Clone, Default)]
pub struct AirgapPayload {
    pub release: Option<crate::engine::airgap::AirgapFiles>,
    pub charts: crate::ci::chart_source::Charts,
}

impl AirgapPayload {
    /// The bytes every node's overlay holds for air-gap (the release files on its boot
    /// partition; the charts, kilobytes, on the founder's only): see [`super::memory`].
    pub fn bytes_per_node(&self) -> u64 {
        self.release.as_ref().map_or(0, |r| r.total())
    }
}

/// A raw image on disk, possibly temporary.
pub struct BaseImage {
    pub path: PathBuf,
    /// What the user named: the original file, URL or alias.
    pub original: String,
    /// The catalog's `init_format`, when the image came from the catalog.
    pub init_format: Option<String>,
    /// Repairs made on the way (see [`crate::cache::store::CachedImage::notes`]).
    pub notes: Vec<String>,
    /// The OS the image holds, detected by the first node customised.
    os: OnceLock<OsInfo>,
    _temp: Option<crate::cleanup::TempFile>,
    _lock: Option<Lock>,
    /// With `cluster.airgap`: what every node's card gets beyond the image.
    pub airgap: AirgapPayload,
}

impl BaseImage {
    /// `explicit` (from `--image`) or the profile's `os.image` when that is a local path.
    pub fn locate(
        profile: &LoadedProfile,
        explicit: Option<&Path>,
    ) -> Result<Option<PathBuf>, PipelineError> {
        if let Some(path) = explicit {
            return Ok(Some(path.to_path_buf()));
        }
        let image = &profile.profile.os.image;
        if !matches!(ImageRef::classify(image), ImageRef::Path(_)) {
            return Ok(None);
        }
        let path = crate::profile::secret::expand_path(image, &profile.base_dir())
            .map_err(|e| PipelineError::Field(profile.error_at("os.image", e.to_string())))?;
        if !path.exists() {
            return Err(PipelineError::Field(profile.error_at(
                "os.image",
                format!("{} does not exist", path.display()),
            )));
        }
        Ok(Some(path))
    }

    /// The base image `prepare` uses: `--image`, or the profile's `os.image` (a path, used in
    /// place and checked against `os.sha256` when given; an alias or URL, from the cache).
    ///
    /// With `cluster.airgap`, what the cards need beyond the image is obtained too (from the
    /// cache, or downloaded through it and verified) before any node is made: the K3s release
    /// files and the runners' charts (see [`AirgapPayload`]).
    pub fn for_profile(
        profile: &LoadedProfile,
        explicit: Option<&Path>,
        resolver: &Resolver,
        scratch_dir: &Path,
        progress: &dyn Progress,
        on_wait: impl FnOnce(),
    ) -> Result<BaseImage, PipelineError> {
        let mut base =
            Self::image_for_profile(profile, explicit, resolver, scratch_dir, progress, on_wait)?;
        base.airgap = AirgapPayload {
            release: airgap_files(profile, resolver, progress)?,
            charts: charts_for_profile(profile, resolver)?,
        };
        Ok(base)
    }

    /// [`BaseImage::for_profile`] without the air-gap files: the base image only (for
    /// `render`, which places no release files).
    pub fn image_for_profile(
        profile: &LoadedProfile,
        explicit: Option<&Path>,
        resolver: &Resolver,
        scratch_dir: &Path,
        progress: &dyn Progress,
        on_wait: impl FnOnce(),
    ) -> Result<BaseImage, PipelineError> {
        let os = &profile.profile.os;
        if let Some(path) = Self::locate(profile, explicit)? {
            let expected = if explicit.is_none() {
                os.sha256.as_deref()
            } else {
                None
            };
            let expected = expected.map(|sha256| Expected {
                sha256,
                named_by: "os.sha256",
            });
            return Self::open_checked(&path, scratch_dir, progress, expected).map_err(
                |e| match e {
                    OpenError::Mismatch { message, .. } => {
                        PipelineError::Field(profile.error_at("os.sha256", message))
                    }
                    OpenError::Other(e) => e,
                },
            );
        }
        let http = resolver.http()?;
        let wanted = resolver
            .wanted(&os.image, os.sha256.as_deref(), http.as_ref(), progress)
            .map_err(|e| match e {
                ResolveError::Reference(message) => {
                    PipelineError::Field(profile.error_at("os.image", message))
                }
                ResolveError::Catalog(crate::catalog::CatalogError::Lookup(message)) => {
                    PipelineError::Field(profile.error_at("os.image", message))
                }
                other => PipelineError::from(other),
            })?;
        let cached = resolver
            .cache
            .obtain(&wanted, http.as_ref(), progress, on_wait)
            .map_err(ResolveError::Cache)?;
        let lock_path = resolver.cache.lock_path(wanted.sha256.as_str());
        let lock = Lock::shared(&lock_path).map_err(|e| PipelineError::path(&lock_path, e))?;
        // A catalog that could not be reached is said first, then what the cache repaired.
        let notes = wanted
            .origin
            .fallback()
            .map(str::to_string)
            .into_iter()
            .chain(cached.notes)
            .collect();
        Ok(BaseImage {
            path: cached.path,
            original: os.image.clone(),
            init_format: wanted.init_format.clone(),
            notes,
            os: OnceLock::new(),
            _temp: None,
            _lock: Some(lock),
            airgap: AirgapPayload::default(),
        })
    }

    /// Opens `path`, decompressing it into `scratch_dir` when it is compressed, and checks
    /// the SHA-256 of the raw image against `expected` when given.
    pub fn open(
        path: &Path,
        scratch_dir: &Path,
        progress: &dyn Progress,
        expected: Option<&str>,
    ) -> Result<BaseImage, PipelineError> {
        let expected = expected.map(|sha256| Expected {
            sha256,
            named_by: "os.sha256",
        });
        Ok(Self::open_checked(path, scratch_dir, progress, expected)?)
    }

    /// [`BaseImage::open`] with the SHA-256 the raw image must have and where it was read
    /// (`named_by`, e.g. a `.sha256` file beside the image), for the mismatch message.
    pub(crate) fn open_expecting(
        path: &Path,
        scratch_dir: &Path,
        progress: &dyn Progress,
        expected: Option<Expected<'_>>,
    ) -> Result<BaseImage, PipelineError> {
        Ok(Self::open_checked(path, scratch_dir, progress, expected)?)
    }

    fn open_checked(
        path: &Path,
        scratch_dir: &Path,
        progress: &dyn Progress,
        expected: Option<Expected<'_>>,
    ) -> Result<BaseImage, OpenError> {
        // Not an image (a FIFO, /dev/zero, a text file): refused at once, with the reason.
        let kind = check_image_file(path)?;
        let failed = |e: std::io::Error| OpenError::Other(PipelineError::path(path, e));
        let format = match kind {
            ImageFileKind::Raw => None,
            ImageFileKind::Compressed => Format::sniff(path).map_err(failed)?,
        };
        let check = |actual: &str| -> Result<(), OpenError> {
            match expected.map(|e| (e.sha256.trim().to_ascii_lowercase(), e.named_by)) {
                Some((e, named_by)) if e != actual => Err(OpenError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!("SHA-256 mismatch: {named_by} is {e}, the image has {actual}"),
                }),
                _ => Ok(()),
            }
        };
        let Some(format) = format else {
            if expected.is_some() {
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let bar = progress.task("checking", len);
                let hashed = hash_file(path, &bar).map_err(failed)?;
                bar.finish();
                check(&hashed.sha256)?;
            }
            return Ok(BaseImage {
                path: path.to_path_buf(),
                original: path.display().to_string(),
                init_format: None,
                notes: Vec::new(),
                os: OnceLock::new(),
                _temp: None,
                _lock: None,
                airgap: AirgapPayload::default(),
            });
        };
        let temp = crate::cleanup::TempFile::new_in(scratch_dir, "base")
            .map_err(|e| OpenError::Other(PipelineError::path(scratch_dir, e)))?;
        let compressed = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = progress.task("decompressing", compressed);
        let out =
            decompress(path, format, temp.as_file(), MAX_UNSTATED_SIZE, &bar).map_err(failed)?;
        bar.finish();
        check(&out.sha256)?;
        Ok(BaseImage {
            path: temp.path().to_path_buf(),
            original: path.display().to_string(),
            init_format: None,
            notes: Vec::new(),
            os: OnceLock::new(),
            _temp: Some(temp),
            _lock: None,
            airgap: AirgapPayload::default(),
        })
    }

    /// Opens the base read-only (the node's changes go to an overlay), with the OS detected
    /// by the first call (`forced`: the profile's `os.init`, when it names a route).
    pub(super) fn open_for_node(
        &self,
        forced: Option<crate::osinfo::ForcedInit>,
    ) -> Result<(Image, OsInfo), PipelineError> {
        let mut image = Image::open(&self.path, false)?;
        let os = match self.os.get() {
            Some(os) => os.clone(),
            None => {
                let os = image.detect_os(self.init_format.as_deref(), forced)?;
                self.os.get_or_init(|| os).clone()
            }
        };
        Ok((image, os))
    }

    /// The OS the image holds, once a node has been customised.
    pub fn os(&self) -> Option<&OsInfo> {
        self.os.get()
    }

    /// The size of the raw base image.
    pub fn size(&self) -> Result<u64, PipelineError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| PipelineError::path(&self.path, e))
    }
}

/// The K3s release files of a profile with `cluster.airgap` (`None` without it).
pub(crate) fn airgap_files(
    profile: &LoadedProfile,
    resolver: &Resolver,
    progress: &dyn Progress,
) -> Result<Option<crate::engine::airgap::AirgapFiles>, PipelineError> {
    let Some(cluster) = profile.profile.cluster.as_ref().filter(|c| c.airgap) else {
        return Ok(None);
    };
    let release = crate::engine::airgap::Release::of(cluster.k3s()).ok_or_else(|| {
        PipelineError::Field(profile.error_at(
            "cluster.airgap",
            "needs a pinned release: set cluster.k3s.version",
        ))
    })?;
    let http = resolver.http()?;
    Ok(Some(crate::engine::airgap::obtain(
        &resolver.cache,
        http.as_ref(),
        &release,
        progress,
    )?))
}

/// The runners' charts `profile` needs embedded (none without `cluster.airgap`), from the
/// resolver's cache, downloaded through it unless offline.
pub fn charts_for_profile(
    profile: &LoadedProfile,
    resolver: &Resolver,
) -> Result<crate::ci::chart_source::Charts, PipelineError> {
    let Some(cluster) = &profile.profile.cluster else {
        return Ok(Default::default());
    };
    let (Some(runners), true) = (&cluster.runner, cluster.airgap) else {
        return Ok(Default::default());
    };
    let http = resolver.http()?;
    Ok(crate::ci::chart_source::obtain(
        runners,
        &resolver.cache,
        http.as_ref(),
    )?)
}
