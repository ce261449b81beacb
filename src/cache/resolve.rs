//! From what the user wrote (`os.image`, `--os`) to a verified base image in the cache.
//!
//! - a catalog alias (`raspios-lite-arm64`, `raspios-lite-arm64@2025-10-01`): the catalog
//!   says where it is and what its SHA-256 is;
//! - an `https://` URL: the SHA-256 must come from `os.sha256` / `--sha256`, since nothing
//!   else vouches for the file;
//! - a local path is not handled here (see `pipeline::base`): it is used in place.
//!
//! Offline, the catalog comes from the copy kept at the last online run, and failing that
//! from what the cache entries remember about themselves.

use std::path::PathBuf;

use crate::catalog::{self, Catalog, CatalogError, OsEntry};
use crate::digest::Sha256Hex;
use crate::fetch::{FetchError, Http, HttpSettings, is_http_url};

use super::store::{Cache, CacheError, Wanted};

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

    fn catalog_is_remote(&self) -> bool {
        is_http_url(&self.catalog)
    }

    /// The catalog: fetched (and a copy kept), or offline from that copy.
    pub fn load_catalog(&self, http: Option<&Http>) -> Result<Catalog, ResolveError> {
        if !self.catalog_is_remote() {
            return Ok(Catalog::load(&self.catalog, http)?);
        }
        match http {
            Some(http) => {
                let bytes = http
                    .get_small(&self.catalog, catalog::MAX_DOCUMENT)
                    .map_err(CatalogError::from)?;
                let catalog = Catalog::parse(&self.catalog, &bytes, true)?;
                self.cache.save_catalog(&self.catalog, &bytes);
                Ok(catalog)
            }
            None => {
                let copy = self.cache.catalog_copy(&self.catalog);
                let bytes = crate::input::read_regular(
                    &copy,
                    catalog::MAX_DOCUMENT,
                    "an OS catalog",
                )
                .map_err(|_| {
                    ResolveError::Reference(format!(
                        "--offline: no copy of the OS catalog {} in the cache yet (run once \
                         online, or pass --catalog FILE)",
                        crate::fetch::Redacted(&self.catalog)
                    ))
                })?;
                Ok(Catalog::parse(
                    &format!("{} (cached copy)", crate::fetch::Redacted(&self.catalog)),
                    &bytes,
                    true,
                )?)
            }
        }
    }

    /// What to put in the cache for `image` (an alias or URL); `sha256` from the profile or
    /// the command line.
    pub fn wanted(
        &self,
        image: &str,
        sha256: Option<&str>,
        http: Option<&Http>,
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
                })
            }
            ImageRef::Alias(spec) => {
                let entry = self.resolve_alias(&spec, http)?;
                if let Some(s) = &sha256
                    && *s != entry.extract_sha256
                {
                    return Err(ResolveError::Reference(format!(
                        "{spec}: os.sha256 is {s}, but the catalog gives {} for {}",
                        entry.extract_sha256, entry.name
                    )));
                }
                Ok(wanted_from_entry(&entry))
            }
            ImageRef::Path(path) => Err(ResolveError::Reference(format!(
                "{} is a local file: it is used in place, not cached",
                path.display()
            ))),
        }
    }

    fn resolve_alias(&self, spec: &str, http: Option<&Http>) -> Result<OsEntry, ResolveError> {
        let parsed = catalog::alias::Spec::parse(spec).map_err(ResolveError::Reference)?;
        let mut catalog = match self.load_catalog(http) {
            Ok(c) => c,
            // Offline with no catalog copy: the cache may still know the alias.
            Err(ResolveError::Reference(message)) if self.offline => {
                return self
                    .cache
                    .find_by_alias(&parsed.alias, parsed.date.as_deref())
                    .map(|w| entry_from_wanted(&w))
                    .ok_or(ResolveError::Reference(message));
            }
            Err(e) => return Err(e),
        };
        Ok(catalog.resolve(spec, http)?)
    }
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
