//! The manifest (`pinode/node.json`): pinode's record of what it put on a boot partition, so
//! that patching again first takes the old values away, and `inspect` can say what a card was
//! prepared as. It holds no secret.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BootFs, BootFsError};
use crate::osinfo::{Generation, InitRoute};

/// Where pinode records what it changed. Holds no secret.
pub(crate) const MANIFEST: &str = "pinode/node.json";
/// Where pinode keeps the image's own version of a file it replaces (Trixie's cloud-init
/// templates), to put it back when a later patch no longer needs the file.
pub(crate) const ORIGINALS: &str = "pinode/original";

/// A node's role in its cluster: the one enum for it. The profile names it (`role:`), the
/// manifest records it; it lives here, at the lowest level that needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }
}

/// What pinode put on a boot partition, as recorded in `MANIFEST`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub pinode: String,
    pub hostname: String,
    pub role: Role,
    pub generation: Generation,
    pub init: InitRoute,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) instance_id: Option<String>,
    /// cmdline.txt tokens that were not there before pinode.
    #[serde(default)]
    pub cmdline_added: Vec<String>,
    /// The image's own `key=value` tokens that pinode changed (put back when no longer set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) cmdline_replaced: Vec<String>,
    /// Files that did not exist before pinode (removed again when no longer wanted).
    #[serde(default)]
    pub(crate) files_created: Vec<String>,
    /// Files of the image that pinode replaced; the originals are under [`ORIGINALS`].
    #[serde(default)]
    pub(crate) files_replaced: Vec<String>,
}

impl Manifest {
    /// Reads the manifest of a boot partition, if it has a readable one.
    pub fn read(fs: &BootFs<'_>) -> Result<Option<Manifest>, BootFsError> {
        Ok(fs
            .read(MANIFEST)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed fields read and write the same strings the manifest always held.
    #[test]
    fn a_manifest_keeps_its_strings() {
        let text = r#"{
  "pinode": "0.1.0",
  "hostname": "matrix",
  "role": "agent",
  "generation": "trixie",
  "init": "cloud-init",
  "instance_id": "i-1",
  "cmdline_added": [
    "ds=nocloud;i=i-1"
  ],
  "files_created": [],
  "files_replaced": []
}"#;
        let manifest: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(manifest.role, Role::Agent);
        assert_eq!(manifest.generation, Generation::Trixie);
        assert_eq!(manifest.init, InitRoute::CloudInit);
        assert_eq!(serde_json::to_string_pretty(&manifest).unwrap(), text);
        for (init, name) in [(InitRoute::Firstrun, "firstrun"), (InitRoute::None, "none")] {
            assert_eq!(serde_json::to_value(init).unwrap(), name);
        }
        assert_eq!(serde_json::to_value(Role::Server).unwrap(), "server");
        assert_eq!(
            serde_json::to_value(Generation::Unknown).unwrap(),
            "unknown"
        );
    }
}
