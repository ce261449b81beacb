//! The edge of the library: the one module that reads the process environment.
//!
//! Everything pinode takes from its environment is gathered here, once, into [`Settings`]:
//! the binary captures it at start-up ([`init`]) and the library reads the typed values
//! instead of calling `std::env` wherever a value is needed. Secrets named by a profile's
//! `*_env` keys are looked up in the same snapshot (`Settings::var`).
//!
//! Test hooks (fixed randomness, pauses inside a card write, a fake `/sys`) live behind one
//! explicit switch: they are honoured only when `PINODE_TEST_HOOKS=1` is set, and are listed
//! in `TestHooks`.
//!
//! `tests/architecture.rs` fails when `std::env::var`, `println!`, `eprintln!` or
//! `std::process::exit` appears in the library outside this module.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The process environment as it was at start-up.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<OsString, OsString>,
}

/// Why a variable has no usable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarError {
    NotPresent,
    NotUnicode,
}

impl Environment {
    /// This process's environment.
    pub fn capture() -> Environment {
        Environment {
            vars: std::env::vars_os().collect(),
        }
    }

    /// An environment made of `pairs` (tests).
    #[cfg(test)]
    pub(crate) fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// As `std::env::var`.
    fn var(&self, name: &str) -> Result<&str, VarError> {
        match self.var_os(name) {
            None => Err(VarError::NotPresent),
            Some(v) => v.to_str().ok_or(VarError::NotUnicode),
        }
    }

    /// The value when it is set, valid UTF-8 and not empty.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.var(name).ok().filter(|v| !v.is_empty())
    }
}

/// The test hooks, honoured only with `PINODE_TEST_HOOKS=1`.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestHooks {
    /// `PINODE_TEST_SEED`: derive the cluster token, instance-ids and salts from this seed
    /// (see [`crate::entropy`]) so that prepared images can be compared byte for byte.
    pub(crate) seed: Option<String>,
    /// `PINODE_TEST_PAUSE=write:BYTES@FILE` or `verify@FILE`: the card writer stops at that
    /// point until FILE disappears (tests pull a card or change bytes there).
    pub(crate) pause: Option<String>,
    /// `PINODE_SYSTEM_ROOT`: read `sys/`, `proc/` of card discovery under this directory.
    pub(crate) system_root: Option<PathBuf>,
}

/// What pinode takes from its environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    env: Environment,
    /// `SOURCE_DATE_EPOCH`: the time stamped on files pinode writes (reproducible images).
    pub(crate) source_date_epoch: Option<i64>,
    /// `PINODE_STATE_DIR`: where kept cluster tokens live, instead of the XDG state folder.
    pub(crate) state_dir: Option<PathBuf>,
    /// `CI`: set and not `false` under a CI system (no progress bars).
    pub ci: bool,
    /// `SUDO_UID`, `SUDO_GID`, `SUDO_USER`: who ran `sudo pinode` (see [`crate::invoker`]).
    pub(crate) sudo: SudoVars,
    /// `HOME`, `XDG_CACHE_HOME`, `XDG_STATE_HOME`: the invoking user's folders.
    pub(crate) dirs: UserDirs,
    /// `PINODE_HTTP_TIMEOUT`, `PINODE_HTTP_RETRIES`, `PINODE_HTTP_BACKOFF_MS` as given; the
    /// download code checks their ranges ([`crate::fetch::HttpSettings`]).
    pub(crate) http: HttpVars,
    /// `KUBECONFIG`: the kubeconfig `pinode kubeconfig --merge` writes (its first entry).
    pub(crate) kubeconfig: Option<std::ffi::OsString>,
    pub(crate) test: TestHooks,
}

/// What sudo tells about the user who ran it (set and not empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct SudoVars {
    pub(crate) uid: Option<String>,
    pub(crate) gid: Option<String>,
    pub(crate) user: Option<String>,
}

/// The per-user folders named by the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserDirs {
    /// `HOME`, when set and not empty.
    pub(crate) home: Option<PathBuf>,
    /// `XDG_CACHE_HOME`, when set.
    pub(crate) xdg_cache_home: Option<PathBuf>,
    /// `XDG_STATE_HOME`, when set.
    pub(crate) xdg_state_home: Option<PathBuf>,
}

/// The download tuning variables, as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpVars {
    pub(crate) timeout: Option<String>,
    pub(crate) retries: Option<String>,
    pub(crate) backoff_ms: Option<String>,
}

impl Settings {
    /// Reads the settings from `env`.
    pub fn from_environment(env: Environment) -> Settings {
        let test = if env.non_empty("PINODE_TEST_HOOKS") == Some("1") {
            TestHooks {
                seed: env.non_empty("PINODE_TEST_SEED").map(str::to_string),
                pause: env.non_empty("PINODE_TEST_PAUSE").map(str::to_string),
                system_root: env.non_empty("PINODE_SYSTEM_ROOT").map(PathBuf::from),
            }
        } else {
            TestHooks::default()
        };
        Settings {
            source_date_epoch: env
                .non_empty("SOURCE_DATE_EPOCH")
                .and_then(|v| v.trim().parse().ok()),
            state_dir: env
                .var_os("PINODE_STATE_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            ci: env.non_empty("CI").is_some_and(|v| v != "false"),
            sudo: SudoVars {
                uid: env.non_empty("SUDO_UID").map(str::to_string),
                gid: env.non_empty("SUDO_GID").map(str::to_string),
                user: env.non_empty("SUDO_USER").map(str::to_string),
            },
            dirs: UserDirs {
                home: env
                    .var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(PathBuf::from),
                xdg_cache_home: env.var_os("XDG_CACHE_HOME").map(PathBuf::from),
                xdg_state_home: env.var_os("XDG_STATE_HOME").map(PathBuf::from),
            },
            http: HttpVars {
                timeout: env.var("PINODE_HTTP_TIMEOUT").ok().map(str::to_string),
                retries: env.var("PINODE_HTTP_RETRIES").ok().map(str::to_string),
                backoff_ms: env.var("PINODE_HTTP_BACKOFF_MS").ok().map(str::to_string),
            },
            kubeconfig: env
                .var_os("KUBECONFIG")
                .filter(|v| !v.is_empty())
                .map(OsStr::to_os_string),
            test,
            env,
        }
    }

    /// The environment variable `name` (for `*_env` secrets, proxies, XDG folders).
    pub(crate) fn var(&self, name: &str) -> Result<&str, VarError> {
        self.env.var(name)
    }

    /// The system's folder for temporary files (`TMPDIR`, else `/tmp`), as the standard
    /// library picks it.
    pub(crate) fn temp_dir(&self) -> PathBuf {
        match self.env.var_os("TMPDIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => std::env::temp_dir(),
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Fixes the settings of this process (the binary calls it first thing). Later calls, and
/// calls after [`settings`] was first used, change nothing and return false.
pub fn init(settings: Settings) -> bool {
    SETTINGS.set(settings).is_ok()
}

/// The settings of this process: those given to [`init`], or the environment captured at
/// the first call.
pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings::from_environment(Environment::capture()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_of(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_environment(Environment::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn test_hooks_count_only_behind_the_switch() {
        let hooks = [
            ("PINODE_TEST_SEED", "s"),
            ("PINODE_TEST_PAUSE", "verify@/x"),
            ("PINODE_SYSTEM_ROOT", "/fake"),
        ];
        let off = settings_of(&hooks);
        assert!(off.test.seed.is_none() && off.test.pause.is_none());
        assert!(off.test.system_root.is_none());
        let mut on = hooks.to_vec();
        on.push(("PINODE_TEST_HOOKS", "1"));
        let on = settings_of(&on);
        assert_eq!(on.test.seed.as_deref(), Some("s"));
        assert_eq!(on.test.pause.as_deref(), Some("verify@/x"));
        assert_eq!(on.test.system_root, Some(PathBuf::from("/fake")));
    }

    #[test]
    fn typed_values_are_read_once() {
        let s = settings_of(&[
            ("SOURCE_DATE_EPOCH", " 1700000000 "),
            ("CI", "false"),
            ("SUDO_UID", "1000"),
            ("SUDO_USER", ""),
            ("HOME", ""),
            ("XDG_CACHE_HOME", "/c"),
            ("PINODE_HTTP_RETRIES", "3"),
            ("K3S_TOKEN", "t"),
        ]);
        assert_eq!(s.source_date_epoch, Some(1_700_000_000));
        assert!(!s.ci);
        assert_eq!(s.sudo.uid.as_deref(), Some("1000"));
        assert!(s.sudo.user.is_none() && s.sudo.gid.is_none());
        assert!(s.dirs.home.is_none());
        assert_eq!(s.dirs.xdg_cache_home, Some(PathBuf::from("/c")));
        assert_eq!(s.http.retries.as_deref(), Some("3"));
        assert_eq!(s.var("K3S_TOKEN"), Ok("t"));
        assert_eq!(s.var("NOPE"), Err(VarError::NotPresent));
    }
}
