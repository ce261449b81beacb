//! MicroK8s: Canonical's Kubernetes in a snap, on Ubuntu Server.
//!
//! SKELETON (lead): the types the profile and the plan use. The engineer of this module
//! replaces the bodies marked `skeleton` with the real ones.

pub(crate) mod stage2;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Membership, SpecProblem};

/// The port of MicroK8s' Kubernetes API.
pub(crate) const API_PORT: u16 = 16443;

/// A MicroK8s file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Microk8sError(pub(crate) String);

/// The profile's `cluster.microk8s`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Microk8sSpec {
    /// The snap channel, e.g. 1.33/stable.
    #[serde(default)]
    pub(crate) channel: Option<String>,
}

impl Microk8sSpec {
    /// Every problem with these settings, by MicroK8s' rules.
    pub(crate) fn problems(&self) -> Vec<SpecProblem> {
        Vec::new() // skeleton
    }

    /// One line for `profile check`: version and where it comes from.
    pub fn summary(&self) -> String {
        self.version() // skeleton
    }

    /// The version `profile check` shows (the snap channel).
    pub fn version(&self) -> String {
        self.channel.clone().unwrap_or_else(|| "1.33/stable".into()) // skeleton
    }
}

/// One node's part in a MicroK8s cluster.
#[derive(Clone)]
pub(crate) struct Microk8sNode {
    pub(crate) member: Membership,
    pub(crate) spec: Microk8sSpec,
}

/// Checks that MicroK8s accepts `token` as a join token; never quotes it.
pub(crate) fn check_join_token(token: &str) -> Result<(), String> {
    let _ = token; // skeleton
    Ok(())
}

/// A join token made from random bytes.
pub(crate) fn join_token_from(random: &[u8; 32]) -> String {
    hex::encode(&random[..16]) // skeleton
}
