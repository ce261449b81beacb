//! GitHub Actions runners (ARC): for each build mode, on K3s and on kubeadm (pinode's
//! helm-controller), the rendered HelmCharts pass Kubernetes' schemas and the HelmChart CRD,
//! every chart value is in the pinned chart's values.yaml, the runner and listener pod specs
//! pass as Pod specs, and the example workflow passes GitHub's workflow schema
//! (check-jsonschema's vendored copy); no credential is on the boot partition outside
//! `pinode/secrets/`; the founder's first boot (in a scratch root) writes the Secret
//! `pinode-github` with the credentials, mode 600; and `profile check` refuses what cannot
//! work with file:line:field.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ci::{ChartKeys, assert_schema, validate_manifest};
use common::user_env::*;
use common::*;
use serde_json::{Value, json};

const GH_TOKEN: &str = "github_pat_11ABCDEFG0_test0token0for0pinode0only0123456789";
const APP_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEAtestkeybytesforpinodeonly0123456789\nabcdefghijklmnopqrstuvwxyzABCDEF\n-----END RSA PRIVATE KEY-----\n";
const KUBEADM_TOKEN: &str = "abcdef.0123456789abcdef";

const HEAD: &str = "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
";

/// A founder (static address) and an agent, with `runner` (lines indented for
/// `cluster.runner`).
fn profile(distribution: &str, runner: &str) -> String {
    let token = if distribution == "kubeadm" {
        "KUBEADM_TOKEN"
    } else {
        "K3S_TOKEN"
    };
    format!(
        "{HEAD}cluster:
  name: lab
  distribution: {distribution}
  token_env: {token}
  runner:
{runner}nodes:
  - hostname: lab-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
        dns: [192.168.1.1]
  - hostname: lab-2
    role: agent
"
    )
}

fn token_runner(builds: &str) -> String {
    let privileged = if builds == "dind" {
        "    privileged: true\n"
    } else {
        ""
    };
    format!(
        "    kind: github
    url: https://github.com/acme/app
    token_env: GH_TOKEN
    builds: {builds}
{privileged}"
    )
}

fn pinode(env: &UserEnv) -> Command {
    let mut c = env.pinode();
    c.env("GH_TOKEN", GH_TOKEN)
        .env("KUBEADM_TOKEN", KUBEADM_TOKEN);
    c
}

/// Renders the founder of `text` into a folder of its own; returns it.
fn render(env: &UserEnv, name: &str, text: &str) -> PathBuf {
    let path = write_profile(env.dir.path(), name, text);
    let out = env.dir.path().join(format!("render-{name}"));
    run(pinode(env)
        .args(["render", "--profile"])
        .arg(&path)
        .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
        .arg(&out));
    out
}

/// The HelmChart named `name` of the ARC manifest, and its values.
fn chart(docs: &[Value], name: &str) -> (Value, Value) {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == "HelmChart" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no HelmChart {name}"))
        .clone();
    let values: Value = serde_json::from_str(doc["spec"]["valuesContent"].as_str().unwrap())
        .expect("valuesContent is JSON");
    (doc, values)
}

/// `spec` as a Pod, strictly checked by kubernetes-validate.
fn validate_pod_spec(dir: &Path, name: &str, spec: &Value) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
    let path = dir.join(format!("{name}.pod.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&pod).unwrap()).unwrap();
    validate_manifest(&path);
}

/// Every image reference in `v` (any `image` string), for the pinning check.
fn images(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                match (k.as_str(), inner) {
                    ("image", Value::String(s)) => out.push(s.clone()),
                    _ => images(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| images(i, out)),
        _ => {}
    }
}

/// No file of the rendered boot partition outside `pinode/secrets/` holds any of `secrets`
/// (nor does anything else the render wrote: examples, README).
fn assert_no_secret_outside_secrets(rendered: &Path, secrets: &[&[u8]]) {
    for file in walk(rendered) {
        if file.is_dir() || file.components().any(|c| c.as_os_str() == "secrets") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == *secret),
                "{}: holds a secret",
                file.display()
            );
        }
    }
}

#[test]
fn every_build_mode_renders_checked_charts_on_k3s_and_kubeadm() {
    let env = UserEnv::new();
    let controller_keys = ChartKeys::load("gha-runner-scale-set-controller", "0.14.2");
    let scale_set_keys = ChartKeys::load("gha-runner-scale-set", "0.14.2");
    for builds in ["buildkit", "kaniko", "dind"] {
        let mut manifests = Vec::new();
        for distribution in ["k3s", "kubeadm"] {
            let what = format!("{builds} on {distribution}");
            let rendered = render(
                &env,
                &format!("{distribution}-{builds}.yaml"),
                &profile(distribution, &token_runner(builds)),
            );
            let found = files_named(&rendered, "pinode-github-arc.yaml");
            assert_eq!(found.len(), 1, "{what}: {found:?}");
            let manifest = &found[0];
            validate_manifest(manifest);
            if distribution == "kubeadm" {
                assert_eq!(
                    files_named(&rendered, "00-pinode-helm-controller.yaml").len(),
                    1,
                    "{what}: pinode's helm-controller"
                );
            }
            let docs = yaml_documents(manifest);
            assert_eq!(docs.len(), 2, "{what}");
            assert_eq!(docs[0]["metadata"]["name"], "arc", "the controller first");

            let (controller, values) = chart(&docs, "arc");
            assert_eq!(
                controller["spec"]["chart"],
                "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set-controller"
            );
            assert_eq!(controller["spec"]["version"], "0.14.2");
            assert_eq!(controller["spec"]["targetNamespace"], "arc-systems");
            controller_keys.assert_known(&values, &what);
            assert_eq!(values["nodeSelector"]["kubernetes.io/arch"], "arm64");

            let (set, values) = chart(&docs, "arc-runner-set");
            assert_eq!(
                set["spec"]["chart"],
                "oci://ghcr.io/actions/actions-runner-controller-charts/gha-runner-scale-set"
            );
            assert_eq!(set["spec"]["version"], "0.14.2");
            assert_eq!(set["spec"]["targetNamespace"], "arc-runners");
            scale_set_keys.assert_known(&values, &what);
            assert_eq!(values["githubConfigUrl"], "https://github.com/acme/app");
            assert_eq!(values["githubConfigSecret"], "pinode-github");
            assert_eq!(values["runnerScaleSetName"], "pinode-arm64");
            assert_eq!(
                (&values["minRunners"], &values["maxRunners"]),
                (&json!(0), &json!(3))
            );
            assert_eq!(
                values["controllerServiceAccount"],
                json!({"namespace": "arc-systems", "name": "arc-gha-rs-controller"})
            );
            let template = &values["template"]["spec"];
            let listener = &values["listenerTemplate"]["spec"];
            assert_eq!(
                template["nodeSelector"]["kubernetes.io/arch"], "arm64",
                "{what}"
            );
            assert_eq!(
                listener["nodeSelector"]["kubernetes.io/arch"], "arm64",
                "{what}"
            );
            validate_pod_spec(&rendered, "runner", template);
            validate_pod_spec(&rendered, "listener", listener);
            let runner = &template["containers"][0];
            assert_eq!(runner["name"], "runner");
            assert_eq!(runner["image"], "ghcr.io/actions/actions-runner:2.336.0");

            // Every image pinned by a version tag.
            let mut refs = Vec::new();
            images(&values, &mut refs);
            for image in &refs {
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/') && tag.contains('.'),
                    "{what}: {image} is not pinned"
                );
            }
            let privileged = serde_json::to_string(template)
                .unwrap()
                .contains("\"privileged\":true");
            assert_eq!(
                privileged,
                builds == "dind",
                "{what}: privileged containers"
            );
            match builds {
                "buildkit" => {
                    assert!(values.get("containerMode").is_none());
                    let sidecar = &template["initContainers"][0];
                    assert_eq!(sidecar["image"], "moby/buildkit:v0.32.2-rootless");
                    assert_eq!(sidecar["restartPolicy"], "Always");
                    assert_eq!(
                        sidecar["securityContext"]["seccompProfile"]["type"],
                        "Unconfined"
                    );
                    assert_eq!(
                        sidecar["securityContext"]["appArmorProfile"]["type"],
                        "Unconfined"
                    );
                    assert!(
                        sidecar["args"]
                            .as_array()
                            .unwrap()
                            .contains(&json!("--oci-worker-no-process-sandbox"))
                    );
                    assert_eq!(
                        runner["env"],
                        json!([{"name": "BUILDKIT_HOST", "value": "tcp://127.0.0.1:1234"}])
                    );
                }
                "kaniko" => {
                    assert_eq!(values["containerMode"]["type"], "kubernetes");
                    let claim = &values["containerMode"]["kubernetesModeWorkVolumeClaim"];
                    assert_eq!(claim["accessModes"], json!(["ReadWriteOnce"]));
                    assert!(claim.get("storageClassName").is_none(), "the default class");
                }
                _ => {
                    assert!(
                        values.get("containerMode").is_none(),
                        "dind written out, pinned"
                    );
                    assert!(refs.contains(&"docker:29.7.2-dind".to_string()), "{refs:?}");
                    assert_eq!(runner["env"][0]["value"], "unix:///var/run/docker.sock");
                }
            }

            // The example workflow: GitHub's schema, runs-on the scale set.
            let example = rendered.join(format!("github-workflow-{builds}.yml"));
            assert_schema("vendor.github-workflows", &example);
            let workflow = yaml_documents(&example);
            assert_eq!(workflow[0]["jobs"]["build"]["runs-on"], "pinode-arm64");
            let text = std::fs::read_to_string(&example).unwrap();
            assert!(text.contains("linux/arm64"), "{what}");
            if builds == "kaniko" {
                assert_eq!(
                    workflow[0]["jobs"]["build"]["container"]["image"],
                    "ghcr.io/osscontainertools/kaniko:v1.28.3-debug"
                );
            }

            // The token only as a secret file.
            assert_eq!(
                std::fs::read(rendered.join("boot/pinode/secrets/github-token")).unwrap(),
                GH_TOKEN.as_bytes()
            );
            assert_no_secret_outside_secrets(&rendered, &[GH_TOKEN.as_bytes()]);

            run(Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(rendered.join("boot/pinode/firstboot.sh")));
            manifests.push(std::fs::read(manifest).unwrap());
        }
        assert_eq!(
            manifests[0], manifests[1],
            "{builds}: the same charts everywhere"
        );
    }
}

/// Only the founder carries the runner: an agent gets neither the charts nor the token,
/// and its stage does not place them (`runner_wanted github` is false there).
#[test]
fn only_the_founder_carries_the_runner() {
    let env = UserEnv::new();
    let text = profile("k3s", &token_runner("buildkit"));
    let path = write_profile(env.dir.path(), "agent.yaml", &text);
    let out = env.dir.path().join("render-agent");
    run(pinode(&env)
        .args(["render", "--profile"])
        .arg(&path)
        .args(["--node", "lab-2", "--generation", "bookworm", "--out-dir"])
        .arg(&out));
    assert!(files_named(&out, "pinode-github-arc.yaml").is_empty());
    assert!(!out.join("boot/pinode/secrets/github-token").exists());
    assert_no_secret_outside_secrets(&out, &[GH_TOKEN.as_bytes()]);
    let stage = std::fs::read_to_string(out.join("boot/pinode/firstboot.sh")).unwrap();
    assert!(
        stage.contains("\nRUNNERS=''\n") || stage.contains("\nRUNNERS=\n"),
        "agent's RUNNERS"
    );
    let founder = render(&env, "founder.yaml", &text);
    let stage = std::fs::read_to_string(founder.join("boot/pinode/firstboot.sh")).unwrap();
    assert!(stage.contains("\nRUNNERS=github\n"));
    assert!(stage.contains(
        "\tif runner_wanted github; then\n\t\tstep \"github runner manifests\" place_runner "
    ));
}

#[test]
fn settings_reach_the_values_and_chart_version_sets_both_charts() {
    let env = UserEnv::new();
    let runner = "    kind: github
    url: https://ghe.example.com/acme
    token_env: GH_TOKEN
    name: \"pi: arm64\"
    min_runners: 1
    max_runners: 5
    chart_version: 0.14.1
";
    let text = profile("k3s", runner);
    let bad = write_profile(env.dir.path(), "named.yaml", &text);
    let out = output(pinode(&env).args(["profile", "check"]).arg(&bad));
    let at = format!("named.yaml:{}:", line_of(&text, "name: \"pi"));
    one_error_line(&out, &[&at, "cluster.runner.name", "45"]);
    let runner = runner.replace("\"pi: arm64\"", "pi-arm64_2");
    let rendered = render(&env, "named-ok.yaml", &profile("k3s", &runner));
    let docs = yaml_documents(&files_named(&rendered, "pinode-github-arc.yaml")[0]);
    let (controller, _) = chart(&docs, "arc");
    let (set, values) = chart(&docs, "arc-runner-set");
    assert_eq!(controller["spec"]["version"], "0.14.1");
    assert_eq!(set["spec"]["version"], "0.14.1");
    assert_eq!(values["runnerScaleSetName"], "pi-arm64_2");
    assert_eq!(values["githubConfigUrl"], "https://ghe.example.com/acme");
    assert_eq!(
        (&values["minRunners"], &values["maxRunners"]),
        (&json!(1), &json!(5))
    );
    let workflow = yaml_documents(&rendered.join("github-workflow-buildkit.yml"));
    assert_eq!(workflow[0]["jobs"]["build"]["runs-on"], "pi-arm64_2");
}

/// A GitHub App login: the ids and the private key become secret files, the key appears
/// nowhere else.
#[test]
fn a_github_app_login_puts_ids_and_key_only_in_secret_files() {
    let env = UserEnv::new();
    let key = env.dir.path().join("app.pem");
    std::fs::write(&key, APP_KEY).unwrap();
    let runner = format!(
        "    kind: github
    url: https://github.com/acme
    app_id: 123456
    installation_id: 654321
    private_key_file: {}
",
        key.display()
    );
    let rendered = render(&env, "app.yaml", &profile("k3s", &runner));
    let secrets = rendered.join("boot/pinode/secrets");
    let read = |n: &str| std::fs::read(secrets.join(n)).unwrap();
    assert_eq!(read("github-app-id"), b"123456");
    assert_eq!(read("github-app-installation-id"), b"654321");
    // The file source is read without its final line break, as every secret file is.
    assert_eq!(
        read("github-app-private-key"),
        APP_KEY.trim_end().as_bytes()
    );
    assert!(!secrets.join("github-token").exists());
    // The key's body line, not just its armour.
    let body = APP_KEY.lines().nth(1).unwrap();
    assert_no_secret_outside_secrets(&rendered, &[APP_KEY.as_bytes(), body.as_bytes()]);
}

/// The founder's first boot in a scratch root: the charts go to K3s's manifests, the
/// Secret is written there by the node with the credentials, mode 600.
#[test]
fn the_founder_writes_the_secret_from_its_root_only_copies() {
    if !root_or_skip("runs the first-boot scripts in a mount namespace") {
        return;
    }
    let env = UserEnv::new();
    let key = env.dir.path().join("app.pem");
    std::fs::write(&key, APP_KEY).unwrap();
    let app = format!(
        "    kind: github
    url: https://github.com/acme
    app_id: 123456
    installation_id: 654321
    private_key_file: {}
",
        key.display()
    );
    // first_stage_in_scratch renders with env.pinode(): the token comes from a file.
    let token = env.dir.path().join("gh-token");
    std::fs::write(&token, GH_TOKEN).unwrap();
    let cases: [(&str, String, Vec<SecretKey>); 2] = [
        (
            "token",
            token_runner("buildkit").replace(
                "token_env: GH_TOKEN",
                &format!("token_file: {}", token.display()),
            ),
            vec![("github_token", GH_TOKEN.as_bytes())],
        ),
        (
            "app",
            app,
            vec![
                ("github_app_id", b"123456"),
                ("github_app_installation_id", b"654321"),
                ("github_app_private_key", APP_KEY.trim_end().as_bytes()),
            ],
        ),
    ];
    for (name, runner, expected) in cases {
        let path = write_profile(
            env.dir.path(),
            &format!("boot-{name}.yaml"),
            &profile("k3s", &runner),
        );
        let (root, rendered) = first_stage_in_scratch(&env, &path, "lab-1", FAKE_INSTALLER, |_| {});
        let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let manifests = root.path("varlib/rancher/k3s/server/manifests");
        assert_eq!(
            std::fs::read(manifests.join("pinode-github-arc.yaml")).unwrap(),
            std::fs::read(rendered.join("boot/pinode/k3s/pinode-github-arc.yaml")).unwrap()
        );
        let secret_path = manifests.join("pinode-github-secret.yaml");
        assert_eq!(mode(&secret_path), 0o600, "{name}");
        validate_manifest(&secret_path);
        let docs = yaml_documents(&secret_path);
        assert_eq!(docs[0]["kind"], "Namespace");
        assert_eq!(docs[0]["metadata"]["name"], "arc-runners");
        let secret = &docs[1];
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["metadata"]["name"], "pinode-github");
        assert_eq!(secret["metadata"]["namespace"], "arc-runners");
        let data = secret["data"].as_object().unwrap();
        assert_eq!(data.len(), expected.len(), "{name}: {data:?}");
        for (key, value) in expected {
            let b64 = data[key].as_str().unwrap();
            let decoded = run(Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s '{b64}' | base64 -d")));
            assert_eq!(decoded.as_bytes(), value, "{name}: {key}");
        }
        assert!(
            !root.boot().join("pinode/secrets").exists(),
            "secrets are moved off the boot partition"
        );
    }
}

/// A key of the Secret and the bytes it must hold.
type SecretKey = (&'static str, &'static [u8]);

const FAKE_INSTALLER: &str = r#"#!/bin/sh
mkdir -p /etc/rancher/k3s
echo 'apiVersion: v1 # a stand-in kubeconfig' >/etc/rancher/k3s/k3s.yaml
"#;

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"))
        + 1
}

#[test]
fn profile_check_refuses_with_file_line_and_field() {
    let env = UserEnv::new();
    let base = token_runner("buildkit");
    // (name, runner lines, environment token, the line's needle, the field, words)
    let cases: Vec<(&str, String, &str, &str, &str, &str)> = vec![
        (
            "host-socket",
            base.replace("builds: buildkit", "builds: host-socket"),
            GH_TOKEN,
            "builds:",
            "cluster.runner.builds",
            "root on the node",
        ),
        (
            "dind",
            base.replace("builds: buildkit", "builds: dind"),
            GH_TOKEN,
            "builds:",
            "cluster.runner.builds",
            "privileged: true",
        ),
        (
            "other-kind",
            format!("{base}    concurrent: 2\n"),
            GH_TOKEN,
            "concurrent:",
            "cluster.runner.concurrent",
            "setting of kind gitlab",
        ),
        (
            "no-token",
            base.replace("    token_env: GH_TOKEN\n", ""),
            GH_TOKEN,
            "kind: github",
            "cluster.runner.token_env",
            "give token_env or token_file",
        ),
        (
            "bad-token",
            base.clone(),
            "hunter2-not-a-token",
            "token_env: GH_TOKEN",
            "cluster.runner.token_env",
            "fine-grained",
        ),
        (
            "classic-oauth",
            base.clone(),
            "gho_0123456789abcdefghijklmnopqrstuvwxyz",
            "token_env: GH_TOKEN",
            "cluster.runner.token_env",
            "expires",
        ),
        (
            "http",
            base.replace("https://github.com/acme/app", "http://github.com/acme/app"),
            GH_TOKEN,
            "url:",
            "cluster.runner.url",
            "plain http",
        ),
        (
            "enterprise",
            base.replace("acme/app", "enterprises/acme"),
            GH_TOKEN,
            "url:",
            "cluster.runner.url",
            "organisation or repository",
        ),
        (
            "not-org",
            base.replace("acme/app", "acme/app/tree/main"),
            GH_TOKEN,
            "url:",
            "cluster.runner.url",
            "https://github.com/ORG",
        ),
        (
            "min-max",
            format!("{base}    min_runners: 4\n    max_runners: 2\n"),
            GH_TOKEN,
            "min_runners:",
            "cluster.runner.min_runners",
            "more than max_runners",
        ),
        (
            "max-zero",
            format!("{base}    max_runners: 0\n"),
            GH_TOKEN,
            "max_runners:",
            "cluster.runner.max_runners",
            "at least 1",
        ),
        (
            "app-without-installation",
            base.replace(
                "    token_env: GH_TOKEN\n",
                "    app_id: 1\n    private_key_env: GH_KEY\n",
            ),
            GH_TOKEN,
            // A missing key is reported at its mapping.
            "kind: github",
            "cluster.runner.installation_id",
            "installation's id",
        ),
        (
            "bad-key",
            base.replace(
                "    token_env: GH_TOKEN\n",
                "    app_id: 1\n    installation_id: 2\n    private_key_env: GH_BAD_KEY\n",
            ),
            GH_TOKEN,
            "private_key_env:",
            "cluster.runner.private_key_env",
            "PEM",
        ),
    ];
    for (name, runner, token, needle, field, words) in cases {
        let text = profile("k3s", &runner);
        let file = format!("{name}.yaml");
        let path = write_profile(env.dir.path(), &file, &text);
        let out = output(
            pinode(&env)
                .env("GH_TOKEN", token)
                .env("GH_KEY", APP_KEY)
                .env(
                    "GH_BAD_KEY",
                    "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----",
                )
                .args(["profile", "check"])
                .arg(&path),
        );
        let line = one_error_line(&out, &[field, words]);
        let at = format!("{file}:{}:", line_of(&text, needle));
        assert!(line.contains(&at), "{name}: {at} in {line}");
        assert!(
            !line.contains(token) || token == GH_TOKEN,
            "{name}: the value echoed"
        );
        assert!(
            !stderr(&out).contains("hunter2"),
            "{name}: the value echoed"
        );
    }
    // Both a token and an App: the token is refused by name.
    let both_auth = base.replace(
        "    token_env: GH_TOKEN\n",
        "    token_env: GH_TOKEN\n    app_id: 1\n    installation_id: 2\n    private_key_env: GH_KEY\n",
    );
    let text = profile("k3s", &both_auth);
    let path = write_profile(env.dir.path(), "both.yaml", &text);
    let out = output(
        pinode(&env)
            .env("GH_KEY", APP_KEY)
            .args(["profile", "check"])
            .arg(&path),
    );
    one_error_line(
        &out,
        &[
            &format!("both.yaml:{}:", line_of(&text, "token_env: GH_TOKEN")),
            "cluster.runner.token_env",
            "not both",
        ],
    );
    // dind with privileged: true is accepted, with the warning.
    let text = profile("k3s", &token_runner("dind"));
    let path = write_profile(env.dir.path(), "dind-ok.yaml", &text);
    let out = output(pinode(&env).args(["profile", "check"]).arg(&path));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cluster.runner.privileged"),
        "{}",
        stderr(&out)
    );
}
