//! GitLab Runner: the token rule, and the files that install the runner on the cluster (the
//! runner's `config.toml` fragment, the Helm chart values and the manifest K3s's Helm
//! controller applies).
//!
//! Everything structured is produced by serialisers, never by pasting strings: JSON for YAML
//! and the `toml` crate for the runner configuration. Nothing here knows the profile, the plan
//! or the renderer.

pub(crate) mod stage2;

use secrecy::ExposeSecret;
use serde::Serialize;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{BuildMode, CiError, Example, Runner, RunnerKind, RunnerSpec, SecretSlot, Workload};
use crate::engine::SpecProblem;

/// GitLab's settings in a runner mapping.
pub(crate) const KEYS: &[&str] = &[
    "url",
    "token_env",
    "token_file",
    "concurrent",
    "default_image",
    "chart_repo",
];

/// The build modes a GitLab runner supports.
pub(crate) const BUILD_MODES: &[BuildMode] =
    &[BuildMode::Buildkit, BuildMode::Kaniko, BuildMode::Dind];

/// The runner manager's Deployment, as the chart (release `gitlab-runner`) names it.
pub(crate) const WORKLOADS: &[Workload] = &[Workload {
    namespace: RUNNER_NAMESPACE,
    resource: "deployment",
    name: "gitlab-runner",
}];

fn error(message: impl Into<String>) -> CiError {
    CiError::new(RunnerKind::Gitlab, message)
}

/// Namespace the runner lives in.
const RUNNER_NAMESPACE: &str = "gitlab-runner";
/// Name of the Secret holding the runner token (`runners.secret` in the chart).
const RUNNER_SECRET: &str = "gitlab-runner-token";

/// The gitlab-runner Helm chart version a runner gets unless the profile names another
/// (`cluster.runner.chart_version`): without a `version`, K3s's Helm controller installs
/// whatever the chart repository offers that day, so two clusters prepared from one profile
/// could run different runners. 0.86.0 (appVersion 18.9.0) is the version whose values
/// (`gitlabUrl`, `rbac.create`, `runners.secret`, `runners.config`, `concurrent`) pinode's
/// values were checked against: its published `values.yaml`, in the chart package
/// `gitlab-runner-0.86.0.tgz` from https://charts.gitlab.io.
pub const TESTED_CHART_VERSION: &str = "0.86.0";

/// The GitLab instance a runner registers with: an https:// URL, or an http:// one with a
/// warning (returned as `Ok(Some(warning))`: the runner token would travel unencrypted).
pub fn check_url(url: &str) -> Result<Option<String>, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !url.contains(char::is_whitespace) => Ok(url
            .starts_with("http://")
            .then(|| "plain http: the runner token travels unencrypted; use https".to_string())),
        _ => Err("must be the GitLab instance URL, e.g. https://gitlab.example.com".into()),
    }
}

/// GitLab's value rules for the runner at `at`.
pub(crate) fn check(spec: &RunnerSpec, at: &str, out: &mut Vec<SpecProblem>) {
    match spec.url.as_deref().map(check_url) {
        None => out.push(SpecProblem::error(
            format!("{at}.url"),
            "the GitLab instance the runner serves, e.g. https://gitlab.example.com",
        )),
        Some(Ok(None)) => {}
        Some(Ok(Some(warning))) => out.push(SpecProblem::warning(format!("{at}.url"), warning)),
        Some(Err(message)) => out.push(SpecProblem::error(format!("{at}.url"), message)),
    }
    if spec.concurrent == Some(0) {
        out.push(SpecProblem::error(
            format!("{at}.concurrent"),
            "must be at least 1",
        ));
    }
    let image = spec.default_image();
    if image.is_empty() || image.contains(char::is_whitespace) {
        out.push(SpecProblem::error(
            format!("{at}.default_image"),
            "must be an image reference such as alpine:3.20",
        ));
    }
}

/// A GitLab runner needs its glrt- authentication token.
pub(crate) fn secrets(_spec: &RunnerSpec) -> Vec<SecretSlot> {
    vec![SecretSlot::Token]
}

pub(crate) fn check_secret(_slot: SecretSlot, value: &str) -> Result<(), String> {
    check_runner_token(value)
}

/// Why a build mode is not offered: GitLab's runner offers them all.
pub(crate) fn unsupported(_mode: BuildMode) -> &'static str {
    "not offered"
}

/// The example job for the runner's build mode.
pub(crate) fn examples(spec: &RunnerSpec) -> Vec<Example> {
    let (contents, about) = match spec.builds {
        BuildMode::Buildkit => (
            BUILDKIT_EXAMPLE,
            "example GitLab CI job: arm64 images built rootless on this runner",
        ),
        BuildMode::Kaniko => (
            KANIKO_EXAMPLE,
            "example GitLab CI job: arm64 images built with Kaniko (maintained fork)",
        ),
        BuildMode::Dind => (
            DIND_EXAMPLE,
            "example GitLab CI job: arm64 images built with Docker-in-Docker (privileged)",
        ),
        BuildMode::HostSocket => return Vec::new(),
    };
    vec![Example {
        file_name: format!("gitlab-ci-{}.yml", spec.builds.as_str()),
        contents: contents.into(),
        about,
    }]
}

/// Checks a runner token's form. The message explains what to create instead.
pub fn check_runner_token(token: &str) -> Result<(), String> {
    if token.starts_with("glrt-") && token.len() > 10 && token.chars().all(|c| c.is_ascii_graphic())
    {
        return Ok(());
    }
    let kind = if token.starts_with("GR1348941") || token.starts_with("glrtr-") {
        "a runner registration token"
    } else {
        "not a runner authentication token"
    };
    Err(format!(
        "the runner token is {kind}: create the runner in GitLab (Settings > CI/CD > Runners > \
         New project runner, or the group/instance equivalent) and use its glrt- authentication \
         token; registration tokens are deprecated and disabled by default since GitLab 17.0, and \
         tags, locked and run-untagged are set on the runner in GitLab, not here"
    ))
}

#[derive(Serialize)]
struct RunnerToml {
    runners: Vec<RunnerEntry>,
}

#[derive(Serialize)]
struct RunnerEntry {
    kubernetes: KubernetesExecutor,
}

/// The helper image, pinned to arm64 and to the runner's own version: the runner picks
/// `x86_64-v…` by default whatever the node (gitlab-org/gitlab-runner#27768, #38819: "no
/// match for platform in manifest"), and helper tags are one architecture each. The runner
/// expands `${CI_RUNNER_VERSION}` itself (GitLab's "Helper image configuration for
/// Kubernetes on Arm", docs/configuration/advanced-configuration.md at v18.9.0), so the tag
/// follows the runner when the profile names another chart version.
const HELPER_IMAGE: &str =
    "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:arm64-v${CI_RUNNER_VERSION}";

/// The job pod's AppArmor profile for the build container, by the annotation: the runner of
/// the tested chart (18.9.0) has no `app_armor_profile` field (added in 18.11.0, commit
/// babc199b of gitlab-runner), and rootless BuildKit cannot mount its filesystems under the
/// container runtime's default profile. Kubernetes still honours the annotation (deprecated
/// since 1.30 for `securityContext.appArmorProfile`). Seccomp has no working annotation since
/// Kubernetes 1.27; pods run Unconfined unless the kubelet's `seccompDefault` is on, which
/// none of pinode's distributions turns on.
const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/build";

#[derive(Serialize)]
struct KubernetesExecutor {
    namespace: String,
    image: String,
    helper_image: &'static str,
    /// Also lets the runner pick the helper for the node's architecture when a job
    /// overrides the node selector.
    helper_image_autoset_arch_and_os: bool,
    /// Job pods (build and helper containers) on arm64 nodes.
    node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pod_annotations: BTreeMap<String, String>,
    /// dind: only the service containers (the Docker daemon) privileged, not the job's
    /// own build and helper containers: the per-container setting wins over the global
    /// one (gitlab-runner v18.9.0 common/config.go,
    /// `getContainerSecurityContextEffectiveFlagValue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    service_container_security_context: Option<Privileged>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volumes: Option<Volumes>,
}

#[derive(Serialize)]
struct Privileged {
    privileged: bool,
}

#[derive(Serialize)]
struct Volumes {
    empty_dir: Vec<EmptyDir>,
}

/// dind's TLS client certificates, shared by the daemon service and the job (GitLab's
/// "Docker-in-Docker with TLS enabled in Kubernetes").
#[derive(Serialize)]
struct EmptyDir {
    name: &'static str,
    mount_path: &'static str,
    medium: &'static str,
}

/// The runner's `config.toml` fragment (the chart's `runners.config`).
fn runner_toml(runner: &RunnerSpec) -> Result<String, CiError> {
    let dind = runner.builds == BuildMode::Dind;
    let mut pod_annotations = BTreeMap::new();
    if runner.builds == BuildMode::Buildkit {
        pod_annotations.insert(APPARMOR_ANNOTATION.to_string(), "unconfined".to_string());
    }
    let config = RunnerToml {
        runners: vec![RunnerEntry {
            kubernetes: KubernetesExecutor {
                namespace: RUNNER_NAMESPACE.into(),
                image: runner.default_image().to_string(),
                helper_image: HELPER_IMAGE,
                helper_image_autoset_arch_and_os: true,
                node_selector: arm64(),
                pod_annotations,
                service_container_security_context: dind.then_some(Privileged { privileged: true }),
                volumes: dind.then(|| Volumes {
                    empty_dir: vec![EmptyDir {
                        name: "docker-certs",
                        mount_path: "/certs/client",
                        medium: "Memory",
                    }],
                }),
            },
        }],
    };
    toml::to_string(&config).map_err(|e| error(format!("runner config: {e}")))
}

fn arm64() -> BTreeMap<String, String> {
    [("kubernetes.io/arch".to_string(), "arm64".to_string())].into()
}

/// The chart values. Only keys that are valid with a `glrt-` token: no `tags`, `locked`,
/// `runUntagged`, `protected`, `maximumTimeout` or `runnerRegistrationToken`, which make
/// such a runner fail to start (they are set on the GitLab server now).
fn runner_values(runner: &RunnerSpec) -> Result<Value, CiError> {
    Ok(json!({
        "gitlabUrl": runner.url.as_deref().unwrap_or_default(),
        "concurrent": runner.concurrent(),
        "rbac": {"create": true},
        // The runner manager on arm64 too: helper_image_autoset_arch_and_os follows the
        // manager's own architecture.
        "nodeSelector": arm64(),
        "runners": {
            "secret": RUNNER_SECRET,
            "config": runner_toml(runner)?,
        },
    }))
}

/// `pinode-gitlab-runner.yaml` for the server's auto-deploy manifests directory: the
/// namespace and a `HelmChart` that K3s's Helm controller installs. The token Secret is
/// written by the node itself from its root-only copy of the token.
fn runner_manifest(
    runner: &RunnerSpec,
    placement: &crate::ci::chart_source::ChartPlacement,
) -> Result<String, CiError> {
    let values = to_json(&runner_values(runner)?, "runner values")?;
    // Plain YAML for the fixed parts; the user values outside the values (the chart's
    // repository and version, or its embedded archive) are JSON-quoted, and the values are
    // JSON in a literal block (JSON is YAML, and the block keeps it as is).
    let source =
        crate::ci::chart_source::source_of(runner).ok_or_else(|| error("no chart source"))?;
    let mut chart = String::new();
    for (key, value) in crate::ci::chart_source::helm_chart_keys(&source, placement)? {
        let value = serde_json::to_string(&value).map_err(|e| error(e.to_string()))?;
        chart.push_str(&format!("  {key}: {value}\n"));
    }
    let values_block: String = values.lines().map(|l| format!("    {l}\n")).collect();
    Ok(format!(
        "# Written by pinode: GitLab Runner (Kubernetes executor), installed by K3s's Helm controller.\n\
         # The token is in the Secret gitlab-runner-token, written on the node from its root-only copy.\n\
         apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {RUNNER_NAMESPACE}\n---\n\
         apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: gitlab-runner\n  namespace: kube-system\n\
         spec:\n{chart}\
         \x20 targetNamespace: {RUNNER_NAMESPACE}\n  createNamespace: true\n  valuesContent: |-\n{values_block}"
    ))
}

/// The runner token, for the node to place in a Secret. Kept apart from every other file,
/// without a line break: the file is the token, byte for byte.
fn runner_token_file(runner: &Runner) -> Result<Vec<u8>, CiError> {
    Ok(runner
        .required(SecretSlot::Token)?
        .expose_secret()
        .as_bytes()
        .to_vec())
}

/// An example `.gitlab-ci.yml` job that builds and pushes an arm64 image on this runner with
/// BuildKit in rootless mode: no privileged pod, no Docker socket. `entrypoint: [""]`: the
/// image's own entrypoint starts a daemon and the job would hang (gitlab-org/gitlab#549941).
pub const BUILDKIT_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's runner with BuildKit, rootless.
# Why not Docker-in-Docker: it needs privileged pods. Why not the host's Docker or containerd
# socket: whoever can use it is root on the node. Kaniko, the old answer, was archived in 2025.
# Rootless BuildKit needs unprivileged user namespaces (pinode checks each node at first boot)
# and a build container without AppArmor confinement (pinode's runner config sets it).
build-image:
  stage: build
  image:
    name: moby/buildkit:v0.32.2-rootless
    entrypoint: [""]
  variables:
    BUILDKITD_FLAGS: --oci-worker-no-process-sandbox
  before_script:
    - mkdir -p ~/.docker
    - printf '{"auths":{"%s":{"username":"%s","password":"%s"}}}' "$CI_REGISTRY" "$CI_REGISTRY_USER" "$CI_REGISTRY_PASSWORD" > ~/.docker/config.json
  script:
    - >-
      buildctl-daemonless.sh build
      --frontend dockerfile.v0
      --local context=.
      --local dockerfile=.
      --opt platform=linux/arm64
      --output type=image,name=$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA,push=true
"#;

/// The Kaniko job: the maintained fork osscontainertools/kaniko (the upstream project was
/// archived in June 2025), whose images are built for arm64 too (its
/// .github/workflows/images.yaml at v1.28.3). The debug image has the shell GitLab needs;
/// its built-in `gitlab` credential helper logs in with `CI_REGISTRY_USER` and
/// `CI_REGISTRY_PASSWORD` (pkg/creds/creds.go).
pub const KANIKO_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's runner with Kaniko (the maintained fork
# osscontainertools/kaniko; the original project was archived in June 2025).
# Kaniko needs no privileged pod, but it runs as root inside its container and unpacks the
# build into the container's own filesystem: one build per job, no multi-stage cache between
# jobs unless --cache-repo is given, and Dockerfile features newer than Kaniko's (BuildKit's
# RUN --mount, heredocs) do not work.
build-image:
  stage: build
  image:
    name: ghcr.io/osscontainertools/kaniko:v1.28.3-debug
    entrypoint: [""]
  script:
    - >-
      /kaniko/executor
      --context "$CI_PROJECT_DIR"
      --dockerfile "$CI_PROJECT_DIR/Dockerfile"
      --destination "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
      --custom-platform linux/arm64
"#;

/// The Docker-in-Docker job, with TLS between the job and the daemon (GitLab's "Use Docker
/// to build Docker images", Kubernetes section): the certificates land in the runner's
/// `docker-certs` emptyDir; the Kubernetes executor runs no entrypoint, so the job sets the
/// client variables itself and waits for the daemon (gitlab-org/gitlab-runner#27384).
pub const DIND_EXAMPLE: &str = r#"# Build and push an arm64 image with Docker-in-Docker. The Docker daemon runs as a
# privileged service container: any job on this runner can take over the node it runs on.
build-image:
  stage: build
  image: docker:29.7.2-cli
  services:
    - name: docker:29.7.2-dind
      alias: docker
      variables:
        HEALTHCHECK_TCP_PORT: "2376"
  variables:
    DOCKER_HOST: tcp://docker:2376
    DOCKER_TLS_CERTDIR: "/certs"
    DOCKER_TLS_VERIFY: 1
    DOCKER_CERT_PATH: "$DOCKER_TLS_CERTDIR/client"
  before_script:
    - until docker info >/dev/null 2>&1; do sleep 1; done
    - echo "$CI_REGISTRY_PASSWORD" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
  script:
    - docker build --platform linux/arm64 -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA" .
    - docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
"#;

fn to_json(value: &Value, what: &str) -> Result<String, CiError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| error(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn runner() -> RunnerSpec {
        RunnerSpec {
            url: Some("https://gitlab.example.com".into()),
            token_env: Some("T".into()),
            default_image: Some("alpine:3.20\" x".into()),
            ..RunnerSpec::new(RunnerKind::Gitlab)
        }
    }

    #[test]
    fn runner_toml_quotes_values() {
        let toml = runner_toml(&runner()).unwrap();
        let parsed: toml::Value = toml::from_str(&toml).unwrap();
        let k = &parsed["runners"][0]["kubernetes"];
        assert_eq!(k["image"].as_str(), Some("alpine:3.20\" x"));
        assert_eq!(
            k["node_selector"]["kubernetes.io/arch"].as_str(),
            Some("arm64")
        );
    }

    #[test]
    fn the_chart_is_pinned_unless_the_profile_names_a_version() {
        let chart = |spec: &RunnerSpec| {
            let manifest = runner_manifest(spec, &Default::default()).unwrap();
            let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&manifest)
                .map(|d| serde_yaml::Value::deserialize(d).unwrap())
                .collect();
            docs[1]["spec"]["version"].as_str().map(str::to_string)
        };
        assert_eq!(chart(&runner()).as_deref(), Some(TESTED_CHART_VERSION));
        let pinned = RunnerSpec {
            chart_version: Some("0.80.1".into()),
            ..runner()
        };
        assert_eq!(chart(&pinned).as_deref(), Some("0.80.1"));
    }

    #[test]
    fn runner_tokens() {
        assert!(check_runner_token("glrt-abcdefghijkl").is_ok());
        assert!(
            check_runner_token("GR1348941abcdef")
                .unwrap_err()
                .contains("registration token")
        );
        assert!(check_runner_token("hunter2").is_err());
    }
}
