//! A node with every secret resolved: what the renderers turn into files.
//!
//! Secrets are read here, once, when a node is prepared. Plaintext passwords are hashed on the
//! spot and Wi-Fi passphrases turned into the PBKDF2 key, so neither plaintext reaches an
//! image. Errors name the profile field and the variable or file, never the value.

pub mod cluster;
pub mod password;
pub mod wifi;

use secrecy::{ExposeSecret, SecretString};

use crate::profile::node::BootConfig;
use crate::profile::schema::SudoMode;
use crate::profile::{FieldError, LoadedProfile, NodeConfig, Password, Role, secrets, values};

use crate::ci::Runner;
use crate::ci::gitlab::{RunnerPlan, check_runner_token};
use crate::engine::Engine;
use crate::engine::k3s::{K3sNode, K3sRole};
use cluster::ClusterPlan;

/// An authorized_keys file is a few lines; anything larger is the wrong file.
const MAX_KEYS_FILE: u64 = 256 * 1024;

/// The login user.
#[derive(Clone)]
pub struct UserPlan {
    pub name: String,
    /// One public key per entry.
    pub keys: Vec<String>,
    /// A crypt(3) hash; `None` for a key-only account.
    pub password_hash: Option<String>,
    pub sudo: SudoMode,
}

/// A Wi-Fi network with its key derived.
#[derive(Clone)]
pub struct WifiPlan {
    pub ssid: String,
    /// 64 lowercase hex digits: the WPA PSK itself, as Raspberry Pi Imager stores it.
    pub psk_hex: SecretString,
    pub country: String,
    pub hidden: bool,
}

/// One node's part in the cluster, secrets resolved: the distribution it runs and, on the
/// node that installs it, the CI runner.
#[derive(Clone)]
pub struct NodeCluster {
    pub cluster: String,
    pub engine: Engine,
    /// Only on the founder: the runner is installed once.
    pub runner: Option<Runner>,
}

/// Everything needed to render one node's first boot.
#[derive(Clone)]
pub struct NodePlan {
    pub hostname: String,
    pub role: Role,
    pub user: UserPlan,
    pub ssh_enabled: bool,
    pub ssh_password_authentication: bool,
    pub wifi: Option<WifiPlan>,
    pub timezone: String,
    pub locale: String,
    pub keyboard: String,
    pub boot: BootConfig,
    /// The node's part in the K3s cluster, when the profile has one.
    pub cluster: Option<NodeCluster>,
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
    /// Resolves `node` of `profile`: reads key files, environment variables and secret files.
    pub fn resolve(profile: &LoadedProfile, node: &NodeConfig) -> Result<NodePlan, FieldError> {
        let base = profile.base_dir();
        let mut keys: Vec<String> = node
            .user
            .keys
            .iter()
            .map(|k| k.trim().to_string())
            .collect();
        if let Some(file) = &node.user.keys_file {
            let path = secrets::expand_path(&file.value, &base)
                .map_err(|e| profile.error_at(&file.field, e))?;
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
        }
        let password_hash = match &node.user.password {
            Password::None => None,
            Password::Hash(hash) => Some(hash.clone()),
            Password::Env(var) => {
                let plain =
                    secrets::from_env(&var.value).map_err(|e| profile.error_at(&var.field, e))?;
                Some(
                    password::sha512_crypt(plain.expose_secret())
                        .map_err(|e| profile.error_at(&var.field, e))?,
                )
            }
        };
        let wifi = match &node.wifi {
            None => None,
            Some(w) => {
                let spec = &w.value;
                let (passphrase, field) = if let Some(var) = &spec.psk_env {
                    (secrets::from_env(var), format!("{}.psk_env", w.field))
                } else if let Some(file) = &spec.psk_file {
                    (
                        secrets::from_file(file, &base),
                        format!("{}.psk_file", w.field),
                    )
                } else {
                    let inline = spec.psk.clone().unwrap_or_default();
                    (Ok(SecretString::from(inline)), format!("{}.psk", w.field))
                };
                let passphrase = passphrase.map_err(|e| profile.error_at(&field, e))?;
                values::wifi_passphrase(passphrase.expose_secret())
                    .map_err(|e| profile.error_at(&field, e))?;
                Some(WifiPlan {
                    ssid: spec.ssid.clone(),
                    psk_hex: wifi::psk_hex(&spec.ssid, passphrase.expose_secret()),
                    country: spec.country.clone(),
                    hidden: spec.hidden,
                })
            }
        };
        let cluster = match ClusterPlan::of(profile) {
            None => None,
            Some(plan) => Some(resolve_cluster(profile, &plan, &node.hostname)?),
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
            cluster,
        })
    }
}

/// The node's part in the cluster: its role, the token, and the runner on the founder.
fn resolve_cluster(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    hostname: &str,
) -> Result<NodeCluster, FieldError> {
    let role = plan.role_of(hostname);
    let runner = match (&plan.spec.runner, role) {
        (Some(spec), K3sRole::Founder) => {
            let (token, field) = match (&spec.token_env, &spec.token_file) {
                (Some(var), _) => (secrets::from_env(var), "cluster.runner.token_env"),
                (None, Some(path)) => (
                    secrets::from_file(path, &profile.base_dir()),
                    "cluster.runner.token_file",
                ),
                (None, None) => (Err("no token source".to_string()), "cluster.runner"),
            };
            let token = token.map_err(|e| profile.error_at(field, e))?;
            check_runner_token(token.expose_secret()).map_err(|e| profile.error_at(field, e))?;
            Some(Runner::Gitlab(RunnerPlan {
                spec: spec.clone(),
                token,
            }))
        }
        _ => None,
    };
    Ok(NodeCluster {
        cluster: plan.name.clone(),
        engine: Engine::K3s(K3sNode {
            role,
            ha: plan.ha,
            api: plan.api.clone(),
            token: plan.token(profile)?,
            spec: plan.spec.k3s.clone(),
        }),
        runner,
    })
}
