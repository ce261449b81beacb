//! helm-controller for distributions without one: the one mechanism that installs a CI
//! runner's Helm chart on every distribution.
//!
//! A runner is described once, as a `HelmChart` resource (`helm.cattle.io/v1`) with its
//! values. K3s runs helm-controller inside its server and applies such resources from its
//! manifests directory. MicroK8s and kubeadm have no controller for them, so on those the
//! founder applies this manifest first: the same controller, deployed the way its project
//! deploys it standalone, and the runner's `HelmChart` then works unchanged.
//!
//! Derived from k3s-io/helm-controller at tag v0.17.7 (commit 21a911f8, 2026-07-27):
//! - `manifests/ns.yaml`, `manifests/rbac.yaml` and `manifests/deployment.yaml`, object by
//!   object: the namespace, the ServiceAccount, the ClusterRole with every verb on every
//!   resource (a chart may create anything, and the controller's install jobs run as this
//!   account: upstream's own choice, see `JOB_CLUSTER_ROLE`), its binding, and the
//!   Deployment with the environment upstream gives it;
//! - the controller creates its CustomResourceDefinitions itself at start
//!   (`pkg/cmd/cmd.go`, `Run`: `crd.BatchCreateCRDs` with the CRDs of `pkg/crds`), so the
//!   manifest carries none; a `HelmChart` applied before they exist is refused and applied
//!   again by the next attempt (`apply_manifests` runs under `retry`);
//! - the image is the release's, pinned (`rancher/helm-controller:v0.17.7`, published for
//!   linux/arm64 by its release workflow), and so is the job image: upstream's code falls
//!   back to `rancher/klipper-helm:latest` (`pkg/controllers/chart/chart.go`,
//!   `DefaultJobImage`), which would change under a node prepared today; pinode pins the
//!   one the release's `manifests/deployment.yaml` names.
//!
//! Additions of pinode's, each for a reason: a toleration of the control-plane taint (a
//! kubeadm cluster of one server taints it, and the controller must run there).

use serde_json::{Value, json};

/// The helm-controller release pinode deploys.
pub const VERSION: &str = "v0.17.7";
/// Its image.
const IMAGE: &str = "rancher/helm-controller:v0.17.7";
/// The image of the jobs that run Helm, as the release's manifest names it.
const JOB_IMAGE: &str = "ghcr.io/k3s-io/klipper-helm:v0.9.10-build20251111";
/// Its namespace and the name of its account, role and Deployment (upstream's).
const NAME: &str = "helm-controller";
/// The file among pinode's manifests: sorted before the runner's, so that the controller is
/// asked for first.
pub(crate) const MANIFEST: &str = "00-pinode-helm-controller.yaml";

/// The manifest: every object as a YAML document (JSON, which is YAML).
pub(crate) fn manifest() -> String {
    let objects = [
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAME, "labels": {"name": NAME}},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": NAME},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAME}],
        }),
        deployment(),
    ];
    // Static objects of pinode's own: serialising them cannot fail.
    crate::engine::stage2::yaml_documents(&objects).unwrap_or_default()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAME, "labels": {"app": NAME}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "serviceAccountName": NAME,
                    "tolerations": [{
                        "key": "node-role.kubernetes.io/control-plane",
                        "operator": "Exists",
                        "effect": "NoSchedule",
                    }],
                    "containers": [{
                        "name": NAME,
                        "image": IMAGE,
                        "command": ["helm-controller"],
                        "env": [
                            {
                                "name": "NODE_NAME",
                                "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                            },
                            {
                                "name": "JOB_CLUSTER_ROLE",
                                "valueFrom": {
                                    "fieldRef": {"fieldPath": "spec.serviceAccountName"},
                                },
                            },
                            {"name": "DEFAULT_JOB_IMAGE", "value": JOB_IMAGE},
                        ],
                    }],
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_is_an_object_with_a_pinned_image() {
        let text = manifest();
        let docs: Vec<Value> = text
            .split("---\n")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment"
            ]
        );
        assert!(!text.contains(":latest"));
        assert!(text.contains(VERSION));
    }
}
