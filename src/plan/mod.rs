//! A node with every secret resolved: what the renderers turn into files.
//!
//! Secrets are read here, once, when a node is prepared. Plaintext passwords are hashed on the
//! spot and Wi-Fi passphrases turned into the PBKDF2 key, so neither plaintext reaches an
//! image. Errors name the profile field and the variable or file, never the value.

pub mod check;
pub mod cluster;
pub mod hostkey;
mod k3s;
mod kept_pki;
mod kubeadm;
mod microk8s;
pub mod password;
pub mod wifi;

use secrecy::{ExposeSecret, SecretString};

use crate::edge::Settings;
use crate::profile::node::BootConfig;
use crate::profile::schema::SudoMode;
use crate::profile::v1::secrets;
use crate::profile::{FieldError, LoadedProfile, NodeConfig, Password, Role, secret, values};

use crate::ci::{Runner, Runners};
use crate::engine::{Distribution, Engine, Membership, NodeRole};
use cluster::ClusterPlan;

/// An authorized_keys file is a few lines; anything larger is the wrong file.
const MAX_KEYS_FILE: u64 = 256 * 1024;

/// The login user.
#[derive(Clone)]
pub(crate) struct UserPlan {
    pub(crate) name: String,
    /// One public key per entry.
    pub(crate) keys: Vec<String>,
    /// A crypt(3) hash; `None` for a key-only account.
    pub(crate) password_hash: Option<String>,
    pub(crate) sudo: SudoMode,
}

/// A Wi-Fi network with its key derived.
#[derive(Clone)]
pub(crate) struct WifiPlan {
    pub(crate) ssid: String,
    /// 64 lowercase hex digits: the WPA PSK itself, as Raspberry Pi Imager stores it.
    pub(crate) psk_hex: SecretString,
    pub(crate) country: String,
    pub(crate) hidden: bool,
}

/// One node's part in the cluster, secrets resolved: the distribution it runs and, on the
/// node that installs it, the CI runner.
#[derive(Clone)]
pub struct NodeCluster {
    pub(crate) engine: Engine,
    /// Only on the founder: the runners are installed once.
    pub runners: Vec<Runner>,
    /// The cluster has a rootless BuildKit runner: every node checks at first boot that its
    /// kernel lets job pods make user namespaces.
    pub(crate) rootless_builds: bool,
}

/// Everything needed to render one node's first boot.
#[derive(Clone)]
pub struct NodePlan {
    pub(crate) hostname: String,
    pub(crate) role: Role,
    pub(crate) user: UserPlan,
    pub(crate) ssh_enabled: bool,
    pub(crate) ssh_password_authentication: bool,
    pub(crate) wifi: Option<WifiPlan>,
    pub(crate) timezone: String,
    pub(crate) locale: String,
    pub(crate) keyboard: String,
    pub(crate) boot: BootConfig,
    /// Addressing of eth0 and wlan0; no secrets in it (the Wi-Fi key is in `wifi`).
    #[allow(
        dead_code,
        reason = "issue 17: read by the network renderers, merged from another branch"
    )]
    pub(crate) network: crate::profile::network::NetworkConfig,
    /// The node's part in the K3s cluster, when the profile has one.
    pub cluster: Option<NodeCluster>,
    /// The node's SSH host key, made and kept by pinode (cluster profiles: the key and the
    /// known_hosts file are kept per cluster).
    pub(crate) host_key: Option<hostkey::HostKey>,
    /// What the user should be told, one line each for stderr (e.g. that the cluster token
    /// was generated and where it is kept). The library does not print; the commands do.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for NodePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately shows no secret.
        f.debug_struct("NodePlan")
            .field("hostname", &self.hostname)
            .field("role", &self.role)
            .finish()
    }
}

impl NodePlan {
    /// With `cluster.airgap`: the runners' charts, downloaded at prepare time, embedded in
    /// their HelmCharts (see `crate::ci::chart_source`).
    pub fn embed_charts(&mut self, charts: &crate::ci::chart_source::Charts) {
        for runner in self.cluster.iter_mut().flat_map(|c| c.runners.iter_mut()) {
            runner.embed_from(charts);
        }
    }

    /// The node's static IPv4 address, if its profile gives one (`network:`): the address
    /// the cluster knows it by.
    pub fn known_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.network.known_ipv4()
    }

    /// Resolves `node` of `profile`: reads key files, environment variables (through
    /// `settings`) and secret files.
    pub fn resolve(
        profile: &LoadedProfile,
        node: &NodeConfig,
        settings: &Settings,
    ) -> Result<NodePlan, FieldError> {
        let base = profile.base_dir();
        let locate = |secret| locate(profile, secret);
        let keys = user_keys(profile, node)?;
        let password_hash = match &node.user.password {
            Password::None => None,
            Password::Hash(hash) => Some(hash.clone()),
            Password::Plain(secret) => {
                let plain = secret
                    .resolve(settings, &base)
                    .map_err(|e| locate(secret)(e.to_string()))?;
                Some(password::sha512_crypt(plain.expose_secret()).map_err(locate(secret))?)
            }
        };
        let wifi = match &node.wifi {
            None => None,
            Some(w) => {
                let passphrase = w
                    .psk
                    .resolve(settings, &base)
                    .map_err(|e| locate(&w.psk)(e.to_string()))?;
                values::wifi_passphrase(passphrase.expose_secret()).map_err(locate(&w.psk))?;
                Some(WifiPlan {
                    ssid: w.ssid.clone(),
                    psk_hex: wifi::psk_hex(&w.ssid, passphrase.expose_secret()),
                    country: w.country.clone(),
                    hidden: w.hidden,
                })
            }
        };
        let mut notes = Vec::new();
        let cluster_plan = ClusterPlan::of(profile, settings);
        let cluster = match &cluster_plan {
            None => None,
            Some(plan) => Some(resolve_cluster(profile, plan, node, settings, &mut notes)?),
        };
        let host_key = match &cluster_plan {
            None => None,
            Some(plan) => Some(
                hostkey::HostKey::kept(&plan.name, &node.hostname, settings)
                    .map_err(|e| profile.error_at("cluster.name", e.to_string()))?,
            ),
        };
        let has_keys = !keys.is_empty();
        Ok(NodePlan {
            hostname: node.hostname.clone(),
            role: node.role,
            user: UserPlan {
                name: node.user.name.clone(),
                keys,
                password_hash,
                sudo: node.user.sudo,
            },
            ssh_enabled: node.ssh_enabled,
            ssh_password_authentication: node.ssh_password_authentication.unwrap_or(!has_keys),
            wifi,
            timezone: node.timezone.clone(),
            locale: node.locale.clone(),
            keyboard: node.keyboard.clone(),
            boot: node.boot.clone(),
            network: node.network.clone(),
            cluster,
            host_key,
            notes,
        })
    }
}

/// The node's public keys: those written in the profile and those of its
/// `ssh_authorized_keys_file`, each line checked; an error when there is none at all.
fn user_keys(profile: &LoadedProfile, node: &NodeConfig) -> Result<Vec<String>, FieldError> {
    let mut keys: Vec<String> = node
        .user
        .keys
        .iter()
        .map(|k| k.trim().to_string())
        .collect();
    let Some(file) = &node.user.keys_file else {
        return Ok(keys);
    };
    let path = secret::expand_path(&file.value, &profile.base_dir())
        .map_err(|e| profile.error_at(&file.field, e.to_string()))?;
    let text = crate::input::read_text(&path, MAX_KEYS_FILE, "an authorized_keys file")
        .map_err(|e| profile.error_at(&file.field, e.to_string()))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        values::ssh_public_key_line(line).map_err(|e| {
            profile.error_at(
                &file.field,
                format!("{} line {}: {e}", path.display(), n + 1),
            )
        })?;
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        return Err(profile.error_at(
            &file.field,
            format!("{} holds no public key", path.display()),
        ));
    }
    Ok(keys)
}

/// An error about `secret`, located at the profile key that names it.
fn locate<'a>(
    profile: &'a LoadedProfile,
    secret: &'a crate::profile::SecretRef,
) -> impl Fn(String) -> FieldError + 'a {
    move |e| profile.error_at(&secret.field, e)
}

/// The node's part in the cluster: its role, the token, and the runner on the founder.
fn resolve_cluster(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    node: &NodeConfig,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<NodeCluster, FieldError> {
    let role = plan.role_of(&node.hostname);
    let runners = match (&plan.spec.runner, role) {
        (Some(runners), NodeRole::Founder) => {
            let mut runners = resolve_runners(profile, runners, settings)?;
            if plan.spec.airgap {
                runners.iter_mut().for_each(Runner::require_embedded);
            }
            runners
        }
        _ => Vec::new(),
    };
    let rootless_builds = plan
        .spec
        .runner
        .as_ref()
        .is_some_and(|r| r.rootless_builds());
    // K3s's CA before the token: whether it may be generated depends on the cluster's state
    // before this run (see `k3s::kept_ca_of`).
    let k3s_ca = match plan.distribution {
        Distribution::K3s => k3s::kept_ca_of(profile, plan, settings, notes)?,
        _ => None,
    };
    let token = plan.token(profile, settings)?;
    notes.extend(token.notice);
    let member = Membership {
        role,
        ha: plan.ha,
        api: plan.api.clone(),
        founder_host: plan.founder_host.clone(),
        token: token.value,
        node_ip: node.network.known_ipv4(),
        kube_vip: role.is_server().then(|| plan.kube_vip.clone()).flatten(),
    };
    let engine = match plan.distribution {
        Distribution::K3s => Engine::K3s(k3s::resolve(profile, plan, member, k3s_ca, settings)?),
        Distribution::Microk8s => Engine::Microk8s(microk8s::resolve(plan, member)),
        Distribution::Kubeadm => {
            Engine::Kubeadm(kubeadm::resolve(profile, plan, member, settings, notes)?)
        }
    };
    Ok(NodeCluster {
        engine,
        runners,
        rootless_builds,
    })
}

/// The founder's runners, each with its secrets read and their form checked.
fn resolve_runners(
    profile: &LoadedProfile,
    runners: &Runners,
    settings: &Settings,
) -> Result<Vec<Runner>, FieldError> {
    let mut resolved = Vec::new();
    for (at, spec) in runners.entries() {
        let mut values = Vec::new();
        for slot in crate::ci::secrets_of(spec) {
            // Validation has made sure there is exactly one source.
            let secret = secrets::one(secrets::runner_secret(&at, spec, slot))
                .ok_or_else(|| profile.error_at(&at, "no secret source"))?;
            let field = secret.field.as_str();
            let value = secret
                .resolve(settings, &profile.base_dir())
                .map_err(|e| profile.error_at(field, e.to_string()))?;
            spec.kind()
                .check_secret(slot, value.expose_secret())
                .map_err(|e| profile.error_at(field, e))?;
            values.push((slot, value));
        }
        resolved.push(Runner::new(spec.clone(), values));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::Environment;
    use std::path::Path;

    const PROFILE: &str = "version: 1\ndefaults:\n  user:\n    name: a\n    password_env: PW\n  wifi:\n    ssid: IEEE\n    psk_env: PSK\n    country: GB\nnodes:\n  - hostname: n\n";

    /// Secrets come from the settings given, not from the process environment.
    #[test]
    fn secrets_are_read_through_the_settings() {
        let profile = LoadedProfile::parse(Path::new("p.yaml"), PROFILE).unwrap();
        let settings = Settings::from_environment(Environment::from_pairs([
            ("PSK", "password"),
            ("PW", "pw"),
        ]));
        let plan = NodePlan::resolve(&profile, &profile.nodes[0], &settings).unwrap();
        let wifi = plan.wifi.unwrap();
        // IEEE 802.11i-2004, Annex H.4.
        assert_eq!(
            wifi.psk_hex.expose_secret(),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        assert!(plan.user.password_hash.unwrap().starts_with("$6$"));
        assert!(plan.notes.is_empty());

        let empty = Settings::from_environment(Environment::from_pairs([("PW", "pw")]));
        let err = NodePlan::resolve(&profile, &profile.nodes[0], &empty).unwrap_err();
        assert_eq!(err.field, "defaults.wifi.psk_env");
        assert!(
            err.message
                .starts_with("environment variable PSK is not set"),
            "{err}"
        );
    }
}
