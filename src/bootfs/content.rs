//! Boot content: everything pinode puts on one node's boot partition, as plain data.
//!
//! The renderer produces it from a node's plan, `render` writes it to a folder and
//! [`super::apply`] applies it to a FAT partition. It sits here, at the level of the boot
//! partition, so that applying it needs neither the profile nor the renderer.

use super::manifest::Role;
use crate::osinfo::{Generation, InitRoute};

/// A file for the boot partition.
#[derive(Debug, Clone)]
pub struct BootFile {
    /// Path relative to the partition root, `/`-separated.
    pub path: String,
    pub contents: Vec<u8>,
    /// Holds a secret (removed by the node on first boot; written 0600 by `render`).
    pub secret: bool,
}

/// A large file for the boot partition (an air-gap release file), copied from a file on
/// the host while it is written, never held in memory. The node moves it off at first boot.
#[derive(Debug, Clone)]
pub struct BulkFile {
    /// Path relative to the partition root, `/`-separated.
    pub path: String,
    pub source: std::path::PathBuf,
    pub len: u64,
}

/// One change to cmdline.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineEdit {
    /// The token, exactly once.
    Ensure(String),
    /// `key=value` as the only token with that key.
    Set(String, String),
}

impl CmdlineEdit {
    pub fn token(&self) -> String {
        match self {
            CmdlineEdit::Ensure(t) => t.clone(),
            CmdlineEdit::Set(k, v) => format!("{k}={v}"),
        }
    }
}

/// Everything a node changes on the boot partition, and what the manifest records about it.
#[derive(Debug, Clone)]
pub struct BootContent {
    pub hostname: String,
    pub role: Role,
    /// The OS generation the content was rendered for.
    pub(crate) generation: Generation,
    /// The first-boot route the content was rendered for.
    pub init: InitRoute,
    pub files: Vec<BootFile>,
    pub cmdline: Vec<CmdlineEdit>,
    /// `arm_64bit=1` must be in effect for every board.
    pub arm_64bit: bool,
    pub config_extra: Vec<String>,
    /// The cloud-init instance-id, on that route.
    pub(crate) instance_id: Option<String>,
    /// With `cluster.airgap`: the directory the first-boot stage takes the K3s release
    /// files from; the pipeline fills [`BootContent::bulk`] with them.
    pub airgap_dir: Option<String>,
    /// Large files copied from the host ([`BulkFile`]).
    pub bulk: Vec<BulkFile>,
}
