//! `pinode status --json`: one document with every node's state and timings. A type of its
//! own so that scripts (and the tests) read the same shape the command writes.

use serde::{Deserialize, Serialize};

use super::FirstBootStatus;
use super::probe::NodeState;

/// The whole cluster, at the end of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub cluster: String,
    /// Every node Ready (and the runner running, when the cluster has one).
    pub ready: bool,
    /// A node's first boot failed, or a node answered with another host key than pinode's.
    pub failed: bool,
    /// Seconds from the start of the run to its end.
    pub elapsed_seconds: f64,
    pub polls: u32,
    pub nodes: Vec<NodeReport>,
}

/// One node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeReport {
    pub host: String,
    /// Where it was reached (`HOST.local` or the `--address`), with the port if given.
    pub address: String,
    /// `server` or `agent`.
    pub role: String,
    /// Whether `status` waits for the runner on this node (the founder, with a runner).
    pub runner: bool,
    #[serde(flatten)]
    pub state: NodeState,
    /// Seconds from the start of the run to the first poll that saw the current state.
    pub state_since_seconds: f64,
    /// The node's own status.json, as last read.
    pub first_boot: Option<FirstBootStatus>,
}
