//! kube-vip: the HA control plane's virtual IP (`cluster.vip`), announced by ARP from the
//! server that holds the leader lease, so the API stays at one address when a server fails.
//!
//! Deployed the way kube-vip's documentation describes for K3s (kube-vip/website, commit
//! f5c870bf, `content/docs/usage/k3s.md` and `content/docs/installation/daemonset.md`): a
//! DaemonSet on the control-plane nodes, with its RBAC, in K3s's auto-deploy manifests
//! directory, one file for both ("a cleaner approach"). K3s starts without the VIP and
//! signs the VIP into its certificate (`tls-san`); kube-vip takes the address once the API
//! is up.
//!
//! - The RBAC is kube-vip's own `rbac.yaml` (served at https://kube-vip.io/manifests/rbac.yaml;
//!   kube-vip/website `content/manifests/rbac.yaml`, last changed in commit 9ad90c60,
//!   2025-01-08), object by object.
//! - The DaemonSet is what kube-vip's generator prints for
//!   `kube-vip manifest daemonset --interface IF --address VIP --inCluster --taint
//!   --controlplane --arp --leaderElection` at release v1.2.3 (kube-vip/kube-vip
//!   `pkg/kubevip/config_generator.go`, `GenerateDaemonsetManifestFromConfig` and
//!   `generatePodSpec`, with the flag defaults of `cmd/kube-vip.go`: port 6443, lease
//!   `plndr-cp-lock` of 15 s, renew 10 s, retry 2 s, namespace `kube-system`, metrics on
//!   `:2112`; `vip_subnet` 32 from `GenerateCidrRange` for an IPv4 address), environment in
//!   the generator's order. Not `--services`: K3s serves LoadBalancer Services itself
//!   (ServiceLB), and kube-vip answering for them too would fight it; pinode needs only the
//!   control-plane address.
//! - The image is pinned to v1.2.3, the newest kube-vip release (2026-08-10) when this was
//!   written, published for linux/arm64 and linux/arm/v7 (its release workflow's
//!   `platforms`), so a node prepared next month runs the same kube-vip.

use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::K3sError;

/// The kube-vip release pinode deploys (see the module comment).
pub const VERSION: &str = "v1.2.3";
/// Its image.
const IMAGE: &str = "ghcr.io/kube-vip/kube-vip";
/// The file in K3s's auto-deploy directory (K3s's rule: no underscores in these names).
pub(crate) const MANIFEST: &str = "pinode-kube-vip.yaml";
/// The interface when nothing says otherwise: a Raspberry Pi's wired port.
pub const DEFAULT_INTERFACE: &str = "eth0";
/// The Raspberry Pi's Wi-Fi interface.
pub const WIFI_INTERFACE: &str = "wlan0";

/// The profile's `cluster.kube_vip`: settings of the VIP's announcer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeVipSpec {
    /// The interface the servers announce the VIP on; null: eth0, or wlan0 when the VIP
    /// lies in the servers' static Wi-Fi prefix.
    #[serde(default)]
    pub interface: Option<String>,
}

/// kube-vip on the servers of a cluster: the address and the interface it is announced on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVip {
    pub address: Ipv4Addr,
    pub interface: String,
}

/// Checks an interface name the way the Linux kernel does (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or whitespace. pinode also keeps it printable ASCII.
pub fn check_interface(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a network interface name such as eth0 or wlan0 (1 to 15 characters, \
             no '/', ':' or spaces)",
            crate::ui::quoted(name)
        ))
    }
}

/// kube-vip's `rbac.yaml`: its ServiceAccount, ClusterRole and ClusterRoleBinding.
fn rbac() -> [Value; 3] {
    [
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                "name": "system:kube-vip-role",
            },
            "rules": [
                {"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]},
                {"apiGroups": [""], "resources": ["services", "endpoints"],
                 "verbs": ["list", "get", "watch", "update"]},
                {"apiGroups": [""], "resources": ["nodes"],
                 "verbs": ["list", "get", "watch", "update", "patch"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "verbs": ["list", "get", "watch", "update", "create"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["list", "get", "watch", "update"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            ],
        }),
        json!({
            "kind": "ClusterRoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "system:kube-vip-binding"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:kube-vip-role",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "kube-vip", "namespace": "kube-system"}],
        }),
    ]
}

/// The DaemonSet kube-vip's generator prints for `vip` (see the module comment).
fn daemonset(vip: &KubeVip) -> Value {
    let labels = json!({
        "app.kubernetes.io/name": "kube-vip-ds",
        "app.kubernetes.io/version": VERSION,
    });
    let control_plane =
        |key: &str| json!({"matchExpressions": [{"key": key, "operator": "Exists"}]});
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "labels": labels,
            "name": "kube-vip-ds",
            "namespace": "kube-system",
        },
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "kube-vip-ds"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            control_plane("node-role.kubernetes.io/master"),
                            control_plane("node-role.kubernetes.io/control-plane"),
                        ],
                    }}},
                    "containers": [container(vip)],
                    "hostNetwork": true,
                    "serviceAccountName": "kube-vip",
                    "tolerations": [
                        {"effect": "NoSchedule", "operator": "Exists"},
                        {"effect": "NoExecute", "operator": "Exists"},
                    ],
                },
            },
            "updateStrategy": {},
        },
    })
}

/// kube-vip's container as its generator prints it (see the module comment): the same in
/// K3s's DaemonSet and MicroK8s' copy of it, and in kubeadm's static pod (which adds the
/// kubeconfig it mounts).
pub(crate) fn container(vip: &KubeVip) -> Value {
    let env = |name: &str, value: &str| json!({"name": name, "value": value});
    json!({
                "args": ["manager"],
                "env": [
                    env("vip_arp", "true"),
                    env("port", "6443"),
                    {"name": "vip_nodename",
                     "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    env("vip_interface", &vip.interface),
                    env("vip_subnet", "32"),
                    env("cp_enable", "true"),
                    env("cp_namespace", "kube-system"),
                    env("vip_leaderelection", "true"),
                    env("vip_leasename", "plndr-cp-lock"),
                    env("vip_leaseduration", "15"),
                    env("vip_renewdeadline", "10"),
                    env("vip_retryperiod", "2"),
                    env("address", &vip.address.to_string()),
                    env("prometheus_server", ":2112"),
                ],
                "image": format!("{IMAGE}:{VERSION}"),
                "imagePullPolicy": "IfNotPresent",
                "name": "kube-vip",
                "resources": {},
                "securityContext": {"capabilities": {
                    "add": ["NET_ADMIN", "NET_RAW"],
                    "drop": ["ALL"],
                }},
    })
}

/// [`MANIFEST`]: the RBAC, then the DaemonSet, as YAML documents (each one JSON, which is
/// YAML: every string quoted, nothing a value could restructure).
pub(crate) fn manifest(vip: &KubeVip) -> Result<String, K3sError> {
    let docs = crate::engine::stage2::yaml_documents(&objects(vip))
        .map_err(|e| K3sError(format!("kube-vip manifest: {e}")))?;
    Ok(format!("{}{docs}", header(vip)))
}

/// The manifest's objects: the RBAC, then the DaemonSet.
pub(crate) fn objects(vip: &KubeVip) -> Vec<Value> {
    rbac().into_iter().chain([daemonset(vip)]).collect()
}

/// The manifest's first line, a comment saying what it is for.
pub(crate) fn header(vip: &KubeVip) -> String {
    format!(
        "# Written by pinode: kube-vip {VERSION} announces the API's virtual IP {} (ARP, on {}).\n",
        vip.address, vip.interface
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel() {
        for ok in ["eth0", "wlan0", "end0", "br-lan", "a23456789012345"] {
            assert!(check_interface(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "eth0:1", "a/b", "a b", "a234567890123456"] {
            assert!(check_interface(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_manifest_carries_the_address_and_interface() {
        let vip = KubeVip {
            address: Ipv4Addr::new(192, 168, 1, 9),
            interface: "wlan0".into(),
        };
        let text = manifest(&vip).unwrap();
        assert_eq!(text.matches("\n---\n").count(), 3);
        let ds = daemonset(&vip);
        let env = &ds["spec"]["template"]["spec"]["containers"][0]["env"];
        let value = |name: &str| {
            env.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
        };
        assert_eq!(value("address"), Some(json!("192.168.1.9")));
        assert_eq!(value("vip_interface"), Some(json!("wlan0")));
        assert_eq!(value("vip_arp"), Some(json!("true")));
        assert_eq!(value("cp_enable"), Some(json!("true")));
        assert_eq!(value("svc_enable"), None);
    }
}
