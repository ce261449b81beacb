//! The rendered first-boot program: checked by shellcheck and cloud-init's own validator, and
//! run for real against a scratch root to prove that hostile values arrive byte-exact.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::ScratchRoot;
use common::*;
use serde_json::json;

/// An SSID of 17 bytes with every character that breaks naive quoting.
const HOSTILE_SSID: &str = "a'b\"c$(x)`y`\\ü\nz";
/// 63 printable ASCII characters, quotes and command substitutions included.
const HOSTILE_PSK: &str = "p'q\"r$(reboot)`id`\\ ;&|<>*?[]{}~#!%^=+,.:/@-_ 0123456789abcdefg";
/// Exactly 32 bytes: the longest SSID Wi-Fi allows.
const LONG_SSID: &str = "ünïcödé ssid with 32 bytes!!";
const RAW_PSK: &str = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";

fn hostile_key() -> String {
    format!(
        "{} it's \"me\" $(reboot) `id` \\ ü",
        KEY_1.rsplit_once(' ').unwrap().0
    )
}

struct Case {
    ssid: &'static str,
    psk: &'static str,
}

fn profile(dir: &Path, case: &Case) -> PathBuf {
    let doc = json!({
        "version": 1,
        "defaults": {
            "user": {"name": "alice", "ssh_authorized_keys": [hostile_key(), KEY_2], "password_hash": HASH},
            "wifi": {"ssid": case.ssid, "psk_env": "PINODE_TEST_PSK", "country": "DE", "hidden": true},
            "timezone": "America/Argentina/Buenos_Aires",
            "locale": "de_DE.UTF-8",
            "keyboard": "de",
        },
        "nodes": [{"hostname": "matrix", "role": "server"}],
    });
    write_profile(dir, "hostile.yaml", &serde_yaml::to_string(&doc).unwrap())
}

fn render(dir: &Path, case: &Case, generation: &str) -> PathBuf {
    let out = dir.join(format!("render-{generation}"));
    run(pinode()
        .env("PINODE_TEST_PSK", case.psk)
        .args(["render", "--profile"])
        .arg(profile(dir, case))
        .args(["--generation", generation, "--out-dir"])
        .arg(&out));
    out
}

/// PBKDF2 from Python's hashlib: an implementation independent of pinode's.
fn expected_psk(ssid: &str, psk: &str) -> String {
    if psk.len() == 64 {
        return psk.to_ascii_lowercase();
    }
    let script = "import hashlib,sys; print(hashlib.pbkdf2_hmac('sha1', sys.argv[1].encode(), sys.argv[2].encode(), 4096, 32).hex())";
    run(Command::new("/usr/bin/python3").args(["-c", script, psk, ssid]))
        .trim()
        .to_string()
}

const CASES: [Case; 2] = [
    Case {
        ssid: HOSTILE_SSID,
        psk: HOSTILE_PSK,
    },
    Case {
        ssid: LONG_SSID,
        psk: RAW_PSK,
    },
];

#[test]
fn the_long_ssid_is_really_32_bytes() {
    assert_eq!(LONG_SSID.len(), 32);
    assert_eq!(HOSTILE_PSK.len(), 63);
}

#[test]
fn rendered_shell_passes_shellcheck_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    for case in &CASES {
        for generation in ["bullseye", "bookworm"] {
            let script = render(dir.path(), case, generation).join("boot/firstrun.sh");
            run(Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(&script));
            for shell in ["sh", "dash", "bash"] {
                run(Command::new(shell).arg("-n").arg(&script));
            }
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&script).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "a file with secrets is private");
        }
    }
}

#[test]
fn rendered_cloud_init_passes_schema_and_parses_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    for case in &CASES {
        let out = render(dir.path(), case, "trixie");
        let boot = out.join("boot");
        run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(boot.join("user-data")));
        let user_data = pyyaml(&boot.join("user-data"));
        // Every shell snippet the seed runs passes shellcheck too.
        for command in user_data["bootcmd"]
            .as_array()
            .unwrap()
            .iter()
            .chain(user_data["runcmd"].as_array().unwrap())
        {
            let argv: Vec<&str> = command
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            if let Some(at) = argv.iter().position(|a| *a == "-c") {
                let script = dir.path().join("snippet.sh");
                std::fs::write(&script, format!("#!/bin/sh\n{}", argv[at + 1])).unwrap();
                run(Command::new("shellcheck")
                    .args(["--shell=sh", "--severity=style"])
                    .arg(&script));
            }
        }
        assert_eq!(user_data["hostname"], "matrix");
        let user = &user_data["users"][0];
        assert_eq!(user["name"], "alice");
        assert_eq!(user["hashed_passwd"], HASH);
        assert_eq!(user["ssh_authorized_keys"], json!([hostile_key(), KEY_2]));
        assert_eq!(user_data["timezone"], "America/Argentina/Buenos_Aires");
        assert_eq!(user_data["ssh_pwauth"], false);

        let network = pyyaml(&boot.join("network-config"));
        let wlan = &network["network"]["wifis"]["wlan0"];
        let access_points = wlan["access-points"].as_object().unwrap();
        assert_eq!(access_points.keys().collect::<Vec<_>>(), [case.ssid]);
        assert_eq!(
            access_points[case.ssid]["password"],
            expected_psk(case.ssid, case.psk)
        );
        assert_eq!(access_points[case.ssid]["hidden"], true);
        assert_eq!(wlan["regulatory-domain"], "DE");

        let meta = pyyaml(&boot.join("meta-data"));
        let tokens = std::fs::read_to_string(out.join("cmdline.txt.append")).unwrap();
        let id = meta["instance-id"].as_str().unwrap();
        assert!(
            tokens
                .split_whitespace()
                .any(|t| t == format!("ds=nocloud;i={id}")),
            "{tokens}"
        );
        assert_eq!(meta["local-hostname"], "matrix");
    }
}

#[test]
fn hostnames_with_underscores_are_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\nnodes:\n  - hostname: my_node\n"
    );
    let path = write_profile(dir.path(), "p.yaml", &text);
    let out = output(pinode().args(["profile", "check"]).arg(&path));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.yaml:7:")
            && err.contains("nodes[0].hostname")
            && err.contains("underscores"),
        "{err}"
    );
}

/// A scratch root holding a rendered node's first stage, as the node would have it.
fn scratch_for(render: &Path, boot_dir: &str) -> ScratchRoot {
    let scratch = ScratchRoot::new(boot_dir);
    for file in ["firstrun.sh", "userconf.txt"] {
        std::fs::copy(render.join("boot").join(file), scratch.boot().join(file)).unwrap();
    }
    let tokens = std::fs::read_to_string(render.join("cmdline.txt.append")).unwrap();
    std::fs::write(
        scratch.boot().join("cmdline.txt"),
        format!("console=tty1 root=PARTUUID=1234-02 rootwait {tokens}"),
    )
    .unwrap();
    scratch
}

/// Runs `firstrun.sh` in the scratch root; returns its stderr.
fn run_firstrun(scratch: &ScratchRoot) -> String {
    let out = scratch.run(&format!("sh {}/firstrun.sh", scratch.boot_dir));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "firstrun.sh failed: {stderr}");
    stderr
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes NetworkManager's `ssid=` value (a plain name or a `;`-separated byte list).
fn nm_ssid(value: &str) -> Vec<u8> {
    if value.ends_with(';') {
        value
            .trim_end_matches(';')
            .split(';')
            .map(|b| b.parse::<u8>().unwrap())
            .collect()
    } else {
        value.as_bytes().to_vec()
    }
}

fn keyfile_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn hostile_values_arrive_byte_exact_on_a_scratch_root() {
    assert!(
        is_root(),
        "this test runs firstrun.sh in a mount namespace and needs root (as CI has)"
    );
    let work = tempfile::tempdir().unwrap();
    for case in &CASES {
        for (generation, boot_dir) in [("bookworm", "/boot/firmware"), ("bullseye", "/boot")] {
            let rendered = render(work.path(), case, generation);
            let root = scratch_for(&rendered, boot_dir);
            let boot = root.boot();
            let script = std::fs::read(boot.join("firstrun.sh")).unwrap();
            let log = run_firstrun(&root);
            assert!(!log.contains("FAILED"), "{generation}: {log}");
            // Every step is idempotent: running the script again (a power cut before it
            // finished, say) changes nothing and fails nothing.
            let etc_before = run(Command::new("sh").arg("-c").arg(format!(
                "cd '{}' && find etc home -type f | sort | xargs sha256sum",
                root.path("").display()
            )));
            std::fs::write(boot.join("firstrun.sh"), &script).unwrap();
            let again = run_firstrun(&root);
            assert!(
                !again.contains("FAILED"),
                "{generation} second run: {again}"
            );
            let etc_after = run(Command::new("sh").arg("-c").arg(format!(
                "cd '{}' && find etc home -type f | sort | xargs sha256sum",
                root.path("").display()
            )));
            // shadow-utils keeps the previous version of its files as `passwd-`, `shadow-`…
            let changed: Vec<&str> = etc_after
                .lines()
                .filter(|l| !l.ends_with('-') && !etc_before.lines().any(|b| b == *l))
                .collect();
            assert!(
                changed.is_empty(),
                "a second run changed files: {changed:?}"
            );

            assert_eq!(read(&root.path("etc/hostname")), "matrix\n");
            assert!(read(&root.path("etc/hosts")).contains("127.0.1.1\tmatrix\n"));
            let passwd = read(&root.path("etc/passwd"));
            assert!(
                passwd
                    .lines()
                    .any(|l| l.starts_with("alice:x:1000:1000:") && l.contains(":/home/alice:")),
                "{passwd}"
            );
            assert!(!passwd.lines().any(|l| l.starts_with("pi:")));
            let shadow = read(&root.path("etc/shadow"));
            let hash = shadow
                .lines()
                .find_map(|l| l.strip_prefix("alice:"))
                .unwrap()
                .split(':')
                .next()
                .unwrap();
            assert_eq!(hash, HASH);
            assert_eq!(
                read(&root.path("home/alice/.ssh/authorized_keys")),
                format!("{}\n{KEY_2}\n", hostile_key())
            );
            let meta = std::fs::metadata(root.path("home/alice/.ssh/authorized_keys")).unwrap();
            assert_eq!(
                (
                    std::os::unix::fs::MetadataExt::uid(&meta),
                    std::os::unix::fs::MetadataExt::mode(&meta) & 0o777
                ),
                (1000, 0o600)
            );
            assert_eq!(
                read(&root.path("etc/sudoers.d/010_pinode-nopasswd")),
                "alice ALL=(ALL) NOPASSWD: ALL\n"
            );
            assert_eq!(
                read(&root.path("etc/ssh/sshd_config.d/10-pinode.conf")),
                "# Written by pinode on first boot.\nPasswordAuthentication no\n"
            );
            assert_eq!(
                std::fs::read_link(root.path("etc/localtime")).unwrap(),
                PathBuf::from("/usr/share/zoneinfo/America/Argentina/Buenos_Aires")
            );
            assert_eq!(read(&root.path("etc/default/locale")), "LANG=de_DE.UTF-8\n");
            assert!(read(&root.path("etc/default/keyboard")).contains("XKBLAYOUT=\"de\"\n"));

            let psk = expected_psk(case.ssid, case.psk);
            if generation == "bullseye" {
                let conf = read(&root.path("etc/wpa_supplicant/wpa_supplicant.conf"));
                let ssid_hex = conf
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("ssid="))
                    .unwrap();
                assert_eq!(hex::decode(ssid_hex).unwrap(), case.ssid.as_bytes());
                assert!(conf.contains(&format!("\tpsk={psk}\n")) && conf.contains("country=DE\n"));
            } else {
                let path =
                    root.path("etc/NetworkManager/system-connections/preconfigured.nmconnection");
                let keyfile = read(&path);
                assert_eq!(
                    nm_ssid(keyfile_value(&keyfile, "ssid")),
                    case.ssid.as_bytes()
                );
                assert_eq!(keyfile_value(&keyfile, "psk"), psk);
                assert_eq!(
                    std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&path).unwrap())
                        & 0o777,
                    0o600
                );
            }

            assert!(
                !boot.join("firstrun.sh").exists(),
                "the script removes itself"
            );
            let cmdline = read(&boot.join("cmdline.txt"));
            assert!(
                !cmdline.contains("systemd.run") && !cmdline.contains("systemd.unit"),
                "{cmdline}"
            );
            assert!(
                cmdline.contains("cgroup_enable=memory")
                    && cmdline.contains("cfg80211.ieee80211_regdom=DE")
            );
            let status = read(&boot.join("pinode-status.txt"));
            assert!(status.contains("firstrun: ok"), "{status}");
            assert!(!status.contains(&psk) && !status.contains(HASH));
            assert!(read(&root.path("varlog/pinode-firstboot.log")).contains("ok: wi-fi"));
            let stubs = read(&root.path("stub.log"));
            assert!(
                stubs.contains("systemctl --no-reload enable ssh"),
                "{stubs}"
            );
        }
    }
}

/// cloud-init reads YAML 1.1, where plain `no`, `ON` or `12:30` are booleans and numbers:
/// Norway's keyboard and country code, an SSID called "ON". They must arrive as strings.
#[test]
fn yaml_1_1_lookalikes_stay_strings() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "version": 1,
        "defaults": {
            "user": {"name": "yes", "ssh_authorized_keys": [KEY_1]},
            "wifi": {"ssid": "ON", "psk": "12:30:00:00", "country": "NO"},
            "keyboard": "no",
            "locale": "nb_NO.UTF-8",
            "timezone": "Europe/Oslo",
        },
        "nodes": [{"hostname": "off"}],
    });
    let profile = write_profile(dir.path(), "no.yaml", &serde_yaml::to_string(&doc).unwrap());
    let out = dir.path().join("r");
    run(pinode()
        .args(["render", "--profile"])
        .arg(&profile)
        .args(["--generation", "trixie", "--out-dir"])
        .arg(&out));
    let boot = out.join("boot");
    run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(boot.join("user-data")));
    let user_data = pyyaml(&boot.join("user-data"));
    assert_eq!(user_data["hostname"], "off");
    assert_eq!(user_data["users"][0]["name"], "yes");
    let keyboard = user_data["runcmd"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[3] == "pinode-keyboard")
        .unwrap();
    assert_eq!(keyboard[4], "no");
    let network = pyyaml(&boot.join("network-config"));
    let wlan = &network["network"]["wifis"]["wlan0"];
    assert_eq!(wlan["regulatory-domain"], "NO");
    assert!(wlan["access-points"].get("ON").is_some(), "{wlan}");
    assert_eq!(pyyaml(&boot.join("meta-data"))["local-hostname"], "off");
}
