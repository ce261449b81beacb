//! A node's MicroK8s part, resolved.

use super::cluster::ClusterPlan;
use crate::engine::Membership;
use crate::engine::microk8s::Microk8sNode;

/// The node's MicroK8s part: its membership and the cluster's MicroK8s settings.
pub(super) fn resolve(plan: &ClusterPlan, member: Membership) -> Microk8sNode {
    Microk8sNode {
        member,
        spec: plan.spec.microk8s().clone(),
        registry_mirror: plan.spec.registry_mirror.clone(),
    }
}
