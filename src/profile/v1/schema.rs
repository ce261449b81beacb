//! The profile's types, exactly as `docs/profile-v1.md` describes them.
//!
//! Deserialisation only checks shape (unknown keys, types); [`super::validate`] checks values.
//! The JSON Schema printed by `pinode profile schema` is derived from these same types, so the
//! two cannot drift apart. Fields that a node may override are `Option`s: "absent" means
//! "inherit", and only `wifi` needs to tell "absent" from an explicit `null` (no Wi-Fi here).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// A pinode profile: one cluster of Raspberry Pi nodes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pinode profile, version 1")]
pub struct Profile {
    /// Profile format version; must be 1.
    pub(crate) version: u32,
    /// Which operating system image to start from.
    #[serde(default)]
    pub os: OsSpec,
    /// Settings every node gets; a node may override any of them.
    #[serde(default)]
    pub(crate) defaults: NodeSettings,
    /// The K3s cluster the nodes form. Without it, nodes get an OS but no K3s.
    #[serde(default)]
    pub(crate) cluster: Option<ClusterSpec>,
    /// The nodes, at least one. A hostname may hold a numeric range: `worker-[1-3]`.
    pub(crate) nodes: Vec<NodeEntry>,
}

/// The operating system image.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OsSpec {
    /// A catalog alias (see `pinode os list`), an https:// URL, or a local path
    /// (.img, .img.xz, .img.gz, .img.zst).
    #[serde(default = "default_image")]
    pub image: String,
    /// SHA-256 of the UNCOMPRESSED image, for URLs and paths.
    #[serde(default)]
    pub sha256: Option<String>,
    /// First-boot route: detected from the image (`auto`), or forced.
    #[serde(default)]
    pub init: InitChoice,
}

impl Default for OsSpec {
    fn default() -> Self {
        OsSpec {
            image: default_image(),
            sha256: None,
            init: InitChoice::Auto,
        }
    }
}

fn default_image() -> String {
    "raspios-lite-arm64".to_string()
}

/// `os.init`: `auto` (detect the route from the image) or a forced
/// [`InitRoute`](crate::osinfo::InitRoute), the one route type the CLI's `--init` uses too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InitChoice {
    #[default]
    Auto,
    Forced(crate::osinfo::InitRoute),
}

impl InitChoice {
    /// The words a profile may write, in the order messages list them.
    const WORDS: &'static [&'static str] = &["auto", "firstrun", "cloud-init"];

    /// The forced route; `None` for `auto`.
    pub(crate) fn forced(self) -> Option<crate::osinfo::InitRoute> {
        match self {
            InitChoice::Auto => None,
            InitChoice::Forced(route) => Some(route),
        }
    }
}

impl std::str::FromStr for InitChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(InitChoice::Auto),
            _ => s.parse().map(InitChoice::Forced),
        }
    }
}

impl std::fmt::Display for InitChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitChoice::Auto => f.write_str("auto"),
            InitChoice::Forced(route) => route.fmt(f),
        }
    }
}

/// Written as the unit variant it reads as (`init: auto`).
impl Serialize for InitChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let word = match self {
            InitChoice::Auto => "auto",
            InitChoice::Forced(route) => route.as_str(),
        };
        let index = InitChoice::WORDS
            .iter()
            .position(|w| *w == word)
            .unwrap_or(0);
        serializer.serialize_unit_variant("InitChoice", index as u32, word)
    }
}

/// Read as a unit enum (as a derived one would be), so that serde_yaml reports a wrong
/// value exactly as before: "unknown variant `x`, expected one of `auto`, …".
impl<'de> Deserialize<'de> for InitChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Words;
        impl<'de> serde::de::Visitor<'de> for Words {
            type Value = InitChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("auto, firstrun or cloud-init")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                data: A,
            ) -> Result<InitChoice, A::Error> {
                use serde::de::{Error, VariantAccess};
                let (word, variant): (String, _) = data.variant()?;
                let choice = word
                    .parse()
                    .map_err(|_| A::Error::unknown_variant(&word, InitChoice::WORDS))?;
                variant.unit_variant()?;
                Ok(choice)
            }
        }
        deserializer.deserialize_enum("InitChoice", InitChoice::WORDS, Words)
    }
}

impl JsonSchema for InitChoice {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "InitChoice".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "enum": InitChoice::WORDS })
    }
}

/// Per-node settings. In `defaults` they apply to every node; in a node they override.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeSettings {
    #[serde(default)]
    pub(crate) user: Option<UserSpec>,
    #[serde(default)]
    pub(crate) ssh: Option<SshSpec>,
    /// Wi-Fi network, or null for none.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schemars(with = "Option<WifiSpec>")]
    pub(crate) wifi: Option<Option<WifiSpec>>,
    /// An IANA time zone name, e.g. Europe/Berlin.
    #[serde(default)]
    pub(crate) timezone: Option<String>,
    /// A locale such as en_GB.UTF-8.
    #[serde(default)]
    pub(crate) locale: Option<String>,
    /// An XKB keyboard layout such as gb, us or de.
    #[serde(default)]
    pub(crate) keyboard: Option<String>,
    #[serde(default)]
    pub(crate) boot: Option<BootSpec>,
    /// Addressing of eth0 and wlan0; a node's `network` overrides these field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<NetworkSpec>,
    /// What the node boots from: sd-card (the default), usb-ssd or nvme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<Storage>,
}

/// A node's interfaces. Either may be left out: DHCP and automatic IPv6, as Raspberry Pi
/// Imager leaves them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSpec {
    /// The wired interface, eth0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ethernet: Option<InterfaceSpec>,
    /// The wireless interface, wlan0 (the SSID and passphrase stay under `wifi:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) wifi: Option<InterfaceSpec>,
}

/// One interface's addressing. A field left out comes from `defaults` (field by field).
// The values are strings, checked by `super::network`, so that a wrong one is explained
// (and located) in pinode's words rather than refused by the YAML parser.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InterfaceSpec {
    /// `dhcp`, `ADDRESS/PREFIX` (192.168.1.10/24), or on a range node a range of the same
    /// length in the last number (192.168.1.[21-23]/24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ipv4: Option<String>,
    /// The IPv4 default route; inside the prefix of `ipv4`, which must be static.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<String>,
    /// `auto` (IPv6 as the OS configures it, as Imager leaves it; docs/profile-v1.md says
    /// per OS), `off`, or `ADDRESS/PREFIX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ipv6: Option<String>,
    /// The IPv6 default route (with a static `ipv6`): inside its prefix, or link-local.
    /// Refused for Bullseye images (dhcpcd takes IPv6 routes from router advertisements only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway6: Option<String>,
    /// Name servers (IPv4 or IPv6 addresses); default: those the network hands out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dns: Option<Vec<String>>,
    /// DNS search domains, e.g. lab.example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) search: Option<Vec<String>>,
}

/// The login user (the first user, uid 1000).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSpec {
    /// A valid Linux user name; "root" is refused.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Public keys, one per entry, as in authorized_keys.
    #[serde(default)]
    pub(crate) ssh_authorized_keys: Option<Vec<String>>,
    /// A .pub or authorized_keys file (~ expands), read when the profile is used.
    #[serde(default)]
    pub(crate) ssh_authorized_keys_file: Option<String>,
    /// A crypt(3) hash: $6$ (sha512-crypt), $5$ (sha256-crypt) or $y$ (yescrypt).
    #[serde(default)]
    pub(crate) password_hash: Option<String>,
    /// Name of an environment variable holding a plaintext password, hashed by pinode.
    #[serde(default)]
    pub(crate) password_env: Option<String>,
    /// Whether sudo asks for the password.
    #[serde(default)]
    pub(crate) sudo: Option<SudoMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SudoMode {
    Nopasswd,
    Password,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SshSpec {
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    /// Default: false when keys are given, true otherwise.
    #[serde(default)]
    pub(crate) password_authentication: Option<bool>,
}

/// A WPA2-PSK Wi-Fi network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WifiSpec {
    /// 1 to 32 bytes, any characters.
    pub(crate) ssid: String,
    /// The passphrase in the profile itself (accepted, with a warning: prefer psk_env or psk_file).
    #[serde(default)]
    pub(crate) psk: Option<String>,
    /// Name of an environment variable holding the passphrase.
    #[serde(default)]
    pub(crate) psk_env: Option<String>,
    /// A file holding the passphrase.
    #[serde(default)]
    pub(crate) psk_file: Option<String>,
    /// ISO 3166 alpha-2 country code, for the regulatory domain.
    pub(crate) country: String,
    #[serde(default)]
    pub(crate) hidden: bool,
}

/// Boot-partition settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BootSpec {
    /// Add cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset to cmdline.txt.
    #[serde(default)]
    pub(crate) cgroups: Option<bool>,
    /// arm_64bit=1 for every board.
    #[serde(default)]
    pub(crate) arm_64bit: Option<bool>,
    /// More cmdline.txt tokens.
    #[serde(default)]
    pub(crate) cmdline_extra: Option<Vec<String>>,
    /// More config.txt lines, placed under [all].
    #[serde(default)]
    pub(crate) config_extra: Option<Vec<String>>,
}

/// The K3s cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// DNS-label-safe cluster name.
    pub(crate) name: String,
    /// Environment variable holding the K3s join token.
    #[serde(default)]
    pub(crate) token_env: Option<String>,
    /// File holding the K3s join token.
    #[serde(default)]
    pub(crate) token_file: Option<String>,
    /// API server URL; default https://<first server hostname>.local:6443.
    #[serde(default)]
    pub(crate) api: Option<String>,
    /// HA only (two or more servers): a virtual IPv4 address for the API, served by kube-vip
    /// (ARP mode) on the servers, in the servers' own subnet. It becomes the API address
    /// agents, joining servers, `pinode kubeconfig` and the runner use, and every server's
    /// certificate names it.
    #[serde(default)]
    pub(crate) vip: Option<std::net::Ipv4Addr>,
    /// With `vip`: how kube-vip announces it (the interface; default eth0, or wlan0 when the
    /// VIP is in the servers' static Wi-Fi prefix).
    #[serde(default)]
    pub(crate) kube_vip: Option<crate::engine::k3s::kubevip::KubeVipSpec>,
    /// A registry mirror (https://host[:port]) every node pulls container images through
    /// (K3s: /etc/rancher/k3s/registries.yaml). Not secret: a URL with credentials is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) registry_mirror: Option<String>,
    /// The Kubernetes distribution: k3s (the default), microk8s or kubeadm. Its settings are
    /// under the key of the same name; the keys of the others must be absent.
    #[serde(default, skip_serializing_if = "is_k3s")]
    pub distribution: Distribution,
    /// K3s's settings (with `distribution: k3s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) k3s: Option<K3sSpec>,
    /// MicroK8s' settings (with `distribution: microk8s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) microk8s: Option<Microk8sSpec>,
    /// kubeadm's and CRI-O's settings (with `distribution: kubeadm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kubeadm: Option<KubeadmSpec>,
    /// The CI runners (one mapping, or a list with at most one per CI system), installed
    /// once from the first server.
    #[serde(default)]
    pub runner: Option<Runners>,
    /// First boot without internet (K3s only): the pinned release's arm64 binary, its
    /// air-gap images archive and install.sh are downloaded once into pinode's cache,
    /// verified, placed on the boot partition and installed from there; the runners' charts
    /// are embedded in their HelmCharts (`chartContent`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub airgap: bool,
}

pub(crate) use crate::ci::{RunnerSpec, Runners};
pub(crate) use crate::engine::Distribution;
pub(crate) use crate::engine::k3s::K3sSpec;
pub(crate) use crate::engine::kubeadm::KubeadmSpec;
pub(crate) use crate::engine::microk8s::Microk8sSpec;

fn is_k3s(d: &Distribution) -> bool {
    *d == Distribution::K3s
}

static DEFAULT_K3S: std::sync::LazyLock<K3sSpec> = std::sync::LazyLock::new(K3sSpec::default);
static DEFAULT_MICROK8S: std::sync::LazyLock<Microk8sSpec> =
    std::sync::LazyLock::new(Microk8sSpec::default);
static DEFAULT_KUBEADM: std::sync::LazyLock<KubeadmSpec> =
    std::sync::LazyLock::new(KubeadmSpec::default);

impl ClusterSpec {
    /// `profile check`'s lines about the runners' charts (`airgap`) and the registry mirror,
    /// and the note that images still come from a registry (see `crate::ci::chart_source`).
    pub fn chart_and_mirror_lines(&self) -> (Vec<String>, Option<String>) {
        crate::ci::chart_source::check_lines(
            self.runner.as_ref(),
            self.airgap,
            self.registry_mirror.as_deref(),
        )
    }

    /// The K3s release `cluster.airgap` puts on the cards (`None` without air-gap, or
    /// without a pinned version).
    pub fn airgap_release(&self) -> Option<crate::engine::airgap::Release> {
        self.airgap
            .then(|| crate::engine::airgap::Release::of(self.k3s()))
            .flatten()
    }

    /// K3s's settings, the defaults when `cluster.k3s` is absent.
    pub fn k3s(&self) -> &K3sSpec {
        self.k3s.as_ref().unwrap_or(&DEFAULT_K3S)
    }

    /// MicroK8s' settings, the defaults when `cluster.microk8s` is absent.
    pub fn microk8s(&self) -> &Microk8sSpec {
        self.microk8s.as_ref().unwrap_or(&DEFAULT_MICROK8S)
    }

    /// kubeadm's settings, the defaults when `cluster.kubeadm` is absent.
    pub fn kubeadm(&self) -> &KubeadmSpec {
        self.kubeadm.as_ref().unwrap_or(&DEFAULT_KUBEADM)
    }

    /// The version `profile check` shows for the chosen distribution.
    pub fn engine_version(&self) -> String {
        match self.distribution {
            Distribution::K3s => {
                let k3s = self.k3s();
                k3s.version
                    .clone()
                    .unwrap_or_else(|| format!("channel {}", k3s.channel))
            }
            Distribution::Microk8s => self.microk8s().version(),
            Distribution::Kubeadm => self.kubeadm().version(),
        }
    }
}

pub(crate) use crate::bootfs::manifest::Role;

/// One node, or a numbered range of nodes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeEntry {
    /// RFC 1123 label, unique across the profile; `worker-[1-3]` expands to three nodes.
    pub(crate) hostname: String,
    /// server or agent; the first server founds the cluster.
    #[serde(default)]
    pub(crate) role: Option<Role>,
    #[serde(default)]
    pub(crate) user: Option<UserSpec>,
    #[serde(default)]
    pub(crate) ssh: Option<SshSpec>,
    #[serde(default, deserialize_with = "explicit_null")]
    #[schemars(with = "Option<WifiSpec>")]
    pub(crate) wifi: Option<Option<WifiSpec>>,
    #[serde(default)]
    pub(crate) timezone: Option<String>,
    #[serde(default)]
    pub(crate) locale: Option<String>,
    #[serde(default)]
    pub(crate) keyboard: Option<String>,
    #[serde(default)]
    pub(crate) boot: Option<BootSpec>,
    /// This node's addressing; a range node takes address ranges of its own length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<NetworkSpec>,
    /// What this node boots from: sd-card (the default), usb-ssd or nvme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<Storage>,
}

impl NodeEntry {
    /// The overridable part of this entry.
    pub(crate) fn settings(&self) -> NodeSettings {
        NodeSettings {
            user: self.user.clone(),
            ssh: self.ssh.clone(),
            wifi: self.wifi.clone(),
            timezone: self.timezone.clone(),
            locale: self.locale.clone(),
            keyboard: self.keyboard.clone(),
            boot: self.boot.clone(),
            network: self.network.clone(),
            storage: self.storage,
        }
    }
}

/// What a node boots from (`storage:`). pinode writes the same image either way; the value
/// tells `profile check` which servers run their datastore (etcd, dqlite) on an SD card,
/// whose fsync latency makes such clusters lose their leader (see `crate::plan::check`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Storage {
    /// An SD card (or the Compute Module's eMMC: as slow to fsync).
    #[default]
    SdCard,
    /// A USB SSD, or an NVMe drive in a USB enclosure.
    UsbSsd,
    /// An NVMe drive on the PCIe bus (Raspberry Pi 5's M.2 HAT).
    Nvme,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::SdCard => "sd-card",
            Storage::UsbSsd => "usb-ssd",
            Storage::Nvme => "nvme",
        }
    }
}

/// Deserialises a present key (even `null`) as `Some(..)`, so that `#[serde(default)]` can
/// leave an absent key as `None`.
fn explicit_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
