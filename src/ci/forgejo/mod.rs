//! Forgejo runner (`forgejo-runner`): the settings' rules, and the plain manifests that run
//! one runner on the cluster (Forgejo publishes no Helm chart for it, only raw-manifest
//! examples: forgejo/runner `examples/kubernetes/`).
//!
//! Sources (read in the GitHub mirror `project-mirrors/forgejo-runner`, commit
//! 0988a0cb1e0b9019fcac16d4eb1d3f1203977ca0, Go module `code.forgejo.org/forgejo/runner/v12`):
//! - `internal/app/cmd/cmd.go`, `register.go`: `register --no-interactive --instance --token
//!   --name`; no `--token-file` and no environment variable for the token, so the token is an
//!   argument of the short-lived registering process; labels from the config file win over
//!   `--labels`.
//! - `internal/app/cmd/daemon.go`: the daemon needs the registration file (`runner.file`,
//!   rewritten at every start, so on a writable volume) and checks for Docker only when a
//!   label has the `docker` schema; `container.docker_host` can only mount unix sockets.
//! - `internal/pkg/labels/labels.go`: labels are `NAME:host` (jobs as processes in the
//!   runner's container) or `NAME:docker://IMAGE`.
//! - `internal/pkg/config/config.example.yaml`: `runner.capacity`, `runner.labels`,
//!   `runner.envs`, `container.*`, `host.workdir_parent`, `cache.dir`.
//! - `Dockerfile`: alpine with git and bash, `USER 1000:1000`, `HOME=/data`, no node.
//! - `examples/kubernetes/dind-docker.yaml`: the privileged `docker:dind` sidecar with TLS
//!   certificates in a shared volume, `DOCKER_HOST=tcp://localhost:2376`, jobs on the host
//!   network with `/certs/client` mounted.
//! - `examples/docker-compose/compose-forgejo-and-runner.yml`: image
//!   `code.forgejo.org/forgejo/runner:12.0.1`.
//!
//! Rootless BuildKit as a sidecar: moby/buildkit
//! `examples/kubernetes/deployment+service.rootless.yaml` (commit
//! cdef71b12a23bae5c693d6649ff1ca30b5ed9514): uid 1000, `--oci-worker-no-process-sandbox`,
//! seccomp and AppArmor unconfined.
//!
//! Every manifest and the runner's `config.yaml` are produced by serialisers (serde_json
//! values written by serde_yaml); user values reach the registering shell only through
//! environment variables.

pub(crate) mod stage2;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{BuildMode, CiError, Example, Runner, RunnerKind, RunnerSpec, SecretSlot, Workload};
use crate::engine::SpecProblem;

/// This system's settings.
pub(crate) const KEYS: &[&str] = &[
    "url",
    "token_env",
    "token_file",
    "name",
    "concurrent",
    "default_image",
];

/// buildkit: `host` labels and a rootless BuildKit sidecar; dind: `docker://` labels on a
/// privileged Docker-in-Docker sidecar. Kaniko is refused ([`unsupported`]).
pub(crate) const BUILD_MODES: &[BuildMode] = &[BuildMode::Buildkit, BuildMode::Dind];

/// The runner image's version (there is no chart): `code.forgejo.org/forgejo/runner:12.0.1`,
/// the version upstream's compose example pins at the mirror commit above. Later versions
/// (up to 13.2.0) were seen only in third-party files, so they are not the default; a
/// profile's `chart_version` names another image tag.
pub const TESTED_CHART_VERSION: &str = "12.0.1";

/// The runner image, without its tag.
pub(crate) const RUNNER_IMAGE: &str = "code.forgejo.org/forgejo/runner";
/// Rootless BuildKit, for the buildkit sidecar and the `buildctl` it gives jobs.
pub use crate::ci::BUILDKIT_IMAGE;
/// The Docker daemon of dind mode (one Docker version for every CI system; it is also the
/// base of gitea/runner's own dind image, `Dockerfile` at tag v3.3.0).
pub use crate::ci::DIND_IMAGE;
/// The image of `docker://` jobs unless the profile names another: Debian with Node, which
/// JavaScript actions (checkout and most others) need. The runner's own default for a bare
/// label is node:22-bookworm (labels.go `ArgDocker`); Node 20 reached its end of life in
/// April 2026.
pub(crate) const DEFAULT_JOB_IMAGE: &str = "node:22-bookworm";

/// Namespace, Deployment and Secret names.
pub(crate) const NAMESPACE: &str = "forgejo-runner";
pub(crate) const DEPLOYMENT: &str = "forgejo-runner";
pub(crate) const SECRET: &str = "forgejo-runner-token";
/// The key of the token in the Secret.
pub(crate) const SECRET_KEY: &str = "token";
const CONFIG_MAP: &str = "forgejo-runner-config";
const DATA_CLAIM: &str = "forgejo-runner-data";

/// The label workflows name in `runs-on:` in each build mode.
pub(crate) const HOST_LABEL: &str = "pinode-arm64-host";
pub(crate) const DOCKER_LABEL: &str = "pinode-arm64-docker";

/// Where jobs find `buildctl` in buildkit mode, and where BuildKit listens (inside the pod
/// only).
const BUILDCTL_DIR: &str = "/opt/buildkit/bin";
const BUILDKIT_HOST: &str = "tcp://127.0.0.1:1234";

/// The runner's Deployment.
pub(crate) const WORKLOADS: &[Workload] = &[Workload {
    namespace: NAMESPACE,
    resource: "deployment",
    name: DEPLOYMENT,
}];

fn error(message: impl Into<String>) -> CiError {
    CiError::new(RunnerKind::Forgejo, message)
}

/// The runner's name in Forgejo: the profile's, else `pinode`.
pub(crate) fn runner_name(spec: &RunnerSpec) -> &str {
    spec.name.as_deref().unwrap_or("pinode")
}

/// The image of `docker://` jobs (dind mode).
pub(crate) fn job_image(spec: &RunnerSpec) -> &str {
    spec.default_image.as_deref().unwrap_or(DEFAULT_JOB_IMAGE)
}

/// The Forgejo instance: https://, or http:// with a warning (`Ok(Some(warning))`).
pub fn check_url(url: &str) -> Result<Option<String>, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && !host.starts_with('/')
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(url.starts_with("http://").then(|| {
                "plain http: the registration token and every job's token travel unencrypted; \
                 use https"
                    .to_string()
            }))
        }
        _ => Err("must be the Forgejo instance URL, e.g. https://forgejo.example.com".into()),
    }
}

/// Forgejo's value rules for the runner at `at`.
pub(crate) fn check(spec: &RunnerSpec, at: &str, out: &mut Vec<SpecProblem>) {
    // `chart_version` is the runner image's tag here, and a tag has no `+`.
    if spec
        .chart_version
        .as_deref()
        .is_some_and(|v| v.contains('+'))
    {
        out.push(SpecProblem::error(
            format!("{at}.chart_version"),
            "the Forgejo runner's version is its image tag (e.g. 12.0.1), which cannot contain `+`",
        ));
    }
    match spec.url.as_deref().map(check_url) {
        None => out.push(SpecProblem::error(
            format!("{at}.url"),
            "the Forgejo instance the runner registers with, e.g. https://forgejo.example.com",
        )),
        Some(Ok(None)) => {}
        Some(Ok(Some(warning))) => out.push(SpecProblem::warning(format!("{at}.url"), warning)),
        Some(Err(message)) => out.push(SpecProblem::error(format!("{at}.url"), message)),
    }
    if spec.concurrent == Some(0) {
        out.push(SpecProblem::error(
            format!("{at}.concurrent"),
            "must be at least 1 (the number of jobs the runner takes at once)",
        ));
    }
    if let Some(name) = &spec.name
        && (name.is_empty()
            || name.len() > 255
            || name.starts_with(' ')
            || name.ends_with(' ')
            || name.chars().any(char::is_control))
    {
        out.push(SpecProblem::error(
            format!("{at}.name"),
            "must be a runner name on one line, without leading or trailing spaces, e.g. pinode",
        ));
    }
    if let Some(image) = &spec.default_image {
        if image.is_empty() || image.contains(char::is_whitespace) || image.contains(',') {
            out.push(SpecProblem::error(
                format!("{at}.default_image"),
                format!("must be an image reference such as {DEFAULT_JOB_IMAGE}"),
            ));
        } else if spec.builds != BuildMode::Dind {
            out.push(SpecProblem::warning(
                format!("{at}.default_image"),
                "unused: with builds: buildkit, jobs run in the runner's own container (host \
                 labels); default_image is the job image of builds: dind",
            ));
        }
    }
}

/// The runner needs its registration token.
pub(crate) fn secrets(_spec: &RunnerSpec) -> Vec<SecretSlot> {
    vec![SecretSlot::Token]
}

/// A registration token: one line of printable characters. Forgejo's registration token
/// form is not pinned down in the sources read here (only `create-runner-file`'s shared
/// secret is: 40 hex characters), so this checks that it can be a token, not its exact form.
pub(crate) fn check_secret(_slot: SecretSlot, value: &str) -> Result<(), String> {
    const HOW: &str = "create it in Forgejo under Site administration, an organisation's or a \
                       repository's Settings > Actions > Runners > Create new runner, and use \
                       the registration token shown there";
    if value.starts_with("glrt-") || value.starts_with("ghp_") || value.starts_with("github_pat_") {
        return Err(format!(
            "the token is a GitLab or GitHub token, not a Forgejo runner registration token: {HOW}"
        ));
    }
    let value = value.strip_suffix('\n').unwrap_or(value);
    if value.len() < 16 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "the token is not a Forgejo runner registration token (one line of at least 16 \
             printable characters, no spaces): {HOW}"
        ));
    }
    Ok(())
}

/// Why a build mode is not offered.
pub(crate) fn unsupported(mode: BuildMode) -> &'static str {
    match mode {
        BuildMode::Kaniko => {
            "kaniko only works as the job container's own image, and the Forgejo runner runs \
             job containers only through a container daemon, which on Kubernetes means \
             privileged Docker-in-Docker (use builds: dind with privileged: true, or buildkit); \
             the runner has no Kubernetes backend"
        }
        _ => "not offered",
    }
}

/// The example workflow for the runner's build mode.
pub(crate) fn examples(spec: &RunnerSpec) -> Vec<Example> {
    match spec.builds {
        BuildMode::Buildkit => vec![Example {
            file_name: "forgejo-workflow-buildkit.yml".into(),
            contents: BUILDKIT_EXAMPLE.replace("@LABEL@", HOST_LABEL),
            about: "example Forgejo Actions workflow: an arm64 image built with rootless BuildKit on this runner",
        }],
        BuildMode::Dind => vec![Example {
            file_name: "forgejo-workflow-dind.yml".into(),
            contents: DIND_EXAMPLE.replace("@LABEL@", DOCKER_LABEL),
            about: "example Forgejo Actions workflow: an arm64 image built with Docker-in-Docker on this runner",
        }],
        _ => Vec::new(),
    }
}

/// The runner's labels: what `runs-on:` names, and how such jobs run.
fn labels(spec: &RunnerSpec) -> Vec<String> {
    match spec.builds {
        BuildMode::Dind => vec![format!("{DOCKER_LABEL}:docker://{}", job_image(spec))],
        _ => vec![format!("{HOST_LABEL}:host")],
    }
}

/// The runner's `config.yaml` (forgejo-runner `generate-config`'s keys).
pub(crate) fn runner_config(spec: &RunnerSpec) -> Result<String, CiError> {
    let mut config = json!({
        "log": {"level": "info"},
        "runner": {
            // On the volume: the daemon rewrites it at every start.
            "file": "/data/.runner",
            "capacity": spec.concurrent(),
            "labels": labels(spec),
        },
        // Job workspaces and the action cache on the pod's scratch volume, not the small
        // registration volume ($HOME is /data in the image).
        "cache": {"dir": "/workspace/cache"},
        "host": {"workdir_parent": "/workspace/host"},
    });
    match spec.builds {
        BuildMode::Dind => {
            // As Forgejo's dind example: job containers on the Docker daemon's network
            // (the pod's), reaching it on localhost with the client certificates.
            config["runner"]["envs"] = json!({
                "DOCKER_HOST": "tcp://localhost:2376",
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": "/certs/client",
            });
            config["container"] = json!({
                "network": "host",
                "options": "-v /certs/client:/certs/client:ro",
                "valid_volumes": ["/certs/client"],
                "privileged": false,
                "docker_host": "-",
            });
        }
        _ => {
            config["runner"]["envs"] = json!({"BUILDKIT_HOST": BUILDKIT_HOST});
        }
    }
    serde_yaml::to_string(&config).map_err(|e| error(format!("runner config: {e}")))
}

/// The hardened security context of the runner's own containers (Forgejo's example's).
fn restricted() -> Value {
    json!({
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Registers once: only when the volume has no registration file. The token comes from the
/// Secret through the environment; forgejo-runner's `register` takes it only as an argument,
/// so it is visible in this short-lived process's command line.
const REGISTER_SCRIPT: &str = r#"if [ -s /data/.runner ]; then echo "already registered"; exit 0; fi
exec forgejo-runner --config /etc/forgejo-runner/config.yaml register --no-interactive --instance "$FORGEJO_INSTANCE" --name "$FORGEJO_RUNNER_NAME" --token "$FORGEJO_RUNNER_TOKEN"
"#;

/// The daemon, after the Docker daemon answers (dind mode).
const DAEMON_AFTER_DOCKER: &str = r#"until [ -f /certs/client/ca.pem ] && nc -z localhost 2376; do sleep 1; done
exec forgejo-runner --config /etc/forgejo-runner/config.yaml daemon
"#;

/// The runner's Deployment.
fn deployment(spec: &RunnerSpec) -> Value {
    let image = format!("{RUNNER_IMAGE}:{}", spec.chart_version());
    let mut volumes = vec![
        json!({"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}),
        json!({"name": "config", "configMap": {"name": CONFIG_MAP}}),
        json!({"name": "workspace", "emptyDir": {}}),
        json!({"name": "tmp", "emptyDir": {}}),
    ];
    let mut runner_mounts = vec![
        json!({"name": "data", "mountPath": "/data"}),
        json!({"name": "config", "mountPath": "/etc/forgejo-runner", "readOnly": true}),
        json!({"name": "workspace", "mountPath": "/workspace"}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let register = json!({
        "name": "register",
        "image": image,
        "command": ["/bin/sh", "-c", REGISTER_SCRIPT],
        "env": [
            {"name": "FORGEJO_INSTANCE", "value": spec.url.as_deref().unwrap_or_default()},
            {"name": "FORGEJO_RUNNER_NAME", "value": runner_name(spec)},
            {"name": "FORGEJO_RUNNER_TOKEN", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": SECRET_KEY}}},
        ],
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": "/etc/forgejo-runner", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": restricted(),
    });
    let mut init = vec![register];
    let mut containers = Vec::new();
    match spec.builds {
        BuildMode::Dind => {
            volumes.push(json!({"name": "docker-certs", "emptyDir": {}}));
            runner_mounts
                .push(json!({"name": "docker-certs", "mountPath": "/certs", "readOnly": true}));
            containers.push(json!({
                "name": "runner",
                "image": image,
                "command": ["/bin/sh", "-c", DAEMON_AFTER_DOCKER],
                "env": [
                    {"name": "DOCKER_HOST", "value": "tcp://localhost:2376"},
                    {"name": "DOCKER_TLS_VERIFY", "value": "1"},
                    {"name": "DOCKER_CERT_PATH", "value": "/certs/client"},
                ],
                "volumeMounts": runner_mounts,
                "securityContext": restricted(),
            }));
            containers.push(json!({
                "name": "docker",
                "image": DIND_IMAGE,
                "env": [{"name": "DOCKER_TLS_CERTDIR", "value": "/certs"}],
                "volumeMounts": [
                    {"name": "docker-certs", "mountPath": "/certs"},
                    {"name": "docker-data", "mountPath": "/var/lib/docker"},
                ],
                "securityContext": {"privileged": true},
            }));
            volumes.push(json!({"name": "docker-data", "emptyDir": {}}));
        }
        _ => {
            volumes.push(json!({"name": "buildctl", "emptyDir": {}}));
            volumes.push(json!({"name": "buildkit-state", "emptyDir": {}}));
            init.push(json!({
                "name": "buildctl",
                "image": BUILDKIT_IMAGE,
                "command": ["cp", "/usr/bin/buildctl", format!("{BUILDCTL_DIR}/buildctl")],
                "volumeMounts": [{"name": "buildctl", "mountPath": BUILDCTL_DIR}],
                "securityContext": restricted(),
            }));
            runner_mounts
                .push(json!({"name": "buildctl", "mountPath": BUILDCTL_DIR, "readOnly": true}));
            containers.push(json!({
                "name": "runner",
                "image": image,
                "command": ["forgejo-runner", "--config", "/etc/forgejo-runner/config.yaml", "daemon"],
                "env": [
                    {"name": "BUILDKIT_HOST", "value": BUILDKIT_HOST},
                    {"name": "PATH", "value": format!("{BUILDCTL_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")},
                ],
                "volumeMounts": runner_mounts,
                "securityContext": restricted(),
            }));
            containers.push(json!({
                "name": "buildkitd",
                "image": BUILDKIT_IMAGE,
                "args": [
                    "--addr", "unix:///run/user/1000/buildkit/buildkitd.sock",
                    "--addr", BUILDKIT_HOST,
                    "--oci-worker-no-process-sandbox",
                ],
                "volumeMounts": [
                    {"name": "buildkit-state", "mountPath": "/home/user/.local/share/buildkit"},
                ],
                // Rootless BuildKit makes user namespaces and mounts in them: the default
                // seccomp and AppArmor profiles forbid that. Not privileged.
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "seccompProfile": {"type": "Unconfined"},
                    "appArmorProfile": {"type": "Unconfined"},
                },
            }));
        }
    }
    let labels = json!({"app.kubernetes.io/name": DEPLOYMENT});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            // One registration file, one runner: never two pods on the volume.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/arch": "arm64"},
                    "automountServiceAccountToken": false,
                    "securityContext": {"fsGroup": 1000},
                    "initContainers": init,
                    "containers": containers,
                    "volumes": volumes,
                },
            },
        },
    })
}

/// `pinode-forgejo-runner.yaml`: namespace, registration volume, configuration and
/// Deployment. The token Secret is written by the node from its root-only copy.
pub(crate) fn runner_manifest(spec: &RunnerSpec) -> Result<String, CiError> {
    let docs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": DATA_CLAIM, "namespace": NAMESPACE},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            "data": {"config.yaml": runner_config(spec)?},
        }),
        deployment(spec),
    ];
    let mut out = format!(
        "# Written by pinode: the Forgejo runner ({} builds), applied by the distribution.\n\
         # The registration token is in the Secret {SECRET}, written on the node from its root-only copy.\n",
        spec.builds().as_str()
    );
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(doc).map_err(|e| error(format!("manifest: {e}")))?);
    }
    Ok(out)
}

/// The registration token, byte for byte, for the node to place in a Secret.
pub(crate) fn token_file(runner: &Runner) -> Result<Vec<u8>, CiError> {
    Ok(runner
        .required(SecretSlot::Token)?
        .expose_secret()
        .as_bytes()
        .to_vec())
}

/// buildkit mode's example: `run:` steps only (no Node in the runner image, so no JavaScript
/// action such as checkout), cloning with the job's token and building with `buildctl`.
pub const BUILDKIT_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's Forgejo runner with rootless BuildKit.
# Put it in .forgejo/workflows/. Jobs run as processes in the runner's own container (a host
# label): no privileged pod, no container daemon, but also no Node (JavaScript actions such as
# checkout do not run here), and no `container:` or `services:`. BuildKit listens beside the
# runner; buildctl is on PATH. REGISTRY_TOKEN: a secret you create (a token allowed to write
# packages), for Forgejo's container registry.
on: [push]
jobs:
  build-image:
    runs-on: @LABEL@
    steps:
      - name: clone
        env:
          TOKEN: ${{ github.token }}
        run: |
          auth=$(printf 'x-access-token:%s' "$TOKEN" | base64 | tr -d '\n')
          git -c "http.extraHeader=Authorization: Basic $auth" clone --depth 1 "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git" src
          git -C src checkout "$GITHUB_SHA" 2>/dev/null || git -C src fetch --depth 1 origin "$GITHUB_SHA"
      - name: build and push
        env:
          REGISTRY_USER: ${{ github.actor }}
          REGISTRY_TOKEN: ${{ secrets.REGISTRY_TOKEN }}
        run: |
          registry=${GITHUB_SERVER_URL#*://}
          image=$(printf '%s/%s' "$registry" "$GITHUB_REPOSITORY" | tr '[:upper:]' '[:lower:]'):${GITHUB_SHA}
          mkdir -p "$HOME/.docker"
          auth=$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_TOKEN" | base64 | tr -d '\n')
          printf '{"auths":{"%s":{"auth":"%s"}}}' "$registry" "$auth" >"$HOME/.docker/config.json"
          export PATH="/opt/buildkit/bin:$PATH"
          buildctl build \
            --frontend dockerfile.v0 \
            --local context=src \
            --local dockerfile=src \
            --opt platform=linux/arm64 \
            --output "type=image,name=$image,push=true"
"#;

/// dind mode's example: a Node job image, so actions run; Docker through the sidecar.
pub const DIND_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's Forgejo runner with Docker-in-Docker.
# Put it in .forgejo/workflows/. The job runs in a container of the runner's default image on
# a privileged Docker daemon beside the runner (a job can take over the node). DOCKER_HOST and
# the client certificates are set for every job. REGISTRY_TOKEN: a secret you create (a token
# allowed to write packages), for Forgejo's container registry.
on: [push]
jobs:
  build-image:
    runs-on: @LABEL@
    steps:
      - uses: actions/checkout@v4
      - name: docker client
        run: apt-get update && apt-get install -y --no-install-recommends docker.io
      - name: build and push
        env:
          REGISTRY_USER: ${{ github.actor }}
          REGISTRY_TOKEN: ${{ secrets.REGISTRY_TOKEN }}
        run: |
          registry=${GITHUB_SERVER_URL#*://}
          image=$(printf '%s/%s' "$registry" "$GITHUB_REPOSITORY" | tr '[:upper:]' '[:lower:]'):${GITHUB_SHA}
          printf '%s' "$REGISTRY_TOKEN" | docker login "$registry" -u "$REGISTRY_USER" --password-stdin
          docker build --platform linux/arm64 -t "$image" .
          docker push "$image"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(builds: BuildMode) -> RunnerSpec {
        RunnerSpec {
            url: Some("https://forgejo.example.com".into()),
            token_env: Some("T".into()),
            name: Some("it's \"quoted\": yes".into()),
            builds,
            privileged: builds == BuildMode::Dind,
            ..RunnerSpec::new(RunnerKind::Forgejo)
        }
    }

    fn docs(text: &str) -> Vec<serde_yaml::Value> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(text)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect()
    }

    #[test]
    fn user_values_are_quoted_and_the_config_parses() {
        let manifest = runner_manifest(&spec(BuildMode::Buildkit)).unwrap();
        let docs = docs(&manifest);
        assert_eq!(docs.len(), 4);
        let pod = &docs[3]["spec"]["template"]["spec"];
        let env = &pod["initContainers"][0]["env"];
        assert_eq!(env[1]["value"].as_str(), Some("it's \"quoted\": yes"));
        assert_eq!(
            pod["nodeSelector"]["kubernetes.io/arch"].as_str(),
            Some("arm64")
        );
        let config: serde_yaml::Value =
            serde_yaml::from_str(docs[2]["data"]["config.yaml"].as_str().unwrap()).unwrap();
        assert_eq!(config["runner"]["capacity"].as_u64(), Some(2));
        assert_eq!(
            config["runner"]["labels"][0].as_str(),
            Some("pinode-arm64-host:host")
        );
    }

    #[test]
    fn dind_jobs_use_the_default_image() {
        let config: serde_yaml::Value =
            serde_yaml::from_str(&runner_config(&spec(BuildMode::Dind)).unwrap()).unwrap();
        assert_eq!(
            config["runner"]["labels"][0].as_str(),
            Some("pinode-arm64-docker:docker://node:22-bookworm")
        );
    }

    #[test]
    fn tokens_and_urls() {
        assert!(
            check_secret(
                SecretSlot::Token,
                "0123456789abcdef0123456789abcdef01234567"
            )
            .is_ok()
        );
        assert!(check_secret(SecretSlot::Token, "glrt-abcdefghijklmnop").is_err());
        assert!(check_secret(SecretSlot::Token, "short").is_err());
        assert!(check_secret(SecretSlot::Token, "two words here, long enough").is_err());
        assert!(check_url("https://forgejo.example.com").unwrap().is_none());
        assert!(check_url("http://forgejo.example.com").unwrap().is_some());
        assert!(check_url("forgejo.example.com").is_err());
        assert!(check_url("https://").is_err());
    }
}
