//! MicroK8s: Canonical's Kubernetes in a snap, on Ubuntu Server.
//!
//! pinode installs it unattended through its launch configuration
//! (`/var/snap/microk8s/common/.microk8s.yaml`, see [`launch`]), which the snap's install
//! hook reads: the founder carries a join token pinode generated
//! (`persistentClusterToken`), the other nodes join it (`join.url`, `join.worker` for
//! agents), so nobody runs `microk8s add-node` by hand. Three or more servers form
//! MicroK8s' HA (dqlite replicated by the control-plane nodes).
//!
//! The facts here were read from Canonical's sources (commits in
//! `data/microk8s/launch-config-keys.txt`): github.com/canonical/microk8s (the snap: its
//! hooks, wrappers and default arguments) and github.com/canonical/microk8s-cluster-agent
//! (the agent that applies launch configurations and serves joins). Nothing here knows the
//! profile, the plan or the renderer.

pub(crate) mod launch;
pub(crate) mod stage2;

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Membership, SpecProblem};

/// The port of MicroK8s' Kubernetes API.
pub(crate) const API_PORT: u16 = 16443;

/// The port of the cluster agent, which serves joins (`--bind 0.0.0.0:25000` in the snap's
/// `default-args/cluster-agent`).
pub(crate) const CLUSTER_AGENT_PORT: u16 = 25000;

/// The snap channel pinode installs when the profile names none, and the track it was
/// written and tested against.
pub(crate) const DEFAULT_CHANNEL: &str = "1.33/stable";
pub(crate) const TESTED_TRACK: &str = "1.33";

/// The first track that reads launch configurations (Canonical's reference,
/// microk8s.io/docs/ref-launch-config).
const FIRST_LAUNCH_CONFIG_MINOR: u32 = 27;

/// The shortest join token MicroK8s accepts: `TOKEN_ΜΙΝ_LEN = 32` in the snap's
/// `scripts/wrappers/common/cluster/utils.py`; `microk8s add-node --token` refuses a shorter
/// one ("Invalid token size. It must be 32 characters long.") and `microk8s join` a URL
/// with one ("Cluster token size should be at least 32 bytes").
pub(crate) const TOKEN_MIN_LEN: usize = 32;

/// Kubelet arguments the snap sets to its own paths (`default-args/kubelet` of the 1.33
/// branch) or pinode sets from the profile (`--node-ip`): giving them again would take the
/// kubelet away from the snap's certificates and containerd, or contradict the plan.
pub(crate) const MANAGED_KUBELET_ARGS: &[&str] = &[
    "kubeconfig",
    "cert-dir",
    "client-ca-file",
    "root-dir",
    "container-runtime-endpoint",
    "containerd",
    "node-ip",
];

/// A MicroK8s file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Microk8sError(pub(crate) String);

/// A snap file and its assertion, for installing without the Snap Store (Canonical's
/// offline install: `snap ack FILE.assert`, then `snap install ./FILE.snap`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapFile {
    /// https URL of the `.snap` file (what `snap download` saves).
    pub(crate) snap: String,
    /// https URL of its `.assert` file.
    pub(crate) assert: String,
}

/// The profile's `cluster.microk8s`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Microk8sSpec {
    /// The snap channel, TRACK/RISK (e.g. 1.33/stable): pin the track so that a node added
    /// next month runs the same Kubernetes minor.
    #[serde(default = "default_channel")]
    pub(crate) channel: String,
    /// Addons the founder enables (MicroK8s' default is dns).
    #[serde(default = "default_addons")]
    pub(crate) addons: Vec<String>,
    /// Extra names and addresses in the API server's certificate (servers); the server's
    /// hostname(.local), static address and the cluster's VIP are always added.
    #[serde(default)]
    pub(crate) extra_sans: Vec<String>,
    /// Extra kubelet arguments, `--NAME=VALUE` (or `--NAME` for true), on every node.
    #[serde(default)]
    pub(crate) kubelet_args: Vec<String>,
    /// Install from these files instead of the Snap Store (a mirror, an air-gapped
    /// network): installed in order, the last one is MicroK8s (`--classic`), the ones
    /// before it what it needs (its base snap, core20 for 1.33). `channel` is then unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) snaps: Vec<SnapFile>,
}

impl Default for Microk8sSpec {
    fn default() -> Self {
        Microk8sSpec {
            channel: default_channel(),
            addons: default_addons(),
            extra_sans: Vec::new(),
            kubelet_args: Vec::new(),
            snaps: Vec::new(),
        }
    }
}

fn default_channel() -> String {
    DEFAULT_CHANNEL.to_string()
}

fn default_addons() -> Vec<String> {
    launch::DEFAULT_ADDONS
        .iter()
        .map(|a| a.to_string())
        .collect()
}

impl Microk8sSpec {
    /// Every problem with these settings, by MicroK8s' rules.
    pub(crate) fn problems(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if let Err(p) = check_channel(&self.channel) {
            out.push(p);
        }
        for (i, addon) in self.addons.iter().enumerate() {
            let field = format!("addons[{i}]");
            if !is_addon_name(addon) {
                out.push(SpecProblem::error(
                    field,
                    "is not a MicroK8s addon name: lower-case letters, digits and '-', \
                     optionally after its repository and a '/' (e.g. dns, community/cilium)",
                ));
            } else if self.addons[..i].contains(addon) {
                out.push(SpecProblem::error(field, "is named twice"));
            }
        }
        for (i, san) in self.extra_sans.iter().enumerate() {
            if !is_san(san) {
                out.push(SpecProblem::error(
                    format!("extra_sans[{i}]"),
                    "is neither an IP address nor a DNS name (e.g. 192.168.1.9, \
                     api.example.com)",
                ));
            }
        }
        let mut names = Vec::new();
        for (i, arg) in self.kubelet_args.iter().enumerate() {
            let field = format!("kubelet_args[{i}]");
            match parse_kubelet_arg(arg) {
                Err(message) => out.push(SpecProblem::error(field, message)),
                Ok((name, _)) if names.contains(&name) => out.push(SpecProblem::error(
                    field,
                    format!("--{name} is given twice"),
                )),
                Ok((name, _)) => names.push(name),
            }
        }
        for (i, file) in self.snaps.iter().enumerate() {
            for (key, url, suffix) in [
                ("snap", &file.snap, ".snap"),
                ("assert", &file.assert, ".assert"),
            ] {
                if let Err(message) = check_file_url(url, suffix) {
                    out.push(SpecProblem::error(format!("snaps[{i}].{key}"), message));
                }
            }
        }
        out
    }

    /// One line for `profile check`: version and where it comes from.
    pub fn summary(&self) -> String {
        let source = match self.snaps.last() {
            Some(last) => format!(
                "{} snap file(s) ({} last), not the Snap Store",
                self.snaps.len(),
                last.snap
            ),
            None => {
                let track = self.channel.split('/').next().unwrap_or("");
                let tested = if track == TESTED_TRACK {
                    String::new()
                } else {
                    format!(" (pinode is tested with {TESTED_TRACK})")
                };
                format!("channel {} from the Snap Store{tested}", self.channel)
            }
        };
        let addons = if self.addons.is_empty() {
            "no addons".to_string()
        } else {
            format!("addons {}", self.addons.join(", "))
        };
        format!(
            "{source}; {addons}; launch configuration {}",
            launch::FORMAT_VERSION
        )
    }

    /// The version `profile check` shows (the snap channel, or the file MicroK8s comes
    /// from).
    pub fn version(&self) -> String {
        match self.snaps.last() {
            Some(last) => last.snap.clone(),
            None => self.channel.clone(),
        }
    }
}

/// Warnings about the number of servers: dqlite replicates the datastore on three or more
/// control-plane nodes (MicroK8s' HA); with two, losing either stops the cluster, and an
/// even number survives no more failures than one server fewer. `field` is empty: the
/// caller places the problem (at the profile's nodes).
#[allow(dead_code)] // the profile validation calls it once the lead wires it (issue 18)
pub(crate) fn server_count_problems(servers: usize) -> Vec<SpecProblem> {
    match servers {
        2 => vec![SpecProblem::warning(
            "",
            "two MicroK8s servers are not HA: dqlite needs three control-plane nodes to \
             replicate the datastore, and with two, losing either stops the API. Use one \
             or three",
        )],
        n if n > 2 && n % 2 == 0 => vec![SpecProblem::warning(
            "",
            format!(
                "{n} MicroK8s servers survive no more failures than {}: dqlite needs a \
                 majority of them. Use an odd number",
                n - 1
            ),
        )],
        _ => Vec::new(),
    }
}

/// The channel's rule: `TRACK[/RISK[/BRANCH]]` with a track of 1.27 or later (the first
/// that reads launch configurations) and one of snapd's risks; `latest` and a bare risk
/// follow whatever Canonical publishes next (a warning); the `-strict` tracks are the
/// strictly confined snap, which pinode does not install.
fn check_channel(channel: &str) -> Result<(), SpecProblem> {
    const RISKS: [&str; 4] = ["stable", "candidate", "beta", "edge"];
    let bad = || {
        SpecProblem::error(
            "channel",
            "is not a MicroK8s snap channel: TRACK/RISK, e.g. 1.33/stable (risk stable, \
             candidate, beta or edge)",
        )
    };
    let parts: Vec<&str> = channel.split('/').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (track, risk) = match parts.as_slice() {
        [only] if RISKS.contains(only) => ("latest", *only),
        [track] => (*track, "stable"),
        [track, risk, ..] => (*track, *risk),
        [] => return Err(bad()),
    };
    if !RISKS.contains(&risk) {
        return Err(bad());
    }
    if track == "latest" {
        return Err(SpecProblem::warning(
            "channel",
            format!(
                "follows the newest MicroK8s, not one Kubernetes minor: a node added later \
                 may run a newer one than the others. Pin a track, e.g. {DEFAULT_CHANNEL}"
            ),
        ));
    }
    if track.ends_with("-strict") {
        return Err(SpecProblem::error(
            "channel",
            "is a strictly confined MicroK8s track: pinode installs the classic snap \
             (its group `microk8s`, its launch configuration path); use the track without \
             -strict",
        ));
    }
    let minor = track
        .strip_prefix("1.")
        .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(bad)?;
    if minor < FIRST_LAUNCH_CONFIG_MINOR {
        return Err(SpecProblem::error(
            "channel",
            format!(
                "MicroK8s {track} reads no launch configuration (they arrive in \
                 1.{FIRST_LAUNCH_CONFIG_MINOR}), so its nodes could not join by themselves: \
                 use 1.{FIRST_LAUNCH_CONFIG_MINOR} or later, e.g. {DEFAULT_CHANNEL}"
            ),
        ));
    }
    Ok(())
}

/// An addon name as `microk8s enable` takes it: `NAME` or `REPOSITORY/NAME`.
fn is_addon_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    match name.split_once('/') {
        Some((repo, addon)) => part(repo) && part(addon),
        None => part(name),
    }
}

/// A subject alternative name: an IP address, or a DNS name (RFC 1123 labels).
fn is_san(san: &str) -> bool {
    if san.parse::<IpAddr>().is_ok() {
        return true;
    }
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    san.len() <= 253
        && san.split('.').all(label)
        && !san.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// `--NAME=VALUE` or `--NAME` (true) as the launch configuration's `extraKubeletArgs`
/// holds it: (NAME, VALUE).
pub(crate) fn parse_kubelet_arg(arg: &str) -> Result<(String, String), String> {
    let Some(rest) = arg.strip_prefix("--") else {
        return Err("must be --NAME=VALUE (or --NAME), e.g. --max-pods=50".into());
    };
    let (name, value) = rest.split_once('=').unwrap_or((rest, "true"));
    let name_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(format!(
            "--{name} is not a kubelet flag name: lower-case letters, digits and '-'"
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("must be a single line".into());
    }
    if MANAGED_KUBELET_ARGS.contains(&name) {
        return Err(format!(
            "--{name} is set by {}: giving it here would contradict it",
            if name == "node-ip" {
                "pinode from the node's static address"
            } else {
                "the MicroK8s snap to its own files"
            }
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// An https URL of a file whose name ends with `suffix`.
fn check_file_url(url: &str, suffix: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("must be an https:// URL".into());
    };
    if rest.is_empty()
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '`'))
    {
        return Err("is not a URL (no spaces or quotes)".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(
            "must not carry credentials (user:password@): the URL is written into the \
             first-boot program and its log, which are not secret"
                .into(),
        );
    }
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if !path.ends_with(suffix) || path.rsplit('/').next() == Some(suffix) {
        return Err(format!(
            "must name a {suffix} file (what `snap download` saves)"
        ));
    }
    Ok(())
}

/// One node's part in a MicroK8s cluster.
#[derive(Clone)]
pub(crate) struct Microk8sNode {
    pub(crate) member: Membership,
    pub(crate) spec: Microk8sSpec,
    /// `cluster.registry_mirror` (see `crate::engine::registry_mirror`).
    pub(crate) registry_mirror: Option<String>,
}

/// Checks that MicroK8s accepts `token` as a join token; never quotes it.
///
/// MicroK8s' rule is a length (at least [`TOKEN_MIN_LEN`]); the token then travels in the
/// join URL `HOST:25000/TOKEN` (split at '/'), in the token files of the snap (one a line,
/// a TTL after '|', surrounding space trimmed) and in YAML. pinode asks for what survives
/// all of those unchanged: letters, digits, '-' and '_' (`microk8s add-node` makes 32 hex
/// digits).
pub(crate) fn check_join_token(token: &str) -> Result<(), String> {
    let len = token.chars().count();
    if len < TOKEN_MIN_LEN {
        return Err(format!(
            "the MicroK8s join token has {len} characters: MicroK8s needs at least \
             {TOKEN_MIN_LEN} (e.g. `openssl rand -hex 16`)"
        ));
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(
            "the MicroK8s join token may hold only letters, digits, '-' and '_': it \
             travels in the join URL HOST:25000/TOKEN and MicroK8s' token files, where '/', \
             '|' and spaces change its meaning"
                .into(),
        );
    }
    Ok(())
}

/// A join token made from random bytes: 32 lower-case hex digits, the form
/// `microk8s add-node` generates (`token_hex(16)`).
pub(crate) fn join_token_from(random: &[u8; 32]) -> String {
    hex::encode(&random[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_follow_microk8s_rules() {
        let generated = join_token_from(&[7; 32]);
        assert_eq!(generated.len(), 32);
        assert!(check_join_token(&generated).is_ok());
        assert!(check_join_token("k3s-cluster-token-0123456789abcdef").is_ok());
        let short = check_join_token("abc123").unwrap_err();
        assert!(
            short.contains("6 characters") && !short.contains("abc123"),
            "{short}"
        );
        let slash = "a".repeat(20) + "/" + &"b".repeat(20);
        let err = check_join_token(&slash).unwrap_err();
        assert!(!err.contains("aaaa"), "{err}");
        assert!(check_join_token(&("a".repeat(31) + "|")).is_err());
        assert!(check_join_token(&"x".repeat(31)).is_err());
        assert!(check_join_token(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn channels() {
        for ok in ["1.33/stable", "1.27/edge", "1.33", "1.40/beta/hotfix"] {
            assert!(check_channel(ok).is_ok(), "{ok}");
        }
        for warn in ["latest/stable", "stable", "latest/edge"] {
            assert!(check_channel(warn).unwrap_err().warning, "{warn}");
        }
        for bad in [
            "1.26/stable",
            "1.33/stabel",
            "1.33-strict/stable",
            "v1.33",
            "",
            "1.33/",
            "1.x",
            "a/b/c/d",
        ] {
            let p = check_channel(bad).unwrap_err();
            assert!(!p.warning, "{bad}");
        }
    }

    #[test]
    fn values() {
        assert!(is_addon_name("dns") && is_addon_name("community/cilium"));
        assert!(!is_addon_name("DNS") && !is_addon_name("a/b/c") && !is_addon_name("-x"));
        for ok in ["10.0.0.1", "fd00::1", "api.example.com", "node-1.local"] {
            assert!(is_san(ok), "{ok}");
        }
        for bad in ["", "a..b", "-a.com", "a_b.com", "999.1.1.1", "a b"] {
            assert!(!is_san(bad), "{bad}");
        }
        assert_eq!(
            parse_kubelet_arg("--max-pods=50").unwrap(),
            ("max-pods".into(), "50".into())
        );
        assert_eq!(
            parse_kubelet_arg("--serialize-image-pulls").unwrap().1,
            "true"
        );
        assert!(parse_kubelet_arg("max-pods=50").is_err());
        assert!(parse_kubelet_arg("--Max=1").is_err());
        assert!(parse_kubelet_arg("--node-ip=1.2.3.4").is_err());
        assert!(parse_kubelet_arg("--kubeconfig=/x").is_err());
        assert!(check_file_url("https://m.example/microk8s_8147.snap", ".snap").is_ok());
        assert!(check_file_url("http://m.example/microk8s_8147.snap", ".snap").is_err());
        assert!(check_file_url("https://m.example/microk8s.assert", ".snap").is_err());
        assert!(check_file_url("https://m.example/a b.snap", ".snap").is_err());
        let creds = check_file_url("https://u:secret@m.example/x.snap", ".snap").unwrap_err();
        assert!(
            creds.contains("credentials") && !creds.contains("secret@"),
            "{creds}"
        );
    }

    #[test]
    fn server_counts() {
        assert!(server_count_problems(1).is_empty());
        assert!(server_count_problems(3).is_empty());
        assert!(server_count_problems(2)[0].warning);
        assert!(server_count_problems(4)[0].message.contains("than 3"));
    }

    #[test]
    fn every_problem_at_its_field() {
        let spec = Microk8sSpec {
            channel: "1.20/stable".into(),
            addons: vec!["dns".into(), "Bad".into(), "dns".into()],
            extra_sans: vec!["ok.example".into(), "no way".into()],
            kubelet_args: vec!["--max-pods=5".into(), "--max-pods=6".into(), "x".into()],
            snaps: vec![SnapFile {
                snap: "http://m/x.snap".into(),
                assert: "https://m/x.assert".into(),
            }],
        };
        let fields: Vec<String> = spec.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "channel",
                "addons[1]",
                "addons[2]",
                "extra_sans[1]",
                "kubelet_args[1]",
                "kubelet_args[2]",
                "snaps[0].snap"
            ]
        );
        assert!(Microk8sSpec::default().problems().is_empty());
    }
}
