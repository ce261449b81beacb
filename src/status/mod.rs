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
    /// The root file system's sequential write speed, measured once by the second stage
    /// (`measure_root_write` in `crate::render::stage2`); absent from older nodes' files and
    /// from the first stage's.
    #[serde(default)]
    pub root_write_bytes_per_second: Option<u64>,
}

/// Under this sequential write speed a node's root device is flagged as too slow.
///
/// Why 20 MiB/s: the seed author saw K3s restart in a loop on a card writing 10 MB per
/// second and not on one writing 60 (docs: platform.md). 10 MB per second is also the least an
/// SD card of speed class 10 or UHS U1 promises to sustain, 30 a U3/V30 card's (SD Association
/// speed classes); the threshold sits at about twice the speed that failed, below what a U3
/// card measures. Shown in MiB/s, pinode's one unit (see `crate::ui::size`).
pub const SLOW_ROOT_WRITE: WriteSpeed = WriteSpeed {
    bytes_per_second: 20 * 1024 * 1024,
};

/// A measured sequential write speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSpeed {
    pub bytes_per_second: u64,
}

impl WriteSpeed {
    /// "23.4 MiB/s". The number comes from the node's status.json (untrusted): computed in
    /// u128, so no value overflows.
    pub fn text(self) -> String {
        let tenths = u128::from(self.bytes_per_second) * 10 / (1024 * 1024);
        format!("{}.{} MiB/s", tenths / 10, tenths % 10)
    }

    /// Below [`SLOW_ROOT_WRITE`].
    pub fn is_slow(self) -> bool {
        self.bytes_per_second < SLOW_ROOT_WRITE.bytes_per_second
    }

    /// The line `pinode status` shows: the speed, and for a slow device why it matters.
    pub fn line(self) -> String {
        if self.is_slow() {
            format!(
                "root device writes at {}: SLOW, under {} (K3s was seen restarting in a loop \
                 on a card writing 10 MB per second; use a faster card or a USB SSD)",
                self.text(),
                SLOW_ROOT_WRITE.text()
            )
        } else {
            format!("root device writes at {}", self.text())
        }
    }
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
    /// The root device's measured write speed, when the node has measured it.
    pub fn root_write(&self) -> Option<WriteSpeed> {
        self.root_write_bytes_per_second
            .map(|bytes_per_second| WriteSpeed { bytes_per_second })
    }

    /// Parses `status.json` (bytes from the node: invalid UTF-8 replaced, never trusted).
    pub fn parse(bytes: &[u8]) -> Result<FirstBootStatus, String> {
        let text = String::from_utf8_lossy(bytes);
        serde_json::from_str(text.trim()).map_err(|e| format!("status.json: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_speed_from_the_node_is_shown_without_overflow() {
        let huge = WriteSpeed {
            bytes_per_second: u64::MAX,
        };
        assert_eq!(huge.text(), "17592186044415.9 MiB/s");
        assert!(!huge.is_slow());
        assert!(
            huge.line()
                .starts_with("root device writes at 17592186044415.9 MiB/s")
        );
        assert_eq!(SLOW_ROOT_WRITE.text(), "20.0 MiB/s");
    }
}
