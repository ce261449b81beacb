//! Jenkins on the cluster, through the real `pinode` binary: for every build mode on K3s and
//! kubeadm, the rendered HelmChart and the agent pod template pass Kubernetes' schemas and
//! the HelmChart CRD, every chart value is one of chart jenkins 5.9.53's, every pod is pinned
//! to arm64, the example Jenkinsfile uses the template pinode renders, and the administrator's
//! password is nowhere on the boot partition but in `pinode/secrets/`. The first-boot stage,
//! run in a scratch root, writes the Secret `jenkins-admin` (mode 600). `profile check`
//! refuses what cannot work, naming `profile.yaml:LINE` and the field.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ci::{ChartKeys, validate_manifest};
use common::scratch::ScratchRoot;
use common::user_env::*;
use common::*;
use serde_json::Value;

const PASSWORD: &str = "jenkins-Admin-pass-0123456789";
const KUBEADM_TOKEN: &str = "abcdef.0123456789abcdef";
const MODES: [&str; 3] = ["buildkit", "kaniko", "dind"];

/// The password file (mode 600) every profile here names.
fn password_file(env: &UserEnv, text: &str) -> PathBuf {
    let path = env.dir.path().join(format!("pw-{}", text.len()));
    std::fs::write(&path, text).unwrap();
    run(Command::new("chmod").arg("600").arg(&path));
    path
}

/// A profile with a founder (static address) and an agent, and a Jenkins runner whose
/// mapping holds `runner` (lines indented by four spaces).
fn profile(env: &UserEnv, name: &str, distribution: &str, runner: &str) -> PathBuf {
    let token = if distribution == "kubeadm" {
        "KUBEADM_TOKEN"
    } else {
        "K3S_TOKEN"
    };
    let text = format!(
        "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  distribution: {distribution}
  token_env: {token}
  runner:
    kind: jenkins
{runner}nodes:
  - hostname: lab-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
  - hostname: lab-2
    role: agent
"
    );
    write_profile(env.dir.path(), name, &text)
}

fn runner_lines(env: &UserEnv, mode: &str, extra: &str) -> String {
    let pw = password_file(env, PASSWORD);
    let privileged = if mode == "dind" {
        "    privileged: true\n"
    } else {
        ""
    };
    format!(
        "    builds: {mode}\n{privileged}    admin_password_file: {}\n{extra}",
        pw.display()
    )
}

fn pinode_for(env: &UserEnv) -> Command {
    let mut c = env.pinode();
    c.env("KUBEADM_TOKEN", KUBEADM_TOKEN);
    c
}

fn render(env: &UserEnv, profile: &Path, node: &str) -> PathBuf {
    let out = env.dir.path().join(format!(
        "out-{}-{node}",
        profile.file_stem().unwrap().to_string_lossy()
    ));
    run(pinode_for(env)
        .args(["render", "--profile"])
        .arg(profile)
        .args(["--node", node, "--generation", "bookworm", "--out-dir"])
        .arg(&out));
    out
}

/// The chart values of the HelmChart in `manifest`.
fn chart_values(manifest: &Path) -> (Value, Value) {
    let docs = yaml_documents(manifest);
    let chart = docs
        .iter()
        .find(|d| d["kind"] == "HelmChart")
        .expect("a HelmChart")
        .clone();
    let values = pyyaml_text(chart["spec"]["valuesContent"].as_str().unwrap());
    (chart, values)
}

/// YAML text read by PyYAML, as JSON.
fn pyyaml_text(text: &str) -> Value {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let docs = yaml_documents(file.path());
    docs.into_iter().next().unwrap()
}

/// Counts `{` and `}` outside quotes and `//` comments; true when they balance.
fn braces_balance(text: &str) -> bool {
    let mut depth = 0i64;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut quote: Option<char> = None;
        for c in code.chars() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '{') => depth += 1,
                (None, '}') => {
                    depth -= 1;
                    if depth < 0 {
                        return false;
                    }
                }
                _ => {}
            }
        }
    }
    depth == 0
}

#[test]
fn every_build_mode_renders_a_valid_arm64_jenkins_on_k3s_and_kubeadm() {
    let env = UserEnv::new();
    let keys = ChartKeys::load("jenkins", "5.9.53");
    let mut charts = Vec::new();
    for distribution in ["k3s", "kubeadm"] {
        for mode in MODES {
            let what = format!("{distribution} {mode}");
            let profile = profile(
                &env,
                &format!("{distribution}-{mode}.yaml"),
                distribution,
                &runner_lines(&env, mode, "    storage_class: fast-ssd\n"),
            );
            let check = run(pinode_for(&env).args(["profile", "check"]).arg(&profile));
            assert!(
                check.contains(&format!("Jenkins, builds {mode}")),
                "{what}: {check}"
            );
            let out = render(&env, &profile, "lab-1");
            let boot = out.join("boot");
            let manifest = files_named(&boot, "pinode-jenkins.yaml");
            assert_eq!(manifest.len(), 1, "{what}: {manifest:?}");
            let manifest = &manifest[0];
            validate_manifest(manifest);
            if distribution == "kubeadm" {
                assert_eq!(
                    files_named(&boot, "00-pinode-helm-controller.yaml").len(),
                    1
                );
            }
            let (chart, values) = chart_values(manifest);
            assert_eq!(chart["metadata"]["name"], "jenkins");
            assert_eq!(chart["metadata"]["namespace"], "kube-system");
            assert_eq!(chart["spec"]["repo"], "https://charts.jenkins.io");
            assert_eq!(chart["spec"]["chart"], "jenkins");
            assert_eq!(chart["spec"]["version"], "5.9.53");
            assert_eq!(chart["spec"]["targetNamespace"], "jenkins");
            assert_eq!(chart["spec"]["createNamespace"], true);
            keys.assert_known(&values, &what);

            // The controller: arm64, the admin from the node's Secret, pinned plugins.
            let controller = &values["controller"];
            assert_eq!(controller["nodeSelector"]["kubernetes.io/arch"], "arm64");
            assert_eq!(controller["admin"]["existingSecret"], "jenkins-admin");
            assert_eq!(controller["admin"]["userKey"], "jenkins-admin-user");
            assert_eq!(controller["admin"]["passwordKey"], "jenkins-admin-password");
            assert_eq!(controller["admin"]["createSecret"], true);
            assert!(controller["admin"].get("password").is_none());
            assert_eq!(controller["installLatestPlugins"], false);
            assert_eq!(values["persistence"]["size"], "8Gi");
            assert_eq!(values["persistence"]["storageClass"], "fast-ssd");
            assert_eq!(
                values["agent"]["nodeSelector"]["kubernetes.io/arch"],
                "arm64"
            );

            // The build pod template: one, named and labelled for the mode, on arm64.
            let templates = values["agent"]["podTemplates"].as_object().unwrap();
            assert_eq!(templates.keys().collect::<Vec<_>>(), vec![mode], "{what}");
            let jcasc = templates[mode].as_str().unwrap();
            assert!(!jcasc.contains("{{"), "{what}: Helm tpl would run it");
            assert!(jcasc.starts_with("- "), "{what}: one list item: {jcasc}");
            let items = pyyaml_text(jcasc);
            let template = &items[0];
            assert_eq!(items.as_array().unwrap().len(), 1);
            assert_eq!(template["name"], mode);
            assert_eq!(template["label"], mode);
            assert_eq!(template["nodeSelector"], "kubernetes.io/arch=arm64");
            let pod_text = template["yaml"].as_str().unwrap();
            let pod_file = env
                .dir
                .path()
                .join(format!("pod-{distribution}-{mode}.yaml"));
            // A name for the schema check; the plugin names the pods it starts.
            let mut pod = pyyaml_text(pod_text);
            pod["metadata"] = serde_json::json!({"name": "agent"});
            std::fs::write(&pod_file, serde_json::to_string(&pod).unwrap()).unwrap();
            validate_manifest(&pod_file);
            assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/arch"], "arm64");
            let containers = pod["spec"]["containers"].as_array().unwrap();
            for c in containers {
                let image = c["image"].as_str().unwrap();
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && !tag.contains('/') && !tag.starts_with("latest"),
                    "{what}: {image} is not pinned"
                );
            }
            let privileged: Vec<&Value> = containers
                .iter()
                .filter(|c| c["securityContext"]["privileged"] == true)
                .collect();
            assert_eq!(privileged.len(), usize::from(mode == "dind"), "{what}");
            // Never the node's socket; dind's daemon only on a socket in a shared emptyDir.
            assert!(!pod_text.contains("/var/run/docker.sock") && !pod_text.contains("hostPath"));
            assert!(!pod_text.contains("tcp://"), "{what}: a daemon on TCP");
            if mode == "dind" {
                let dind = containers.iter().find(|c| c["name"] == "dind").unwrap();
                assert_eq!(
                    dind["args"],
                    serde_json::json!(["dockerd", "--host=unix:///run/dind/docker.sock"]),
                    "{what}"
                );
            }
            match mode {
                "buildkit" => {
                    let c = &containers[0];
                    assert_eq!(c["image"], "moby/buildkit:v0.32.2-rootless");
                    assert_eq!(c["securityContext"]["seccompProfile"]["type"], "Unconfined");
                    assert_eq!(
                        c["securityContext"]["appArmorProfile"]["type"],
                        "Unconfined"
                    );
                    assert_eq!(c["env"][0]["name"], "BUILDKITD_FLAGS");
                    assert_eq!(c["env"][0]["value"], "--oci-worker-no-process-sandbox");
                }
                "kaniko" => assert_eq!(
                    containers[0]["image"],
                    "ghcr.io/osscontainertools/kaniko:v1.28.3-debug"
                ),
                _ => assert!(
                    containers
                        .iter()
                        .any(|c| c["image"].as_str().unwrap().ends_with("-dind"))
                ),
            }

            // The example: the template it asks for is the one rendered.
            let example = out.join(format!("Jenkinsfile.{mode}"));
            let text = std::fs::read_to_string(&example).unwrap();
            assert!(
                text.contains("pipeline {") && braces_balance(&text),
                "{what}"
            );
            assert!(
                text.contains(&format!(
                    "inheritFrom '{}'",
                    template["name"].as_str().unwrap()
                )),
                "{what}"
            );
            assert!(text.contains("credentialsId: 'registry'") && text.contains("linux/arm64"));
            if mode != "dind" {
                assert!(!text.contains("privileged") && !text.contains("docker.sock"));
            }

            // No password byte outside pinode/secrets (the rendered folder included).
            for file in walk(&out) {
                let bytes = std::fs::read(&file).unwrap();
                let has = bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes());
                let secret_dir = file.starts_with(boot.join("pinode/secrets"));
                assert_eq!(
                    has,
                    secret_dir && file.ends_with("jenkins-admin-password"),
                    "{what}: {}",
                    file.display()
                );
            }
            assert_eq!(
                std::fs::read(boot.join("pinode/secrets/jenkins-admin-password")).unwrap(),
                PASSWORD.as_bytes()
            );
            assert_eq!(
                mode_of(&boot.join("pinode/secrets/jenkins-admin-password")),
                0o600
            );

            // The stage's shell.
            let script = boot.join("pinode/firstboot.sh");
            run(Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(&script));
            run(Command::new("sh").arg("-n").arg(&script));
            let stage = std::fs::read_to_string(&script).unwrap();
            assert!(stage.contains("if runner_wanted jenkins; then"), "{what}");
            charts.push((mode, std::fs::read(manifest).unwrap()));

            // The agent carries neither the chart nor the password.
            let agent = render(&env, &profile, "lab-2");
            assert!(
                files_named(&agent, "pinode-jenkins.yaml").is_empty(),
                "{what}"
            );
            assert!(
                files_named(&agent, "jenkins-admin-password").is_empty(),
                "{what}"
            );
        }
    }
    // The same HelmChart on both distributions.
    for mode in MODES {
        let same: Vec<&Vec<u8>> = charts
            .iter()
            .filter(|(m, _)| *m == mode)
            .map(|(_, c)| c)
            .collect();
        assert_eq!(same.len(), 2);
        assert_eq!(same[0], same[1], "{mode}");
    }
}

fn mode_of(path: &Path) -> u32 {
    common::mode(path)
}

/// The recording stand-in for the K3s install script (as tests/cluster.rs).
const FAKE_INSTALLER: &str = r#"#!/bin/sh
mkdir -p /etc/rancher/k3s
echo 'apiVersion: v1 # a stand-in kubeconfig' >/etc/rancher/k3s/k3s.yaml
"#;

#[test]
fn the_founder_writes_the_admin_secret_from_its_root_only_copy() {
    if !root_or_skip("the first-boot chain runs in a mount namespace and needs root") {
        return;
    }
    let env = UserEnv::new();
    let profile = profile(
        &env,
        "scratch.yaml",
        "k3s",
        &runner_lines(&env, "buildkit", "    admin_user: builder\n"),
    );
    let (root, rendered): (ScratchRoot, PathBuf) =
        first_stage_in_scratch(&env, &profile, "lab-1", FAKE_INSTALLER, |_| {});
    assert!(!root.boot().join("pinode/secrets").exists());
    let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let manifests = root.path("varlib/rancher/k3s/server/manifests");
    assert_eq!(
        std::fs::read(manifests.join("pinode-jenkins.yaml")).unwrap(),
        std::fs::read(rendered.join("boot/pinode/k3s/pinode-jenkins.yaml")).unwrap()
    );
    let path = manifests.join("pinode-jenkins-admin.yaml");
    assert_eq!(mode_of(&path), 0o600);
    validate_manifest(&path);
    let docs = yaml_documents(&path);
    assert_eq!(docs[0]["kind"], "Namespace");
    assert_eq!(docs[0]["metadata"]["name"], "jenkins");
    let secret = &docs[1];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "jenkins-admin");
    assert_eq!(secret["metadata"]["namespace"], "jenkins");
    let data = secret["data"].as_object().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        vec!["jenkins-admin-password", "jenkins-admin-user"]
    );
    let decode = |b64: &Value| {
        run(Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s '{}' | base64 -d", b64.as_str().unwrap())))
    };
    assert_eq!(decode(&data["jenkins-admin-password"]), PASSWORD);
    assert_eq!(decode(&data["jenkins-admin-user"]), "builder");
    for name in ["jenkins-admin-password", "jenkins-admin-user"] {
        assert_eq!(
            mode_of(&root.path(&format!("etc/pinode/secrets/{name}"))),
            0o600
        );
    }
    let status = std::fs::read_to_string(root.boot().join("pinode-status.txt")).unwrap();
    assert!(status.contains("k3s (server): ok"), "{status}");
    assert!(log.contains("jenkins runner manifests"), "{log}");
    for text in [&status, &log] {
        assert!(!text.contains(PASSWORD));
    }
}

/// `profile check` on a runner mapping: fails with one error naming `file:LINE` and the
/// field, and the needles.
fn refused(env: &UserEnv, name: &str, runner: &str, line: usize, field: &str, needles: &[&str]) {
    let path = profile(env, name, "k3s", runner);
    let out = pinode_for(env)
        .args(["profile", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let mut all = vec![
        format!("{name}:{line}:"),
        format!("cluster.runner.{field}:"),
    ];
    all.extend(needles.iter().map(|n| n.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let err = one_error_line(&out, &all);
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn profile_check_refuses_what_cannot_work_at_its_line() {
    let env = UserEnv::new();
    let pw = password_file(&env, PASSWORD);
    let pw_line = format!("    admin_password_file: {}\n", pw.display());
    // Line 14 is the first line of the runner mapping after `kind`.
    refused(
        &env,
        "socket.yaml",
        &format!("    builds: host-socket\n{pw_line}"),
        14,
        "builds",
        &["is root on the node"],
    );
    refused(
        &env,
        "dind.yaml",
        &format!("    builds: dind\n{pw_line}"),
        14,
        "builds",
        &["privileged: true"],
    );
    refused(
        &env,
        "url.yaml",
        &format!("{pw_line}    url: https://jenkins.example.com\n"),
        15,
        "url",
        &["a setting of kind", "not of jenkins"],
    );
    refused(
        &env,
        "token.yaml",
        &format!("{pw_line}    token_env: GITLAB_RUNNER_TOKEN\n"),
        15,
        "token_env",
        &["not of jenkins"],
    );
    refused(
        &env,
        "missing.yaml",
        "    storage_size: 8Gi\n",
        13,
        "admin_password_env",
        &["admin_password_env or admin_password_file"],
    );
    let short = password_file(&env, "short");
    refused(
        &env,
        "short.yaml",
        &format!("    admin_password_file: {}\n", short.display()),
        14,
        "admin_password_file",
        &["at least 8 characters"],
    );
    // A file's one trailing line break is dropped (profile rule); any other is refused.
    let newline = password_file(&env, "long enough\npassword\n");
    refused(
        &env,
        "newline.yaml",
        &format!("    admin_password_file: {}\n", newline.display()),
        14,
        "admin_password_file",
        &["on one line"],
    );
    refused(
        &env,
        "size.yaml",
        &format!("{pw_line}    storage_size: 8 GB\n"),
        15,
        "storage_size",
        &["Kubernetes quantity"],
    );
    refused(
        &env,
        "class.yaml",
        &format!("{pw_line}    storage_class: Fast SSD\n"),
        15,
        "storage_class",
        &["StorageClass name"],
    );
    refused(
        &env,
        "user.yaml",
        &format!("{pw_line}    admin_user: \"a b\"\n"),
        15,
        "admin_user",
        &["Jenkins user id"],
    );
    refused(
        &env,
        "buildkit-privileged.yaml",
        &format!("{pw_line}    privileged: true\n"),
        15,
        "privileged",
        &["only serves builds: dind"],
    );
}
