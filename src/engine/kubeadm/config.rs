//! The configuration file `kubeadm init --config` / `kubeadm join --config` reads: YAML
//! documents of kubeadm's v1beta4 API (and, for init, the kubelet's v1beta1
//! KubeletConfiguration), each written as JSON (which is YAML, every string quoted).
//! The fields used are in data/kubeadm/v1beta4-fields.txt and kubelet-v1beta1-fields.txt;
//! tests/kubeadm.rs checks every key written against them.
//!
//! The file holds the bootstrap token, so it is one of the stage's secrets.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{KubeadmError, KubeadmNode};
use crate::engine::NodeRole;

const API_VERSION: &str = "kubeadm.k8s.io/v1beta4";
const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// CRI-O's socket (its default `listen`), so that kubeadm need not guess the runtime.
pub(crate) const CRI_SOCKET: &str = "unix:///var/run/crio/crio.sock";
/// The group kubeadm's own default token has (`kubeadm token create`), which its RBAC
/// lets join nodes.
const TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

/// `host:port` of an API URL (`https://10.0.0.9:6443` → `10.0.0.9:6443`): kubeadm's
/// `controlPlaneEndpoint` and `apiServerEndpoint` take no scheme, and a join's
/// `apiServerEndpoint` needs the port (6443, the API server's, when the URL has none).
pub(crate) fn endpoint(api: &str) -> String {
    let rest = api.split_once("://").map(|(_, r)| r).unwrap_or(api);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:6443")
    }
}

/// The value pinode writes as `kubernetesVersion`: kubeadm's label for the newest release
/// of the minor (`stable-1.33`). The first-boot stage replaces it with the installed
/// kubeadm's own version before use, so that nothing is looked up on the internet; the file
/// is valid either way.
pub(crate) fn version_label(minor: &str) -> String {
    format!("stable-{}", minor.trim_start_matches('v'))
}

/// The node's documents.
pub(crate) fn documents(hostname: &str, node: &KubeadmNode) -> Vec<Value> {
    let member = &node.member;
    let token = member.token.expose_secret();
    let endpoint = endpoint(&member.api);
    let mut registration = json!({
        "name": hostname,
        "criSocket": CRI_SOCKET,
    });
    // Servers take workloads, as K3s's do: a single-server cluster runs its runner there.
    if member.role.is_server() {
        registration["taints"] = json!([]);
    }
    // A known address is the node's: without it the kubelet picks the address of the
    // default route's interface, which on a Pi with both eth0 and wlan0 up may be the other.
    if let Some(ip) = member.node_ip {
        registration["kubeletExtraArgs"] = json!([{"name": "node-ip", "value": ip.to_string()}]);
    }
    let local_endpoint = match member.node_ip {
        Some(ip) => json!({"advertiseAddress": ip.to_string(), "bindPort": 6443}),
        None => json!({}),
    };
    match member.role {
        NodeRole::Founder => {
            let mut init = json!({
                "apiVersion": API_VERSION,
                "kind": "InitConfiguration",
                "bootstrapTokens": [{
                    "token": token,
                    "description": "pinode: the cluster's join token, kept in pinode's state directory",
                    // Never expires: a node prepared next month joins with the same token.
                    "ttl": "0s",
                    "usages": ["signing", "authentication"],
                    "groups": [TOKEN_GROUP],
                }],
                "nodeRegistration": registration,
            });
            if member.node_ip.is_some() {
                init["localAPIEndpoint"] = local_endpoint;
            }
            let host = endpoint
                .rsplit_once(':')
                .map_or(endpoint.as_str(), |(h, _)| h);
            let mut sans = vec![hostname.to_string(), format!("{hostname}.local")];
            for name in [
                Some(host.to_string()),
                member.node_ip.map(|ip| ip.to_string()),
            ]
            .into_iter()
            .flatten()
            {
                if !sans.contains(&name) {
                    sans.push(name);
                }
            }
            let cluster = json!({
                "apiVersion": API_VERSION,
                "kind": "ClusterConfiguration",
                "kubernetesVersion": version_label(&node.spec.version()),
                "controlPlaneEndpoint": endpoint,
                "networking": {
                    "podSubnet": node.spec.pod_cidr().to_string(),
                    "serviceSubnet": node.spec.service_cidr().to_string(),
                },
                "apiServer": {"certSANs": sans},
                // The kept CA's keys are ECDSA P-256 (see `pki`): kubeadm's own keys match.
                "encryptionAlgorithm": "ECDSA-P256",
            });
            let kubelet = json!({
                "apiVersion": KUBELET_API_VERSION,
                "kind": "KubeletConfiguration",
                "cgroupDriver": "systemd",
                "failSwapOn": true,
            });
            vec![init, cluster, kubelet]
        }
        NodeRole::JoiningServer | NodeRole::Agent => {
            let mut join = json!({
                "apiVersion": API_VERSION,
                "kind": "JoinConfiguration",
                "nodeRegistration": registration,
                "discovery": {"bootstrapToken": {
                    "token": token,
                    "apiServerEndpoint": endpoint,
                    "caCertHashes": [node.pki.ca_hash],
                }},
            });
            if member.role == NodeRole::JoiningServer {
                // The shared certificates are on the card (no certificateKey, nothing
                // downloaded): kubeadm finds them in /etc/kubernetes/pki.
                join["controlPlane"] = json!({"localAPIEndpoint": local_endpoint});
            }
            vec![join]
        }
    }
}

/// The file: the documents, separated by `---`.
pub(crate) fn render(hostname: &str, node: &KubeadmNode) -> Result<String, KubeadmError> {
    crate::engine::stage2::yaml_documents(&documents(hostname, node))
        .map_err(|e| KubeadmError(format!("kubeadm configuration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_the_scheme() {
        assert_eq!(endpoint("https://10.0.0.9:6443"), "10.0.0.9:6443");
        assert_eq!(endpoint("https://a.local:6443/"), "a.local:6443");
        assert_eq!(endpoint("https://api.example"), "api.example:6443");
        assert_eq!(version_label("v1.33"), "stable-1.33");
    }
}
