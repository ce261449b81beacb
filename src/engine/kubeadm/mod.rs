//! kubeadm with CRI-O: upstream Kubernetes from pkgs.k8s.io.
//!
//! SKELETON (lead): the types the profile and the plan use. The engineer of this module
//! replaces the bodies marked `skeleton` with the real ones.

pub(crate) mod stage2;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Membership, SpecProblem};

/// A kubeadm file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct KubeadmError(pub(crate) String);

/// The profile's `cluster.kubeadm`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeadmSpec {
    /// The Kubernetes minor version, e.g. v1.33.
    #[serde(default)]
    pub(crate) version: Option<String>,
}

impl KubeadmSpec {
    /// Every problem with these settings, by kubeadm's rules.
    pub(crate) fn problems(&self) -> Vec<SpecProblem> {
        Vec::new() // skeleton
    }

    /// One line for `profile check`: version and where it comes from.
    pub fn summary(&self) -> String {
        self.version() // skeleton
    }

    /// The version `profile check` shows.
    pub fn version(&self) -> String {
        self.version.clone().unwrap_or_else(|| "v1.33".into()) // skeleton
    }
}

/// One node's part in a kubeadm cluster.
#[derive(Clone)]
pub(crate) struct KubeadmNode {
    pub(crate) member: Membership,
    pub(crate) spec: KubeadmSpec,
}

/// Checks that `token` is a kubeadm bootstrap token; never quotes it.
pub(crate) fn check_bootstrap_token(token: &str) -> Result<(), String> {
    let _ = token; // skeleton
    Ok(())
}

/// A bootstrap token made from random bytes.
pub(crate) fn bootstrap_token_from(random: &[u8; 32]) -> String {
    let _ = random;
    "abcdef.0123456789abcdef".into() // skeleton
}
