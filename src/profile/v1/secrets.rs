//! Which v1 keys name each secret, in one place: validation asks `pick` whether exactly
//! one source is given, and translation takes the `SecretRef` it returns.

use super::schema::{ClusterSpec, RunnerSpec, UserSpec, WifiSpec};
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

/// The runner's glrt- authentication token.
pub fn runner_token(r: &RunnerSpec) -> Picked {
    pick(&SecretKeys {
        parent: "cluster.runner",
        keys: &[
            ("token_env", SecretKind::Env, r.token_env.as_ref()),
            ("token_file", SecretKind::File, r.token_file.as_ref()),
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
