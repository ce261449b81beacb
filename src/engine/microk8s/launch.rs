//! The node's MicroK8s launch configuration: the file the snap's install hook reads, which
//! makes the founder admit the others (`persistentClusterToken`) and the others join it
//! (`join`). It holds the join token, so it is a secret: root-only on the node, never left
//! on the boot partition.
//!
//! Written as JSON (which is YAML, every string quoted). Only keys of the file format
//! 0.1.0 are written, which every MicroK8s that reads launch configurations (1.27 and
//! later) understands; `data/microk8s/launch-config-keys.txt` lists the keys with their
//! sources, and a test checks every key written against it.

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{CLUSTER_AGENT_PORT, Microk8sError, Microk8sNode, parse_kubelet_arg};
use crate::engine::NodeRole;

/// Where the install hook looks for it (after /etc/microk8s.yaml and root's
/// `$SNAP_USER_COMMON/.microk8s.yaml`; it reads only the first it finds).
pub(crate) const PATH: &str = "/var/snap/microk8s/common/.microk8s.yaml";

/// The file format pinode writes (`version:`): 1.27 reads up to 0.1.0, 1.28 and later up
/// to 0.2.0 (`maximumConfigFileVersionSupported` in the cluster agent's schema.go).
pub(crate) const FORMAT_VERSION: &str = "0.1.0";

/// What the snap's own launch configuration (`microk8s.default.yaml`, the same on the 1.27
/// to 1.35 branches) sets. A launch configuration of ours replaces that file entirely, so
/// pinode writes these too: without them the kubelet would give pods no cluster DNS.
pub(crate) const DEFAULT_ADDONS: &[&str] = &["dns"];
pub(crate) const DEFAULT_KUBELET_ARGS: &[(&str, &str)] = &[
    ("cluster-domain", "cluster.local"),
    ("cluster-dns", "10.152.183.10"),
];

/// The join URL, as `microk8s add-node` prints it without the certificate fingerprint:
/// `HOST:25000/TOKEN`. MicroK8s 1.29 and later refuse a HOST that is not an IP address, so
/// the first-boot program resolves a `.local` founder before the snap reads the file.
pub(crate) fn join_url(host: &str, token: &str) -> String {
    format!("{host}:{CLUSTER_AGENT_PORT}/{token}")
}

/// The launch configuration of `node` (named `hostname`).
///
/// - every node: the kubelet arguments (the snap's defaults, the node's static address as
///   `--node-ip`, the profile's);
/// - servers: the join token as `persistentClusterToken` (any server can admit a node
///   later) and the API certificate's extra names;
/// - the founder: the addons (they are the cluster's: enabled once, where it starts);
/// - the others: `join`, as a worker for agents.
pub(crate) fn config(hostname: &str, node: &Microk8sNode) -> Result<String, Microk8sError> {
    let member = &node.member;
    let token = member.token.expose_secret();
    let mut config = Map::new();
    config.insert("version".into(), json!(FORMAT_VERSION));
    if member.role.is_server() {
        config.insert("persistentClusterToken".into(), json!(token));
        config.insert("extraSANs".into(), json!(sans(hostname, node)));
    }
    match member.role {
        NodeRole::Founder => {
            let addons: Vec<Value> = node
                .spec
                .addons
                .iter()
                .map(|a| json!({"name": a}))
                .collect();
            config.insert("addons".into(), Value::Array(addons));
        }
        NodeRole::JoiningServer | NodeRole::Agent => {
            config.insert(
                "join".into(),
                json!({
                    "url": join_url(&member.founder_host, token),
                    "worker": member.role == NodeRole::Agent,
                }),
            );
        }
    }
    config.insert(
        "extraKubeletArgs".into(),
        Value::Object(kubelet_args(node)?),
    );
    // `cluster.registry_mirror`: containerd's hosts.toml per registry (every node pulls).
    if let Some(mirror) = &node.registry_mirror {
        let hosts = crate::engine::registry_mirror::containerd_hosts(mirror)
            .map_err(|e| Microk8sError(format!("cluster.registry_mirror: {e}")))?;
        let hosts: Map<String, Value> = hosts
            .into_iter()
            .map(|(registry, text)| (registry.to_string(), Value::String(text)))
            .collect();
        config.insert("containerdRegistryConfigs".into(), Value::Object(hosts));
    }
    let text = serde_json::to_string_pretty(&Value::Object(config))
        .map_err(|e| Microk8sError(format!("MicroK8s launch configuration: {e}")))?;
    Ok(format!(
        "# Written by pinode: MicroK8s launch configuration for {hostname}. Secret: it holds the join token.\n{text}\n"
    ))
}

/// The names and addresses a server's API certificate must hold: nodes and kubectl reach it
/// by them ("x509: certificate is valid for …, not 192.168.1.9" otherwise).
fn sans(hostname: &str, node: &Microk8sNode) -> Vec<String> {
    let mut sans = vec![hostname.to_string(), format!("{hostname}.local")];
    let vip = node.member.kube_vip.as_ref().map(|k| k.address);
    for ip in [node.member.node_ip, vip].into_iter().flatten() {
        sans.push(ip.to_string());
    }
    for extra in &node.spec.extra_sans {
        if !sans.contains(extra) {
            sans.push(extra.clone());
        }
    }
    sans
}

/// `extraKubeletArgs`: `--NAME` keys, string values; the profile's win over the defaults.
fn kubelet_args(node: &Microk8sNode) -> Result<Map<String, Value>, Microk8sError> {
    let mut args = Map::new();
    for (name, value) in DEFAULT_KUBELET_ARGS {
        args.insert(format!("--{name}"), json!(value));
    }
    // A known address is the node's: without it the kubelet takes the default route's,
    // which on a Pi with both eth0 and wlan0 up may be the other one.
    if let Some(ip) = node.member.node_ip {
        args.insert("--node-ip".into(), json!(ip.to_string()));
    }
    for arg in &node.spec.kubelet_args {
        let (name, value) = parse_kubelet_arg(arg)
            .map_err(|e| Microk8sError(format!("cluster.microk8s.kubelet_args: {e}")))?;
        args.insert(format!("--{name}"), json!(value));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Membership;
    use crate::engine::k3s::kubevip::KubeVip;
    use crate::engine::microk8s::Microk8sSpec;
    use std::net::Ipv4Addr;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn node(role: NodeRole) -> Microk8sNode {
        Microk8sNode {
            member: Membership {
                token: TOKEN.to_string().into(),
                founder_host: "192.168.1.10".into(),
                node_ip: Some(Ipv4Addr::new(192, 168, 1, 11)),
                kube_vip: role.is_server().then(|| KubeVip {
                    address: Ipv4Addr::new(192, 168, 1, 9),
                    interface: "eth0".into(),
                }),
                ..Membership::for_test(role, "https://192.168.1.9:16443")
            },
            spec: Microk8sSpec {
                extra_sans: vec!["api.example".into(), "192.168.1.9".into()],
                kubelet_args: vec!["--max-pods=50".into(), "--cluster-dns=10.0.0.10".into()],
                ..Microk8sSpec::default()
            },
            registry_mirror: None,
        }
    }

    fn parsed(role: NodeRole) -> Value {
        let text = config("n", &node(role)).unwrap();
        let body = text.split_once('\n').unwrap().1;
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn each_role_gets_its_part() {
        let founder = parsed(NodeRole::Founder);
        assert_eq!(founder["version"], "0.1.0");
        assert_eq!(founder["persistentClusterToken"], TOKEN);
        assert_eq!(founder["addons"], json!([{"name": "dns"}]));
        assert!(founder.get("join").is_none());
        assert_eq!(
            founder["extraSANs"],
            json!(["n", "n.local", "192.168.1.11", "192.168.1.9", "api.example"])
        );
        assert_eq!(
            founder["extraKubeletArgs"],
            json!({"--cluster-domain": "cluster.local", "--cluster-dns": "10.0.0.10",
                   "--node-ip": "192.168.1.11", "--max-pods": "50"})
        );
        let server = parsed(NodeRole::JoiningServer);
        assert_eq!(
            server["join"],
            json!({"url": format!("192.168.1.10:25000/{TOKEN}"), "worker": false})
        );
        assert!(server.get("addons").is_none());
        assert_eq!(server["persistentClusterToken"], TOKEN);
        let agent = parsed(NodeRole::Agent);
        assert_eq!(agent["join"]["worker"], true);
        assert!(agent.get("persistentClusterToken").is_none());
        assert!(agent.get("extraSANs").is_none());
    }
}
