//! Cluster provisioning without booting: the rendered K3s and runner files per role, checked
//! by shellcheck, cloud-init's validator and YAML/TOML parsers, and the whole first-boot chain
//! (firstrun.sh, then pinode-firstboot) run for real against a scratch root with a recording
//! stand-in for the K3s installer. The boot test (tests/boot) proves the same on a booted VM.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::ScratchRoot;
use common::user_env::*;
use common::*;
use pinode::status::{FirstBootStatus, StepState};
use serde_json::{Value, json};

const DEPRECATED_RUNNER_KEYS: [&str; 6] = [
    "tags",
    "locked",
    "runUntagged",
    "protected",
    "maximumTimeout",
    "runnerRegistrationToken",
];

fn repo_profile(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles")).join(name)
}

fn pytoml(text: &str) -> Value {
    let script = "import tomllib,json,sys; print(json.dumps(tomllib.loads(sys.stdin.read())))";
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every node of the three example profiles, on both routes.
#[test]
fn example_profiles_render_every_role_correctly() {
    let env = UserEnv::new();
    let cases = [
        ("single-node.yaml", vec![("solo", "founder")], None),
        (
            "cluster.yaml",
            vec![
                ("matrix", "founder"),
                ("worker-1", "agent"),
                ("worker-3", "agent"),
            ],
            Some("https://matrix.local:6443"),
        ),
        (
            "ha.yaml",
            vec![
                ("ha-1", "founder-ha"),
                ("ha-2", "server"),
                ("ha-3", "server"),
                ("edge-2", "agent"),
            ],
            Some("https://ha-1.local:6443"),
        ),
    ];
    for (file, nodes, api) in cases {
        let profile = repo_profile(file);
        for (node, role) in nodes {
            for generation in ["bookworm", "trixie"] {
                let out = env.render(&profile, node, generation);
                let boot = out.join("boot");
                let what = format!("{file} {node} {generation}");
                // The shell passes shellcheck and parses.
                let mut scripts = vec![boot.join("pinode/firstboot.sh")];
                if generation == "bookworm" {
                    scripts.push(boot.join("firstrun.sh"));
                } else {
                    run(Command::new("cloud-init")
                        .args(["schema", "--config-file"])
                        .arg(boot.join("user-data")));
                }
                for script in &scripts {
                    run(Command::new("shellcheck")
                        .args(["--shell=sh", "--severity=style"])
                        .arg(script));
                    run(Command::new("sh").arg("-n").arg(script));
                }
                // The K3s config for the role.
                let config = &yaml_documents(&boot.join("pinode/k3s/config.yaml"))[0];
                assert_eq!(config["node-name"], node, "{what}");
                assert_eq!(config["token-file"], "/etc/pinode/secrets/k3s-token");
                match role {
                    "founder" | "founder-ha" | "server" => {
                        let sans = config["tls-san"].as_array().unwrap();
                        assert!(
                            sans.contains(&json!(node))
                                && sans.contains(&json!(format!("{node}.local"))),
                            "{what}: {sans:?}"
                        );
                        assert_eq!(config["write-kubeconfig-mode"], "0600");
                    }
                    _ => assert!(config.get("tls-san").is_none()),
                }
                assert_eq!(
                    config.get("cluster-init").is_some(),
                    role == "founder-ha",
                    "{what}"
                );
                match (role, api) {
                    ("server" | "agent", Some(api)) => assert_eq!(config["server"], api, "{what}"),
                    _ => assert!(config.get("server").is_none(), "{what}"),
                }
                if file == "cluster.yaml" && role == "founder" {
                    assert_eq!(config["disable"], "traefik");
                }
                if file == "ha.yaml" && role != "agent" {
                    assert!(
                        config["tls-san"]
                            .as_array()
                            .unwrap()
                            .contains(&json!("ha.example.internal"))
                    );
                }
                // Secrets: private files holding exactly the full token, which pins the
                // kept CA.
                let token = std::fs::read(boot.join("pinode/secrets/k3s-token")).unwrap();
                if file != "single-node.yaml" {
                    let cluster = if file == "ha.yaml" { "ha" } else { "matrix" };
                    assert_eq!(token, env.k3s_full_token(cluster, K3S_TOKEN).as_bytes());
                }
                let mode = std::os::unix::fs::PermissionsExt::mode(
                    &std::fs::metadata(boot.join("pinode/secrets/k3s-token"))
                        .unwrap()
                        .permissions(),
                );
                assert_eq!(mode & 0o777, 0o600);
                // The runner, on the founder only.
                let manifest = boot.join("pinode/k3s/pinode-gitlab-runner.yaml");
                let founder = role.starts_with("founder");
                assert_eq!(manifest.exists(), founder, "{what}");
                assert_eq!(boot.join("pinode/secrets/runner-token").exists(), founder);
                assert_eq!(out.join("gitlab-ci-buildkit.yml").exists(), founder);
                if founder {
                    check_runner(&manifest, &std::fs::read_to_string(&profile).unwrap());
                    assert_eq!(
                        std::fs::read(boot.join("pinode/secrets/runner-token")).unwrap(),
                        RUNNER_TOKEN.as_bytes()
                    );
                    let job =
                        &yaml_documents(&out.join("gitlab-ci-buildkit.yml"))[0]["build-image"];
                    assert_eq!(job["image"]["name"], "moby/buildkit:v0.32.2-rootless");
                    let job_text =
                        std::fs::read_to_string(out.join("gitlab-ci-buildkit.yml")).unwrap();
                    assert!(
                        !job_text.contains("privileged: true") && !job_text.contains("docker.sock")
                    );
                }
                // Joining nodes pin the founder's mDNS address for K3s.
                let mdns = api.is_some_and(|a| a.contains(".local")) && !founder;
                assert_eq!(
                    boot.join("pinode/pinode-hosts.service").exists(),
                    mdns,
                    "{what}"
                );
            }
        }
    }
}

fn check_runner(manifest: &Path, profile_text: &str) {
    let text = std::fs::read_to_string(manifest).unwrap();
    let docs = yaml_documents(manifest);
    assert_eq!(docs[0]["kind"], "Namespace");
    let chart = &docs[1];
    assert_eq!(chart["apiVersion"], "helm.cattle.io/v1");
    assert_eq!(chart["kind"], "HelmChart");
    assert_eq!(chart["spec"]["repo"], "https://charts.gitlab.io");
    assert_eq!(chart["spec"]["chart"], "gitlab-runner");
    assert_eq!(chart["spec"]["targetNamespace"], "gitlab-runner");
    let values: Value =
        serde_yaml::from_str(chart["spec"]["valuesContent"].as_str().unwrap()).unwrap();
    assert!(profile_text.contains(values["gitlabUrl"].as_str().unwrap()));
    assert_eq!(values["rbac"]["create"], true);
    assert_eq!(values["runners"]["secret"], "gitlab-runner-token");
    assert!(values["concurrent"].as_u64().unwrap() >= 1);
    let toml = pytoml(values["runners"]["config"].as_str().unwrap());
    let kubernetes = &toml["runners"][0]["kubernetes"];
    assert_eq!(kubernetes["node_selector"]["kubernetes.io/arch"], "arm64");
    assert_eq!(kubernetes["image"], "alpine:3.20");
    for key in DEPRECATED_RUNNER_KEYS {
        assert!(!text.contains(key), "deprecated runner key {key} in {text}");
    }
    assert!(
        !text.contains(RUNNER_TOKEN),
        "the token must not be in the manifest"
    );
}

#[test]
fn a_registration_token_is_refused_with_an_explanation() {
    let env = UserEnv::new();
    for token in ["GR1348941abcdefghij", "not-a-token"] {
        let out = output(
            env.pinode()
                .env("GITLAB_RUNNER_TOKEN", token)
                .args(["render", "--profile"])
                .arg(repo_profile("cluster.yaml"))
                .args(["--node", "matrix", "--generation", "bookworm", "--out-dir"])
                .arg(env.dir.path().join("r")),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("cluster.yaml:")
                && err.contains("cluster.runner.token_env")
                && err.contains("glrt-"),
            "{err}"
        );
        assert!(!err.contains(token), "the token must not be echoed: {err}");
    }
    // Agents do not need the runner token at all.
    let out = output(
        env.pinode()
            .env_remove("GITLAB_RUNNER_TOKEN")
            .args(["render", "--profile"])
            .arg(repo_profile("cluster.yaml"))
            .args([
                "--node",
                "worker-1",
                "--generation",
                "bookworm",
                "--out-dir",
            ])
            .arg(env.dir.path().join("w")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(
        env.pinode()
            .env_remove("K3S_TOKEN")
            .args(["render", "--profile"])
            .arg(repo_profile("cluster.yaml"))
            .args([
                "--node",
                "worker-1",
                "--generation",
                "bookworm",
                "--out-dir",
            ])
            .arg(env.dir.path().join("w2")),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("environment variable K3S_TOKEN is not set")
    );
}

#[test]
fn a_generated_token_is_kept_and_shared_by_every_node() {
    let env = UserEnv::new();
    let profile = repo_profile("single-node.yaml");
    let first = env.render(&profile, "solo", "bookworm");
    let kept = env.dir.path().join("state/clusters/solo/token");
    let token = std::fs::read_to_string(&kept).unwrap();
    assert_eq!(token.trim().len(), 64);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kept).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let full = env.k3s_full_token("solo", token.trim());
    assert_eq!(
        std::fs::read_to_string(first.join("boot/pinode/secrets/k3s-token")).unwrap(),
        full
    );
    let again = env.render(&profile, "solo", "trixie");
    assert_eq!(
        std::fs::read_to_string(again.join("boot/pinode/secrets/k3s-token")).unwrap(),
        full
    );
    let check = run(env.pinode().args(["profile", "check"]).arg(&profile));
    assert!(
        check.contains("generated once, kept in") && !check.contains(token.trim()),
        "{check}"
    );
    // The kept token must be pinode's own private file: open to others, or a symbolic link
    // in its place (even to a private file holding a token), is refused, not followed.
    let attempt = || {
        output(
            env.pinode()
                .args(["render", "--generation", "bookworm", "--node", "solo"])
                .arg("--profile")
                .arg(&profile)
                .arg("--out-dir")
                .arg(env.dir.path().join("refused")),
        )
    };
    run(Command::new("chmod").arg("640").arg(&kept));
    one_error_line(&attempt(), &["is readable by others; chmod 600 it"]);
    let elsewhere = env.dir.path().join("elsewhere-token");
    std::fs::rename(&kept, &elsewhere).unwrap();
    run(Command::new("chmod").arg("600").arg(&elsewhere));
    std::os::unix::fs::symlink(&elsewhere, &kept).unwrap();
    one_error_line(&attempt(), &["is a symbolic link, not a regular file"]);
}

/// The recording stand-in for the K3s install script: it notes how it was called.
const FAKE_INSTALLER: &str = r#"#!/bin/sh
mkdir -p /var/lib/pinode-test
{
	printf 'args=%s\n' "$*"
	env | grep -E '^(INSTALL_K3S_|K3S_)' | sort
	printf 'token=%s\n' "$(cat "$K3S_TOKEN_FILE")"
	echo ---
} >>/var/lib/pinode-test/install.log
mkdir -p /etc/rancher/k3s
echo 'apiVersion: v1 # a stand-in kubeconfig' >/etc/rancher/k3s/k3s.yaml
"#;

/// Runs the node's whole first boot in a scratch root: firstrun.sh (which hands over to the
/// second stage), then `pinode-firstboot.service`'s command, twice.
fn first_boot(
    env: &UserEnv,
    profile: &Path,
    node: &str,
    memory_cgroup: bool,
) -> (ScratchRoot, PathBuf) {
    first_stage_in_scratch(env, profile, node, FAKE_INSTALLER, |root| {
        if !memory_cgroup {
            std::fs::write(
                root.path("cgroup/cgroup.controllers"),
                "cpuset cpu io pids\n",
            )
            .unwrap();
        }
    })
}

fn run_second_stage(root: &ScratchRoot) -> (bool, String) {
    let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The node's status.json, parsed with the type `pinode status` reads it with (unknown
/// fields refused) and written back: the same JSON value, so the shell writes every field of
/// the type and no other. The directory is root-only; the file holds no secret.
fn status_json(root: &ScratchRoot) -> FirstBootStatus {
    let path = root.path("varlib/pinode/status.json");
    let text = read(&path);
    let status: FirstBootStatus =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&status).unwrap(), value, "{text}");
    assert_eq!(mode(&root.path("varlib/pinode")), 0o700);
    assert_eq!(mode(&path), 0o644);
    assert!(!root.path("varlib/pinode/status.json.pinode-new").exists());
    for secret in [K3S_TOKEN, RUNNER_TOKEN] {
        assert!(!text.contains(secret));
    }
    status
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn install_log(root: &ScratchRoot) -> Vec<BTreeMap<String, String>> {
    read(&root.path("varlib/pinode-test/install.log"))
        .split("---\n")
        .filter(|r| !r.trim().is_empty())
        .map(|record| {
            record
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The node's host key after firstrun.sh: the one pinode keeps for it (compared with the
/// public half OpenSSH's own ssh-keygen derives), root-only in /etc/ssh, the image's other
/// host keys gone, Raspberry Pi OS's regeneration disabled, and no private key left on the
/// boot partition (raw bytes of every file there).
fn check_host_key(env: &UserEnv, root: &ScratchRoot, host: &str) {
    let kept = env
        .dir
        .path()
        .join(format!("state/clusters/matrix/host-keys/{host}_ed25519"));
    assert_eq!(mode(&kept), 0o600);
    let installed = root.path("etc/ssh/ssh_host_ed25519_key");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&kept).unwrap()
    );
    assert_eq!(mode(&installed), 0o600);
    let derived = run(Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&installed));
    let public = read(&root.path("etc/ssh/ssh_host_ed25519_key.pub"));
    assert_eq!(
        derived.split(' ').take(2).collect::<Vec<_>>(),
        public.split(' ').take(2).collect::<Vec<_>>()
    );
    let known = read(&env.dir.path().join("state/clusters/matrix/known_hosts"));
    let key: Vec<&str> = public.split(' ').take(2).collect();
    for name in [host.to_string(), format!("{host}.local")] {
        assert!(
            known
                .lines()
                .any(|l| l == format!("{name} {}", key.join(" "))),
            "{name} in {known}"
        );
    }
    let others: Vec<_> = std::fs::read_dir(root.path("etc/ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ssh_host_") && !n.starts_with("ssh_host_ed25519_key"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert!(
        read(&root.path("etc/ssh/sshd_config.d/05-pinode-host-key.conf"))
            .contains("HostKey /etc/ssh/ssh_host_ed25519_key\n")
    );
    assert!(
        root.stub_log()
            .contains("systemctl --no-reload disable regenerate_ssh_host_keys.service"),
        "{}",
        root.stub_log()
    );
    let secret = std::fs::read(&kept).unwrap();
    let needle = &secret[40..100];
    for file in walk(&root.boot()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle)
                && !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "a private key is left in {}",
            file.display()
        );
    }
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

#[test]
fn the_first_boot_chain_installs_k3s_in_each_role() {
    assert!(
        is_root(),
        "this test runs the first-boot scripts in a mount namespace and needs root (as CI has)"
    );
    let env = UserEnv::new();
    let cluster = repo_profile("cluster.yaml");

    // The server: founds the cluster, carries the runner.
    let (root, rendered) = first_boot(&env, &cluster, "matrix", true);
    let boot = root.boot();
    assert!(
        !boot.join("pinode/secrets").exists(),
        "secrets are moved off the boot partition"
    );
    assert!(!boot.join("firstrun.sh").exists() && !boot.join("userconf.txt").exists());
    check_host_key(&env, &root, "matrix");
    let full = env.k3s_full_token("matrix", K3S_TOKEN);
    for (name, token) in [("k3s-token", full.as_str()), ("runner-token", RUNNER_TOKEN)] {
        let path = root.path(&format!("etc/pinode/secrets/{name}"));
        assert_eq!(read(&path), token);
        assert_eq!(mode(&path), 0o600);
    }
    assert!(
        root.stub_log()
            .contains("systemctl --no-reload enable pinode-firstboot.service"),
        "{}",
        root.stub_log()
    );
    let (ok, log) = run_second_stage(&root);
    assert!(ok, "{log}");
    let runs = install_log(&root);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["args"], "server");
    assert_eq!(runs[0]["INSTALL_K3S_VERSION"], "v1.33.5+k3s1");
    assert_eq!(runs[0]["K3S_TOKEN_FILE"], "/etc/pinode/secrets/k3s-token");
    assert_eq!(runs[0]["token"], full);
    assert!(!runs[0].contains_key("K3S_URL"));
    assert!(root.stub_log().contains("curl") && root.stub_log().contains("https://get.k3s.io"));
    let config = root.path("etc/rancher/k3s/config.yaml");
    assert_eq!(
        read(&config),
        read(&rendered.join("boot/pinode/k3s/config.yaml"))
    );
    assert_eq!(mode(&config), 0o600);
    let manifests = root.path("varlib/rancher/k3s/server/manifests");
    assert_eq!(
        read(&manifests.join("pinode-gitlab-runner.yaml")),
        read(&rendered.join("boot/pinode/k3s/pinode-gitlab-runner.yaml"))
    );
    let secret = yaml_documents(&manifests.join("pinode-gitlab-runner-token.yaml"));
    assert_eq!(secret[1]["kind"], "Secret");
    assert_eq!(secret[1]["metadata"]["name"], "gitlab-runner-token");
    let b64 = secret[1]["data"]["runner-token"].as_str().unwrap();
    let decoded = run(Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{b64}' | base64 -d")));
    assert_eq!(decoded, RUNNER_TOKEN);
    assert_eq!(
        mode(&manifests.join("pinode-gitlab-runner-token.yaml")),
        0o600
    );
    assert_eq!(
        read(&root.path("home/pi-admin/.kube/config")),
        "apiVersion: v1 # a stand-in kubeconfig\n"
    );
    let status = read(&boot.join("pinode-status.txt"));
    assert!(
        status.contains("firstrun: ok") && status.contains("k3s (server): ok"),
        "{status}"
    );
    assert!(!status.contains(K3S_TOKEN) && !status.contains(RUNNER_TOKEN));
    assert!(root.path("varlib/pinode/firstboot.done").exists());
    let done = status_json(&root);
    assert_eq!(
        (done.version, done.stage.as_str(), done.state),
        (1, "firstboot", StepState::Ok)
    );
    assert_eq!(done.step.as_deref(), Some("kubeconfig for pi-admin"));
    assert_eq!((done.last_error, done.reason), (None, None));
    let (started, finished) = (done.started.unwrap(), done.finished.unwrap());
    assert!(started.ends_with('Z') && started.len() == 20, "{started}");
    assert!(finished >= started, "{started} {finished}");
    // The cluster's CA, placed root-only in K3s's TLS directory before K3s started, the
    // very files pinode keeps (the token pins them).
    let tls = root.path("varlib/rancher/k3s/server/tls");
    let kept_ca = env.dir.path().join("state/clusters/matrix/k3s-ca");
    assert_eq!(mode(&tls), 0o700);
    assert_eq!(mode(&tls.join("etcd")), 0o700);
    for (on_node, kept) in [
        ("server-ca.crt", "server-ca.crt"),
        ("server-ca.key", "server-ca.key"),
        ("client-ca.key", "client-ca.key"),
        ("request-header-ca.crt", "request-header-ca.crt"),
        ("etcd/peer-ca.key", "etcd-peer-ca.key"),
        ("etcd/server-ca.crt", "etcd-server-ca.crt"),
        ("service.key", "service.key"),
    ] {
        let path = tls.join(on_node);
        assert_eq!(read(&path), read(&kept_ca.join(kept)), "{on_node}");
        assert_eq!(mode(&path), 0o600, "{on_node}");
    }
    // A second boot does nothing.
    let (ok, log) = run_second_stage(&root);
    assert!(ok && log.contains("nothing to do"), "{log}");
    assert_eq!(install_log(&root).len(), 1);

    // An agent joins the API, whose mDNS address it pins for K3s; no runner.
    let (root, _) = first_boot(&env, &cluster, "worker-2", true);
    let (ok, log) = run_second_stage(&root);
    assert!(ok, "{log}");
    let runs = install_log(&root);
    assert_eq!(runs[0]["args"], "agent");
    assert_eq!(runs[0]["K3S_URL"], "https://matrix.local:6443");
    assert_eq!(runs[0]["K3S_TOKEN_FILE"], "/etc/pinode/secrets/k3s-token");
    assert!(!root.path("varlib/rancher/k3s/server/manifests").exists());
    assert!(!root.path("etc/pinode/secrets/runner-token").exists());
    // An agent carries no CA material, on the card or the node.
    assert!(!root.path("varlib/rancher/k3s/server/tls").exists());
    assert!(
        !walk(&root.path("etc/pinode/secrets"))
            .iter()
            .any(|p| p.to_string_lossy().contains("k3s-ca")),
        "an agent got CA files"
    );
    assert_eq!(runs[0]["token"], full);
    assert!(read(&root.path("etc/hosts")).contains("10.0.0.5\tmatrix.local # pinode-mdns\n"));
    assert!(
        root.stub_log()
            .contains("systemctl --no-reload enable pinode-hosts.service")
    );

    // A second HA server joins the founder.
    let (root, _) = first_boot(&env, &repo_profile("ha.yaml"), "ha-2", true);
    let (ok, log) = run_second_stage(&root);
    assert!(ok, "{log}");
    assert_eq!(install_log(&root)[0]["args"], "server");
    let config = &yaml_documents(&root.path("etc/rancher/k3s/config.yaml"))[0];
    assert_eq!(config["server"], "https://ha-1.local:6443");
    assert!(config.get("cluster-init").is_none());
}

#[test]
fn a_missing_memory_cgroup_is_reported_exactly_and_retried() {
    assert!(is_root(), "this test needs root (as CI has)");
    let env = UserEnv::new();
    let (root, _) = first_boot(&env, &repo_profile("cluster.yaml"), "worker-1", false);
    let (ok, log) = run_second_stage(&root);
    assert!(!ok, "a failed stage exits non-zero so systemd shows it");
    assert!(log.contains("memory cgroup is off"), "{log}");
    let status = read(&root.boot().join("pinode-status.txt"));
    assert!(
        status.contains("failed: memory cgroup (the next boot tries again)"),
        "{status}"
    );
    let json = status_json(&root);
    assert_eq!(json.state, StepState::Failed);
    assert_eq!(json.last_error.as_deref(), Some("memory cgroup"));
    assert_eq!(
        json.reason.as_deref(),
        Some(
            "the memory cgroup is off: cmdline.txt lacks cgroup_enable=memory (the firmware passes cgroup_disable=memory)"
        )
    );
    assert!(json.finished.is_some());
    assert!(!root.path("varlib/pinode/firstboot.done").exists());
}

/// An install URL that answers 404 fails the stage with curl's own words as the reason (what
/// `pinode status` shows), after the retries, not with "attempt 5 failed"; the failed
/// installer run likewise ends with the installer's last line.
#[test]
fn a_failed_install_is_reported_with_the_real_reason() {
    assert!(is_root(), "this test needs root (as CI has)");
    let env = UserEnv::new();
    let (root, _) = first_boot(&env, &repo_profile("cluster.yaml"), "matrix", true);
    // The retries' pauses (10 s doubling) are not waited for here.
    root.stub("sleep", "exit 0");
    root.stub(
        "curl",
        "echo 'curl: (22) The requested URL returned error: 404' >&2\nexit 22",
    );
    let (ok, log) = run_second_stage(&root);
    assert!(!ok, "{log}");
    let json = status_json(&root);
    assert_eq!(json.state, StepState::Failed);
    assert_eq!(json.last_error.as_deref(), Some("k3s install"));
    let reason = json.reason.unwrap_or_default();
    assert!(
        reason.starts_with("cannot download the K3s installer from https://")
            && reason.ends_with(
                ": curl: (22) The requested URL returned error: 404 (gave up after 6 attempts)"
            ),
        "{reason}"
    );
    assert_eq!(root.stub_log().matches("curl ").count(), 6);
    let text = read(&root.path("varlog/pinode-firstboot.log"));
    assert!(text.contains("attempt 5 failed: cannot download"), "{text}");
    // The steps after it build on it: skipped, not run into a second failure that would
    // hide the first (the boot test saw "kubeconfig for alice" reported after a 5-minute wait).
    assert!(
        text.contains("skipped: kubeconfig for ") && text.contains("(after k3s install failed)"),
        "{text}"
    );
    let status = read(&root.boot().join("pinode-status.txt"));
    assert!(
        status.contains("failed: k3s install (the next boot tries again)"),
        "{status}"
    );

    // The download works and the installer fails: its last line is the reason.
    root.stub(
        "curl",
        "while [ $# -gt 0 ]; do case \"$1\" in --output) out=$2; shift ;; esac; shift; done\n\
         printf 'echo \"[INFO]  Finding release\"\\necho \"[ERROR]  Download failed\" >&2\\nexit 1\\n' >\"$out\"",
    );
    let (ok, _) = run_second_stage(&root);
    assert!(!ok);
    let reason = status_json(&root).reason.unwrap_or_default();
    assert_eq!(
        reason,
        "the K3s installer failed (exit 1): [ERROR]  Download failed (gave up after 6 attempts)"
    );
}
