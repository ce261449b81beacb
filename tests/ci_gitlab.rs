//! GitLab Runner in each build mode, on K3s and on a distribution without a Helm controller
//! of its own (kubeadm): the HelmChart validates against Kubernetes' schemas and the
//! helm-controller CRD; every chart value pinode sets is in the values.yaml of the pinned
//! chart (tests/data/chart-values/gitlab-runner-0.86.0.keys, with its source); the runner
//! configuration pins the arm64 helper image, keeps job pods on arm64 and relaxes only what
//! the build mode needs; the example job validates against GitLab CI's schema
//! (check-jsonschema's vendored copy) and the token is in no file of the boot partition but
//! its secret file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ci::{ChartKeys, assert_schema, validate_manifest};
use common::user_env::*;
use common::*;

const TOKEN: &str = "glrt-example_runner-token-0123456789";

fn profile(env: &UserEnv, distribution: &str, builds: &str, extra: &str) -> PathBuf {
    let token_env = match distribution {
        "kubeadm" => "KUBEADM_TOKEN",
        _ => "K3S_TOKEN",
    };
    write_profile(
        env.dir.path(),
        &format!("gitlab-{distribution}-{builds}.yaml"),
        &format!(
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
  token_env: {token_env}
  runner:
    kind: gitlab
    url: https://gitlab.example.com
    token_env: GITLAB_RUNNER_TOKEN
    builds: {builds}
{extra}nodes:
  - hostname: lab-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
"
        ),
    )
}

fn pinode(env: &UserEnv) -> Command {
    let mut c = env.pinode();
    c.env("KUBEADM_TOKEN", "abcdef.0123456789abcdef")
        .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
        .env("GITLAB_RUNNER_TOKEN", TOKEN);
    c
}

fn render(env: &UserEnv, profile: &Path) -> PathBuf {
    let out = env.dir.path().join(format!(
        "out-{}",
        profile.file_stem().unwrap().to_string_lossy()
    ));
    run(pinode(env)
        .args(["render", "--profile"])
        .arg(profile)
        .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
        .arg(&out));
    out
}

fn manifest(boot: &Path) -> PathBuf {
    let found = files_named(boot, "pinode-gitlab-runner.yaml");
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn toml(text: &str) -> toml::Value {
    toml::from_str(text).unwrap()
}

#[test]
fn every_build_mode_renders_valid_manifests_with_known_values() {
    let env = UserEnv::new();
    let keys = ChartKeys::load("gitlab-runner", "0.86.0");
    for distribution in ["k3s", "kubeadm"] {
        for builds in ["buildkit", "kaniko", "dind"] {
            let extra = if builds == "dind" {
                "    privileged: true\n"
            } else {
                ""
            };
            let what = format!("{distribution} {builds}");
            let out = render(&env, &profile(&env, distribution, builds, extra));
            let boot = out.join("boot");
            let manifest = manifest(&boot);
            validate_manifest(&manifest);
            let docs = yaml_documents(&manifest);
            let chart = &docs[1];
            assert_eq!(chart["spec"]["version"], "0.86.0", "{what}");
            let values: serde_json::Value =
                serde_yaml::from_str(chart["spec"]["valuesContent"].as_str().unwrap()).unwrap();
            keys.assert_known(&values, &what);
            assert_eq!(values["nodeSelector"]["kubernetes.io/arch"], "arm64");
            let config = toml(values["runners"]["config"].as_str().unwrap());
            let k = &config["runners"][0]["kubernetes"];
            assert_eq!(
                k["node_selector"]["kubernetes.io/arch"].as_str(),
                Some("arm64")
            );
            assert_eq!(
                k["helper_image"].as_str(),
                Some(
                    "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:arm64-v${CI_RUNNER_VERSION}"
                ),
                "{what}"
            );
            assert_eq!(k["helper_image_autoset_arch_and_os"].as_bool(), Some(true));
            // Only dind is privileged, and then only the service (daemon) containers.
            let text = std::fs::read_to_string(&manifest).unwrap();
            assert!(k.get("privileged").is_none(), "{what}");
            assert_eq!(
                k.get("service_container_security_context")
                    .and_then(|c| c["privileged"].as_bool()),
                (builds == "dind").then_some(true),
                "{what}"
            );
            assert_eq!(k.get("volumes").is_some(), builds == "dind", "{what}");
            let apparmor = k
                .get("pod_annotations")
                .and_then(|a| a.get("container.apparmor.security.beta.kubernetes.io/build"))
                .and_then(|v| v.as_str());
            assert_eq!(
                apparmor,
                (builds == "buildkit").then_some("unconfined"),
                "{what}"
            );
            assert!(!text.contains("docker.sock"), "{what}");
            // The example job for the mode, against GitLab CI's own schema.
            let example = out.join(format!("gitlab-ci-{builds}.yml"));
            assert_schema("vendor.gitlab-ci", &example);
            let job = std::fs::read_to_string(&example).unwrap();
            assert!(job.contains("linux/arm64"), "{what}");
            assert_eq!(job.contains("dind"), builds == "dind", "{what}");
            // The token: only in its secret file.
            for file in walk(&boot) {
                let bytes = std::fs::read(&file).unwrap();
                let has = bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
                assert_eq!(
                    has,
                    file.ends_with("pinode/secrets/runner-token"),
                    "{what}: {}",
                    file.display()
                );
            }
            // The stage, every mode: shellcheck-clean.
            run(Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(boot.join("pinode/firstboot.sh")));
        }
    }
}

#[test]
fn dind_without_privileged_and_the_host_socket_are_refused_at_their_line() {
    let env = UserEnv::new();
    for (builds, extra, line, field, says) in [
        (
            "dind",
            "",
            16,
            "cluster.runner.builds",
            "say `privileged: true`",
        ),
        (
            "host-socket",
            "",
            16,
            "cluster.runner.builds",
            "whoever can use that socket is root on the node",
        ),
        (
            "kaniko",
            "    privileged: true\n",
            17,
            "cluster.runner.privileged",
            "only serves builds: dind",
        ),
    ] {
        let path = profile(&env, "k3s", builds, extra);
        let out = output(pinode(&env).args(["profile", "check"]).arg(&path));
        assert!(!out.status.success(), "{builds}");
        let err = stderr(&out);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            err.contains(&format!("{name}:{line}:")) && err.contains(field) && err.contains(says),
            "{builds}: {err}"
        );
    }
    // With privileged: true, dind is accepted with a warning.
    let path = profile(&env, "k3s", "dind", "    privileged: true\n");
    let err = stderr(&output(pinode(&env).args(["profile", "check"]).arg(&path)));
    assert!(err.contains("can take over the node"), "{err}");
}
