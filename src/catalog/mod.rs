//! The Raspberry Pi Imager OS catalog (the "OS list", v4): which images exist, where they are,
//! and the SHA-256 of each one's uncompressed bytes.
//!
//! The list is a tree: categories hold entries in `subitems` or point at another list with
//! `subitems_url`. Raspberry Pi OS entries sit in the main list, so remote sub-lists (mostly
//! third-party systems) are fetched only when a lookup or `os list --all` needs them, and a
//! sub-list that fails to load is reported and skipped rather than failing the whole catalog.

pub mod alias;

use serde::{Deserialize, Serialize};

use crate::fetch::{FetchError, Http, is_http_url};

/// The official catalog, as Raspberry Pi Imager reads it.
pub const DEFAULT_URL: &str = "https://downloads.raspberrypi.com/os_list_imagingutility_v4.json";

/// The largest catalog document accepted (the official list is well under 1 MiB).
pub const MAX_DOCUMENT: u64 = 32 << 20;
/// How deep `subitems` / `subitems_url` may nest (the official list uses two levels).
const MAX_DEPTH: usize = 6;
/// The most remote sub-lists one catalog may pull in.
const MAX_SUBLISTS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("OS catalog {source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("OS catalog: {0}")]
    Fetch(#[from] FetchError),
    #[error("OS catalog {path}: {source}", path = .path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Lookup(String),
}

/// One downloadable image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OsEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub url: String,
    /// Bytes of the uncompressed image.
    pub extract_size: u64,
    /// SHA-256 of the uncompressed image (an entry without a valid one is skipped).
    pub extract_sha256: crate::digest::Sha256Hex,
    /// Bytes of the file at `url`.
    #[serde(default)]
    pub image_download_size: Option<u64>,
    /// SHA-256 of the file at `url` (absent on Raspberry Pi OS entries).
    /// A value that is not a SHA-256 counts as absent (the image is still checked by
    /// `extract_sha256`).
    #[serde(
        default,
        deserialize_with = "crate::digest::Sha256Hex::deserialize_lenient"
    )]
    pub image_download_sha256: Option<crate::digest::Sha256Hex>,
    #[serde(default)]
    pub release_date: Option<String>,
    /// `systemd` (Imager's firstrun.sh) or `cloudinit-rpi`.
    #[serde(default)]
    pub init_format: Option<String>,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    /// The categories above the entry, outermost first.
    #[serde(default)]
    pub category: Vec<String>,
}

impl OsEntry {
    /// Stable names for this entry (see [`alias`]).
    pub fn aliases(&self) -> Vec<String> {
        alias::aliases_for(&self.url)
    }
}

/// A loaded catalog: the entries seen so far plus the sub-lists not fetched yet.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Where the top-level list came from (URL or path), for messages.
    pub source: String,
    pub entries: Vec<OsEntry>,
    pending: Vec<(Vec<String>, String, usize)>,
    /// Sub-lists that could not be loaded, with the reason.
    pub skipped: Vec<String>,
    fetched: usize,
}

impl Catalog {
    /// Parses a catalog document. `source` names it in messages.
    pub fn parse(source: &str, text: &[u8]) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog {
            source: crate::fetch::display_url(source),
            ..Catalog::default()
        };
        catalog.absorb(source, text, &[], 0)?;
        Ok(catalog)
    }

    /// Reads the catalog at `location` (an http(s) URL or a file).
    pub fn load(location: &str, http: Option<&Http>) -> Result<Catalog, CatalogError> {
        let text = fetch_document(location, http)?;
        Catalog::parse(location, &text)
    }

    /// Fetches every pending sub-list (for a complete listing).
    pub fn load_all(&mut self, http: Option<&Http>) {
        while self.load_next(http) {}
    }

    /// Fetches one pending sub-list; false when none is left.
    fn load_next(&mut self, http: Option<&Http>) -> bool {
        let Some((category, url, depth)) = self.pending.pop() else {
            return false;
        };
        self.fetched += 1;
        let result =
            fetch_document(&url, http).and_then(|text| self.absorb(&url, &text, &category, depth));
        if let Err(e) = result {
            self.skipped.push(format!("{}: {e}", category.join(" / ")));
        }
        true
    }

    /// The entry `spec` names: `alias` or `alias@YYYY-MM-DD`. Sub-lists are fetched only
    /// while the name is not found.
    pub fn resolve(&mut self, spec: &str, http: Option<&Http>) -> Result<OsEntry, CatalogError> {
        let wanted = alias::Spec::parse(spec).map_err(CatalogError::Lookup)?;
        loop {
            if let Some(entry) = wanted.find(&self.entries) {
                return Ok(entry.clone());
            }
            if !self.load_next(http) {
                break;
            }
        }
        Err(CatalogError::Lookup(wanted.not_found_message(self)))
    }

    fn absorb(
        &mut self,
        source: &str,
        text: &[u8],
        category: &[String],
        depth: usize,
    ) -> Result<(), CatalogError> {
        let invalid = |message: String| CatalogError::Invalid {
            source_name: crate::fetch::display_url(source),
            message,
        };
        let doc: serde_json::Value = serde_json::from_slice(text)
            .map_err(|e| invalid(format!("not a JSON document ({e})")))?;
        // The top level has "os_list"; a sub-list may be the same shape or a bare array.
        let items = match &doc {
            serde_json::Value::Object(map) => map.get("os_list").and_then(|v| v.as_array()),
            serde_json::Value::Array(items) => Some(items),
            _ => None,
        }
        .ok_or_else(|| invalid("no \"os_list\" array: not an Imager OS list".into()))?;
        self.walk(items, category, depth);
        Ok(())
    }

    fn walk(&mut self, items: &[serde_json::Value], category: &[String], depth: usize) {
        for item in items {
            let name = item
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("(unnamed)")
                .to_string();
            let mut path = category.to_vec();
            path.push(name);
            if let Some(children) = item.get("subitems").and_then(|v| v.as_array()) {
                if depth < MAX_DEPTH {
                    self.walk(children, &path, depth + 1);
                }
            } else if let Some(url) = item.get("subitems_url").and_then(|v| v.as_str()) {
                if depth < MAX_DEPTH && self.fetched + self.pending.len() < MAX_SUBLISTS {
                    // Reversed when popped, so keep document order by inserting at the front.
                    self.pending.insert(0, (path, url.to_string(), depth + 1));
                }
            } else if let Some(entry) = entry_from(item, category)
                && !self.entries.iter().any(|e| e.url == entry.url)
            {
                self.entries.push(entry);
            }
        }
    }
}

/// An OS entry, when `item` has everything pinode needs to download and verify it.
fn entry_from(item: &serde_json::Value, category: &[String]) -> Option<OsEntry> {
    // Deserializing checks `extract_sha256` (see `Sha256Hex`).
    let mut entry: OsEntry = serde_json::from_value(item.clone()).ok()?;
    if !is_http_url(&entry.url) {
        return None;
    }
    entry.category = category.to_vec();
    Some(entry)
}

/// The bytes of a catalog document: over HTTP(S) or from a file.
fn fetch_document(location: &str, http: Option<&Http>) -> Result<Vec<u8>, CatalogError> {
    if is_http_url(location) {
        match http {
            Some(http) => Ok(http.get_small(location, MAX_DOCUMENT)?),
            None => Err(CatalogError::Invalid {
                source_name: crate::fetch::display_url(location),
                message: "not fetched (--offline)".into(),
            }),
        }
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        std::fs::read(path).map_err(|source| CatalogError::Read {
            path: path.into(),
            source,
        })
    }
}
