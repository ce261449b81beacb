//! Nodes as the rest of pinode sees them: ranges expanded, defaults merged in, secrets still
//! as references. This is the internal model every profile version translates into (see
//! [`super::v1`]); [`crate::plan`] resolves it into a `NodePlan`.

use super::schema::{Role, SudoMode};
use super::secret::SecretRef;

/// A value with the profile field it came from (for errors found later, e.g. a key file
/// that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub field: String,
}

#[derive(Debug, Clone)]
pub enum Password {
    /// No password: the account is key-only.
    None,
    Hash(String),
    /// A plaintext password (from `password_env`), hashed when the node is planned.
    Plain(SecretRef),
}

impl Password {
    pub fn is_none(&self) -> bool {
        matches!(self, Password::None)
    }
}

#[derive(Debug, Clone)]
pub struct UserConfig {
    pub name: String,
    pub keys: Vec<String>,
    pub keys_file: Option<Sourced<String>>,
    pub password: Password,
    pub sudo: SudoMode,
}

#[derive(Debug, Clone)]
pub struct BootConfig {
    pub cgroups: bool,
    pub arm_64bit: bool,
    pub cmdline_extra: Vec<String>,
    pub config_extra: Vec<String>,
}

/// A WPA2-PSK network, its passphrase still a reference.
#[derive(Debug, Clone)]
pub struct WifiConfig {
    pub ssid: String,
    pub psk: SecretRef,
    pub country: String,
    pub hidden: bool,
}

/// One node with every setting decided (secrets still as references).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub hostname: String,
    pub role: Role,
    /// Index of the `nodes` entry it came from.
    pub entry: usize,
    pub user: UserConfig,
    pub ssh_enabled: bool,
    /// `None`: off when keys are given, on otherwise.
    pub ssh_password_authentication: Option<bool>,
    pub wifi: Option<WifiConfig>,
    pub timezone: String,
    pub locale: String,
    pub keyboard: String,
    pub boot: BootConfig,
}
