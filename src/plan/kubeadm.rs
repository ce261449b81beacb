//! A node's kubeadm part, resolved. SKELETON (lead): the kubeadm engineer adds the
//! cluster's PKI (generated once, kept in the state directory) here.

use super::cluster::ClusterPlan;
use crate::edge::Settings;
use crate::engine::Membership;
use crate::engine::kubeadm::KubeadmNode;
use crate::profile::{FieldError, LoadedProfile};

/// The node's kubeadm part: its membership, the cluster's settings and (skeleton) its PKI.
pub(super) fn resolve(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    member: Membership,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<KubeadmNode, FieldError> {
    let _ = (profile, settings, notes);
    Ok(KubeadmNode {
        member,
        spec: plan.spec.kubeadm().clone(),
    })
}
