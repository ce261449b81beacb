//! Every error at once (issue 15, item 3): `profile check` lists all problems of a profile in
//! one run (unknown keys and values of the wrong type included) and checks what `prepare`
//! would need (files, variables, secret files others can read); `prepare` and `flash` list
//! every problem of every node before writing anything. Driven through the real binary.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

/// The profile: a channel that is not one, a keyboard layout and a locale that do not
/// exist, an unknown key, a key file that is not there and a variable that is not set.
const SIX_PROBLEMS: &str = "version: 1
cluster:
  name: lab
  k3s:
    channel: \"1.33\"
  token_env: NOPE_UNSET_TOKEN
defaults:
  keyboard: uk
  locale: en_UK.UTF-8
  user:
    name: pi
    ssh_authorized_keys_file: /nonexistent/key.pub
  bogus: 1
nodes:
  - hostname: a
    role: server
";

fn check(profile: &Path, strict: bool) -> Output {
    let mut cmd = pinode();
    cmd.env_remove("NOPE_UNSET_TOKEN")
        .args(["profile", "check"]);
    if strict {
        cmd.arg("--strict");
    }
    output(cmd.arg(profile))
}

/// The lines of `out`'s stderr that start with `prefix` (`error: `, `warning: `).
fn lines<'a>(err: &'a str, prefix: &str) -> Vec<&'a str> {
    err.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// (line, column, field, what the message says) of each of the six problems.
const SIX: [(usize, usize, &str, &str); 6] = [
    (5, 14, "cluster.k3s.channel", "is not a K3s channel"),
    (6, 14, "cluster.token_env", "NOPE_UNSET_TOKEN is not set"),
    (8, 13, "defaults.keyboard", "did you mean gb?"),
    (9, 11, "defaults.locale", "did you mean en_GB.UTF-8?"),
    (
        12,
        31,
        "defaults.user.ssh_authorized_keys_file",
        "/nonexistent/key.pub",
    ),
    (13, 3, "defaults.bogus", "unknown field `bogus`"),
];

#[test]
fn profile_check_reports_all_six_problems_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "bad.yaml", SIX_PROBLEMS);
    let p = profile.display().to_string();

    // Without --strict the unset variable is a warning; the five others are errors.
    let out = check(&profile, false);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors and a warning exit 1:\n{err}"
    );
    let (errors, warnings) = (lines(&err, "error: "), lines(&err, "warning: "));
    assert_eq!(errors.len(), 5, "{err}");
    assert_eq!(warnings.len(), 1, "{err}");
    for (line, col, field, says) in SIX {
        let prefix = if field == "cluster.token_env" {
            "warning"
        } else {
            "error"
        };
        let want = format!("{prefix}: {p}:{line}:{col}: {field}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&want) && l.contains(says)),
            "no {want}…{says} in:\n{err}"
        );
    }
    // In the order of the file.
    let order: Vec<usize> = errors
        .iter()
        .filter_map(|l| {
            l.strip_prefix(&format!("error: {p}:"))?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(order.is_sorted(), "{order:?}");
    assert!(out.stdout.is_empty(), "nothing is called valid");

    // With --strict all six are errors.
    let out = check(&profile, true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(lines(&err, "error: ").len(), 6, "{err}");
    assert!(lines(&err, "warning: ").is_empty(), "{err}");
    assert!(
        err.contains(&format!("error: {p}:6:14: cluster.token_env: ")),
        "{err}"
    );
}

/// A profile of two servers whose only problem is the unset variable.
fn only_unset_variable() -> String {
    profile_yaml(
        "",
        "",
        "cluster:\n  name: lab\n  token_env: NOPE_UNSET_TOKEN\nnodes:\n  - hostname: a\n    role: server\n",
    )
}

#[test]
fn an_unset_variable_alone_is_a_warning_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "p.yaml", &only_unset_variable());
    let out = check(&profile, false);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning alone exits 0:\n{err}"
    );
    let warning = only_line(&err, "warning: ");
    assert!(
        warning
            .contains(":8:14: cluster.token_env: environment variable NOPE_UNSET_TOKEN is not set"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid, 1 node(s)"));

    let out = check(&profile, true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        only_line(&err, "error: ").contains("NOPE_UNSET_TOKEN is not set"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

fn only_line<'a>(err: &'a str, prefix: &str) -> &'a str {
    let found = lines(err, prefix);
    assert_eq!(found.len(), 1, "one {prefix}line expected:\n{err}");
    found[0]
}

#[test]
fn unknown_keys_and_wrong_types_do_not_hide_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let text = profile_yaml(
        "",
        "    nme: x\n",
        "  timezon: Europe/Berlin\n  boot:\n    cgroups: \"yes\"\n  keyboard: uk\nnodes:\n  - hostname: a\n    hostnme: b\n",
    );
    let profile = write_profile(dir.path(), "p.yaml", &text);
    let out = check(&profile, false);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors = lines(&err, "error: ");
    assert_eq!(errors.len(), 5, "{err}");
    for (at, says) in [
        (":6:5: defaults.user.nme: ", "unknown field `nme`"),
        (":7:3: defaults.timezon: ", "did you mean `timezone`?"),
        (":9:14: defaults.boot.cgroups: ", "expected a boolean"),
        (":10:13: defaults.keyboard: ", "did you mean gb?"),
        (":13:5: nodes[0].hostnme: ", "did you mean `hostname`?"),
    ] {
        assert!(
            errors.iter().any(|l| l.contains(at) && l.contains(says)),
            "no {at}…{says} in:\n{err}"
        );
    }
}

#[test]
fn a_secret_file_others_can_read_is_a_warning_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let value = "s3cr3t-cluster-token-value-0123456789";
    std::fs::write(&token, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = profile_yaml(
        "",
        "",
        "cluster:\n  name: lab\n  token_file: token\nnodes:\n  - hostname: a\n    role: server\n",
    );
    let profile = write_profile(dir.path(), "p.yaml", &text);
    let out = check(&profile, false);
    let all = both(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let warning = only_line(&all, "warning: ");
    assert!(
        warning.contains(":8:15: cluster.token_file: ")
            && warning.contains("mode 0644")
            && warning.contains(&format!("chmod 600 \"{}\"", token.display())),
        "{warning}"
    );
    assert!(!all.contains(value), "the secret is never shown:\n{all}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check(&profile, true);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(
        lines(&stderr(&out), "warning: ").is_empty(),
        "{}",
        both(&out)
    );
}

/// Two nodes, each with a problem of its own: `a`'s Wi-Fi passphrase variable is not set,
/// `b`'s key file is not there.
fn two_nodes() -> String {
    format!(
        "version: 1
defaults:
  user:
    name: pi
    ssh_authorized_keys: [\"{KEY_1}\"]
nodes:
  - hostname: a
    wifi:
      ssid: lab
      country: GB
      psk_env: NOPE_UNSET_PSK
  - hostname: b
    user:
      ssh_authorized_keys_file: missing.pub
"
    )
}

fn assert_both_nodes_reported(out: &Output, profile: &Path) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors = lines(&err, "error: ");
    let p = profile.display();
    assert_eq!(errors.len(), 2, "{err}");
    assert!(
        errors[0].starts_with(&format!("error: {p}:11:16: nodes[0].wifi.psk_env: "))
            && errors[0].contains("NOPE_UNSET_PSK is not set"),
        "{err}"
    );
    assert!(
        errors[1].starts_with(&format!(
            "error: {p}:14:33: nodes[1].user.ssh_authorized_keys_file: "
        )) && errors[1].contains("missing.pub"),
        "{err}"
    );
}

#[test]
fn prepare_reports_the_problems_of_every_node_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "p.yaml", &two_nodes());
    let out_dir = dir.path().join("out");
    let out = output(
        pinode()
            .env_remove("NOPE_UNSET_PSK")
            .args(["prepare", "--profile"])
            .arg(&profile)
            .arg("--image")
            .arg(fixture("bookworm"))
            .arg("--out-dir")
            .arg(&out_dir),
    );
    assert_both_nodes_reported(&out, &profile);
    assert!(!out_dir.exists(), "the output folder is not even made");
}

#[test]
fn flash_reports_the_problems_of_every_node_before_looking_at_a_card() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), "p.yaml", &two_nodes());
    let out = output(
        pinode()
            .env_remove("NOPE_UNSET_PSK")
            .args(["flash", "--yes", "--profile"])
            .arg(&profile)
            .arg("--image")
            .arg(fixture("bookworm"))
            .args([
                "--device",
                "/nonexistent/card-a",
                "--device",
                "/nonexistent/card-b",
            ]),
    );
    assert_both_nodes_reported(&out, &profile);
}
