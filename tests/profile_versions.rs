//! The profile's `version` is read before anything else: a document of another version is
//! refused as such, naming the file, line and field, and not as a version 1 document with
//! unknown keys.

mod common;

use common::*;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(dir.path(), "p.yaml", text);
    let out = output(pinode().args(["profile", "check"]).arg(&path));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success(),
        stderr.replace(&*path.display().to_string(), "p.yaml"),
    )
}

#[test]
fn a_newer_version_with_new_keys_is_named_not_its_keys() {
    let (ok, err) = check(
        "# a profile of the future\nversion: 2\nnetwork:\n  vlan: 20\nnodes: [{hostname: a}]\n",
    );
    assert!(!ok);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("p.yaml")).collect();
    assert_eq!(
        lines,
        [
            "error: p.yaml:2:10: version: profile version 2 is not supported by this pinode (it reads version 1)"
        ],
        "{err}"
    );
    assert!(!err.contains("unknown field"), "{err}");
}

#[test]
fn any_unknown_version_is_refused_the_same_way() {
    for version in ["0", "3", "99"] {
        let (ok, err) = check(&format!("version: {version}\nnodes: [{{hostname: a}}]\n"));
        assert!(!ok);
        assert!(
            err.contains(&format!(
                "p.yaml:1:10: version: profile version {version} is not supported by this pinode (it reads version 1)"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_missing_or_malformed_version_keeps_a_clear_error() {
    let (ok, err) = check("nodes: [{hostname: a}]\n");
    assert!(!ok);
    assert!(err.contains("missing field `version`"), "{err}");
    let (ok, err) = check("version: one\nnodes: [{hostname: a}]\n");
    assert!(!ok);
    assert!(
        err.contains("version: invalid type: string \"one\""),
        "{err}"
    );
}
