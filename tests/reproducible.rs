//! Same profile, same image, same bytes: `prepare` and `render` of every example profile give
//! exactly the images and files recorded in tests/reproducible/hashes.txt.
//!
//! The hashes were recorded before the plan layer and the library pipeline were introduced
//! (issue 14), so this test proves that restructuring changed no byte. Values that differ by
//! design on every run are fixed: FAT timestamps by SOURCE_DATE_EPOCH, and the generated
//! cluster token, the cloud-init instance-id and password salts by the test switch
//! PINODE_TEST_SEED (src/entropy.rs). To record new hashes after an intended change, run
//! with PINODE_RECORD_HASHES=1 and review the diff of hashes.txt.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};

const PROFILES: [&str; 5] = ["cluster", "example", "ha", "single-node", "wifi-lab"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// pinode with everything that would otherwise differ between runs fixed.
fn fixed(home: &Path) -> Command {
    let mut c = pinode();
    // Not CI: single-node.yaml names no token, and pinode generates one (from the test
    // seed) only outside CI, as on a person's machine.
    c.env("CI", "false")
        .env("HOME", home)
        .env("PINODE_STATE_DIR", home.join("state"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("PINODE_TEST_SEED", "reproducible")
        .env("K3S_TOKEN", "reproducible-token-0123456789abcdef")
        .env("GITLAB_RUNNER_TOKEN", "glrt-reproducible-0123456789")
        .env("WIFI_PSK", "correct horse battery staple")
        .env("LAB_WIFI_PSK", "lab wifi passphrase 42")
        .env("LAB_ADMIN_PASSWORD", "console password");
    c
}

fn home(dir: &Path) -> PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    // The K3s clusters' CAs, kept as on a person's machine: ECDSA signatures are not
    // reproducible, so the CA is a fixed test fixture (tests/reproducible/k3s-ca, made by
    // pinode once), not generated per run.
    for cluster in ["matrix", "ha", "solo"] {
        let kept = home.join(format!("state/clusters/{cluster}/k3s-ca"));
        std::fs::create_dir_all(&kept).unwrap();
        let fixture = repo().join(format!("tests/reproducible/k3s-ca/{cluster}"));
        for entry in std::fs::read_dir(&fixture).unwrap() {
            let entry = entry.unwrap();
            let to = kept.join(entry.file_name());
            std::fs::copy(entry.path(), &to).unwrap();
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        std::fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
    }
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{EXAMPLE_KEY}\n")).unwrap();
    home
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The sha256 of every file below `dir`, named `prefix` + its path relative to `dir`.
fn files(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for p in walk(dir) {
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        out.insert(format!("{prefix}{rel}"), sha256(&p));
    }
}

/// Every (name, sha256) this test produces, sorted.
fn produce(dir: &Path) -> BTreeMap<String, String> {
    let home = home(dir);
    let mut all = BTreeMap::new();
    // Images: every example profile on the shipped fixture (firstrun route), and the cluster
    // profiles on a Trixie-shaped image too (cloud-init route) and a Bullseye one.
    let shipped = repo().join("fixtures/bookworm-lite.img.xz");
    let mut runs: Vec<(String, PathBuf)> = PROFILES
        .iter()
        .map(|p| (format!("prepare/{p}/bookworm-lite"), shipped.clone()))
        .collect();
    for p in ["cluster", "wifi-lab"] {
        for image in ["trixie", "bullseye"] {
            runs.push((format!("prepare/{p}/{image}"), fixture(image)));
        }
    }
    for (name, image) in runs {
        let profile = name.split('/').nth(1).unwrap();
        let out = dir.join(&name);
        run(fixed(&home)
            .args(["prepare", "--profile"])
            .arg(repo().join(format!("profiles/{profile}.yaml")))
            .arg("--image")
            .arg(&image)
            .arg("--out-dir")
            .arg(&out));
        let mut produced = BTreeMap::new();
        files(&out, &format!("{name}/"), &mut produced);
        all.extend(produced.into_iter().filter(|(k, _)| k.ends_with(".img")));
    }
    // Rendered files: every example profile for every generation.
    for profile in PROFILES {
        let path = repo().join(format!("profiles/{profile}.yaml"));
        // The nodes (ranges expanded) are the images prepare made.
        let prefix = format!("prepare/{profile}/bookworm-lite/");
        let hosts: Vec<String> = all
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".img"))
            .map(str::to_string)
            .collect();
        assert!(!hosts.is_empty());
        for host in &hosts {
            for generation in ["bullseye", "bookworm", "trixie"] {
                let name = format!("render/{profile}/{host}/{generation}");
                let out = dir.join(&name);
                run(fixed(&home)
                    .args(["render", "--profile"])
                    .arg(&path)
                    .args(["--node", host, "--generation", generation, "--out-dir"])
                    .arg(&out));
                files(&out, &format!("{name}/"), &mut all);
            }
        }
    }
    all
}

#[test]
fn example_profiles_give_the_recorded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let produced = produce(dir.path());
    let text: String = produced
        .iter()
        .map(|(name, hash)| format!("{hash}  {name}\n"))
        .collect();
    let recorded_path = repo().join("tests/reproducible/hashes.txt");
    if std::env::var_os("PINODE_RECORD_HASHES").is_some() {
        std::fs::write(&recorded_path, &text).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&recorded_path).unwrap();
    let mut differ = Vec::new();
    let recorded_map: BTreeMap<&str, &str> = recorded
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(h, n)| (n, h)))
        .collect();
    for (name, hash) in &produced {
        match recorded_map.get(name.as_str()) {
            Some(h) if h == hash => {}
            Some(_) => differ.push(format!("changed: {name}")),
            None => differ.push(format!("new: {name}")),
        }
    }
    for name in recorded_map.keys() {
        if !produced.contains_key(*name) {
            differ.push(format!("missing: {name}"));
        }
    }
    assert!(
        differ.is_empty(),
        "bytes differ from the recorded ones:\n{}",
        differ.join("\n")
    );
    assert!(
        produced.len() > 60,
        "too few files compared: {}",
        produced.len()
    );
}

#[test]
fn two_runs_are_identical() {
    // The recorded comparison is only meaningful if nothing else varies between runs.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let home_a = home(a.path());
    let home_b = home(b.path());
    let mut hashes = Vec::new();
    for (dir, home) in [(a.path(), &home_a), (b.path(), &home_b)] {
        let out = dir.join("out");
        run(fixed(home)
            .args(["prepare", "--profile"])
            .arg(repo().join("profiles/single-node.yaml"))
            .arg("--image")
            .arg(fixture("trixie"))
            .arg("--out-dir")
            .arg(&out));
        let mut m = BTreeMap::new();
        files(&out, "", &mut m);
        hashes.push(
            m.into_iter()
                .filter(|(k, _)| k.ends_with(".img"))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(hashes[0], hashes[1]);
    assert!(!hashes[0].is_empty());
}
