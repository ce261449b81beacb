//! kube-vip on a kubeadm cluster's servers: a static pod, kube-vip's documented way for
//! kubeadm (kube-vip/website `content/docs/installation/static.md`, commit 023e95de): the
//! kubelet runs it from /etc/kubernetes/manifests, so the VIP comes up while `kubeadm init`
//! waits for the API at the control-plane endpoint, the VIP itself.
//!
//! The pod is what `kube-vip manifest pod --interface IF --address VIP --controlplane --arp
//! --leaderElection` prints (the same settings as the K3s DaemonSet in
//! `crate::engine::k3s::kubevip`, same release), with the admin kubeconfig mounted and
//! `kubernetes` pointed at 127.0.0.1.
//!
//! With Kubernetes 1.29 and later, /etc/kubernetes/admin.conf has no rights until `kubeadm
//! init` has bound it to cluster-admin, so on the founder kube-vip must use super-admin.conf
//! during init and admin.conf afterwards (kube-vip/kube-vip#684); the first-boot stage
//! switches the path once init is done. Joining servers only have admin.conf, and place the
//! manifest after `kubeadm join` (join refuses a non-empty manifest directory).

use serde_json::{Value, json};

use super::KubeadmError;
use crate::engine::KubeVip;
use crate::engine::k3s::kubevip::{self, VERSION};

pub(crate) const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub(crate) const SUPER_ADMIN_CONF: &str = "/etc/kubernetes/super-admin.conf";

/// The static pod for `vip`, reading the kubeconfig at `kubeconfig` on the host.
fn pod(vip: &KubeVip, kubeconfig: &str) -> Value {
    let mut container = kubevip::container(vip);
    container["volumeMounts"] = json!([{"mountPath": ADMIN_CONF, "name": "kubeconfig"}]);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        "spec": {
            "containers": [container],
            "hostAliases": [{"hostnames": ["kubernetes"], "ip": "127.0.0.1"}],
            "hostNetwork": true,
            "volumes": [{"hostPath": {"path": kubeconfig}, "name": "kubeconfig"}],
        },
    })
}

/// The manifest (one YAML document, written as JSON) reading `kubeconfig`.
pub(crate) fn manifest(vip: &KubeVip, kubeconfig: &str) -> Result<String, KubeadmError> {
    let json = serde_json::to_string_pretty(&pod(vip, kubeconfig))
        .map_err(|e| KubeadmError(format!("kube-vip manifest: {e}")))?;
    Ok(format!(
        "# Written by pinode: kube-vip {VERSION} announces the API's virtual IP {} (ARP, on {}).\n{json}\n",
        vip.address, vip.interface
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_pod_mounts_the_kubeconfig_it_is_given() {
        let vip = KubeVip {
            address: Ipv4Addr::new(10, 0, 0, 9),
            interface: "eth0".into(),
        };
        let pod = pod(&vip, SUPER_ADMIN_CONF);
        assert_eq!(
            pod["spec"]["volumes"][0]["hostPath"]["path"],
            SUPER_ADMIN_CONF
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
            ADMIN_CONF
        );
        let text = manifest(&vip, ADMIN_CONF).unwrap();
        assert!(text.contains("\"10.0.0.9\""));
        // The stage switches the path with sed on this exact line.
        assert!(text.contains(&format!("\"path\": \"{ADMIN_CONF}\"")));
    }
}
