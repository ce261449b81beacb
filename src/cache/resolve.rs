//! From what the user wrote (`os.image`, `--os`) to a verified base image in the cache.
//!
//! - a catalog alias (`raspios-lite-arm64`, `raspios-lite-arm64@2025-10-01`): the catalog
//!   says where it is and what its SHA-256 is;
//! - an `https://` URL: the SHA-256 must come from `os.sha256` / `--sha256`, since nothing
//!   else vouches for the file;
//! - a local path is not handled here (see `pipeline::base`): it is used in place.
//!
//! Offline (`--offline`, or a catalog that cannot be reached), the catalog comes from the copy
//! kept at the last successful fetch, and failing that from what the cache entries remember
//! about themselves; when that happens without `--offline`, the user is told which copy is
//! used ([`Catalog::fallback`], [`Origin::Recorded`]).

use std::path::PathBuf;

use crate::catalog::{self, Catalog, CatalogError, OsEntry};
use crate::digest::Sha256Hex;
use crate::fetch::{FetchError, Http, HttpSettings, Redacted, is_http_url};
use crate::progress::Progress;

use super::store::{Cache, CacheError, Origin, Wanted};

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The image reference (alias, URL, `os.sha256`) cannot name an image to cache: the
    /// caller says which profile key or flag was wrong.
    #[error("{0}")]
    Reference(String),
}

/// What kind of thing an image reference is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageRef {
    Alias(String),
    Url(String),
    Path(PathBuf),
}

impl ImageRef {
    pub(crate) fn classify(image: &str) -> ImageRef {
        if is_http_url(image) {
            ImageRef::Url(image.to_string())
        } else if image.contains('/') || image.contains(".img") || image.starts_with('~') {
            ImageRef::Path(PathBuf::from(image))
        } else {
            ImageRef::Alias(image.to_string())
        }
    }
}

/// Catalog + cache + network settings, as the global options set them.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub cache: Cache,
    /// URL or file of the catalog.
    pub(crate) catalog: String,
    pub(crate) offline: bool,
    pub(crate) settings: HttpSettings,
}

impl Resolver {
    pub fn new(cache: Cache, catalog: Option<String>, offline: bool) -> Resolver {
        Resolver {
            cache,
            catalog: catalog.unwrap_or_else(|| catalog::DEFAULT_URL.to_string()),
            offline,
            settings: HttpSettings::from_env(),
        }
    }

    pub fn http(&self) -> Result<Option<Http>, ResolveError> {
        if self.offline {
            Ok(None)
        } else {
            Ok(Some(Http::new(self.settings.clone())?))
        }
    }

    /// Whether the catalog is fetched over the network (a URL), rather than read from a file.
    pub fn catalog_is_remote(&self) -> bool {
        is_http_url(&self.catalog)
    }

    /// Whether `--offline` was given.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The catalog: fetched (and a copy kept), or from that copy when `--offline` or when the
    /// catalog cannot be reached. A catalog taken from the copy without `--offline` carries
    /// [`Catalog::fallback`], the line that tells the user so. While it is fetched, `progress`
    /// shows a spinner (on a terminal).
    pub fn load_catalog(
        &self,
        http: Option<&Http>,
        progress: &dyn Progress,
    ) -> Result<Catalog, ResolveError> {
        let copy = self.cache.catalog_copy(&self.catalog);
        self.load_catalog_with(http, progress, copy.is_file())
    }

    /// [`Resolver::load_catalog`]; `fallback_ready` says whether something can stand in for
    /// the catalog when it cannot be reached (its copy, or the cached image wanted), which
    /// makes the fetch impatient (see [`HttpSettings::for_catalog`]).
    fn load_catalog_with(
        &self,
        http: Option<&Http>,
        progress: &dyn Progress,
        fallback_ready: bool,
    ) -> Result<Catalog, ResolveError> {
        if !self.catalog_is_remote() {
            return Ok(Catalog::load(&self.catalog, http)?);
        }
        let Some(http) = http else {
            return self.catalog_copy(None).ok_or_else(|| {
                ResolveError::Reference(format!(
                    "--offline: no copy of the OS catalog {} in the cache yet (run once \
                     online, or pass --catalog FILE)",
                    Redacted(&self.catalog)
                ))
            });
        };
        let fetched = {
            let _spinner = Finishing(progress.spinner(&format!(
                "fetching the OS catalog {}",
                Redacted(&self.catalog)
            )));
            self.fetch_catalog(http, fallback_ready)
        };
        match fetched {
            Ok(catalog) => Ok(catalog),
            Err(e) => {
                // Unreachable, silent, a server error, or something that is not a catalog
                // (a captive portal's page): the kept copy, if any, saying so.
                self.catalog_copy(Some(&reason(&e))).ok_or(e)
            }
        }
    }

    /// The catalog fetched now through a client with the catalog's timeouts; a copy is kept.
    fn fetch_catalog(&self, http: &Http, fallback_ready: bool) -> Result<Catalog, ResolveError> {
        let impatient = Http::new(http.settings.for_catalog(fallback_ready))?;
        let bytes = impatient
            .get_small(&self.catalog, catalog::MAX_DOCUMENT)
            .map_err(CatalogError::from)?;
        let catalog = Catalog::parse(&self.catalog, &bytes, true)?;
        self.cache.save_catalog(&self.catalog, &bytes);
        Ok(catalog)
    }

    /// The kept copy of the catalog, if there is a readable, valid one. `unreachable` is why
    /// the catalog itself was not used (None: `--offline`, which the user asked for).
    fn catalog_copy(&self, unreachable: Option<&str>) -> Option<Catalog> {
        let path = self.cache.catalog_copy(&self.catalog);
        let bytes =
            crate::input::read_regular(&path, catalog::MAX_DOCUMENT, "an OS catalog").ok()?;
        let source = format!("{} (cached copy)", Redacted(&self.catalog));
        let mut catalog = Catalog::parse(&source, &bytes, true).ok()?;
        catalog.fallback = unreachable.map(|why| {
            let date = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(day_of)
                .unwrap_or_else(|_| "an earlier run".into());
            format!("catalog unreachable ({why}): using the copy from {date}")
        });
        Some(catalog)
    }

    /// What to put in the cache for `image` (an alias or URL); `sha256` from the profile or
    /// the command line.
    pub fn wanted(
        &self,
        image: &str,
        sha256: Option<&str>,
        http: Option<&Http>,
        progress: &dyn Progress,
    ) -> Result<Wanted, ResolveError> {
        let sha256 = sha256
            .map(Sha256Hex::parse)
            .transpose()
            .map_err(|e| ResolveError::Reference(e.to_string()))?;
        match ImageRef::classify(image) {
            ImageRef::Url(url) => {
                let Some(sha256) = sha256 else {
                    return Err(ResolveError::Reference(format!(
                        "{}: no catalog vouches for this URL; give the SHA-256 of the \
                         uncompressed image as os.sha256 (or --sha256)",
                        crate::fetch::display_url(&url)
                    )));
                };
                let name = super::store::file_name_of(&url);
                Ok(Wanted {
                    sha256,
                    name,
                    aliases: catalog::alias::aliases_for(&url),
                    url,
                    release_date: None,
                    init_format: None,
                    extract_size: None,
                    download_size: None,
                    download_sha256: None,
                    origin: Origin::default(),
                })
            }
            ImageRef::Alias(spec) => {
                let (entry, origin) = self.resolve_alias(&spec, http, progress)?;
                if let Some(s) = &sha256
                    && *s != entry.extract_sha256
                {
                    return Err(ResolveError::Reference(format!(
                        "{spec}: os.sha256 is {s}, but the catalog gives {} for {}",
                        entry.extract_sha256, entry.name
                    )));
                }
                Ok(Wanted {
                    origin,
                    ..wanted_from_entry(&entry)
                })
            }
            ImageRef::Path(path) => Err(ResolveError::Reference(format!(
                "{} is a local file: it is used in place, not cached",
                path.display()
            ))),
        }
    }

    fn resolve_alias(
        &self,
        spec: &str,
        http: Option<&Http>,
        progress: &dyn Progress,
    ) -> Result<(OsEntry, Origin), ResolveError> {
        let parsed = catalog::alias::Spec::parse(spec).map_err(ResolveError::Reference)?;
        let cached = || {
            self.cache
                .find_by_alias(&parsed.alias, parsed.date.as_deref())
        };
        let fallback_ready = self.cache.catalog_copy(&self.catalog).is_file() || cached().is_some();
        let mut catalog = match self.load_catalog_with(http, progress, fallback_ready) {
            Ok(c) => c,
            // No catalog and no copy of it: the cache entry may still know the alias.
            Err(e) if self.catalog_is_remote() => {
                let Some(w) = cached() else {
                    return Err(self.nothing_for(spec, e));
                };
                let fallback = http.map(|_| {
                    let why = reason(&e);
                    format!(
                        "catalog unreachable ({why}): using the cached image {} ({})",
                        w.name,
                        w.release_date.as_deref().unwrap_or("undated")
                    )
                });
                return Ok((entry_from_wanted(&w), Origin::Recorded { fallback }));
            }
            Err(e) => return Err(e),
        };
        // A kept copy names sub-lists that cannot be fetched now either: not tried.
        let (http, origin) = match &catalog.fallback {
            Some(note) => (
                None,
                Origin::Recorded {
                    fallback: Some(note.clone()),
                },
            ),
            None if http.is_none() && self.catalog_is_remote() => {
                (None, Origin::Recorded { fallback: None })
            }
            None => (http, Origin::Contacted),
        };
        let entry = catalog.resolve(spec, http)?;
        // Without the network, an image the copy names but the cache lacks cannot be had;
        // one of the same alias that the cache holds can (the copy may be newer than it).
        if http.is_none()
            && self.catalog_is_remote()
            && !self.cache.has_image(&entry.extract_sha256)
            && let Some(w) = cached()
        {
            let fallback = origin.fallback().map(|note| {
                format!(
                    "{note}; {} ({}) is not in the cache, using the cached {} ({})",
                    entry.name,
                    entry.release_date.as_deref().unwrap_or("undated"),
                    w.name,
                    w.release_date.as_deref().unwrap_or("undated")
                )
            });
            return Ok((entry_from_wanted(&w), Origin::Recorded { fallback }));
        }
        Ok((entry, origin))
    }

    /// The error when neither the catalog, nor its copy, nor the cache can name `spec`: it
    /// names the ways out.
    fn nothing_for(&self, spec: &str, e: ResolveError) -> ResolveError {
        const WAYS_OUT: &str = "Ways out: a local image with --image FILE (or os.image: PATH), \
                                another catalog with --catalog FILE|URL, or one run with the \
                                network (afterwards --offline works without it)";
        if self.offline {
            return ResolveError::Reference(format!(
                "{spec}: --offline, and neither the image nor a copy of the OS catalog {} is in \
                 the cache. {WAYS_OUT}",
                Redacted(&self.catalog)
            ));
        }
        let why = e.to_string();
        let why = why.strip_prefix("OS catalog: ").unwrap_or(&why);
        ResolveError::Reference(format!(
            "{spec}: the OS catalog cannot be used ({why}), no copy of it is kept, and the image \
             is not in the cache. {WAYS_OUT}"
        ))
    }
}

/// Why the catalog could not be used, short, for the line saying what stands in for it
/// (the URL is said elsewhere; "not retried: check the network" is beside the point there).
fn reason(e: &ResolveError) -> String {
    match e {
        ResolveError::Catalog(CatalogError::Fetch(FetchError::Unreachable { message, .. })) => {
            message.clone()
        }
        other => {
            let text = other.to_string();
            text.strip_prefix("OS catalog: ")
                .unwrap_or(&text)
                .to_string()
        }
    }
}

/// Ends a task (a spinner) however the code that holds it ends.
struct Finishing(crate::progress::Task);

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A file time as the day it fell on (UTC), `YYYY-MM-DD`.
fn day_of(t: std::time::SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!("{}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn wanted_from_entry(entry: &OsEntry) -> Wanted {
    Wanted {
        sha256: entry.extract_sha256.clone(),
        name: entry.name.clone(),
        url: entry.url.clone(),
        aliases: entry.aliases(),
        release_date: entry.release_date.clone(),
        init_format: entry.init_format.clone(),
        extract_size: Some(entry.extract_size),
        download_size: entry.image_download_size,
        download_sha256: entry.image_download_sha256.clone(),
        origin: Origin::default(),
    }
}

fn entry_from_wanted(w: &Wanted) -> OsEntry {
    OsEntry {
        name: w.name.clone(),
        description: String::new(),
        url: w.url.clone(),
        extract_size: w.extract_size.unwrap_or(0),
        extract_sha256: w.sha256.clone(),
        image_download_size: w.download_size,
        image_download_sha256: w.download_sha256.clone(),
        release_date: w.release_date.clone(),
        init_format: w.init_format.clone(),
        devices: Vec::new(),
        architecture: None,
        category: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_classified() {
        assert_eq!(
            ImageRef::classify("raspios-lite-arm64"),
            ImageRef::Alias("raspios-lite-arm64".into())
        );
        assert_eq!(
            ImageRef::classify("raspios-lite-arm64@2025-10-01"),
            ImageRef::Alias("raspios-lite-arm64@2025-10-01".into())
        );
        assert!(matches!(
            ImageRef::classify("https://x/y.img.xz"),
            ImageRef::Url(_)
        ));
        assert!(matches!(
            ImageRef::classify("./base.img"),
            ImageRef::Path(_)
        ));
        assert!(matches!(
            ImageRef::classify("base.img.xz"),
            ImageRef::Path(_)
        ));
    }
}
