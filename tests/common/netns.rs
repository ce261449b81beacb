//! Commands run with no network at all: in a new network namespace (`unshare -n`), which
//! has only a loopback interface, and that one down. A name does not resolve, 127.0.0.1 is
//! unreachable, no route leads anywhere.

use std::process::Command;
use std::sync::OnceLock;

/// Whether this machine lets the tests make a network namespace (root, or a kernel that
/// allows unprivileged ones, and the `unshare` tool).
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let ok = Command::new("unshare")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success());
        // CI runs as root and must run these (the must-show tests): a skip there
        // would pass without testing anything.
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        assert!(
            ok || !ci,
            "`unshare -n` failed under CI (root expected): the tests without a network cannot run"
        );
        if !ok {
            eprintln!("SKIP: `unshare -n` is not permitted here: no test without a network");
        }
        ok
    })
}

/// `cmd` (program, arguments, environment, directory) inside a new network namespace, or
/// None (with a SKIP line) where none can be made.
pub fn without_network(cmd: &Command) -> Option<Command> {
    if !available() {
        return None;
    }
    let mut c = Command::new("unshare");
    c.arg("-n")
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => c.env(key, v),
            None => c.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    Some(c)
}
