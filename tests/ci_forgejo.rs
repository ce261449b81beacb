//! The Forgejo runner, through the real `pinode` binary: for each build mode it supports
//! (buildkit, dind), on K3s and on kubeadm, the rendered manifests pass Kubernetes' schemas
//! (kubernetes-validate, strict), the example workflow passes GitHub's workflow schema
//! (check-jsonschema's vendored copy: Forgejo Actions reads GitHub-style workflows; Forgejo's
//! own schema is not JSON Schema), the stage passes shellcheck, no byte of the registration
//! token is anywhere in the render but in `pinode/secrets/`, and the stage's own function
//! writes the token Secret. There is no chart, so no chart key list: the runner's
//! `config.yaml` is checked by its keys here instead. And `profile check` refuses what
//! cannot work, with file:line:field.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ci::{assert_schema, validate_manifest};
use common::user_env::*;
use common::*;
use serde_json::Value;

/// A registration token of the form Forgejo's offline registration uses (40 hex).
const TOKEN: &str = "0123456789abcdef0123456789abcdeffedcba98";
const KUBEADM_TOKEN: &str = "abcdef.0123456789abcdef";

fn profile_text(distribution: &str, runner: &str) -> String {
    format!(
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
  token_env: {}
  runner:
    kind: forgejo
{runner}nodes:
  - hostname: lab-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
",
        if distribution == "kubeadm" {
            "KUBEADM_TOKEN"
        } else {
            "K3S_TOKEN"
        }
    )
}

const RUNNER: &str = "    url: https://forgejo.example.com
    token_env: FORGEJO_RUNNER_TOKEN
    name: \"lab: arm64 \\\"runner\\\"\"
";

fn pinode_env(env: &UserEnv) -> Command {
    let mut c = env.pinode();
    c.env("FORGEJO_RUNNER_TOKEN", TOKEN)
        .env("KUBEADM_TOKEN", KUBEADM_TOKEN)
        .env("GITLAB_STYLE_TOKEN", "glrt-abcdefghijklmnopqrstuvwxyz");
    c
}

fn render(env: &UserEnv, profile: &Path, out: &Path) {
    run(pinode_env(env)
        .args(["render", "--profile"])
        .arg(profile)
        .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
        .arg(out));
}

fn find(dir: &Path, name: &str) -> PathBuf {
    walk(dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("{name} not in {}", dir.display()))
}

/// The shell function of `name` (up to its closing brace) in the stage `script`.
fn function(script: &str, name: &str) -> String {
    let start = script
        .find(&format!("\n{name}() {{\n"))
        .unwrap_or_else(|| panic!("{name} not in the stage"));
    let end = script[start..].find("\n}\n").unwrap() + start + 3;
    script[start..end].to_string()
}

/// Runs the stage's own step for the Forgejo runner (`place_runner` with the arguments the
/// stage gives it) with sh, its paths moved into `root`; returns the directory it writes
/// the manifests into.
fn place_with_sh(script: &str, root: &Path) -> PathBuf {
    let marker = "step \"forgejo runner manifests\" ";
    let start = script.find(marker).expect("the Forgejo step") + marker.len();
    let end = script[start..].find("\n\tfi\n").unwrap() + start;
    let call = script[start..end].replace("\\\n", " ");
    let call: Vec<&str> = call.split_whitespace().collect();
    assert_eq!(call[0], "place_runner", "{call:?}");
    let manifests = root.join(call[1].trim_start_matches('/'));
    let mut args = vec![manifests.display().to_string()];
    for arg in &call[2..] {
        args.push(arg.replace("/etc/pinode/", &format!("{}/etc/pinode/", root.display())));
    }
    let program = format!(
        "set -u\nlog() {{ echo \"$*\" >&2; }}\n{}{}\nplace_runner {}",
        function(script, "write_file"),
        function(script, "place_runner"),
        args.join(" ")
    );
    run(Command::new("sh").arg("-c").arg(program));
    manifests
}

#[test]
fn each_build_mode_renders_valid_manifests_on_k3s_and_kubeadm() {
    let env = UserEnv::new();
    let modes = [
        ("buildkit", ""),
        ("dind", "    builds: dind\n    privileged: true\n"),
    ];
    for (mode, builds) in modes {
        for distribution in ["k3s", "kubeadm"] {
            let what = format!("{mode} on {distribution}");
            let profile = write_profile(
                env.dir.path(),
                &format!("{mode}-{distribution}.yaml"),
                &profile_text(distribution, &format!("{RUNNER}{builds}")),
            );
            let out = env.dir.path().join(format!("out-{mode}-{distribution}"));
            render(&env, &profile, &out);
            let boot = out.join("boot");

            // Kubernetes accepts every document, strictly.
            let manifest = find(&boot, "pinode-forgejo-runner.yaml");
            validate_manifest(&manifest);
            let docs = yaml_documents(&manifest);
            let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
            assert_eq!(
                kinds,
                [
                    "Namespace",
                    "PersistentVolumeClaim",
                    "ConfigMap",
                    "Deployment"
                ],
                "{what}"
            );
            assert!(docs.iter().all(|d| d["kind"] != "Secret"), "{what}");
            let claim = &docs[1];
            assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "64Mi");
            assert!(claim["spec"].get("storageClassName").is_none(), "{what}");
            let deployment = &docs[3];
            assert_eq!(deployment["metadata"]["name"], "forgejo-runner");
            assert_eq!(deployment["metadata"]["namespace"], "forgejo-runner");
            assert_eq!(deployment["spec"]["replicas"], 1);
            assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "arm64", "{what}");
            let containers: Vec<&Value> = pod["initContainers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(pod["containers"].as_array().unwrap())
                .collect();
            for c in &containers {
                let image = c["image"].as_str().unwrap();
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                    "{what}: {image} is not pinned"
                );
            }
            let named = |n: &str| containers.iter().find(|c| c["name"] == n).copied();
            // Registers once, the token from the Secret, the user's values as values.
            let register = named("register").unwrap();
            assert_eq!(register["image"], "code.forgejo.org/forgejo/runner:12.0.1");
            assert!(
                register["command"][2]
                    .as_str()
                    .unwrap()
                    .starts_with("if [ -s /data/.runner ]")
            );
            let env_of = |c: &Value, n: &str| {
                c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == n)
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            assert_eq!(
                env_of(register, "FORGEJO_RUNNER_TOKEN")["valueFrom"]["secretKeyRef"],
                serde_json::json!({"name": "forgejo-runner-token", "key": "token"})
            );
            assert_eq!(
                env_of(register, "FORGEJO_RUNNER_NAME")["value"],
                "lab: arm64 \"runner\""
            );
            assert_eq!(
                env_of(register, "FORGEJO_INSTANCE")["value"],
                "https://forgejo.example.com"
            );
            // The runner's configuration.
            let config: Value =
                serde_yaml::from_str(docs[2]["data"]["config.yaml"].as_str().unwrap()).unwrap();
            assert_eq!(config["runner"]["capacity"], 2);
            assert_eq!(config["runner"]["file"], "/data/.runner");
            let privileged: Vec<&str> = containers
                .iter()
                .filter(|c| c["securityContext"]["privileged"] == true)
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            let runner = named("runner").unwrap();
            assert_eq!(runner["securityContext"]["runAsNonRoot"], true);
            assert_eq!(runner["securityContext"]["allowPrivilegeEscalation"], false);
            if mode == "buildkit" {
                assert_eq!(
                    config["runner"]["labels"],
                    serde_json::json!(["pinode-arm64-host:host"])
                );
                assert!(privileged.is_empty(), "{what}: {privileged:?}");
                let buildkitd = named("buildkitd").unwrap();
                assert_eq!(buildkitd["image"], "moby/buildkit:v0.32.2-rootless");
                assert_eq!(
                    buildkitd["securityContext"]["seccompProfile"]["type"],
                    "Unconfined"
                );
                assert_eq!(
                    buildkitd["securityContext"]["appArmorProfile"]["type"],
                    "Unconfined"
                );
                assert!(
                    buildkitd["args"]
                        .as_array()
                        .unwrap()
                        .contains(&"--oci-worker-no-process-sandbox".into())
                );
                assert_eq!(
                    env_of(runner, "BUILDKIT_HOST")["value"],
                    "tcp://127.0.0.1:1234"
                );
                assert!(
                    env_of(runner, "PATH")["value"]
                        .as_str()
                        .unwrap()
                        .starts_with("/opt/buildkit/bin:")
                );
                assert!(named("buildctl").is_some());
            } else {
                assert_eq!(
                    config["runner"]["labels"],
                    serde_json::json!(["pinode-arm64-docker:docker://node:22-bookworm"])
                );
                assert_eq!(privileged, ["docker"], "{what}");
                assert!(
                    named("docker").unwrap()["image"]
                        .as_str()
                        .unwrap()
                        .ends_with("-dind")
                );
                assert_eq!(
                    env_of(runner, "DOCKER_HOST")["value"],
                    "tcp://localhost:2376"
                );
            }

            // The example workflow: runs-on the label, GitHub's workflow schema.
            let example = out.join(format!("forgejo-workflow-{mode}.yml"));
            assert_schema("vendor.github-workflows", &example);
            let workflow = &yaml_documents(&example)[0];
            let label = config["runner"]["labels"][0].as_str().unwrap();
            assert_eq!(
                workflow["jobs"]["build-image"]["runs-on"],
                label.split(':').next().unwrap(),
                "{what}"
            );
            assert!(
                std::fs::read_to_string(&example)
                    .unwrap()
                    .contains("linux/arm64")
            );

            // The stage: shellcheck.
            let script = boot.join("pinode/firstboot.sh");
            run(Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(&script));

            // The token: only in pinode/secrets/, as a private file of exactly its bytes.
            let secret = boot.join("pinode/secrets/forgejo-runner-token");
            assert_eq!(std::fs::read(&secret).unwrap(), TOKEN.as_bytes());
            assert_eq!(mode_of(&secret), 0o600);
            let needles = [TOKEN.as_bytes().to_vec(), b64(TOKEN).into_bytes()];
            for file in walk(&out) {
                if file.starts_with(boot.join("pinode/secrets")) {
                    continue;
                }
                let bytes = std::fs::read(&file).unwrap_or_default();
                for needle in &needles {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                        "{what}: the token is in {}",
                        file.display()
                    );
                }
            }

            // The stage's function writes the Secret from the node's root-only copy.
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(root.path().join("etc/pinode/secrets")).unwrap();
            std::fs::copy(
                &secret,
                root.path().join("etc/pinode/secrets/forgejo-runner-token"),
            )
            .unwrap();
            std::fs::copy(
                &manifest,
                root.path().join("etc/pinode/pinode-forgejo-runner.yaml"),
            )
            .unwrap();
            let text = std::fs::read_to_string(&script).unwrap();
            let placed = place_with_sh(&text, root.path());
            assert_eq!(
                std::fs::read(placed.join("pinode-forgejo-runner.yaml")).unwrap(),
                std::fs::read(&manifest).unwrap()
            );
            let written = placed.join("pinode-forgejo-runner-token.yaml");
            assert_eq!(mode_of(&written), 0o600, "{what}");
            validate_manifest(&written);
            let docs = yaml_documents(&written);
            assert_eq!(docs[1]["kind"], "Secret");
            assert_eq!(docs[1]["metadata"]["name"], "forgejo-runner-token");
            assert_eq!(docs[1]["metadata"]["namespace"], "forgejo-runner");
            let data = docs[1]["data"].as_object().unwrap();
            assert_eq!(data.keys().collect::<Vec<_>>(), ["token"]);
            assert_eq!(data["token"], b64(TOKEN));
        }
    }
}

fn b64(text: &str) -> String {
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("printf %s '{text}' | base64 -w 0")))
}

fn mode_of(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn profile_check_refuses_what_cannot_work_with_file_line_field() {
    let env = UserEnv::new();
    let cases = [
        (
            "    builds: kaniko\n",
            "builds: kaniko",
            "cluster.runner.builds",
            "kaniko only works as the job container's own image",
        ),
        (
            "    builds: dind\n",
            "builds: dind",
            "cluster.runner.builds",
            "privileged: true",
        ),
        (
            "    builds: host-socket\n",
            "builds: host-socket",
            "cluster.runner.builds",
            "root on the node",
        ),
        (
            "    app_id: 5\n",
            "app_id: 5",
            "cluster.runner.app_id",
            "setting of kind github, not of forgejo",
        ),
        (
            "    concurrent: 0\n",
            "concurrent: 0",
            "cluster.runner.concurrent",
            "at least 1",
        ),
    ];
    for (extra, at, field, message) in cases {
        let text = profile_text("k3s", &format!("{RUNNER}{extra}"));
        let profile = write_profile(env.dir.path(), "refused.yaml", &text);
        let out = output(pinode_env(&env).args(["profile", "check"]).arg(&profile));
        one_error_line(
            &out,
            &[
                &format!("refused.yaml:{}:", line_of(&text, at)),
                &format!("{field}:"),
                message,
            ],
        );
    }
    // The runner's own fields: a bad URL, a token of another system, no token at all.
    let swaps = [
        (
            "url: https://forgejo.example.com",
            "url: forgejo.example.com",
            "cluster.runner.url",
            "must be the Forgejo instance URL",
        ),
        (
            "token_env: FORGEJO_RUNNER_TOKEN",
            "token_env: GITLAB_STYLE_TOKEN",
            "cluster.runner.token_env",
            "not a Forgejo runner registration token",
        ),
        (
            "    token_env: FORGEJO_RUNNER_TOKEN\n",
            "",
            "cluster.runner.token_env",
            "needs its token: give token_env or token_file",
        ),
    ];
    for (from, to, field, message) in swaps {
        let text = profile_text("k3s", RUNNER).replace(from, to);
        let profile = write_profile(env.dir.path(), "refused.yaml", &text);
        let out = output(pinode_env(&env).args(["profile", "check"]).arg(&profile));
        let line = if to.is_empty() {
            line_of(&text, "kind: forgejo")
        } else {
            line_of(&text, to)
        };
        let err = one_error_line(
            &out,
            &[
                &format!("refused.yaml:{line}:"),
                &format!("{field}:"),
                message,
            ],
        );
        assert!(
            !err.contains(TOKEN) && !err.contains("glrt-abcdef"),
            "{err}"
        );
    }
    // A plain-http instance and dind are allowed, each with a warning.
    let text = profile_text(
        "k3s",
        &(RUNNER.replace("https://", "http://") + "    builds: dind\n    privileged: true\n"),
    );
    let profile = write_profile(env.dir.path(), "warned.yaml", &text);
    let out = output(pinode_env(&env).args(["profile", "check"]).arg(&profile));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for (at, field) in [
        ("url: http://", "cluster.runner.url"),
        ("privileged: true", "cluster.runner.privileged"),
    ] {
        let line = format!("warned.yaml:{}:", line_of(&text, at));
        assert!(
            err.lines()
                .any(|l| l.starts_with("warning:") && l.contains(&line) && l.contains(field)),
            "{field} at {line} in {err}"
        );
    }
}
