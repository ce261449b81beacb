//! kubeadm with CRI-O: upstream Kubernetes from the community package repositories
//! (pkgs.k8s.io), set up by `kubeadm init` / `kubeadm join` from configuration files.
//!
//! What pinode knows about it: the profile's `cluster.kubeadm` ([`KubeadmSpec`]) and its
//! rules, the bootstrap token's form, the cluster's PKI ([`pki`]: generated offline, the
//! Talos way, so that every node can be prepared before the first one boots), the kubeadm
//! and kubelet configuration documents ([`config`]), kube-vip as a static pod ([`kubevip`])
//! and the first-boot stage ([`stage2`]).
//!
//! The facts these follow are in `data/kubeadm/` (each file names its source): the fields
//! of kubeadm's v1beta4 configuration API and of the kubelet's v1beta1 configuration, the
//! package repositories' URL forms, kubeadm's preflight minimums.

pub(crate) mod config;
pub(crate) mod kubevip;
pub(crate) mod pki;
pub(crate) mod stage2;

use ipnet::Ipv4Net;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Membership, SpecProblem};
pub(crate) use pki::ClusterPki;

/// A kubeadm file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct KubeadmError(pub(crate) String);

/// The Kubernetes minor pinode installs when the profile names none. Both package
/// repositories have it (pkgs.k8s.io `core:/stable:/v1.33` and `addons:/cri-o:/stable:/v1.33`,
/// see data/kubeadm/repositories.txt); the other distributions' defaults are 1.33 too.
pub const DEFAULT_VERSION: &str = "v1.33";

/// The oldest minor pinode accepts: kubeadm reads the v1beta4 configuration API, which
/// pinode writes, from v1.31 on (data/kubeadm/v1beta4-fields.txt).
const OLDEST_MINOR: u32 = 31;
/// The newest minor known to exist when this was written (data/kubeadm/repositories.txt);
/// a newer one is a warning, not an error: its repository may well exist by now.
const NEWEST_KNOWN_MINOR: u32 = 37;

/// kubeadm's preflight minimums on a control-plane node (cmd/kubeadm/app/constants:
/// `ControlPlaneMem`, `ControlPlaneNumCPU`); the first-boot stage checks them before
/// installing anything (the profile cannot know a board's memory).
pub const CONTROL_PLANE_MEMORY_MB: u32 = 1700;
pub const CONTROL_PLANE_CPUS: u32 = 2;

/// flannel's release pinode applies by default, and the pod network its manifest assumes
/// (`net-conf.json` in kube-flannel.yml: `"Network": "10.244.0.0/16"`).
pub const FLANNEL_VERSION: &str = "v0.27.4";
const FLANNEL_NETWORK: &str = "10.244.0.0/16";
/// kubeadm's default service network (v1beta4 `Networking.serviceSubnet`).
const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// The profile's `cluster.kubeadm`: which Kubernetes, from where, and its networks. Every
/// URL has the official default, so that a mirror or an air-gapped repository can stand
/// in for it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeadmSpec {
    /// The Kubernetes minor version, e.g. v1.33 (kubelet, kubeadm, kubectl and CRI-O).
    #[serde(default)]
    pub(crate) version: Option<String>,
    /// The Kubernetes apt repository; default https://pkgs.k8s.io/core:/stable:/VERSION/deb/.
    #[serde(default)]
    pub(crate) repository: Option<String>,
    /// Its signing key (ASCII-armoured); default REPOSITORY/Release.key.
    #[serde(default)]
    pub(crate) repository_key: Option<String>,
    /// The CRI-O apt repository; default https://pkgs.k8s.io/addons:/cri-o:/stable:/VERSION/deb/.
    #[serde(default)]
    pub(crate) crio_repository: Option<String>,
    /// Its signing key; default REPOSITORY/Release.key.
    #[serde(default)]
    pub(crate) crio_repository_key: Option<String>,
    /// The pod network; default 10.244.0.0/16, flannel's.
    #[serde(default)]
    pub(crate) pod_cidr: Option<String>,
    /// The service network; default 10.96.0.0/12, kubeadm's.
    #[serde(default)]
    pub(crate) service_cidr: Option<String>,
    /// The CNI manifest the founder applies once; default flannel's release manifest.
    #[serde(default)]
    pub(crate) cni_manifest_url: Option<String>,
}

impl KubeadmSpec {
    /// The minor version, `v1.NN`.
    pub fn version(&self) -> String {
        self.version
            .clone()
            .unwrap_or_else(|| DEFAULT_VERSION.to_string())
    }

    /// The Kubernetes repository (ends with `/`).
    pub(crate) fn repository(&self) -> String {
        self.repository
            .clone()
            .unwrap_or_else(|| format!("https://pkgs.k8s.io/core:/stable:/{}/deb/", self.version()))
    }

    pub(crate) fn repository_key(&self) -> String {
        self.repository_key
            .clone()
            .unwrap_or_else(|| release_key(&self.repository()))
    }

    pub(crate) fn crio_repository(&self) -> String {
        self.crio_repository.clone().unwrap_or_else(|| {
            format!(
                "https://pkgs.k8s.io/addons:/cri-o:/stable:/{}/deb/",
                self.version()
            )
        })
    }

    pub(crate) fn crio_repository_key(&self) -> String {
        self.crio_repository_key
            .clone()
            .unwrap_or_else(|| release_key(&self.crio_repository()))
    }

    /// The pod network (a value `problems` refuses reads as the default).
    pub(crate) fn pod_cidr(&self) -> Ipv4Net {
        net_or(self.pod_cidr.as_deref(), FLANNEL_NETWORK)
    }

    pub(crate) fn service_cidr(&self) -> Ipv4Net {
        net_or(self.service_cidr.as_deref(), DEFAULT_SERVICE_CIDR)
    }

    pub(crate) fn cni_manifest_url(&self) -> String {
        self.cni_manifest_url.clone().unwrap_or_else(|| {
            format!(
                "https://github.com/flannel-io/flannel/releases/download/{FLANNEL_VERSION}/kube-flannel.yml"
            )
        })
    }

    /// Every problem with these settings, by kubeadm's rules (fields relative to
    /// `cluster.kubeadm`).
    pub(crate) fn problems(&self) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        if let Some(version) = &self.version {
            match minor_of(version) {
                None => problems.push(SpecProblem::error(
                    "version",
                    "must be a Kubernetes minor version such as v1.33 (the package repositories \
                     are per minor: pkgs.k8s.io/core:/stable:/v1.33/deb/)",
                )),
                Some(minor) if minor < OLDEST_MINOR => problems.push(SpecProblem::error(
                    "version",
                    format!(
                        "v1.{minor} is too old: pinode writes kubeadm's v1beta4 configuration, \
                         which kubeadm reads from v1.{OLDEST_MINOR} on"
                    ),
                )),
                Some(minor) if minor > NEWEST_KNOWN_MINOR => problems.push(SpecProblem::warning(
                    "version",
                    format!(
                        "v1.{minor} is newer than the newest minor pinode knows \
                         (v1.{NEWEST_KNOWN_MINOR}): make sure pkgs.k8s.io has it for both \
                         Kubernetes and CRI-O"
                    ),
                )),
                Some(_) => {}
            }
        }
        let urls = [
            ("repository", &self.repository),
            ("repository_key", &self.repository_key),
            ("crio_repository", &self.crio_repository),
            ("crio_repository_key", &self.crio_repository_key),
            ("cni_manifest_url", &self.cni_manifest_url),
        ];
        for (field, value) in urls {
            // A repository is verified by its signing key (signed-by); the key and the CNI
            // manifest are trusted as fetched, so only HTTPS will do for them.
            let https_only = field != "repository" && field != "crio_repository";
            if let Some(url) = value
                && let Err(e) = check_url(url, https_only)
            {
                problems.push(SpecProblem::error(field, e));
            }
        }
        let given = [
            ("pod_cidr", &self.pod_cidr),
            ("service_cidr", &self.service_cidr),
        ];
        for (field, value) in given {
            let Some(text) = value else { continue };
            match text.parse::<Ipv4Net>() {
                Err(_) => problems.push(SpecProblem::error(
                    field,
                    "must be an IPv4 network in CIDR notation, e.g. 10.244.0.0/16",
                )),
                Ok(net) if net.trunc() != net => problems.push(SpecProblem::error(
                    field,
                    format!("{net} has host bits set: did you mean {}?", net.trunc()),
                )),
                Ok(_) => {}
            }
        }
        let (pods, services) = (self.pod_cidr(), self.service_cidr());
        if pods.contains(&services.network()) || services.contains(&pods.network()) {
            problems.push(SpecProblem::error(
                if self.service_cidr.is_some() {
                    "service_cidr"
                } else {
                    "pod_cidr"
                },
                format!(
                    "the pod network {pods} and the service network {services} overlap: \
                     kubeadm needs them apart"
                ),
            ));
        }
        if self.pod_cidr.is_some()
            && pods != net_or(None, FLANNEL_NETWORK)
            && self.cni_manifest_url.is_none()
        {
            problems.push(SpecProblem::warning(
                "pod_cidr",
                format!(
                    "flannel's release manifest (the default cni_manifest_url) assigns pod \
                     addresses from {FLANNEL_NETWORK}, not {}: give a cni_manifest_url whose \
                     network matches",
                    self.pod_cidr()
                ),
            ));
        }
        problems
    }

    /// One line for `profile check`: the version and where it comes from.
    pub fn summary(&self) -> String {
        format!(
            "Kubernetes {} with CRI-O from {} and {}; pods {}, services {}; CNI {}; servers \
             need {CONTROL_PLANE_MEMORY_MB} MB of RAM and {CONTROL_PLANE_CPUS} CPUs (kubeadm's \
             preflight: a Pi with 2 GB or more)",
            self.version(),
            self.repository(),
            self.crio_repository(),
            self.pod_cidr(),
            self.service_cidr(),
            self.cni_manifest_url()
        )
    }
}

/// pkgs.k8s.io's signing key of a repository: `Release.key` beside its `Release` file.
fn release_key(repository: &str) -> String {
    format!("{}/Release.key", repository.trim_end_matches('/'))
}

/// `text` as a network, else `default` (a constant that parses).
fn net_or(text: Option<&str>, default: &str) -> Ipv4Net {
    text.and_then(|t| t.parse().ok())
        .or_else(|| default.parse().ok())
        .unwrap_or_default()
}

/// The `NN` of `v1.NN`.
fn minor_of(version: &str) -> Option<u32> {
    let minor = version.strip_prefix("v1.")?;
    let ok = !minor.is_empty()
        && minor.len() <= 3
        && minor.chars().all(|c| c.is_ascii_digit())
        && !minor.starts_with('0');
    ok.then(|| minor.parse().ok()).flatten()
}

/// An http(s) URL apt, curl and kubectl can fetch, safe in a shell variable and an apt
/// sources line (no spaces, quotes or brackets), and without credentials or a query: the URL
/// lands in the first-boot program, the apt sources and the log, none of them secret.
fn check_url(url: &str, https_only: bool) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://").filter(|_| !https_only));
    let host = rest.and_then(|r| r.split('/').next()).unwrap_or("");
    let clean = url
        .chars()
        .all(|c| c.is_ascii_graphic() && !"\"'`\\[]<>{}$".contains(c));
    if url.starts_with("http://") && https_only {
        return Err(
            "must be an https:// URL: what it serves is trusted as fetched (a signing key, a \
             manifest applied to the cluster)"
                .into(),
        );
    }
    if rest.is_none() || host.is_empty() || !clean {
        return Err("must be an http:// or https:// URL without spaces, quotes or brackets".into());
    }
    if host.contains('@') || url.contains('?') || url.contains('#') {
        return Err(
            "must carry no credentials (user:password@), query or fragment: the URL is written \
             into the first-boot program, the apt sources and the log, which are not secret; \
             use a mirror that needs none"
                .into(),
        );
    }
    Ok(())
}

/// One node's part in a kubeadm cluster: its membership, the cluster's settings, and the
/// cluster's PKI as this node carries it (the CA's hash on every node, its keys on servers
/// only).
#[derive(Clone)]
pub(crate) struct KubeadmNode {
    pub(crate) member: Membership,
    pub(crate) spec: KubeadmSpec,
    pub(crate) pki: ClusterPki,
    /// `cluster.registry_mirror` (see `crate::engine::registry_mirror`).
    pub(crate) registry_mirror: Option<String>,
}

/// Checks that `token` is a kubeadm bootstrap token; never quotes it.
///
/// The rule is kubeadm's own: `BootstrapTokenPattern = \A([a-z0-9]{6})\.([a-z0-9]{16})\z`
/// (kubernetes/kubernetes, `staging/src/k8s.io/cluster-bootstrap/token/api/types.go`): a
/// six-character ID, a dot, a sixteen-character secret, lower-case letters and digits.
pub(crate) fn check_bootstrap_token(token: &str) -> Result<(), String> {
    let part = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    match token.split_once('.') {
        Some((id, secret)) if part(id, 6) && part(secret, 16) => Ok(()),
        _ => Err(format!(
            "kubeadm needs a bootstrap token of the form [a-z0-9]{{6}}.[a-z0-9]{{16}} (e.g. \
             what `kubeadm token generate` prints); this one has {} characters{}",
            token.chars().count(),
            if token.contains('.') {
                ""
            } else {
                " and no dot"
            }
        )),
    }
}

/// A bootstrap token made from 32 random bytes: each character is one byte reduced to the
/// 36 letters and digits (the bias of 256 mod 36 costs less than 0.1 bit per character of
/// the 22, which keep over 110 bits).
pub(crate) fn bootstrap_token_from(random: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let chars: String = random[..22]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}.{}", &chars[..6], &chars[6..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_no_secret_and_what_is_trusted_comes_over_https() {
        assert!(check_url("https://pkgs.k8s.io/core:/stable:/v1.33/deb/", true).is_ok());
        assert!(check_url("http://mirror.lan/k8s/", false).is_ok());
        let plain = check_url("http://mirror.lan/Release.key", true).unwrap_err();
        assert!(plain.contains("https://"), "{plain}");
        for url in [
            "https://alice:s3cret@mirror.lan/k8s/",
            "https://mirror.lan/k8s/?token=s3cret",
            "https://mirror.lan/k8s/#x",
        ] {
            let e = check_url(url, false).unwrap_err();
            assert!(
                e.contains("credentials") && !e.contains("s3cret"),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn bootstrap_tokens_follow_kubeadms_pattern() {
        let token = bootstrap_token_from(&[7u8; 32]);
        assert!(check_bootstrap_token(&token).is_ok(), "{token}");
        let random: [u8; 32] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        assert!(check_bootstrap_token(&bootstrap_token_from(&random)).is_ok());
        assert!(check_bootstrap_token("abcdef.0123456789abcdef").is_ok());
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef\n",
            "",
        ] {
            let err = check_bootstrap_token(bad).unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad.trim()), "{err}");
        }
    }

    #[test]
    fn defaults_follow_the_version() {
        let spec = KubeadmSpec {
            version: Some("v1.34".into()),
            ..KubeadmSpec::default()
        };
        assert_eq!(
            spec.repository(),
            "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"
        );
        assert_eq!(
            spec.repository_key(),
            "https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key"
        );
        assert_eq!(
            spec.crio_repository_key(),
            "https://pkgs.k8s.io/addons:/cri-o:/stable:/v1.34/deb/Release.key"
        );
        assert_eq!(spec.pod_cidr().to_string(), "10.244.0.0/16");
        assert_eq!(spec.service_cidr().to_string(), "10.96.0.0/12");
        assert!(spec.problems().is_empty());
    }

    #[test]
    fn bad_values_are_problems() {
        let field_of = |spec: KubeadmSpec| -> Vec<(String, bool)> {
            spec.problems()
                .into_iter()
                .map(|p| (p.field, p.warning))
                .collect()
        };
        let v = |s: &str| KubeadmSpec {
            version: Some(s.into()),
            ..KubeadmSpec::default()
        };
        for bad in ["1.33", "v1.33.2", "v1.", "v1.030", "latest"] {
            assert_eq!(field_of(v(bad)), [("version".into(), false)], "{bad}");
        }
        assert_eq!(field_of(v("v1.30")), [("version".into(), false)]);
        assert_eq!(field_of(v("v1.40")), [("version".into(), true)]);
        let overlap = KubeadmSpec {
            service_cidr: Some("10.244.128.0/20".into()),
            ..KubeadmSpec::default()
        };
        assert_eq!(field_of(overlap), [("service_cidr".into(), false)]);
        let url = KubeadmSpec {
            crio_repository: Some("ftp://mirror/x".into()),
            cni_manifest_url: Some("https://a b".into()),
            ..KubeadmSpec::default()
        };
        assert_eq!(
            field_of(url),
            [
                ("crio_repository".into(), false),
                ("cni_manifest_url".into(), false)
            ]
        );
        let pods = KubeadmSpec {
            pod_cidr: Some("10.42.0.1/16".into()),
            ..KubeadmSpec::default()
        };
        assert_eq!(
            field_of(pods),
            [("pod_cidr".into(), false), ("pod_cidr".into(), true)]
        );
    }
}
