//! The base image for `prepare` and `render`: a local file used in place (a compressed one
//! is decompressed once into a temporary sparse file next to the output), or a catalog
//! alias / URL obtained through the image cache and used there, read-only.

use std::path::{Path, PathBuf};

use crate::profile::{FieldError, LoadedProfile};
use crate::progress::Progress;

use super::decompress::{Format, decompress, hash_file};
use super::lock::Lock;
use super::resolve::{ImageRef, ResolveError, Resolver};
use super::store::MAX_UNSTATED_SIZE;

/// Why the base image cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A profile value (`os.image`, `os.sha256`) is wrong, with its file and line.
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// The image's SHA-256 is not the one expected.
    #[error("{path}: SHA-256 mismatch: os.sha256 is {expected}, the image has {actual}", path = .path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: {message}", path = .path.display())]
    Path { path: PathBuf, message: String },
}

impl From<super::store::CacheError> for SourceError {
    fn from(e: super::store::CacheError) -> Self {
        SourceError::Resolve(ResolveError::Cache(e))
    }
}

impl SourceError {
    fn path(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> SourceError {
        SourceError::Path {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

type Error = SourceError;

/// A raw image on disk, possibly temporary.
pub struct SourceImage {
    pub path: PathBuf,
    /// What the user named: the original file, URL or alias.
    pub original: String,
    /// The catalog's `init_format`, when the image came from the catalog.
    pub init_format: Option<String>,
    /// Repairs made on the way (see [`super::store::CachedImage::notes`]).
    pub notes: Vec<String>,
    _temp: Option<crate::cleanup::TempFile>,
    _lock: Option<Lock>,
}

impl SourceImage {
    /// `explicit` (from `--image`) or the profile's `os.image` when that is a local path.
    pub fn locate(
        profile: &LoadedProfile,
        explicit: Option<&Path>,
    ) -> Result<Option<PathBuf>, Error> {
        if let Some(path) = explicit {
            return Ok(Some(path.to_path_buf()));
        }
        let image = &profile.profile.os.image;
        if !matches!(ImageRef::classify(image), ImageRef::Path(_)) {
            return Ok(None);
        }
        let path = crate::profile::secret::expand_path(image, &profile.base_dir())
            .map_err(|e| Error::Field(profile.error_at("os.image", e.to_string())))?;
        if !path.exists() {
            return Err(Error::Field(profile.error_at(
                "os.image",
                format!("{} does not exist", path.display()),
            )));
        }
        Ok(Some(path))
    }

    /// The base image `prepare` uses: `--image`, or the profile's `os.image` (a path, used in
    /// place and checked against `os.sha256` when given; an alias or URL, from the cache).
    pub fn for_profile(
        profile: &LoadedProfile,
        explicit: Option<&Path>,
        resolver: &Resolver,
        scratch_dir: &Path,
        progress: &dyn Progress,
        on_wait: impl FnOnce(),
    ) -> Result<SourceImage, Error> {
        let os = &profile.profile.os;
        if let Some(path) = Self::locate(profile, explicit)? {
            let expected = if explicit.is_none() {
                os.sha256.as_deref()
            } else {
                None
            };
            return Self::open(&path, scratch_dir, progress, expected).map_err(|e| match e {
                Error::Checksum {
                    expected, actual, ..
                } => Error::Field(profile.error_at(
                    "os.sha256",
                    format!("SHA-256 mismatch: os.sha256 is {expected}, the image has {actual}"),
                )),
                other => other,
            });
        }
        let http = resolver.http()?;
        let wanted = resolver
            .wanted(&os.image, os.sha256.as_deref(), http.as_ref())
            .map_err(|e| match e {
                ResolveError::Reference(message) => {
                    Error::Field(profile.error_at("os.image", message))
                }
                ResolveError::Catalog(crate::catalog::CatalogError::Lookup(message)) => {
                    Error::Field(profile.error_at("os.image", message))
                }
                other => Error::from(other),
            })?;
        let cached = resolver
            .cache
            .obtain(&wanted, http.as_ref(), progress, on_wait)?;
        let lock_path = resolver.cache.lock_path(wanted.sha256.as_str());
        let lock = Lock::shared(&lock_path).map_err(|e| Error::path(&lock_path, e))?;
        Ok(SourceImage {
            path: cached.path,
            original: os.image.clone(),
            init_format: wanted.init_format.clone(),
            notes: cached.notes,
            _temp: None,
            _lock: Some(lock),
        })
    }

    /// Opens `path`, decompressing it into `scratch_dir` when it is compressed, and checks
    /// the SHA-256 of the raw image against `expected` when given.
    pub fn open(
        path: &Path,
        scratch_dir: &Path,
        progress: &dyn Progress,
        expected: Option<&str>,
    ) -> Result<SourceImage, Error> {
        // A FIFO or a device like /dev/zero is refused here, at once, with its kind named.
        crate::input::open_image(path)?;
        let format = Format::sniff(path).map_err(|e| Error::path(path, e))?;
        let check = |actual: &str| -> Result<(), Error> {
            match expected.map(|e| e.trim().to_ascii_lowercase()) {
                Some(e) if e != actual => Err(Error::Checksum {
                    path: path.to_path_buf(),
                    expected: e,
                    actual: actual.to_string(),
                }),
                _ => Ok(()),
            }
        };
        let Some(format) = format else {
            if expected.is_some() {
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let bar = progress.task("checking", len);
                let hashed = hash_file(path, &bar).map_err(|e| Error::path(path, e))?;
                bar.finish();
                check(&hashed.sha256)?;
            }
            return Ok(SourceImage {
                path: path.to_path_buf(),
                original: path.display().to_string(),
                init_format: None,
                notes: Vec::new(),
                _temp: None,
                _lock: None,
            });
        };
        let temp = crate::cleanup::TempFile::new_in(scratch_dir, "base")
            .map_err(|e| Error::path(scratch_dir, e))?;
        let compressed = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = progress.task("decompressing", compressed);
        let out = decompress(path, format, temp.as_file(), MAX_UNSTATED_SIZE, &bar)
            .map_err(|e| Error::path(path, e))?;
        bar.finish();
        check(&out.sha256)?;
        Ok(SourceImage {
            path: temp.path().to_path_buf(),
            original: path.display().to_string(),
            init_format: None,
            notes: Vec::new(),
            _temp: Some(temp),
            _lock: None,
        })
    }
}
