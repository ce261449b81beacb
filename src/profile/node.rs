//! Nodes as the rest of pinode sees them: ranges expanded, defaults merged in, secrets still
//! as references. This is the internal model every profile version translates into (see
//! [`super::v1`]); [`crate::plan`] resolves it into a `NodePlan`.

use super::schema::{Role, SudoMode};
use super::secret::SecretRef;

/// A value with the profile field it came from (for errors found later, e.g. a key file
/// that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub(crate) value: T,
    pub(crate) field: String,
}

#[derive(Debug, Clone)]
pub(crate) enum Password {
    /// No password: the account is key-only.
    None,
    Hash(String),
    /// A plaintext password (from `password_env`), hashed when the node is planned.
    Plain(SecretRef),
}

impl Password {
    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Password::None)
    }
}

#[derive(Debug, Clone)]
pub struct UserConfig {
    pub name: String,
    pub keys: Vec<String>,
    pub keys_file: Option<Sourced<String>>,
    pub(crate) password: Password,
    pub(crate) sudo: SudoMode,
}

#[derive(Debug, Clone)]
pub(crate) struct BootConfig {
    pub(crate) cgroups: bool,
    pub(crate) arm_64bit: bool,
    pub(crate) cmdline_extra: Vec<String>,
    pub(crate) config_extra: Vec<String>,
}

/// A WPA2-PSK network, its passphrase still a reference.
#[derive(Debug, Clone)]
pub struct WifiConfig {
    pub ssid: String,
    pub(crate) psk: SecretRef,
    pub country: String,
    pub(crate) hidden: bool,
}

/// One node with every setting decided (secrets still as references).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub hostname: String,
    pub(crate) role: Role,
    pub user: UserConfig,
    pub(crate) ssh_enabled: bool,
    /// `None`: off when keys are given, on otherwise.
    pub(crate) ssh_password_authentication: Option<bool>,
    pub wifi: Option<WifiConfig>,
    pub timezone: String,
    pub(crate) locale: String,
    pub(crate) keyboard: String,
    pub(crate) boot: BootConfig,
    /// Addressing of eth0 and wlan0 (default: DHCP and automatic IPv6).
    pub network: super::network::NetworkConfig,
    /// What the node boots from, with the field that says so (`nodes[N].storage`,
    /// `defaults.storage`, or the node's `hostname` for the default, SD card).
    pub storage: Sourced<super::schema::Storage>,
}
