//! Known host keys: pinode makes each cluster node's SSH host key once, keeps it, and hands
//! it to the node through the cloud-init route (the firstrun route is run for real in
//! tests/cluster.rs, `check_host_key`). The seed is checked by cloud-init's own validator and
//! by the newest cloud-init schema (shared/upstream), and its scrub step is run for real.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn profile(dir: &Path, cluster: &str) -> PathBuf {
    write_profile(
        dir,
        &format!("{cluster}.yaml"),
        &profile_yaml(
            "",
            "",
            &format!(
                "cluster:\n  name: {cluster}\n  token_env: K3S_TOKEN\nnodes:\n  - hostname: s1\n    role: server\n  - hostname: a1\n    role: agent\n"
            ),
        ),
    )
}

fn render(state: &Path, profile: &Path, node: &str, out: &Path, seed: Option<&str>) {
    let mut c = pinode();
    c.env("PINODE_STATE_DIR", state)
        .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
        .env_remove("PINODE_TEST_SEED");
    if let Some(seed) = seed {
        c.env("PINODE_TEST_SEED", seed);
    }
    run(c
        .args([
            "render",
            "--generation",
            "trixie",
            "--node",
            node,
            "--profile",
        ])
        .arg(profile)
        .arg("--out-dir")
        .arg(out));
}

/// The newest cloud-config schema kept in shared/upstream beside the repository, where there
/// is one: a clean checkout (CI) has none, and there the installed cloud-init's own schema
/// (`cloud-init schema`, which every test of a seed runs) is the check.
fn newest_schema() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/upstream/cloud-init/main"
    ))
    .join("schema-cloud-config-v1.json");
    if !path.exists() {
        eprintln!(
            "NOTE: {} is not here: user-data checked by the installed cloud-init's schema only",
            path.display()
        );
    }
    path.exists().then_some(path)
}

#[test]
fn cloud_init_carries_the_kept_key_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let profile = profile(dir.path(), "lab");
    let out = dir.path().join("out");
    render(&state, &profile, "s1", &out, None);
    let kept = state.join("clusters/lab/host-keys/s1_ed25519");
    assert_eq!(mode(&kept), 0o600);
    let private = std::fs::read_to_string(&kept).unwrap();
    let user_data = out.join("boot/user-data");
    let doc = pyyaml(&user_data);
    assert_eq!(
        doc["ssh_keys"]["ed25519_private"].as_str(),
        Some(private.as_str())
    );
    let derived = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(&kept));
    let public = doc["ssh_keys"]["ed25519_public"].as_str().unwrap();
    assert_eq!(
        derived.split(' ').take(2).collect::<Vec<_>>(),
        public.split(' ').take(2).collect::<Vec<_>>()
    );
    assert_eq!(doc["ssh_deletekeys"], true);
    let bootcmd = doc["bootcmd"].to_string();
    assert!(
        bootcmd.contains("mask regenerate_ssh_host_keys.service"),
        "{bootcmd}"
    );
    // The file holding the key is a secret on the boot partition.
    assert_eq!(mode(&user_data), 0o600);

    run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&user_data));
    if let Some(schema) = newest_schema() {
        let check = "import json,yaml,sys,jsonschema\n\
            schema=json.load(open(sys.argv[1])); doc=yaml.safe_load(open(sys.argv[2]))\n\
            v=jsonschema.validators.validator_for(schema)(schema)\n\
            errors=[e.message for e in v.iter_errors(doc)]\n\
            doc['ssh_keys']['dsa_private']='x'\n\
            assert list(v.iter_errors(doc)), 'the schema does not check ssh_keys'\n\
            print(errors)";
        let errors = run(Command::new("/usr/bin/python3")
            .args(["-c", check])
            .arg(&schema)
            .arg(&user_data));
        assert_eq!(errors.trim(), "[]");
    }

    // The seed's last step scrubs it: run it on a copy of the boot partition.
    let runcmd = doc["runcmd"].as_array().unwrap();
    let finish = runcmd
        .iter()
        .find(|c| c[3] == "pinode-finish")
        .expect("the finish step");
    let boot = dir.path().join("boot-copy");
    run(Command::new("cp")
        .arg("-a")
        .arg(out.join("boot"))
        .arg(&boot));
    run(Command::new("sh")
        .arg("-c")
        .arg(finish[2].as_str().unwrap())
        .arg("pinode-finish")
        .arg(&boot));
    let needle = &private.as_bytes()[40..100];
    for file in walk(&boot) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle)
                && !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "{} still holds the private key",
            file.display()
        );
    }
}

#[test]
fn a_kept_key_survives_re_rendering_and_differs_by_cluster_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let lab = profile(dir.path(), "lab");
    render(&state, &lab, "s1", &dir.path().join("one"), None);
    let kept = state.join("clusters/lab/host-keys/s1_ed25519");
    let first = std::fs::read(&kept).unwrap();
    let known = std::fs::read_to_string(state.join("clusters/lab/known_hosts")).unwrap();
    // Again, even with a test seed that would derive another key: the kept one is used.
    render(&state, &lab, "s1", &dir.path().join("two"), Some("other"));
    assert_eq!(std::fs::read(&kept).unwrap(), first);
    let again = pyyaml(&dir.path().join("two/boot/user-data"));
    assert_eq!(
        again["ssh_keys"]["ed25519_private"]
            .as_str()
            .unwrap()
            .as_bytes(),
        first
    );
    assert_eq!(
        std::fs::read_to_string(state.join("clusters/lab/known_hosts")).unwrap(),
        known
    );
    render(&state, &lab, "a1", &dir.path().join("three"), None);
    let agent = std::fs::read(state.join("clusters/lab/host-keys/a1_ed25519")).unwrap();
    assert_ne!(agent, first);
    let known = std::fs::read_to_string(state.join("clusters/lab/known_hosts")).unwrap();
    let names: Vec<&str> = known
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["a1", "a1.local", "s1", "s1.local"]);
    let other = profile(dir.path(), "other");
    render(&state, &other, "s1", &dir.path().join("four"), None);
    assert_ne!(
        std::fs::read(state.join("clusters/other/host-keys/s1_ed25519")).unwrap(),
        first
    );
}

#[test]
fn a_damaged_or_open_kept_key_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let lab = profile(dir.path(), "lab");
    render(&state, &lab, "s1", &dir.path().join("one"), None);
    let kept = state.join("clusters/lab/host-keys/s1_ed25519");
    run(Command::new("chmod").arg("644").arg(&kept));
    let attempt = |out: &str| {
        output(
            pinode()
                .env("PINODE_STATE_DIR", &state)
                .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
                .args([
                    "render",
                    "--generation",
                    "trixie",
                    "--node",
                    "s1",
                    "--profile",
                ])
                .arg(&lab)
                .arg("--out-dir")
                .arg(dir.path().join(out)),
        )
    };
    let out = attempt("two");
    let line = one_error_line(&out, &["chmod 600"]);
    assert!(!line.contains("PRIVATE"), "{line}");
    run(Command::new("chmod").arg("600").arg(&kept));
    std::fs::write(&kept, "-----BEGIN OPENSSH PRIVATE KEY-----\nbroken\n").unwrap();
    let out = attempt("three");
    one_error_line(&out, &["no unencrypted OpenSSH ed25519 private key"]);
    // A symbolic link in its place (to a private, valid key) is not followed: the kept key
    // is pinode's own file, and a link could point it anywhere.
    let elsewhere = dir.path().join("elsewhere_ed25519");
    render(
        &state,
        &profile(dir.path(), "spare"),
        "s1",
        &dir.path().join("spare"),
        None,
    );
    std::fs::copy(
        state.join("clusters/spare/host-keys/s1_ed25519"),
        &elsewhere,
    )
    .unwrap();
    run(Command::new("chmod").arg("600").arg(&elsewhere));
    std::fs::remove_file(&kept).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &kept).unwrap();
    let out = attempt("four");
    one_error_line(&out, &["is a symbolic link, not a regular file"]);
}

/// A prepared image: the key travels inside the FAT's firstrun.sh, the file that already
/// carries the node's other first-boot secrets (scrubbed by the script itself, see
/// tests/cluster.rs), and the image file is private.
#[test]
fn a_prepared_image_carries_the_kept_key_in_its_secret_first_boot_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let lab = profile(dir.path(), "lab");
    let out = dir.path().join("out");
    run(pinode()
        .env("PINODE_STATE_DIR", &state)
        .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
        .args(["prepare", "--node", "s1", "--profile"])
        .arg(&lab)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(&out));
    let image = out.join("s1.img");
    assert_eq!(mode(&image), 0o600);
    let boot = extract_boot(&image, dir.path());
    let firstrun = String::from_utf8(mread(&boot, "firstrun.sh").unwrap()).unwrap();
    let kept = std::fs::read_to_string(state.join("clusters/lab/host-keys/s1_ed25519")).unwrap();
    // The script holds it as one quoted shell word.
    let body: String = kept.lines().nth(1).unwrap().to_string();
    assert!(
        firstrun.contains(&body),
        "the kept key is not in firstrun.sh"
    );
    assert!(firstrun.contains("step \"ssh host key\" install_host_key"));
    // Nowhere else on the FAT.
    for (path, entry) in listing(&boot) {
        if entry.dir || path == "firstrun.sh" {
            continue;
        }
        let bytes = mread(&boot, &path).unwrap();
        assert!(
            !bytes.windows(body.len()).any(|w| w == body.as_bytes()),
            "{path} holds the private key"
        );
    }
}
