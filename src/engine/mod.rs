//! Kubernetes distributions: the engine a cluster runs.
//!
//! Three today: K3s, MicroK8s and kubeadm with CRI-O ([`Distribution`], the profile's
//! `cluster.distribution`). Each distribution is one module (its facts, its value rules,
//! its input type and the files of its own it renders) and one variant of `Engine`; the
//! profile validation and the renderer reach a distribution only through here. This layer
//! sits below the profile and the plan: it imports neither.
//!
//! What every distribution shares is here: a node's role ([`NodeRole`]), its membership in
//! the cluster ([`Membership`]: role, API, join token, address, kube-vip), the rules of the
//! join token per distribution, and what pinode runs on a node after the flash (the
//! cluster's `kubectl`, the admin kubeconfig).
//!
//! # Adding a distribution
//!
//! 1. A module `engine/NAME/` with its input type, its value rules and a
//!    `stage2(ctx, node) -> Result<EngineStage2, _>` that fills the slots of the second
//!    first-boot stage (see `stage2::EngineStage2`: its files, shell variables and
//!    functions, the lines that install it, the API host to pin, where manifests are
//!    applied). `k3s::stage2` is the example.
//! 2. The variants `Distribution::NAME` and `Engine::NAME(..)`, their arms here and, for its
//!    errors, a variant of `EngineError`.
//! 3. The profile's key for its settings (`cluster.NAME`) and the plan's arm that builds
//!    the variant (`plan::resolve_cluster`).
//!
//! The renderer (`crate::render::stage2`) matches on no distribution and needs no edit.

pub mod helm_controller;
pub(crate) mod k3s;
/// The K3s release files of `cluster.airgap` (K3s only).
pub use k3s::airgap;
pub(crate) mod kubeadm;
pub(crate) mod microk8s;
pub(crate) mod offline_ca;
pub(crate) mod registry_mirror;

/// kube-vip, which serves an HA cluster's virtual IP, and the release pinode deploys.
pub use k3s::kubevip::{KubeVip, VERSION as KUBE_VIP_VERSION};
pub(crate) mod stage2;

/// The port of MicroK8s' cluster agent, where nodes join.
pub const MICROK8S_JOIN_PORT: u16 = microk8s::CLUSTER_AGENT_PORT;

use std::net::Ipv4Addr;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::osinfo::{OsFamily, OsInfo};
use stage2::{EngineStage2, StageContext};

/// The Kubernetes distribution a cluster runs: the profile's `cluster.distribution`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// K3s, installed by its install script (get.k3s.io).
    #[default]
    K3s,
    /// Canonical's MicroK8s, installed as a snap (Ubuntu Server).
    Microk8s,
    /// Upstream Kubernetes set up by kubeadm, with CRI-O, from pkgs.k8s.io.
    Kubeadm,
}

impl Distribution {
    /// The profile's name of it (`k3s`, `microk8s`, `kubeadm`).
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::K3s => "k3s",
            Distribution::Microk8s => "microk8s",
            Distribution::Kubeadm => "kubeadm",
        }
    }

    /// Its name in sentences.
    pub fn title(self) -> &'static str {
        match self {
            Distribution::K3s => "K3s",
            Distribution::Microk8s => "MicroK8s",
            Distribution::Kubeadm => "kubeadm + CRI-O",
        }
    }

    /// The port of the Kubernetes API on a server (MicroK8s serves it on 16443).
    pub fn api_port(self) -> u16 {
        match self {
            Distribution::K3s | Distribution::Kubeadm => 6443,
            Distribution::Microk8s => microk8s::API_PORT,
        }
    }

    /// What a node of `role` does, in this distribution's words (`profile check`, and the
    /// first-boot log).
    pub fn describe_role(self, role: NodeRole, ha: bool) -> &'static str {
        match (self, role, ha) {
            (_, NodeRole::Founder, false) => "server",
            (Distribution::K3s, NodeRole::Founder, true) => {
                "server, founds the cluster (cluster-init)"
            }
            (Distribution::Microk8s, NodeRole::Founder, true) => {
                "server, founds the cluster (dqlite HA with the other servers)"
            }
            (Distribution::Kubeadm, NodeRole::Founder, true) => {
                "server, founds the cluster (kubeadm init, stacked etcd)"
            }
            (_, NodeRole::JoiningServer, _) => "server, joins the founder",
            (_, NodeRole::Agent, _) => "agent",
        }
    }

    /// Where the control plane keeps its state, for `profile check`.
    pub fn datastore(self, ha: bool) -> &'static str {
        match (self, ha) {
            (Distribution::K3s, true) => "embedded etcd (HA)",
            (Distribution::K3s, false) => "single server, default datastore",
            (Distribution::Microk8s, true) => "dqlite, replicated by the servers (HA)",
            (Distribution::Microk8s, false) => "single server, dqlite",
            (Distribution::Kubeadm, true) => "stacked etcd on every server (HA)",
            (Distribution::Kubeadm, false) => "single server, etcd",
        }
    }

    /// How the nodes join, for `profile check`.
    pub fn join_mechanism(self) -> &'static str {
        match self {
            Distribution::K3s => {
                "the K3s cluster token, in full (K10<CA hash>::server:…): every node pins the cluster CA pinode keeps"
            }
            Distribution::Microk8s => {
                "a MicroK8s join token (the founder's persistentClusterToken, in every node's launch configuration)"
            }
            Distribution::Kubeadm => {
                "a kubeadm bootstrap token, with the cluster CA pinned by its hash (caCertHashes)"
            }
        }
    }

    /// Checks that this distribution accepts `token` as its join token. The message never
    /// quotes the token.
    pub(crate) fn check_token(self, token: &str) -> Result<(), String> {
        match self {
            Distribution::K3s => k3s::check_cluster_token(token),
            Distribution::Microk8s => microk8s::check_join_token(token),
            Distribution::Kubeadm => kubeadm::check_bootstrap_token(token),
        }
    }

    /// A join token of this distribution's form made from 32 random bytes.
    pub(crate) fn token_from(self, random: &[u8; 32]) -> String {
        match self {
            Distribution::K3s => hex::encode(random),
            Distribution::Microk8s => microk8s::join_token_from(random),
            Distribution::Kubeadm => kubeadm::bootstrap_token_from(random),
        }
    }

    /// The command that runs this distribution's kubectl as root on a server, with the
    /// cluster's admin credentials (`pinode status`).
    pub fn kubectl(self) -> &'static str {
        match self {
            Distribution::K3s => "k3s kubectl",
            Distribution::Microk8s => "microk8s kubectl",
            Distribution::Kubeadm => "kubectl --kubeconfig /etc/kubernetes/admin.conf",
        }
    }

    /// The command that prints the admin kubeconfig on a server, run as root, and what it
    /// reads (`pinode kubeconfig`).
    pub fn admin_kubeconfig(self) -> (&'static str, &'static str) {
        match self {
            Distribution::K3s => ("cat /etc/rancher/k3s/k3s.yaml", "/etc/rancher/k3s/k3s.yaml"),
            Distribution::Microk8s => ("microk8s config", "the output of `microk8s config`"),
            Distribution::Kubeadm => (
                "cat /etc/kubernetes/admin.conf",
                "/etc/kubernetes/admin.conf",
            ),
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// The first server: founds the cluster (alone, or the first of an HA control plane).
    Founder,
    /// A further server joining the founder (HA).
    JoiningServer,
    Agent,
}

impl NodeRole {
    /// A server (founder or joining), which runs the control plane.
    pub fn is_server(self) -> bool {
        matches!(self, NodeRole::Founder | NodeRole::JoiningServer)
    }
}

/// One node's membership in the cluster, whatever the distribution: what every engine's
/// files are rendered from, beside its own settings.
#[derive(Clone)]
pub(crate) struct Membership {
    pub(crate) role: NodeRole,
    /// More than one server: the control plane is replicated.
    pub(crate) ha: bool,
    /// The API server URL (`https://HOST:PORT`) the other nodes and kubectl reach.
    pub(crate) api: String,
    /// How a node reaches the founder itself (not the API): its static address, else
    /// `FOUNDER.local`. MicroK8s joins go there (port 25000), whatever the API address.
    pub(crate) founder_host: String,
    /// The join token, checked against the distribution's rule.
    pub(crate) token: SecretString,
    /// The node's static address (`network:`).
    pub(crate) node_ip: Option<Ipv4Addr>,
    /// On servers of a cluster with a VIP: kube-vip, with the VIP and its interface.
    pub(crate) kube_vip: Option<KubeVip>,
}

#[cfg(test)]
impl Membership {
    /// A single-server membership with a placeholder token, for unit tests.
    pub(crate) fn for_test(role: NodeRole, api: &str) -> Membership {
        Membership {
            role,
            ha: false,
            api: api.into(),
            founder_host: "node-1.local".into(),
            token: "t".to_string().into(),
            node_ip: None,
            kube_vip: None,
        }
    }
}

/// A problem with a distribution's settings, found by its own rules: `field` is relative to
/// the distribution's key (`channel` for `cluster.microk8s.channel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecProblem {
    pub(crate) field: String,
    pub(crate) message: String,
    /// A warning, not an error: the profile still works.
    pub(crate) warning: bool,
}

impl SpecProblem {
    pub(crate) fn error(field: impl Into<String>, message: impl Into<String>) -> SpecProblem {
        SpecProblem {
            field: field.into(),
            message: message.into(),
            warning: false,
        }
    }

    pub(crate) fn warning(field: impl Into<String>, message: impl Into<String>) -> SpecProblem {
        SpecProblem {
            field: field.into(),
            message: message.into(),
            warning: true,
        }
    }
}

/// The distribution a node runs, with that node's resolved part in it.
#[derive(Clone)]
pub(crate) enum Engine {
    K3s(k3s::K3sNode),
    Microk8s(microk8s::Microk8sNode),
    Kubeadm(kubeadm::KubeadmNode),
}

/// A distribution's file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum EngineError {
    #[error(transparent)]
    K3s(#[from] k3s::K3sError),
    #[error(transparent)]
    Microk8s(#[from] microk8s::Microk8sError),
    #[error(transparent)]
    Kubeadm(#[from] kubeadm::KubeadmError),
}

impl Engine {
    /// Whether the node installs its distribution from the boot partition
    /// (`cluster.airgap`; K3s only).
    pub(crate) fn airgap(&self) -> bool {
        match self {
            Engine::K3s(node) => node.spec.airgap,
            _ => false,
        }
    }

    /// Why this node's distribution cannot work on the OS `os` describes, if it cannot (the
    /// image is known when a node is prepared; `profile check` says what it can without it).
    pub(crate) fn os_refusal(&self, os: &OsInfo) -> Option<String> {
        if let Engine::Microk8s(_) = self {
            let no_snapd = match os.has_snapd {
                Some(has) => !has,
                // The root file system could not be read: Raspberry Pi OS has no snapd.
                None => os.family == OsFamily::RaspberryPiOs,
            };
            if no_snapd {
                return Some(format!(
                    "MicroK8s is installed as a snap, and {} has no snapd (Ubuntu Server \
                     ships it; Raspberry Pi OS does not): use Ubuntu Server, e.g. os.image: \
                     ubuntu-server-24.04-arm64",
                    os.full_name()
                ));
            }
        }
        if os.resolves_mdns == Some(false)
            && let Some(name) = self.mdns_name_needed()
        {
            return Some(format!(
                "this node must resolve {name} to reach the cluster, and {} resolves no \
                 .local names (its /etc/nsswitch.conf names no mdns module: stock Ubuntu \
                 Server has neither avahi-daemon nor libnss-mdns): give the first server a \
                 static address (network:), or set cluster.api or cluster.vip",
                os.full_name()
            ));
        }
        None
    }

    /// The mDNS name this node must resolve to reach the cluster, if any: the founder's for
    /// a MicroK8s join; the API host for a K3s node that joins it; for kubeadm, whose
    /// configuration names the API host on every node (the founder's `controlPlaneEndpoint`
    /// too), the API host on every node.
    fn mdns_name_needed(&self) -> Option<&str> {
        match self {
            Engine::Microk8s(node) => (node.member.role != NodeRole::Founder
                && node.member.founder_host.ends_with(".local"))
            .then_some(node.member.founder_host.as_str()),
            Engine::K3s(node) => (node.member.role != NodeRole::Founder)
                .then(|| k3s::mdns_host_of(&node.member.api))
                .flatten(),
            Engine::Kubeadm(node) => k3s::mdns_host_of(&node.member.api),
        }
    }

    /// The distribution's part of the second first-boot stage for this node.
    pub(crate) fn stage2(&self, ctx: &StageContext) -> Result<EngineStage2, EngineError> {
        match self {
            Engine::K3s(node) => Ok(k3s::stage2::stage2(ctx, node)?),
            Engine::Microk8s(node) => Ok(microk8s::stage2::stage2(ctx, node)?),
            Engine::Kubeadm(node) => Ok(kubeadm::stage2::stage2(ctx, node)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osinfo::{Generation, InitRoute};

    fn ubuntu(resolves_mdns: Option<bool>, has_snapd: Option<bool>) -> OsInfo {
        OsInfo {
            family: OsFamily::Ubuntu,
            generation: Generation::Unknown,
            release: Some("24.04".into()),
            init: InitRoute::CloudInit,
            pretty_name: None,
            cloud_init_installed: Some(true),
            has_snapd,
            resolves_mdns,
            evidence: Vec::new(),
            chosen_by: None,
        }
    }

    fn microk8s(role: NodeRole, founder_host: &str) -> Engine {
        Engine::Microk8s(microk8s::Microk8sNode {
            member: Membership {
                founder_host: founder_host.into(),
                ..Membership::for_test(role, "https://mk-1.local:16443")
            },
            spec: microk8s::Microk8sSpec::default(),
            registry_mirror: None,
        })
    }

    fn k3s(role: NodeRole, api: &str) -> Engine {
        Engine::K3s(k3s::K3sNode {
            member: Membership::for_test(role, api),
            spec: k3s::K3sSpec::default(),
            ca: Vec::new(),
            registry_mirror: None,
        })
    }

    #[test]
    fn a_node_that_must_resolve_a_local_name_is_refused_where_nothing_resolves_it() {
        let stock = ubuntu(Some(false), Some(true));
        let agent = microk8s(NodeRole::Agent, "mk-1.local");
        let why = agent.os_refusal(&stock).unwrap();
        assert!(
            why.contains("mk-1.local") && why.contains("Ubuntu 24.04 LTS"),
            "{why}"
        );
        // The founder joins nobody; an address needs no resolver; with libnss-mdns, or
        // when nothing is known, the node may go on.
        assert!(
            microk8s(NodeRole::Founder, "mk-1.local")
                .os_refusal(&stock)
                .is_none()
        );
        assert!(
            microk8s(NodeRole::Agent, "192.168.1.10")
                .os_refusal(&stock)
                .is_none()
        );
        for known in [Some(true), None] {
            assert!(agent.os_refusal(&ubuntu(known, Some(true))).is_none());
        }
        let k3s_agent = k3s(NodeRole::Agent, "https://k-1.local:6443");
        assert!(k3s_agent.os_refusal(&stock).unwrap().contains("k-1.local"));
        assert!(
            k3s(NodeRole::Founder, "https://k-1.local:6443")
                .os_refusal(&stock)
                .is_none()
        );
        assert!(
            k3s(NodeRole::Agent, "https://10.0.0.1:6443")
                .os_refusal(&stock)
                .is_none()
        );
    }

    #[test]
    fn microk8s_needs_snapd() {
        let founder = microk8s(NodeRole::Founder, "192.168.1.10");
        assert!(
            founder
                .os_refusal(&ubuntu(None, Some(false)))
                .unwrap()
                .contains("no snapd")
        );
        assert!(founder.os_refusal(&ubuntu(None, Some(true))).is_none());
    }
}
