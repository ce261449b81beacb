//! The cluster plan: which node founds the cluster, which servers join it, where the API
//! is, and where the join token comes from.
//!
//! With one server K3s keeps its default datastore; with more, the first server starts the
//! embedded etcd (`cluster-init`) and the others join it. Agents join the API URL. The token
//! comes from `token_env` or `token_file`, or is generated once and kept (mode 0600) in
//! pinode's state directory, so that a node prepared next month joins the same cluster.
//! Under CI pinode never generates it (see `CI_REFUSAL`): a CI machine forgets it.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::edge::Settings;
use crate::engine::k3s::kubevip::{self, KubeVip};
use crate::engine::{Distribution, NodeRole};
use crate::invoker::Invoker;
use crate::profile::network::{InterfaceConfig, Ipv4Config};
use crate::profile::schema::{ClusterSpec, Role};
use crate::profile::v1::secrets;
use crate::profile::{FieldError, LoadedProfile, SecretRef};

/// Where the API address comes from (in this order of precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiSource {
    /// `cluster.api`, as written.
    Given,
    /// `cluster.vip`, served by kube-vip on the servers.
    Vip,
    /// The founder's static address (`network:`).
    FounderAddress,
    /// The founder's mDNS name (`FOUNDER.local`): K3s cannot resolve it (Go's resolver
    /// knows nothing of mDNS), so the joining nodes pin its address in /etc/hosts at each
    /// boot.
    FounderMdns,
}

/// How a node joins the cluster: the URL, and why that one (`profile check` says it).
#[derive(Debug, Clone, Copy)]
pub struct Join<'a> {
    pub api: &'a str,
    pub source: ApiSource,
    founder: &'a str,
}

impl std::fmt::Display for Join<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "joins {} (", self.api)?;
        match self.source {
            ApiSource::Given => {
                f.write_str("cluster.api")?;
                if let Some(host) = crate::engine::k3s::mdns_host_of(self.api) {
                    write!(f, "; {host} pinned in /etc/hosts at each boot")?;
                }
            }
            ApiSource::Vip => f.write_str("the virtual IP, kube-vip on the servers")?,
            ApiSource::FounderAddress => write!(f, "{}'s static address", self.founder)?,
            ApiSource::FounderMdns => write!(
                f,
                "{}.local pinned in /etc/hosts at each boot: no static address known",
                self.founder
            )?,
        }
        f.write_str(")")
    }
}

/// Where the cluster token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// `token_env` or `token_file`.
    Given(SecretRef),
    /// Generated on first use and kept at this path.
    State { path: PathBuf },
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Given(secret) => secret.fmt(f),
            TokenSource::State { path } => write!(f, "generated once, kept in {}", path.display()),
        }
    }
}

/// The cluster token, and what to tell the user about it (that it was just generated).
#[derive(Debug)]
pub(crate) struct Token {
    pub(crate) value: SecretString,
    /// A line for stderr, e.g. "note: generated the K3s token … (back it up)".
    pub(crate) notice: Option<String>,
}

/// The cluster, as planned from a profile.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub name: String,
    /// The Kubernetes distribution the cluster runs.
    pub distribution: Distribution,
    pub api: String,
    /// How a node reaches the founder itself: its static address, else `FOUNDER.local`.
    pub founder_host: String,
    pub founder: String,
    pub servers: Vec<String>,
    pub ha: bool,
    pub token: TokenSource,
    pub spec: ClusterSpec,
    /// Where `api` comes from, which decides how the other nodes reach it.
    pub api_source: ApiSource,
    /// With `cluster.vip`: kube-vip on the servers, with the virtual IP and the interface it
    /// announces it on (the VIP is then the API address, see `api_source`).
    pub kube_vip: Option<KubeVip>,
    /// `servers` as a set: `role_of` is asked for every node, and a scan of the list made
    /// `profile check` quadratic (200 server ranges, 200,000 nodes: 101 s).
    server_set: HashSet<String>,
}

impl ClusterPlan {
    /// The plan of `profile`, if it has a cluster (and at least one server: validation
    /// guarantees that). A generated token is kept in `settings`' state directory.
    pub fn of(profile: &LoadedProfile, settings: &Settings) -> Option<ClusterPlan> {
        let spec = profile.profile.cluster.clone()?;
        let servers: Vec<String> = profile
            .nodes
            .iter()
            .filter(|n| n.role == Role::Server)
            .map(|n| n.hostname.clone())
            .collect();
        let founder = servers.first()?.clone();
        let founder_ip = profile.node(&founder).and_then(|n| n.network.known_ipv4());
        let distribution = spec.distribution;
        let port = distribution.api_port();
        let (api, api_source) = match (&spec.api, spec.vip, founder_ip) {
            (Some(api), _, _) => (api.clone(), ApiSource::Given),
            (None, Some(vip), _) => (format!("https://{vip}:{port}"), ApiSource::Vip),
            (None, None, Some(ip)) => (format!("https://{ip}:{port}"), ApiSource::FounderAddress),
            (None, None, None) => (
                format!("https://{founder}.local:{port}"),
                ApiSource::FounderMdns,
            ),
        };
        let founder_host = match founder_ip {
            Some(ip) => ip.to_string(),
            None => format!("{founder}.local"),
        };
        let kube_vip = spec.vip.map(|address| KubeVip {
            address,
            interface: kube_vip_interface(&spec, address, profile),
        });
        // Validation has refused two sources; none means "generate and keep".
        let token = match secrets::one(secrets::cluster_token(&spec)) {
            Some(secret) => TokenSource::Given(secret),
            None => TokenSource::State {
                path: state_dir(settings)
                    .join("clusters")
                    .join(&spec.name)
                    .join(kept_token_name(distribution)),
            },
        };
        Some(ClusterPlan {
            name: spec.name.clone(),
            distribution,
            founder_host,
            api,
            ha: servers.len() > 1,
            founder,
            server_set: servers.iter().cloned().collect(),
            servers,
            token,
            api_source,
            kube_vip,
            spec,
        })
    }

    /// How `hostname` reaches the API to join the cluster; `None` for the founder, which
    /// joins nobody.
    pub fn join_of(&self, hostname: &str) -> Option<Join<'_>> {
        (self.role_of(hostname) != NodeRole::Founder).then_some(Join {
            api: &self.api,
            source: self.api_source,
            founder: &self.founder,
        })
    }

    /// What K3s does on `hostname`.
    pub fn role_of(&self, hostname: &str) -> NodeRole {
        if hostname == self.founder {
            NodeRole::Founder
        } else if self.server_set.contains(hostname) {
            NodeRole::JoiningServer
        } else {
            NodeRole::Agent
        }
    }

    /// Reads (or, the first time, generates and keeps) the cluster token.
    pub(crate) fn token(
        &self,
        profile: &LoadedProfile,
        settings: &Settings,
    ) -> Result<Token, FieldError> {
        let (token, field) = match &self.token {
            TokenSource::Given(secret) => (
                secret
                    .resolve(settings, &profile.base_dir())
                    .map(|value| Token {
                        value,
                        notice: None,
                    })
                    .map_err(|e| e.to_string()),
                secret.field.as_str(),
            ),
            TokenSource::State { path } => (
                kept_or_refused(path, self.distribution, settings),
                "cluster",
            ),
        };
        let token = token.map_err(|e| profile.error_at(field, e))?;
        check_token_value(self.distribution, token.value.expose_secret())
            .map_err(|e| profile.error_at(field, e))?;
        Ok(token)
    }

    /// The profile field the token comes from (`cluster` for a generated one).
    pub(crate) fn token_field(&self) -> &str {
        match &self.token {
            TokenSource::Given(secret) => secret.field.as_str(),
            TokenSource::State { .. } => "cluster",
        }
    }

    /// The token as it is now, without generating one: the given one, or the kept one when
    /// there is one.
    pub(crate) fn token_value(
        &self,
        profile: &LoadedProfile,
        settings: &Settings,
    ) -> Result<SecretString, String> {
        match &self.token {
            TokenSource::Given(secret) => secret
                .resolve(settings, &profile.base_dir())
                .map_err(|e| e.to_string()),
            TokenSource::State { path } => read_kept_token(path),
        }
    }

    /// Every problem reading the token would meet, found without generating one: the
    /// variable or file named (and the value K3s would refuse), the kept token when there
    /// is one, and under CI the refusal to generate one. Each problem says whether it is the
    /// environment's (see [`crate::plan::check`]).
    pub(crate) fn probe_token(
        &self,
        profile: &LoadedProfile,
        settings: &Settings,
    ) -> Result<(), (bool, FieldError)> {
        let (value, field) = match &self.token {
            TokenSource::Given(secret) => (
                secret
                    .resolve(settings, &profile.base_dir())
                    .map_err(|e| (e.is_environment(), e.to_string())),
                secret.field.as_str(),
            ),
            TokenSource::State { path } => {
                if std::fs::symlink_metadata(path).is_ok() {
                    (read_kept_token(path).map_err(|e| (false, e)), "cluster")
                } else if settings.ci {
                    (Err((true, CI_REFUSAL.to_string())), "cluster")
                } else {
                    return Ok(());
                }
            }
        };
        let value = value.map_err(|(env, e)| (env, profile.error_at(field, e)))?;
        check_token_value(self.distribution, value.expose_secret())
            .map_err(|e| (false, profile.error_at(field, e)))
    }
}

/// The interface the servers announce the VIP on: the profile's
/// `cluster.kube_vip.interface`; else Wi-Fi (`wlan0`) when the VIP lies in a server's
/// static Wi-Fi prefix and in no server's static Ethernet prefix (ARP reaches only the
/// link the address belongs to); else Ethernet (`eth0`). One answer for every server: each
/// server's K3s applies the same manifest, and copies that differed would overwrite each
/// other.
fn kube_vip_interface(spec: &ClusterSpec, vip: Ipv4Addr, profile: &LoadedProfile) -> String {
    if let Some(interface) = spec.kube_vip.as_ref().and_then(|k| k.interface.clone()) {
        return interface;
    }
    let servers = || profile.nodes.iter().filter(|n| n.role == Role::Server);
    let holds = |config: &InterfaceConfig| match config.ipv4 {
        Ipv4Config::Static { address, .. } => address.contains(&vip),
        Ipv4Config::Dhcp => false,
    };
    let wired = servers().any(|n| holds(&n.network.ethernet));
    let wireless = servers().any(|n| holds(&n.network.wifi));
    if wireless && !wired {
        kubevip::WIFI_INTERFACE.to_string()
    } else {
        kubevip::DEFAULT_INTERFACE.to_string()
    }
}

/// Why pinode does not generate a cluster token under CI, and what to do instead.
///
/// A CI job runs on a throw-away machine: a token generated and kept there is gone with the
/// job, so the next pipeline generates another one and the nodes it prepares never join the
/// nodes of the last one. A token kept from before (in `PINODE_STATE_DIR`, say a cached
/// folder) was not generated on this run and is used as usual.
const CI_REFUSAL: &str = "CI is set and the profile names no cluster token (cluster.token_env or \
     cluster.token_file), so pinode would generate one; a token generated on a throw-away CI \
     machine differs on every run, so nodes prepared in different pipelines would never join \
     one cluster. Generate one once (openssl rand -hex 32), store it as a masked CI/CD \
     variable such as K3S_TOKEN and name it in the profile: `cluster.token_env: K3S_TOKEN`";

/// The kept token at `path`; generating it only when not under CI (see [`CI_REFUSAL`]).
fn kept_or_refused(
    path: &Path,
    distribution: Distribution,
    settings: &Settings,
) -> Result<Token, String> {
    if settings.ci && std::fs::symlink_metadata(path).is_err() {
        return Err(CI_REFUSAL.to_string());
    }
    kept_token(path, distribution)
}

/// The kept token's file name: K3s's keeps the name it always had; the others have their
/// own, since each distribution's token has its own form.
fn kept_token_name(distribution: Distribution) -> String {
    match distribution {
        Distribution::K3s => "token".into(),
        other => format!("{other}-token"),
    }
}

/// The checks every cluster token passes, whatever its source: pinode's own minimum, then
/// the distribution's rule (for K3s its parser, see
/// [`crate::engine::k3s::check_cluster_token`]).
fn check_token_value(distribution: Distribution, t: &str) -> Result<(), String> {
    let printable = t.chars().all(|c| c.is_ascii_graphic());
    if !printable || t.len() < 16 {
        return Err(
            "the cluster token must be at least 16 printable ASCII characters without spaces"
                .into(),
        );
    }
    distribution.check_token(t)
}

/// pinode's state directory: `$PINODE_STATE_DIR`, else the invoking user's XDG state
/// directory (`~/.local/state/pinode`; under sudo the invoking user's, not root's, so that
/// `sudo pinode flash` and `pinode prepare` share one kept token).
pub(crate) fn state_dir(settings: &Settings) -> PathBuf {
    if let Some(dir) = &settings.state_dir {
        return dir.clone();
    }
    Invoker::current()
        .state_dir()
        .unwrap_or_else(|| settings.temp_dir().join("pinode-state"))
}

/// The shortest kept token pinode accepts: it writes 64 hex digits, and anything shorter is
/// the remains of a failed write (an older pinode on a full disk left empty files).
const MIN_KEPT_TOKEN: usize = 16;

/// Reads the token kept at `path`, generating it (32 random bytes, hex) if there is none yet.
///
/// The token is written whole to a private temporary file in the same directory, synced, and
/// then linked into place without replacing anything: `path` either does not exist or holds a
/// complete token, and when several pinode processes start a cluster at once exactly one
/// link wins and every other process reads the winner's token.
fn kept_token(path: &Path, distribution: Distribution) -> Result<Token, String> {
    let shown = path.display();
    let kept = |value| Token {
        value,
        notice: None,
    };
    if std::fs::symlink_metadata(path).is_ok() {
        return read_kept_token(path).map(kept);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let invoker = Invoker::current();
    invoker
        .create_dir_all(dir, 0o700)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut bytes = [0u8; 32];
    let cluster = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let seed = crate::entropy::test_seed();
    crate::entropy::fill(
        &mut bytes,
        &format!("cluster-token:{cluster}"),
        seed.as_deref(),
    )
    .map_err(|e| format!("no randomness for the cluster token: {e}"))?;
    let token = distribution.token_from(&bytes);
    let created =
        crate::cleanup::create_once(path, "token", format!("{token}\n").as_bytes(), |f| {
            invoker.give_back_file(f)
        })
        .map_err(|e| format!("cannot create {shown}: {e}"))?;
    if !created {
        // Another pinode got there first: use its token.
        return read_kept_token(path).map(kept);
    }
    Ok(Token {
        value: SecretString::from(token),
        notice: Some(format!(
            "note: generated the {} token for this cluster and kept it in {shown} (back it up)",
            distribution.title()
        )),
    })
}

/// More than this is not a file pinode wrote (64 hex digits and a newline).
const MAX_KEPT_TOKEN: u64 = 4096;

/// Reads an existing kept token: private, readable, and a whole token pinode wrote.
///
/// A file pinode cannot read (permission denied, an I/O error) is not damaged, and
/// deleting it would split the cluster: only a file that was read and holds no complete
/// token gets the advice to delete it and generate a new one.
fn read_kept_token(path: &Path) -> Result<SecretString, String> {
    use crate::input::InputError;
    let shown = path.display();
    let bytes = crate::input::read_private(path, MAX_KEPT_TOKEN).map_err(|e| match e {
        InputError::Io { source, .. } => format!(
            "cannot read the kept cluster token {shown}: {source}; {}",
            unreadable_hint(path)
        ),
        other => other.to_string(),
    })?;
    // A longer file than MAX_KEPT_TOKEN is not a token pinode wrote (below).
    let token = String::from_utf8(bytes)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| {
            (MIN_KEPT_TOKEN..=MAX_KEPT_TOKEN as usize).contains(&t.len())
                && t.chars().all(|c| c.is_ascii_graphic())
        });
    match token {
        Some(token) => Ok(SecretString::from(token)),
        None => Err(format!(
            "{shown} holds no complete cluster token: {}",
            damaged_hint(path)
        )),
    }
}

/// What to do about a kept token pinode cannot read (it is not damaged: keep it).
fn unreadable_hint(path: &Path) -> String {
    format!(
        "do not delete it, nodes may use it: run pinode as the user whose state it is (sudo \
         uses the invoking user's), or give it back to them (chown, then chmod 600 {})",
        path.display()
    )
}

/// What to do about a damaged kept token (empty, short, or not a token at all).
fn damaged_hint(path: &Path) -> String {
    format!(
        "if no node has been started with it yet, delete {} and run pinode again to generate \
         a new one; otherwise restore it from a backup or from a node's /etc/pinode/secrets/k3s-token",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The real binary refuses profiles above `MAX_NODES`, where a scan is still fast; the
    /// plan itself must stay linear, so it is tried here with ten times that many servers
    /// (a scan per node took minutes; the set takes well under a second even unoptimised).
    #[test]
    fn role_lookup_is_linear() {
        let text = "version: 1\ndefaults:\n  user:\n    name: a\n    ssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E a@b\"]\ncluster:\n  name: c\nnodes:\n  - hostname: s\n    role: server\n";
        let mut profile = LoadedProfile::parse(Path::new("p.yaml"), text).unwrap();
        let template = profile.nodes[0].clone();
        profile.nodes = (0..100_000)
            .map(|i| {
                let mut node = template.clone();
                node.hostname = format!("s{i}");
                node
            })
            .collect();
        let started = std::time::Instant::now();
        let plan = ClusterPlan::of(&profile, &Settings::default()).unwrap();
        let joining = profile
            .nodes
            .iter()
            .filter(|n| plan.role_of(&n.hostname) == NodeRole::JoiningServer)
            .count();
        assert_eq!(joining, 99_999);
        assert_eq!(plan.role_of("not-there"), NodeRole::Agent);
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    }

    /// kube-vip announces the VIP where ARP reaches it: eth0 unless the VIP is in a server's
    /// static Wi-Fi prefix only; the profile's interface wins.
    #[test]
    fn the_vip_interface_follows_the_servers_prefixes() {
        use crate::profile::network::Ipv4Config;
        let text = "version: 1\ndefaults:\n  user:\n    name: a\n    ssh_authorized_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E a@b\"]\ncluster:\n  name: c\n  vip: 10.1.0.9\nnodes:\n  - hostname: s-[1-3]\n    role: server\n";
        let mut profile = LoadedProfile::parse(Path::new("p.yaml"), text).unwrap();
        let interface = |profile: &LoadedProfile| {
            let plan = ClusterPlan::of(profile, &Settings::default()).unwrap();
            plan.kube_vip.unwrap().interface
        };
        assert_eq!(interface(&profile), "eth0");
        let fixed = |net: &str| Ipv4Config::Static {
            address: net.parse().unwrap(),
            gateway: None,
        };
        profile.nodes[0].network.wifi.ipv4 = fixed("10.1.0.11/24");
        assert_eq!(interface(&profile), "wlan0");
        profile.nodes[1].network.ethernet.ipv4 = fixed("10.1.0.12/16");
        assert_eq!(interface(&profile), "eth0");
        profile.nodes[1].network.ethernet.ipv4 = fixed("192.168.0.12/24");
        assert_eq!(interface(&profile), "wlan0");
        profile.profile.cluster.as_mut().unwrap().kube_vip =
            Some(crate::engine::k3s::kubevip::KubeVipSpec {
                interface: Some("end0".into()),
            });
        assert_eq!(interface(&profile), "end0");
    }

    #[test]
    fn a_kept_token_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clusters/c/token");
        let first = kept_token(&path, Distribution::K3s).unwrap();
        assert!(first.notice.is_some_and(|n| n.contains("back it up")));
        let first = first.value;
        assert_eq!(first.expose_secret().len(), 64);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            kept_token(&path, Distribution::K3s)
                .unwrap()
                .value
                .expose_secret(),
            first.expose_secret()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            kept_token(&path, Distribution::K3s)
                .unwrap_err()
                .contains("chmod 600")
        );
    }

    #[test]
    fn an_empty_kept_token_is_an_error_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = kept_token(&path, Distribution::K3s).unwrap_err();
        assert!(err.contains("delete") && err.contains("token"), "{err}");
        std::fs::write(&path, "abc\n").unwrap();
        let err = kept_token(&path, Distribution::K3s).unwrap_err();
        assert!(err.contains("no complete cluster token"), "{err}");
    }
}
