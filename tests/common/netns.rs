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
