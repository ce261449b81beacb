//! K3s: what pinode knows about it as a Kubernetes distribution — its roles, the flags it
//! accepts, the form of its join token — and the one file of its own pinode writes, the
//! node's `config.yaml`.
//!
//! Everything structured is produced by a serialiser, never by pasting strings: JSON for
//! YAML (JSON is YAML, and every string in it is quoted). Nothing here knows the profile,
//! the plan or the renderer: profile validation and the renderer both call in here.

pub mod airgap;
pub(crate) mod ca;
pub(crate) mod channels;
pub(crate) mod flags;
pub mod kubevip;
pub(crate) mod stage2;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Membership, NodeRole};
use flags::Command;

/// A K3s file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct K3sError(pub(crate) String);

/// Flags pinode sets itself from the profile; giving them in `server_args`/`agent_args` too
/// would contradict the plan.
pub(crate) const MANAGED_FLAGS: &[&str] = &[
    "token",
    "token-file",
    "server",
    "cluster-init",
    "node-name",
    "agent-token",
    "agent-token-file",
];

/// The profile's `cluster.k3s`: which K3s release, and the flags given to it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct K3sSpec {
    /// e.g. v1.33.5+k3s1; null = follow the channel.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default = "default_channel")]
    pub channel: String,
    #[serde(default = "default_install_url")]
    pub install_url: String,
    #[serde(default)]
    pub(crate) server_args: Vec<String>,
    #[serde(default)]
    pub(crate) agent_args: Vec<String>,
    /// Extra SANs; the server's hostname(.local) is always added, and its static address
    /// and the cluster's VIP when there are.
    #[serde(default)]
    pub(crate) tls_san: Vec<String>,
    /// Also give each node with a static address that address as `node-external-ip` (the
    /// address Kubernetes reports as the node's ExternalIP, e.g. for ServiceLB).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) node_external_ip: bool,
    /// With `cluster.airgap`: where the release files are downloaded from, the tag appended
    /// URL-encoded (`…/v1.33.5%2Bk3s1/k3s-arm64`).
    #[serde(
        default = "default_release_url",
        skip_serializing_if = "is_default_release_url"
    )]
    pub release_url: String,
    /// Not a key of `cluster.k3s`: the plan copies `cluster.airgap` here, so that the node's
    /// stage installs from the boot partition.
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) airgap: bool,
}

impl Default for K3sSpec {
    fn default() -> Self {
        K3sSpec {
            version: None,
            channel: default_channel(),
            install_url: default_install_url(),
            server_args: Vec::new(),
            agent_args: Vec::new(),
            tls_san: Vec::new(),
            node_external_ip: false,
            release_url: default_release_url(),
            airgap: false,
        }
    }
}

fn is_default_release_url(url: &str) -> bool {
    url == default_release_url()
}

/// K3s's GitHub releases (k3s-io/k3s), where every tag's assets are published.
fn default_release_url() -> String {
    "https://github.com/k3s-io/k3s/releases/download".to_string()
}

fn default_channel() -> String {
    "stable".to_string()
}

fn default_install_url() -> String {
    "https://get.k3s.io".to_string()
}

pub(crate) use channels::{is_channel, is_version};

/// One node's part in a K3s cluster, its join token resolved: what the K3s files are
/// rendered from. With more than one server (`member.ha`) the founder starts embedded etcd;
/// the node's static address is K3s's `node-ip` and a SAN of a server.
#[derive(Clone)]
pub(crate) struct K3sNode {
    pub(crate) member: Membership,
    pub(crate) spec: K3sSpec,
    /// The cluster's CA material, on servers only (empty elsewhere, and when no CA is kept
    /// and pinode may not generate one, see `plan::k3s`); `member.token` pins its hash.
    pub(crate) ca: Vec<ca::CaFile>,
    /// `cluster.registry_mirror` (see `crate::engine::registry_mirror`).
    pub(crate) registry_mirror: Option<String>,
}

/// The host of an API URL when it is an mDNS name (`https://a.local:6443` → `a.local`),
/// which K3s cannot resolve by itself.
pub(crate) fn mdns_host_of(api: &str) -> Option<&str> {
    let rest = api.split_once("://").map(|(_, r)| r).unwrap_or(api);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host.ends_with(".local").then_some(host)
}

/// Checks that K3s can parse `token` as a join token. The message never quotes the token.
///
/// The rule is K3s's own, read from k3s-io/k3s `pkg/clientaccess/token.go` (`parseToken`,
/// constants `tokenPrefix = "K10"` and `caHashLength = sha256.Size * 2`):
/// - a token without the `K10` prefix is a bare password (or a kubeadm bootstrap token) and
///   is accepted as long as it is not empty;
/// - with the prefix, the rest is split once at `::` into CA hash and credentials; a hash
///   that is not empty must be exactly 64 characters, or K3s stops with "invalid token CA
///   hash length". K3s compares it with the lower-case hex SHA-256 of the cluster CA
///   (`hashCA`, `hex.EncodeToString`), so anything but 64 lower-case hex digits can never
///   match: pinode asks for exactly that;
/// - the credentials are a bootstrap token (`abcdef.0123456789abcdef`) or `user:password`
///   with a non-empty password, else "invalid token format".
pub(crate) fn check_cluster_token(token: &str) -> Result<(), String> {
    const FULL: &str = "K10<64 hex digits of the CA hash>::<user>:<password>";
    let Some(rest) = token.strip_prefix("K10") else {
        return if token.is_empty() {
            Err("the cluster token is empty".into())
        } else {
            Ok(())
        };
    };
    let creds = match rest.split_once("::") {
        Some((hash, creds)) => {
            let hex = hash
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !hash.is_empty() && (hash.len() != 64 || !hex) {
                return Err(format!(
                    "the cluster token starts with K10, so K3s reads it as a full token \
                     {FULL}, but its CA hash has {} characters{}: K3s would refuse it \
                     (\"invalid token CA hash length\"). Use the whole token from the \
                     server's /var/lib/rancher/k3s/server/token, or a plain token without \
                     the K10 prefix",
                    hash.chars().count(),
                    if hash.len() == 64 {
                        " that are not all lower-case hex digits"
                    } else {
                        ""
                    }
                ));
            }
            creds
        }
        None => rest,
    };
    if is_bootstrap_token(creds) {
        return Ok(());
    }
    match creds.split_once(':') {
        Some((_user, password)) if !password.is_empty() => Ok(()),
        _ => Err(format!(
            "the cluster token starts with K10, so K3s reads it as a full token {FULL}, \
             but it has no <user>:<password> part: K3s would refuse it (\"invalid token \
             format\"). Use the whole token from the server's \
             /var/lib/rancher/k3s/server/token, or a plain token without the K10 prefix"
        )),
    }
}

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`, which K3s also accepts as the
/// credentials of a full token.
fn is_bootstrap_token(creds: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    creds
        .split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

/// `/etc/rancher/k3s/config.yaml` for a node (keys are the server/agent flags without dashes).
fn config_yaml(hostname: &str, node: &K3sNode, token_file: &str) -> Result<String, K3sError> {
    let mut config = Map::new();
    config.insert("node-name".into(), json!(hostname));
    config.insert("token-file".into(), json!(token_file));
    // A known address is the node's: without it K3s picks the address of the default
    // route's interface, which on a Pi with both eth0 and wlan0 up may be the other one.
    if let Some(ip) = node.member.node_ip {
        config.insert("node-ip".into(), json!(ip.to_string()));
        if node.spec.node_external_ip {
            config.insert("node-external-ip".into(), json!(ip.to_string()));
        }
    }
    let server = matches!(
        node.member.role,
        NodeRole::Founder | NodeRole::JoiningServer
    );
    if server {
        let mut sans = vec![hostname.to_string(), format!("{hostname}.local")];
        // Nodes and kubectl reach a server by these addresses; its certificate must name
        // them, or TLS fails ("x509: certificate is valid for …, not 192.168.1.9").
        let vip = node.member.kube_vip.as_ref().map(|k| k.address);
        let addresses: Vec<String> = [node.member.node_ip, vip]
            .into_iter()
            .flatten()
            .map(|ip| ip.to_string())
            .collect();
        // The profile's own SANs as before, less an address already named.
        let extra = node.spec.tls_san.iter().filter(|s| !addresses.contains(s));
        sans.extend(addresses.iter().cloned());
        sans.extend(extra.cloned());
        config.insert("tls-san".into(), json!(sans));
        // Admin credentials stay root's; the first-boot program copies them to the user.
        config.insert("write-kubeconfig-mode".into(), json!("0600"));
    }
    match node.member.role {
        NodeRole::Founder if node.member.ha => {
            config.insert("cluster-init".into(), json!(true));
        }
        NodeRole::Founder => {}
        NodeRole::JoiningServer | NodeRole::Agent => {
            config.insert("server".into(), json!(node.member.api));
        }
    }
    let (extra, command) = if server {
        (&node.spec.server_args, Command::Server)
    } else {
        (&node.spec.agent_args, Command::Agent)
    };
    merge_flags(&mut config, extra, command).map_err(K3sError)?;
    to_json(&Value::Object(config), "k3s config.yaml")
}

/// Adds the profile's extra arguments for `command` to a config map (checked against K3s's
/// flags, see [`flags`]). A flag given twice, or one that pinode already set as a list,
/// becomes a list.
fn merge_flags(
    config: &mut Map<String, Value>,
    args: &[String],
    command: Command,
) -> Result<(), String> {
    let parsed = flags::parse_args(args, command, MANAGED_FLAGS).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("argument {}: {}", e.index + 1, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    for (name, value) in parsed {
        match config.get_mut(&name) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = json!([first, value]);
            }
            None => {
                config.insert(name, value);
            }
        }
    }
    Ok(())
}

fn to_json(value: &Value, what: &str) -> Result<String, K3sError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| K3sError(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn flags_merge_into_the_config() {
        let mut config = Map::new();
        config.insert("tls-san".into(), json!(["a"]));
        merge_flags(
            &mut config,
            &[
                "--tls-san=b".into(),
                "--disable=traefik".into(),
                "--disable=servicelb".into(),
                "--secrets-encryption".into(),
            ],
            Command::Server,
        )
        .unwrap();
        assert_eq!(config["tls-san"], json!(["a", "b"]));
        assert_eq!(config["disable"], json!(["traefik", "servicelb"]));
        assert_eq!(config["secrets-encryption"], json!(true));
        let managed = merge_flags(&mut config, &["--token=x".into()], Command::Server);
        assert!(managed.unwrap_err().contains("set by pinode"));
        assert!(merge_flags(&mut config, &["disable=x".into()], Command::Server).is_err());
        assert!(merge_flags(&mut config, &["--disable=x".into()], Command::Agent).is_err());
    }

    /// Every key pinode writes into config.yaml, in every role and with every address
    /// setting, is a flag of the K3s command that reads it (data/k3s/flags.txt): K3s skips
    /// an unknown key with a log line nobody reads, and an agent refuses a server flag.
    #[test]
    fn every_key_written_is_a_flag_of_its_command() {
        for role in [NodeRole::Founder, NodeRole::JoiningServer, NodeRole::Agent] {
            for ha in [false, true] {
                let node = K3sNode {
                    member: Membership {
                        ha,
                        node_ip: Some(Ipv4Addr::new(192, 168, 1, 10)),
                        kube_vip: (role != NodeRole::Agent).then(|| kubevip::KubeVip {
                            address: Ipv4Addr::new(192, 168, 1, 9),
                            interface: "eth0".into(),
                        }),
                        ..Membership::for_test(role, "https://192.168.1.9:6443")
                    },
                    spec: K3sSpec {
                        node_external_ip: true,
                        tls_san: vec!["api.example".into()],
                        ..K3sSpec::default()
                    },
                    ca: Vec::new(),
                    registry_mirror: None,
                };
                let text = config_yaml("n", &node, "/etc/pinode/secrets/k3s-token").unwrap();
                let config: Map<String, Value> = serde_json::from_str(&text).unwrap();
                let command = match role {
                    NodeRole::Agent => Command::Agent,
                    _ => Command::Server,
                };
                for key in config.keys() {
                    assert!(flags::accepts(key, command), "{key} ({role:?})");
                }
                assert_eq!(config["node-ip"], "192.168.1.10");
                assert_eq!(config["node-external-ip"], "192.168.1.10");
                if command == Command::Server {
                    assert_eq!(
                        config["tls-san"],
                        json!(["n", "n.local", "192.168.1.10", "192.168.1.9", "api.example"])
                    );
                }
            }
        }
        assert!(!flags::accepts("node-ipp", Command::Server));
        assert!(!flags::accepts("tls-san", Command::Agent));
    }

    #[test]
    fn cluster_tokens_follow_k3s_parse_token() {
        let hash = "0123456789abcdef".repeat(4);
        assert!(check_cluster_token(&format!("K10{hash}::server:secret")).is_ok());
        assert!(check_cluster_token(&format!("K10{hash}::abcdef.0123456789abcdef")).is_ok());
        assert!(check_cluster_token("K10::server:secret").is_ok());
        assert!(check_cluster_token("a-plain-token-of-any-form::x").is_ok());
        let short = check_cluster_token("K10cafe::server:x").unwrap_err();
        assert!(short.contains("4 characters"), "{short}");
        assert!(
            !short.contains("cafe"),
            "the token must not be quoted: {short}"
        );
        let upper = hash.to_uppercase();
        assert!(check_cluster_token(&format!("K10{upper}::server:x")).is_err());
        assert!(check_cluster_token(&format!("K10{hash}::server:")).is_err());
        assert!(check_cluster_token("K10nocolon").is_err());
        assert!(check_cluster_token("").is_err());
    }
}
