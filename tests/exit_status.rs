//! The exit status tells a script what went wrong: 2 when the command line asks for
//! something that cannot be done as asked (as for the errors clap reports), 1 when the work
//! itself failed.

mod common;

use common::*;

fn profile(dir: &std::path::Path) -> std::path::PathBuf {
    write_profile(
        dir,
        "p.yaml",
        &format!(
            "version: 1\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\nnodes:\n  - hostname: matrix\n"
        ),
    )
}

#[test]
fn a_usage_error_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path());
    // render without --image or --generation, and no base image in the cache.
    let out = output(
        pinode()
            .args(["render", "--profile"])
            .arg(&p)
            .arg("--out-dir")
            .arg(dir.path().join("out")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("render needs to know the OS generation"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
}

#[test]
fn a_failure_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        pinode()
            .args(["profile", "check"])
            .arg(dir.path().join("missing.yaml")),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
}
