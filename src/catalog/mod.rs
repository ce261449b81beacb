//! The Raspberry Pi Imager OS catalog (the "OS list", v4): which images exist, where they are,
//! and the SHA-256 of each one's uncompressed bytes.
//!
//! The list is a tree: categories hold entries in `subitems` or point at another list with
//! `subitems_url`. Raspberry Pi OS entries sit in the main list, so remote sub-lists (mostly
//! third-party systems) are fetched only when a lookup or `os list --all` needs them, and a
//! sub-list that fails to load is reported and skipped rather than failing the whole catalog.
//!
//! Where a sub-list may come from depends on where its list came from: a list fetched over
//! the network (or its cached copy) may only name `http://` / `https://` sub-lists, never a
//! local path or `file://` (a server must not make pinode read `/etc/passwd`, `/dev/zero` or
//! a FIFO); a local catalog (`--catalog FILE`) is the user's own and may name local files.

pub(crate) mod alias;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::fetch::{FetchError, Http, is_http_url};

/// The official catalog, as Raspberry Pi Imager reads it.
pub(crate) const DEFAULT_URL: &str =
    "https://downloads.raspberrypi.com/os_list_imagingutility_v4.json";

/// The largest catalog document accepted (the official list is well under 1 MiB).
pub(crate) const MAX_DOCUMENT: u64 = 32 << 20;
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
    #[error("OS catalog: {0}")]
    Input(#[from] crate::input::InputError),
    #[error("{0}")]
    Lookup(String),
}

/// One downloadable image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OsEntry {
    pub name: String,
    #[serde(default)]
    pub(crate) description: String,
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
    pub(crate) image_download_sha256: Option<crate::digest::Sha256Hex>,
    #[serde(default)]
    pub release_date: Option<String>,
    /// `systemd` (Imager's firstrun.sh) or `cloudinit-rpi`.
    #[serde(default)]
    pub init_format: Option<String>,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub(crate) architecture: Option<String>,
    /// The categories above the entry, outermost first.
    #[serde(default)]
    pub category: Vec<String>,
}

impl OsEntry {
    /// Stable names for this entry (see `alias`).
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
    pending: Vec<Pending>,
    /// Sub-lists that could not be loaded, with the reason.
    pub skipped: Vec<String>,
    /// Set when this is the copy kept from an earlier fetch, used because the catalog could
    /// not be reached: the line that tells the user so ("catalog unreachable (…): using the
    /// copy from DATE"). None for a catalog fetched now, a local file, or `--offline`.
    pub fallback: Option<String>,
    fetched: usize,
    /// The URLs in `entries`: an entry listed twice is kept once, found in O(1) (a linear
    /// scan per entry made a 110k-entry catalog take minutes).
    urls: HashSet<String>,
}

/// A sub-list not fetched yet.
#[derive(Debug)]
struct Pending {
    /// The categories above it, outermost first.
    category: Vec<String>,
    location: String,
    depth: usize,
    /// Whether the list that named it came over the network (then it must be http(s) too).
    from_remote: bool,
}

impl Catalog {
    /// Parses a catalog document. `source` names it in messages; `remote` says whether the
    /// document came over the network (or is a kept copy of one): then its sub-lists must be
    /// http(s) URLs too.
    pub fn parse(source: &str, text: &[u8], remote: bool) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog {
            source: crate::fetch::display_url(source),
            ..Catalog::default()
        };
        catalog.absorb(source, text, &[], 0, remote)?;
        Ok(catalog)
    }

    /// Reads the catalog at `location` (an http(s) URL or a local file).
    pub(crate) fn load(location: &str, http: Option<&Http>) -> Result<Catalog, CatalogError> {
        let text = fetch_document(location, http, false)?;
        Catalog::parse(location, &text, is_http_url(location))
    }

    /// Fetches every pending sub-list (for a complete listing).
    pub fn load_all(&mut self, http: Option<&Http>) {
        while self.load_next(http) {}
    }

    /// Fetches one pending sub-list; false when none is left.
    fn load_next(&mut self, http: Option<&Http>) -> bool {
        let Some(next) = self.pending.pop() else {
            return false;
        };
        self.fetched += 1;
        let remote = next.from_remote || is_http_url(&next.location);
        let result = fetch_document(&next.location, http, next.from_remote).and_then(|text| {
            self.absorb(&next.location, &text, &next.category, next.depth, remote)
        });
        if let Err(e) = result {
            self.skipped
                .push(format!("{}: {e}", next.category.join(" / ")));
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
        remote: bool,
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
        self.walk(items, category, depth, remote);
        Ok(())
    }

    fn walk(
        &mut self,
        items: &[serde_json::Value],
        category: &[String],
        depth: usize,
        remote: bool,
    ) {
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
                    self.walk(children, &path, depth + 1, remote);
                }
            } else if let Some(url) = item.get("subitems_url").and_then(|v| v.as_str()) {
                if depth < MAX_DEPTH && self.fetched + self.pending.len() < MAX_SUBLISTS {
                    // Reversed when popped, so keep document order by inserting at the front.
                    self.pending.insert(
                        0,
                        Pending {
                            category: path,
                            location: url.to_string(),
                            depth: depth + 1,
                            from_remote: remote,
                        },
                    );
                }
            } else if let Some(entry) = entry_from(item, category)
                && self.urls.insert(entry.url.clone())
            {
                self.entries.push(entry);
            }
        }
    }
}

/// An OS entry, when `item` has everything pinode needs to download and verify it.
fn entry_from(item: &serde_json::Value, category: &[String]) -> Option<OsEntry> {
    // Deserializing checks `extract_sha256` (see `Sha256Hex`).
    let mut entry = OsEntry::deserialize(item).ok()?;
    if !is_http_url(&entry.url) {
        return None;
    }
    entry.category = category.to_vec();
    Some(entry)
}

/// The bytes of a catalog document: over HTTP(S), or from a local file unless the list that
/// named it came over the network (`from_remote`).
fn fetch_document(
    location: &str,
    http: Option<&Http>,
    from_remote: bool,
) -> Result<Vec<u8>, CatalogError> {
    if is_http_url(location) {
        match http {
            Some(http) => Ok(http.get_small(location, MAX_DOCUMENT)?),
            None => Err(CatalogError::Invalid {
                source_name: crate::fetch::display_url(location),
                // --offline, or a kept copy standing in for a catalog that cannot be reached.
                message: "not fetched (offline)".into(),
            }),
        }
    } else if from_remote {
        Err(CatalogError::Invalid {
            source_name: one_line(location),
            message: "a catalog fetched over the network may only name http:// or https:// \
                      sub-lists, not a local file"
                .into(),
        })
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        Ok(crate::input::read_regular(
            std::path::Path::new(path),
            MAX_DOCUMENT,
            "an OS catalog",
        )?)
    }
}

/// `s` shortened and on one line, for a message about a value a server chose.
fn one_line(s: &str) -> String {
    let mut out: String = s.chars().take(200).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}
