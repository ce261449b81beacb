//! Joins that verify the server, and nodes added later (issue 20, items 2 and 3), through
//! the real binary.
//!
//! K3s: the token every node gets is `K10<hash>::server:<secret>`, and the hash is checked
//! here the way K3s documents it (k3s-io/docs `docs/cli/token.md`, "Secure": for a
//! self-signed CA, "the SHA256 sum of the PEM-formatted certificate, as stored on disk"),
//! computed by Python's hashlib over the server card's `server-ca.crt`, not by pinode. The CA
//! files (k3s-io/docs `docs/cli/certificate.md`, "Using Custom CA Certificates") are on
//! server cards only, among the secrets; no agent carries any.
//!
//! Nodes added later: a fourth node added to a profile whose first three were rendered
//! joins with the same token and the same CA pin, for each distribution.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::user_env::*;
use common::*;
use serde_json::Value;

/// Three servers and an agent, the token given (`K3S_TOKEN`).
const HA: &str = "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: pi-admin
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: pin
  token_env: K3S_TOKEN
nodes:
  - hostname: s-[1-3]
    role: server
  - hostname: a-1
    role: agent
";

/// The CA files K3s requires, by their names among a server card's secrets.
const CA_SECRETS: [&str; 11] = [
    "k3s-ca-server-ca.crt",
    "k3s-ca-server-ca.key",
    "k3s-ca-client-ca.crt",
    "k3s-ca-client-ca.key",
    "k3s-ca-request-header-ca.crt",
    "k3s-ca-request-header-ca.key",
    "k3s-ca-etcd-peer-ca.crt",
    "k3s-ca-etcd-peer-ca.key",
    "k3s-ca-etcd-server-ca.crt",
    "k3s-ca-etcd-server-ca.key",
    "k3s-ca-service.key",
];

/// The hex SHA-256 of a file's bytes, by Python's hashlib (as K3s hashes server-ca.crt).
fn python_sha256(path: &Path) -> String {
    run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())")
        .arg(path))
    .trim()
    .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_node_pins_the_servers_ca_and_only_servers_carry_it() {
    let env = UserEnv::new();
    let profile = write_profile(env.dir.path(), "pin.yaml", HA);
    let check = env.check(&profile);
    let mut tokens = Vec::new();
    let mut server_cas = Vec::new();
    for (node, server) in [("s-1", true), ("s-2", true), ("s-3", true), ("a-1", false)] {
        let out = env.render(&profile, node, "bookworm");
        let secrets = out.join("boot/pinode/secrets");
        let token = read(&secrets.join("k3s-token"));
        let files: Vec<PathBuf> = walk(&out.join("boot"));
        let ca_files: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.to_string_lossy().contains("k3s-ca"))
            .collect();
        if server {
            for name in CA_SECRETS {
                let path = secrets.join(name);
                assert!(path.is_file(), "{node}: {name} missing");
                assert_eq!(mode(&path), 0o600, "{node}: {name}");
            }
            assert_eq!(ca_files.len(), CA_SECRETS.len(), "{node}: {ca_files:?}");
            let ca = secrets.join("k3s-ca-server-ca.crt");
            // One self-signed CA certificate (so K3s hashes its bytes), K3s's common name.
            let text = run(Command::new("openssl")
                .args([
                    "x509",
                    "-noout",
                    "-subject",
                    "-issuer",
                    "-ext",
                    "basicConstraints",
                    "-in",
                ])
                .arg(&ca));
            assert!(
                text.contains("subject=CN = k3s-server-ca")
                    && text.contains("issuer=CN = k3s-server-ca")
                    && text.contains("CA:TRUE"),
                "{text}"
            );
            assert_eq!(read(&ca).matches("BEGIN CERTIFICATE").count(), 1);
            server_cas.push(python_sha256(&ca));
        } else {
            assert!(ca_files.is_empty(), "{node} carries CA files: {ca_files:?}");
            // Nothing of the kept CA anywhere on the card (its SSH host key is its own).
            let kept = env.dir.path().join("state/clusters/pin/k3s-ca");
            for name in CA_SECRETS {
                let pem = read(&kept.join(name.trim_start_matches("k3s-ca-")));
                let body = pem.lines().nth(1).unwrap();
                for file in &files {
                    let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
                    assert!(
                        !text.contains(body),
                        "{node}: {} holds {name}",
                        file.display()
                    );
                }
            }
        }
        tokens.push(token);
    }
    // Every server card's CA is the same file, and every node's token pins it.
    assert!(server_cas.iter().all(|h| *h == server_cas[0]));
    let expected = format!("K10{}::server:{K3S_TOKEN}", server_cas[0]);
    for token in &tokens {
        assert_eq!(*token, expected);
    }
    assert!(!check.contains(K3S_TOKEN), "{check}");
}

#[test]
fn a_given_full_token_must_pin_the_kept_ca() {
    let env = UserEnv::new();
    let profile = write_profile(env.dir.path(), "pin.yaml", HA);
    env.render(&profile, "s-1", "bookworm");
    let ca = env
        .dir
        .path()
        .join("state/clusters/pin/k3s-ca/server-ca.crt");
    let hash = python_sha256(&ca);
    // The same CA's full token: used as it is.
    let same = format!("K10{hash}::server:{K3S_TOKEN}");
    let out = env.dir.path().join("same");
    run(env
        .pinode()
        .env("K3S_TOKEN", &same)
        .args([
            "render",
            "--generation",
            "bookworm",
            "--node",
            "a-1",
            "--profile",
        ])
        .arg(&profile)
        .arg("--out-dir")
        .arg(&out));
    assert_eq!(read(&out.join("boot/pinode/secrets/k3s-token")), same);
    // Another CA's: refused, naming the field and its line, without the token.
    let other = format!("K10{}::server:{K3S_TOKEN}", "0".repeat(64));
    let refused = output(
        env.pinode()
            .env("K3S_TOKEN", &other)
            .args([
                "render",
                "--generation",
                "bookworm",
                "--node",
                "a-1",
                "--profile",
            ])
            .arg(&profile)
            .arg("--out-dir")
            .arg(env.dir.path().join("other")),
    );
    let line = one_error_line(&refused, &["pin.yaml:10", "cluster.token_env", "kept CA"]);
    assert!(!line.contains(K3S_TOKEN), "{line}");
    assert!(
        !env.dir
            .path()
            .join("other/boot/pinode/secrets/k3s-token")
            .exists()
    );
    // `profile check` finds it too.
    let check = output(
        env.pinode()
            .args(["profile", "check"])
            .arg(&profile)
            .env("K3S_TOKEN", &other),
    );
    assert!(!check.status.success());
    assert!(stderr(&check).contains("kept CA"), "{}", stderr(&check));
}

#[test]
fn under_ci_no_ca_is_generated_and_a_kept_one_is_used() {
    let env = UserEnv::new();
    let profile = write_profile(env.dir.path(), "pin.yaml", HA);
    let render = |node: &str, out: &str| {
        output(
            env.pinode()
                .env("CI", "true")
                .args([
                    "render",
                    "--generation",
                    "bookworm",
                    "--node",
                    node,
                    "--profile",
                ])
                .arg(&profile)
                .arg("--out-dir")
                .arg(env.dir.path().join(out)),
        )
    };
    let ci = render("a-1", "ci-1");
    assert!(ci.status.success(), "{}", stderr(&ci));
    assert!(
        stderr(&ci).contains("CI is set and this K3s cluster has no kept CA"),
        "{}",
        stderr(&ci)
    );
    assert!(!env.dir.path().join("state/clusters/pin/k3s-ca").exists());
    assert_eq!(
        read(&env.dir.path().join("ci-1/boot/pinode/secrets/k3s-token")),
        K3S_TOKEN
    );
    // The CI run kept host keys: outside CI pinode now refuses to found a CA for a cluster
    // whose nodes may run K3s's own; with no node booted, deleting its state is the way out.
    let refused = output(
        env.pinode()
            .args([
                "render",
                "--generation",
                "bookworm",
                "--node",
                "s-1",
                "--profile",
            ])
            .arg(&profile)
            .arg("--out-dir")
            .arg(env.dir.path().join("refused")),
    );
    assert!(!refused.status.success(), "{}", stderr(&refused));
    std::fs::remove_dir_all(env.dir.path().join("state/clusters/pin")).unwrap();
    // Kept once outside CI, it is used under CI.
    env.render(&profile, "s-1", "bookworm");
    let ci = render("a-1", "ci-2");
    assert!(ci.status.success(), "{}", stderr(&ci));
    assert!(!stderr(&ci).contains("no kept CA"), "{}", stderr(&ci));
    assert_eq!(
        read(&env.dir.path().join("ci-2/boot/pinode/secrets/k3s-token")),
        env.k3s_full_token("pin", K3S_TOKEN)
    );
}

/// A cluster whose nodes were prepared before pinode kept a CA (its state holds a kept token
/// or known_hosts, no k3s-ca/): its servers run K3s's own CA, so pinode refuses to make a
/// new one (a node pinning it would never join), naming the directory and the way out. A
/// new cluster still gets one, however its nodes are rendered one after the other.
#[test]
fn a_cluster_prepared_without_a_kept_ca_gets_no_new_one() {
    for earlier in ["token", "known_hosts", "host-keys/s-1_ed25519"] {
        let env = UserEnv::new();
        let profile = write_profile(env.dir.path(), "pin.yaml", HA);
        let cluster = env.dir.path().join("state/clusters/pin");
        let file = cluster.join(earlier);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "left by nodes prepared before\n").unwrap();
        let render = |node: &str, out: &str| {
            output(
                env.pinode()
                    .args(["render", "--generation", "bookworm", "--node", node])
                    .arg("--profile")
                    .arg(&profile)
                    .arg("--out-dir")
                    .arg(env.dir.path().join(out)),
            )
        };
        for node in ["s-1", "a-1"] {
            let refused = render(node, node);
            assert!(!refused.status.success(), "{earlier}: {}", stderr(&refused));
            let said = stderr(&refused);
            let kept = cluster.join("k3s-ca");
            for part in [
                "pin.yaml",
                "cluster",
                &kept.display().to_string(),
                // The file, or for a host key its directory.
                &cluster
                    .join(earlier.split('/').next().unwrap())
                    .display()
                    .to_string(),
                "/var/lib/rancher/k3s/server/tls",
                "docs/engines/k3s.md",
            ] {
                assert!(said.contains(part), "{earlier}: {part} not in {said}");
            }
            assert!(!said.contains("K10"), "{said}");
            assert!(!kept.exists(), "{earlier}");
            assert!(
                !env.dir.path().join(node).join("boot").exists(),
                "{earlier}"
            );
        }
        // `profile check` says so too, without generating anything.
        let check = output(env.pinode().args(["profile", "check"]).arg(&profile));
        assert!(!check.status.success());
        assert!(
            stderr(&check).contains("without a kept K3s CA"),
            "{}",
            stderr(&check)
        );
        assert!(!cluster.join("k3s-ca").exists());
        // The way out when no node ever booted: delete the cluster's state; then a new
        // cluster, its nodes rendered one after the other (the first keeps its token and
        // host key), all pin the one CA generated for it.
        std::fs::remove_dir_all(&cluster).unwrap();
        for node in ["s-1", "s-2", "a-1"] {
            let done = render(node, &format!("new-{node}"));
            assert!(done.status.success(), "{node}: {}", stderr(&done));
            assert_eq!(
                read(
                    &env.dir
                        .path()
                        .join(format!("new-{node}/boot/pinode/secrets/k3s-token"))
                ),
                env.k3s_full_token("pin", K3S_TOKEN)
            );
        }
        assert!(cluster.join("known_hosts").exists());
    }
}

/// A profile of `distribution` with three nodes (a server and two agents) and the token
/// generated and kept by pinode; with `fourth`, a node added months later.
fn fleet(distribution: &str, fourth: bool) -> String {
    let image = if distribution == "microk8s" {
        "ubuntu-server-24.04-arm64"
    } else {
        "raspios-lite-arm64"
    };
    let mut text = format!(
        "version: 1
os:
  image: {image}
defaults:
  user:
    name: pi-admin
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: fleet-{distribution}
  distribution: {distribution}
nodes:
  - hostname: server-1
    role: server
    network:
      ethernet:
        ipv4: 10.0.0.11/24
        gateway: 10.0.0.1
        dns: [10.0.0.1]
  - hostname: worker-[1-2]
    role: agent
"
    );
    if fourth {
        text.push_str("  - hostname: worker-4\n    role: agent\n");
    }
    text
}

/// What a node of `distribution` joins with, read from its rendered card: the token and
/// the CA pin (K3s: both in the full token; kubeadm: the bootstrap token and caCertHashes;
/// MicroK8s: its join URL, whose last part is the token; it pins no CA).
fn join_of(distribution: &str, out: &Path) -> (String, String) {
    let secrets = out.join("boot/pinode/secrets");
    match distribution {
        "k3s" => {
            let token = read(&secrets.join("k3s-token"));
            let (pin, creds) = token.split_once("::").unwrap();
            (creds.to_string(), pin.to_string())
        }
        "kubeadm" => {
            let docs = yaml_documents(&secrets.join("kubeadm-config.yaml"));
            let join = docs
                .iter()
                .find(|d| d["kind"] == "JoinConfiguration")
                .unwrap();
            let discovery = &join["discovery"]["bootstrapToken"];
            (
                discovery["token"].as_str().unwrap().to_string(),
                discovery["caCertHashes"].to_string(),
            )
        }
        _ => {
            let config = pyyaml(&secrets.join("microk8s-launch.yaml"));
            let url = config["join"]["url"].as_str().unwrap().to_string();
            let token = url.rsplit('/').next().unwrap().to_string();
            (token, Value::Null.to_string())
        }
    }
}

#[test]
fn a_node_added_later_joins_with_the_same_token_and_ca() {
    let env = UserEnv::new();
    for distribution in ["k3s", "kubeadm", "microk8s"] {
        let render = |profile: &Path, node: &str| {
            let out = env.dir.path().join(format!(
                "{distribution}-{}-{node}",
                profile.file_stem().unwrap().to_string_lossy()
            ));
            let mut cmd = env.pinode();
            // No token in the environment: pinode generates and keeps it.
            cmd.env_remove("K3S_TOKEN")
                .args(["render", "--node", node, "--profile"])
                .arg(profile);
            if distribution == "microk8s" {
                cmd.arg("--image").arg(fixture("ubuntu-noble"));
            } else {
                cmd.args(["--generation", "bookworm"]);
            }
            run(cmd.arg("--out-dir").arg(&out));
            out
        };
        let first = write_profile(
            env.dir.path(),
            &format!("{distribution}-3.yaml"),
            &fleet(distribution, false),
        );
        let mut joins = Vec::new();
        for node in ["server-1", "worker-1", "worker-2"] {
            let out = render(&first, node);
            if node != "server-1" {
                joins.push(join_of(distribution, &out));
            }
        }
        // Months later: the profile gets worker-4, and only it is prepared.
        let later = write_profile(
            env.dir.path(),
            &format!("{distribution}-4.yaml"),
            &fleet(distribution, true),
        );
        let added = join_of(distribution, &render(&later, "worker-4"));
        for join in &joins {
            assert_eq!(*join, added, "{distribution}: worker-4 joins another way");
        }
        assert!(added.0.len() >= 16, "{distribution}: {added:?}");
        if distribution != "microk8s" {
            assert!(added.1.len() > 60, "{distribution}: no CA pin {added:?}");
        }
        if distribution == "k3s" {
            let ca = env
                .dir
                .path()
                .join("state/clusters/fleet-k3s/k3s-ca/server-ca.crt");
            assert_eq!(added.1, format!("K10{}", python_sha256(&ca)));
        }
    }
}
