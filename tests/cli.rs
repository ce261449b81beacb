//! The command line: profile checks and their error locations, the schema, inspect's JSON,
//! render's output, and the committed fixture the README's first command uses.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(dir.path(), "p.yaml", text);
    let out = output(pinode().args(["profile", "check"]).arg(&path));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn base(extra_defaults: &str, nodes: &str) -> String {
    format!(
        "version: 1\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n{extra_defaults}nodes:\n{nodes}"
    )
}

/// The example profiles are valid where what they name exists: the user's key
/// (`~/.ssh/id_ed25519.pub`), for ci, the GitHub App's key (`~/.config/pinode/github-app.pem`)
/// and, for wifi-lab, the image file beside the profile. Where it
/// does not, `profile check` says so, as `prepare` would.
#[test]
fn example_profiles_are_valid() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/id_ed25519.pub"),
        format!("{KEY_1}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(home.path().join(".config/pinode")).unwrap();
    std::fs::write(
        home.path().join(".config/pinode/github-app.pem"),
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEAexampleonly\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let copies = tempfile::tempdir().unwrap();
    std::fs::write(
        copies.path().join("raspios-bookworm-arm64-lite.img.xz"),
        b"",
    )
    .unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles")).unwrap() {
        let path = entry.unwrap().path();
        let copy = copies.path().join(path.file_name().unwrap());
        std::fs::copy(&path, &copy).unwrap();
        let out = output(
            pinode()
                .env("HOME", home.path())
                .args(["profile", "check"])
                .arg(&copy),
        );
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let wifi_lab = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/wifi-lab.yaml");
    let out = output(
        pinode()
            .env("HOME", empty.path())
            .args(["profile", "check", wifi_lab]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(":7:10: os.image: "), "{err}");
    assert!(
        err.contains(":13:31: defaults.user.ssh_authorized_keys_file: "),
        "{err}"
    );
}

#[test]
fn check_prints_the_expanded_nodes() {
    let (ok, stdout, _) = check(&base(
        "",
        "  - hostname: matrix\n    role: server\n  - hostname: worker-[1-3]\n",
    ));
    assert!(ok);
    assert!(stdout.contains("4 node(s)"), "{stdout}");
    for name in ["matrix", "worker-1", "worker-2", "worker-3"] {
        assert!(stdout.contains(name), "{stdout}");
    }
}

/// Each invalid profile fails with the file, line, column and field named.
#[test]
fn errors_name_file_line_and_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            base("", "  - hostname: bad host\n"),
            "p.yaml:7:15: nodes[0].hostname: \"bad host\" is not a valid hostname",
        ),
        (
            base("  timezone: Mars/Olympus\n", "  - hostname: a\n"),
            "p.yaml:6:13: defaults.timezone: \"Mars/Olympus\" is not an IANA time zone",
        ),
        (
            base(
                "  wifi: {ssid: x, psk_env: P, country: XX}\n",
                "  - hostname: a\n",
            ),
            "p.yaml:6:40: defaults.wifi.country: \"XX\" is not an ISO 3166",
        ),
        (
            base("", "  - hostname: a\n    role: boss\n"),
            "p.yaml:8:11: nodes[0].role: unknown variant `boss`",
        ),
        (
            base("", "  - hostname: a\n  - hostname: a\n"),
            "nodes[1].hostname: hostname a is used twice",
        ),
        (
            "version: 2\nnodes: [{hostname: a}]\n".into(),
            "p.yaml:1:10: version: profile version 2 is not supported by this pinode (it reads version 1)",
        ),
        (
            "version: 1\nnodes: [{hostname: a}]\n".into(),
            "nodes[0].user: node a has no user",
        ),
        (
            base("", "  - hostname: a\n    user: {name: root}\n"),
            "nodes[0].user.name: \"root\" is a system account",
        ),
        (
            base(
                "",
                "  - hostname: a\n    user: {ssh_authorized_keys: [\"not a key\"]}\n",
            ),
            "nodes[0].user.ssh_authorized_keys[0]: \"not\" is not an SSH public key type",
        ),
        (
            base("", "  - hostname: a\n    user: {password_hash: hunter2}\n"),
            "nodes[0].user.password_hash: not a supported password hash",
        ),
        (
            base("  boot: {cmdline_extra: [\"a b\"]}\n", "  - hostname: a\n"),
            "defaults.boot.cmdline_extra[0]: \"a b\" is not one kernel command-line token",
        ),
        (
            base("  boot: {config_extra: [\"[pi4]\"]}\n", "  - hostname: a\n"),
            "defaults.boot.config_extra[0]: section headers are not allowed",
        ),
        (
            "version: 1\nnodes: [{hostname: a}]\ncluster: {name: c}\n".into(),
            "nodes: the cluster needs a server",
        ),
        ("version: [1\n".into(), "p.yaml:"),
        (base("", "  - hostname: a\n    user: {name: video}\n"), "\"video\" is a system account or group"),
        (base("  timezone: US/Eastern\n", "  - hostname: a\n"), "use the Area/Location name (e.g. America/New_York"),
        (base("  boot: {cmdline_extra: [\"a=\\\"b\"]}\n", "  - hostname: a\n"), "quotes are not allowed"),
        (base("  boot: {cmdline_extra: [\"init=/bin/sh\"]}\n", "  - hostname: a\n"), "is managed by pinode or the image"),
        (
            "version: 1\ndefaults:\n  user: {name: a, password_hash: \"$6$s$h\"}\n  ssh: {password_authentication: false}\nnodes: [{hostname: a}]\n".into(),
            "would accept neither keys nor passwords over SSH",
        ),
        ("".into(), "the profile is empty"),
    ];
    for (text, expected) in cases {
        let (ok, _, stderr) = check(&text);
        assert!(!ok, "accepted:\n{text}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr:?} for:\n{text}"
        );
        // Errors, and warnings about what this machine lacks (an unset `*_env` variable).
        assert!(
            stderr
                .lines()
                .all(|l| l.starts_with("error: ") || l.starts_with("warning: ")),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn several_errors_are_all_reported() {
    let (ok, _, stderr) = check(&base(
        "  timezone: Nowhere\n  keyboard: \"G B\"\n",
        "  - hostname: x_y\n",
    ));
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
}

#[test]
fn warnings_go_to_stderr_and_never_show_secrets() {
    let (ok, _, stderr) = check(&base(
        "  wifi: {ssid: Home, psk: \"sekrit-passphrase\", country: GB}\n",
        "  - hostname: a\n",
    ));
    assert!(ok);
    assert!(
        stderr.contains("warning:")
            && stderr.contains("defaults.wifi.psk")
            && stderr.contains("prefer psk_env"),
        "{stderr}"
    );
    assert!(!stderr.contains("sekrit"));
    let servers = "  - hostname: s-[1-2]\n    role: server\n";
    let (ok, _, stderr) = check(&format!("{}cluster:\n  name: c\n", base("", servers)));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("2 servers"), "{stderr}");
}

#[test]
fn schema_is_json_schema_and_strict() {
    let out = run(pinode().args(["profile", "schema"]));
    let schema: Value = serde_json::from_str(&out).unwrap();
    assert!(
        schema["$schema"]
            .as_str()
            .unwrap()
            .contains("json-schema.org")
    );
    assert_eq!(schema["additionalProperties"], false);
    for key in ["version", "os", "defaults", "cluster", "nodes"] {
        assert!(schema["properties"][key].is_object(), "{key}");
    }
    assert_eq!(schema["required"], serde_json::json!(["version", "nodes"]));
}

#[test]
fn inspect_json_carries_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("trixie", dir.path());
    let doc = inspect_json(&image);
    assert_eq!(doc["partition_table"], "mbr");
    assert_eq!(doc["boot_partition"]["index"], 1);
    assert_eq!(doc["boot_partition"]["start_bytes"], 16384 * 512);
    assert_eq!(doc["boot_partition"]["fs"], "fat32");
    assert_eq!(doc["os"]["generation"], "trixie");
    assert_eq!(doc["os"]["init"], "cloud-init");
    assert_eq!(doc["boot"]["firstboot"], false);
    assert_eq!(doc["boot"]["hostname"], Value::Null);

    let profile = write_profile(dir.path(), "p.yaml", &base("", "  - hostname: matrix\n"));
    run(pinode()
        .arg("patch")
        .arg(&image)
        .arg("--profile")
        .arg(&profile));
    let doc = inspect_json(&image);
    for key in ["ssh", "cgroups", "arm_64bit", "firstboot"] {
        assert_eq!(doc["boot"][key], true, "{key}");
    }
    assert_eq!(doc["boot"]["hostname"], "matrix");

    let gpt = copy_fixture("gpt", dir.path());
    let doc = inspect_json(&gpt);
    assert_eq!(doc["partition_table"], "gpt");
    assert_eq!(doc["os"]["generation"], "bookworm");
}

#[test]
fn render_writes_reviewable_files_and_touches_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm-armhf", dir.path());
    let before = sha256_file(&image);
    let profile = write_profile(dir.path(), "p.yaml", &base("", "  - hostname: matrix\n"));
    let out = dir.path().join("r");
    run(pinode()
        .args(["render", "--profile"])
        .arg(&profile)
        .arg("--image")
        .arg(&image)
        .arg("--out-dir")
        .arg(&out));
    assert_eq!(sha256_file(&image), before);
    for f in [
        "README.txt",
        "cmdline.txt.append",
        "config.txt.append",
        "boot/firstrun.sh",
        "boot/userconf.txt",
        "boot/ssh",
        "boot/cmdline.txt",
        "boot/config.txt",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let config = std::fs::read_to_string(out.join("boot/config.txt")).unwrap();
    assert!(
        config.ends_with("[all]\narm_64bit=1\n# END pinode\n"),
        "the 32-bit image gets arm_64bit=1: {config}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("boot/userconf.txt")).unwrap(),
        "alice:*\n"
    );
}

/// The README's first command runs on this committed image; it must be the fixture script's
/// bookworm image, byte for byte.
#[test]
fn committed_fixture_matches_the_script() {
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/bookworm-lite.img.xz");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("xz -dc '{committed}' | sha256sum"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        sum,
        sha256_file(&fixture("bookworm")),
        "rebuild it: xz -9e -c bookworm.img > fixtures/bookworm-lite.img.xz"
    );
}
