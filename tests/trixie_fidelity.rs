//! Where pinode's Trixie (cloud-init) route matches what Raspberry Pi Imager 2.x and
//! Raspberry Pi OS's own `userconf` do (issue 17, item 5): the passwordless-sudo rule as a
//! file of its own, checked by `visudo`; renaming the first user carries its subordinate
//! ids along and retires the OS's rename wizard (`cancel-rename`); and the runner's Helm
//! chart is pinned. The seed's shell snippets are run for real against a scratch root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::ScratchRoot;
use common::*;
use serde_json::{Value, json};

fn profile(dir: &Path, sudo: &str) -> PathBuf {
    let doc = json!({
        "version": 1,
        "defaults": {
            "user": {"name": "alice", "ssh_authorized_keys": [KEY_1], "password_hash": HASH, "sudo": sudo},
        },
        "nodes": [{"hostname": "matrix", "role": "server"}],
    });
    write_profile(
        dir,
        &format!("{sudo}.yaml"),
        &serde_yaml::to_string(&doc).unwrap(),
    )
}

/// `pinode render` of `profile` for Trixie; returns the parsed `user-data`.
fn user_data(dir: &Path, profile: &Path) -> Value {
    let out = dir.join(format!(
        "render-{}",
        profile.file_stem().unwrap().to_string_lossy()
    ));
    run(pinode()
        .args(["render", "--profile"])
        .arg(profile)
        .args(["--generation", "trixie", "--out-dir"])
        .arg(&out));
    let path = out.join("boot/user-data");
    run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&path));
    pyyaml(&path)
}

/// The `sh -c SCRIPT NAME ARGS…` command of `section` whose `$0` is `name`, as argv.
fn snippet(user_data: &Value, section: &str, name: &str) -> Option<Vec<String>> {
    user_data[section].as_array().unwrap().iter().find_map(|c| {
        let argv: Vec<String> = c
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let at = argv.iter().position(|a| a == "-c")?;
        (argv.get(at + 2).map(String::as_str) == Some(name)).then(|| argv[at - 1..].to_vec())
    })
}

/// Runs argv (`sh -c SCRIPT NAME ARGS…`) inside `root`, after shellcheck has read SCRIPT.
fn run_snippet(root: &ScratchRoot, argv: &[String], work: &Path) -> std::process::Output {
    let script = work.join("snippet.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{}", argv[2])).unwrap();
    run(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(&script));
    let quoted: Vec<String> = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    root.run(&quoted.join(" "))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn nopasswd_sudo_is_also_a_sudoers_file_that_visudo_accepts() {
    if !root_or_skip("runs the first boot's snippets in a mount namespace") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = user_data(work.path(), &profile(work.path(), "nopasswd"));
    let argv = snippet(&data, "runcmd", "pinode-sudo").expect("a runcmd writes the sudo rule");
    assert_eq!(argv.last().unwrap(), "alice");
    // As Imager: runcmd, after cloud-init's users module made the user.
    let root = ScratchRoot::new("/boot/firmware");
    for round in 0..2 {
        let out = run_snippet(&root, &argv, work.path());
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
    }
    let rule = root.path("etc/sudoers.d/010_alice-nopasswd");
    assert_eq!(read(&rule), "alice ALL=(ALL) NOPASSWD: ALL\n");
    assert_eq!(mode(&rule) & 0o7777, 0o440);
    let meta = std::fs::metadata(&rule).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    run(Command::new("visudo").arg("-cf").arg(&rule));
    // Nothing half-written is left for sudo's #includedir to trip over.
    let left: Vec<_> = std::fs::read_dir(root.path("etc/sudoers.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pinode-new"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The whole sudoers configuration still parses, with the rule in it.
    let check = root.run("visudo -c");
    assert!(check.status.success(), "{}", both(&check));

    // `sudo: password`: no such rule, and no runcmd writing one.
    let data = user_data(work.path(), &profile(work.path(), "password"));
    assert!(snippet(&data, "runcmd", "pinode-sudo").is_none());
    assert!(data["users"][0].get("sudo").is_none());
}

#[test]
fn a_sudoers_rule_visudo_refuses_is_never_put_in_place() {
    if !root_or_skip("runs the first boot's snippets in a mount namespace") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = user_data(work.path(), &profile(work.path(), "nopasswd"));
    let argv = snippet(&data, "runcmd", "pinode-sudo").unwrap();
    let root = ScratchRoot::new("/boot/firmware");
    // A visudo that refuses everything stands in for a rule sudo could not parse.
    root.stub("visudo", "exit 1");
    let out = run_snippet(&root, &argv, work.path());
    assert!(!out.status.success());
    let entries: Vec<_> = std::fs::read_dir(root.path("etc/sudoers.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("alice"))
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn renaming_the_first_user_moves_its_subids_and_cancels_the_rename_wizard() {
    if !root_or_skip("runs the first boot's snippets in a mount namespace") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    for sudo in ["nopasswd", "password"] {
        let data = user_data(work.path(), &profile(work.path(), sudo));
        let bootcmd = &data["bootcmd"];
        // `cloud-init-per once NAME sh -c …`: once per instance, before the users module.
        let command = bootcmd
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c[2] == "pinode-first-user")
            .unwrap();
        assert_eq!(command[0], "cloud-init-per");
        assert_eq!(command[1], "once");
        let argv = snippet(&data, "bootcmd", "pinode-first-user").unwrap();
        assert_eq!(argv.last().unwrap(), "alice");

        let root = ScratchRoot::new("/boot/firmware");
        // As pi-gen leaves Raspberry Pi OS: pi has subordinate ids (adduser gives them), and
        // passwordless sudo through 010_pi-nopasswd; another user's lines stay as they are.
        std::fs::write(
            root.path("etc/subuid"),
            "pi:100000:65536\npiano:165536:65536\n",
        )
        .unwrap();
        std::fs::write(
            root.path("etc/subgid"),
            "pi:100000:65536\npiano:165536:65536\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.path("etc/sudoers.d")).unwrap();
        std::fs::write(
            root.path("etc/sudoers.d/010_pi-nopasswd"),
            "pi ALL=(ALL) NOPASSWD: ALL\n",
        )
        .unwrap();
        std::fs::write(root.path("home/pi/.profile"), "# pi's\n").unwrap();
        // Raspberry Pi OS's cancel-rename (userconf-pi) is on PATH there: a recording stand-in.
        root.stub("cancel-rename", "");
        for round in 0..2 {
            let out = run_snippet(&root, &argv, work.path());
            assert!(out.status.success(), "{sudo} round {round}: {}", both(&out));
        }
        let passwd = read(&root.path("etc/passwd"));
        assert!(
            passwd
                .lines()
                .any(|l| l.starts_with("alice:x:1000:1000:")
                    && l.ends_with(":/home/alice:/bin/bash")),
            "{passwd}"
        );
        assert!(!passwd.lines().any(|l| l.starts_with("pi:")));
        assert!(
            read(&root.path("etc/group"))
                .lines()
                .any(|l| l.starts_with("alice:x:1000:"))
        );
        assert_eq!(read(&root.path("home/alice/.profile")), "# pi's\n");
        for file in ["etc/subuid", "etc/subgid"] {
            assert_eq!(
                read(&root.path(file)),
                "alice:100000:65536\npiano:165536:65536\n",
                "{file}"
            );
            assert_eq!(mode(&root.path(file)) & 0o777, 0o644, "{file}");
        }
        // pinode writes the user's own rule (nopasswd only): the old one goes either way.
        assert!(!root.path("etc/sudoers.d/010_pi-nopasswd").exists());
        // cancel-rename ran for the new name, in both rounds (as userconf runs it whenever
        // it is called).
        let log = root.stub_log();
        assert_eq!(
            log.lines().filter(|l| *l == "cancel-rename alice").count(),
            2,
            "{log}"
        );
    }
}

#[test]
fn the_firstrun_route_renames_the_same_way_without_userconf() {
    if !root_or_skip("runs firstrun.sh in a mount namespace") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("render-bookworm");
    run(pinode()
        .args(["render", "--profile"])
        .arg(profile(work.path(), "nopasswd"))
        .args(["--generation", "bookworm", "--out-dir"])
        .arg(&out));
    let root = ScratchRoot::new("/boot/firmware");
    std::fs::write(root.path("etc/subuid"), "pi:100000:65536\n").unwrap();
    std::fs::write(root.path("etc/subgid"), "pi:100000:65536\n").unwrap();
    root.stub("cancel-rename", "");
    std::fs::copy(
        out.join("boot/firstrun.sh"),
        root.boot().join("firstrun.sh"),
    )
    .unwrap();
    std::fs::write(root.boot().join("cmdline.txt"), "console=tty1 rootwait\n").unwrap();
    let ran = root.run("sh /boot/firmware/firstrun.sh");
    assert!(ran.status.success(), "{}", both(&ran));
    assert!(!stderr(&ran).contains("FAILED"), "{}", stderr(&ran));
    assert_eq!(read(&root.path("etc/subuid")), "alice:100000:65536\n");
    assert_eq!(read(&root.path("etc/subgid")), "alice:100000:65536\n");
    assert!(root.stub_log().contains("cancel-rename alice\n"));
}

#[test]
fn the_runner_chart_is_pinned_to_the_tested_version_unless_the_profile_says() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_1}\n")).unwrap();
    let base = read(&PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/cluster.yaml"
    )));
    for (name, text, want) in [
        ("default.yaml", base.clone(), "0.86.0"),
        (
            "pinned.yaml",
            base.replace(
                "    token_env: GITLAB_RUNNER_TOKEN\n",
                "    token_env: GITLAB_RUNNER_TOKEN\n    chart_version: 0.85.2\n",
            ),
            "0.85.2",
        ),
    ] {
        assert!(name == "default.yaml" || text.contains("chart_version: 0.85.2"));
        let path = write_profile(work.path(), name, &text);
        let out = work.path().join(format!("r-{name}"));
        run(pinode()
            .env("HOME", &home)
            .env("CI", "false")
            .env("PINODE_STATE_DIR", work.path().join("state"))
            .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
            .env("GITLAB_RUNNER_TOKEN", "glrt-test_runner-token-0123456789")
            .env("WIFI_PSK", "cluster passphrase")
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "matrix", "--generation", "bookworm", "--out-dir"])
            .arg(&out));
        let manifest = out.join("boot/pinode/k3s/pinode-gitlab-runner.yaml");
        let docs = yaml_documents(&manifest);
        assert_eq!(docs[1]["kind"], "HelmChart");
        assert_eq!(docs[1]["spec"]["version"], want, "{name}");
        let said = run(pinode()
            .env("HOME", &home)
            .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
            .env("GITLAB_RUNNER_TOKEN", "glrt-test_runner-token-0123456789")
            .env("WIFI_PSK", "cluster passphrase")
            .args(["profile", "check"])
            .arg(&path));
        assert!(
            said.contains(&format!(", chart gitlab-runner {want} from ")),
            "{said}"
        );
    }
    // A version that is not one is refused at its line.
    let bad = base.replace(
        "    token_env: GITLAB_RUNNER_TOKEN\n",
        "    token_env: GITLAB_RUNNER_TOKEN\n    chart_version: \"1.0 latest\"\n",
    );
    let path = write_profile(work.path(), "bad.yaml", &bad);
    let out = output(
        pinode()
            .env("HOME", &home)
            .args(["profile", "check"])
            .arg(&path),
    );
    assert!(!out.status.success());
    let line = bad
        .lines()
        .position(|l| l.contains("chart_version"))
        .unwrap()
        + 1;
    let err = stderr(&out);
    assert!(
        err.contains(&format!("bad.yaml:{line}:")) && err.contains("cluster.runner.chart_version"),
        "{err}"
    );
}
