//! What a node says about itself after the flash: the first-boot program's
//! `/var/lib/pinode/status.json`, and on a server the cluster's own view (`kubectl get nodes`,
//! the runner's Deployment), read over SSH by one small read-only remote script per poll.
//!
//! Why one type here: the shell side (`write_status` in the first-boot library) writes
//! exactly [`FirstBootStatus`], and `pinode status` reads it with the same type; the tests
//! run the rendered script and parse its file with this type (unknown fields refused), so
//! the two cannot drift apart.

pub mod kube;
pub mod probe;
pub mod report;

use serde::{Deserialize, Serialize};

/// Where the first-boot program keeps its machine-readable status (the directory is root-only).
pub const STATUS_JSON: &str = "/var/lib/pinode/status.json";

/// The first-boot program's log on the node.
pub const FIRSTBOOT_LOG: &str = "/var/log/pinode-firstboot.log";

/// The version of [`FirstBootStatus`] the first-boot program writes.
pub const STATUS_VERSION: u32 = 1;

/// `status.json`: where the first boot is. No secret is ever in it: step labels and the
/// last line a failing step logged (the first-boot log holds no secret either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstBootStatus {
    pub version: u32,
    /// `firstrun` (the first stage) or `firstboot` (the second, on cluster nodes).
    pub stage: String,
    pub state: StepState,
    /// The step running, or the last one that ran.
    pub step: Option<String>,
    /// When this stage started and finished (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub started: Option<String>,
    pub finished: Option<String>,
    /// The label of the step that failed first (a later failure is often its consequence;
    /// the second stage skips the steps after it). The name is kept for the file's readers.
    pub last_error: Option<String>,
    /// The last line that step logged: its own explanation.
    pub reason: Option<String>,
}

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Running,
    Ok,
    Failed,
}

/// The stage name of the second first-boot stage (`PINODE_STAGE` in its script).
pub const SECOND_STAGE: &str = "firstboot";

impl FirstBootStatus {
    /// Parses `status.json` (bytes from the node: invalid UTF-8 replaced, never trusted).
    pub fn parse(bytes: &[u8]) -> Result<FirstBootStatus, String> {
        let text = String::from_utf8_lossy(bytes);
        serde_json::from_str(text.trim()).map_err(|e| format!("status.json: {e}"))
    }
}
