//! Which v1 keys name each secret, in one place: validation asks `pick` whether exactly
//! one source is given, and translation takes the `SecretRef` it returns.

use super::schema::{ClusterSpec, RunnerSpec, UserSpec, WifiSpec};
use crate::ci::SecretSlot;
use crate::profile::secret::{Picked, SecretKeys, SecretKind, SecretRef, pick};

/// The Wi-Fi passphrase of the network at `at` (`defaults.wifi`, `nodes[2].wifi`).
pub(crate) fn wifi_psk(at: &str, w: &WifiSpec) -> Picked {
    pick(&SecretKeys {
        parent: at,
        keys: &[
            ("psk", SecretKind::Inline, w.psk.as_ref()),
            ("psk_env", SecretKind::Env, w.psk_env.as_ref()),
            ("psk_file", SecretKind::File, w.psk_file.as_ref()),
        ],
    })
}

/// The plaintext password of the user at `at` (`password_hash` is not a secret source: it
/// is the hash itself, and may not be given together with `password_env`).
pub(crate) fn password(at: &str, u: &UserSpec) -> Picked {
    pick(&SecretKeys {
        parent: at,
        keys: &[("password_env", SecretKind::Env, u.password_env.as_ref())],
    })
}

/// The K3s join token; `Missing` means "generate one and keep it".
pub(crate) fn cluster_token(c: &ClusterSpec) -> Picked {
    pick(&SecretKeys {
        parent: "cluster",
        keys: &[
            ("token_env", SecretKind::Env, c.token_env.as_ref()),
            ("token_file", SecretKind::File, c.token_file.as_ref()),
        ],
    })
}

/// A runner's secret `slot`, for the runner mapping at `at` (`cluster.runner`,
/// `cluster.runner[1]`): `token_env`/`token_file`, `admin_password_*`, `private_key_*`.
pub fn runner_secret(at: &str, r: &RunnerSpec, slot: SecretSlot) -> Picked {
    let (env, file, env_key, file_key) = match slot {
        SecretSlot::Token => (&r.token_env, &r.token_file, "token_env", "token_file"),
        SecretSlot::AdminPassword => (
            &r.admin_password_env,
            &r.admin_password_file,
            "admin_password_env",
            "admin_password_file",
        ),
        SecretSlot::PrivateKey => (
            &r.private_key_env,
            &r.private_key_file,
            "private_key_env",
            "private_key_file",
        ),
    };
    pick(&SecretKeys {
        parent: at,
        keys: &[
            (env_key, SecretKind::Env, env.as_ref()),
            (file_key, SecretKind::File, file.as_ref()),
        ],
    })
}

/// The one reference `picked` holds, if it holds exactly one.
pub fn one(picked: Picked) -> Option<SecretRef> {
    match picked {
        Picked::One(r) => Some(r),
        Picked::Missing | Picked::Several(_) => None,
    }
}
