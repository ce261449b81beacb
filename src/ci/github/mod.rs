//! GitHub Actions: Actions Runner Controller (ARC) with a runner scale set, from GitHub's two
//! OCI Helm charts: the controller (`gha-runner-scale-set-controller`, release `arc` in
//! `arc-systems`) and one scale set (`gha-runner-scale-set`, release `arc-runner-set` in
//! `arc-runners`), whose name workflows use in `runs-on:`.
//!
//! Sources (actions/actions-runner-controller, tag `gha-runner-scale-set-0.14.2`, commit
//! 9bb16ae49d0ce585d8e682aa7e2668a6e832d5d8): `charts/gha-runner-scale-set/values.yaml`
//! (`githubConfigSecret` as the name of a pre-defined Secret, l.33-44; its keys
//! `github_token` or `github_app_id`, `github_app_installation_id`, `github_app_private_key`;
//! `minRunners`/`maxRunners` l.61-65; `runnerScaleSetName` l.70; `containerMode` l.119-129;
//! `listenerTemplate` l.134; `template` l.305-420; `controllerServiceAccount` l.427-429),
//! `charts/gha-runner-scale-set/templates/autoscalingrunnerset.yaml` (every `template.spec`
//! key but containers, volumes, initContainers and serviceAccountName copied verbatim,
//! l.223-226; dind and kubernetes modes l.237-291), `templates/_helpers.tpl` (scale set name
//! at most 45 characters; the controller found by an install-time `lookup` unless
//! `controllerServiceAccount` is given), and the controller chart's `templates/_helpers.tpl`
//! (fullname `<release>-gha-rs-controller`). OCI references: ARC
//! `.github/workflows/gha-publish-chart.yaml` (`helm push … oci://ghcr.io/actions/actions-runner-controller-charts`).
//!
//! Everything structured is produced by serialisers (serde_json, serde_yaml); user strings
//! never reach YAML unquoted. Nothing here knows the profile, the plan or the renderer.

pub(crate) mod stage2;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::chart_source::{self, ChartPlacement};
use super::{BuildMode, CiError, Example, Runner, RunnerKind, RunnerSpec, SecretSlot, Workload};
use crate::engine::SpecProblem;

/// GitHub's settings in a runner mapping.
pub(crate) const KEYS: &[&str] = &[
    "url",
    "token_env",
    "token_file",
    "app_id",
    "installation_id",
    "private_key_env",
    "private_key_file",
    "chart_repo",
    "name",
    "min_runners",
    "max_runners",
];

/// Rootless BuildKit as a sidecar of the runner (default mode), Kaniko as the job container
/// (ARC's kubernetes mode), Docker-in-Docker (ARC's dind mode, written out with a pinned
/// image).
pub(crate) const BUILD_MODES: &[BuildMode] =
    &[BuildMode::Buildkit, BuildMode::Kaniko, BuildMode::Dind];

/// Both charts' version unless the profile names another (`chart_version` sets both): ARC
/// tag `gha-runner-scale-set-0.14.2`, `charts/*/Chart.yaml` (version and appVersion 0.14.2).
/// The controller image follows the chart's appVersion
/// (`ghcr.io/actions/gha-runner-scale-set-controller:0.14.2`, built for linux/arm64 by
/// `gha-publish-chart.yaml`).
pub const TESTED_CHART_VERSION: &str = "0.14.2";

/// The controller's Deployment: chart fullname `<release>-gha-rs-controller` for release
/// `arc` (controller chart `templates/_helpers.tpl`).
pub(crate) const WORKLOADS: &[Workload] = &[Workload {
    namespace: CONTROLLER_NAMESPACE,
    resource: "deployment",
    name: CONTROLLER_SERVICE_ACCOUNT,
}];

/// The controller's release (the HelmChart's name) and namespace.
const CONTROLLER_RELEASE: &str = "arc";
const CONTROLLER_NAMESPACE: &str = "arc-systems";
/// The controller's service account (= its fullname) for release `arc`.
const CONTROLLER_SERVICE_ACCOUNT: &str = "arc-gha-rs-controller";
/// The scale set's release and namespace.
const SCALE_SET_RELEASE: &str = "arc-runner-set";
pub(crate) const RUNNERS_NAMESPACE: &str = "arc-runners";
/// The Secret the node writes in `arc-runners` (`githubConfigSecret`).
pub(crate) const CONFIG_SECRET: &str = "pinode-github";

/// The scale set's name when the profile gives none.
pub const DEFAULT_NAME: &str = "pinode-arm64";
const DEFAULT_MIN_RUNNERS: u32 = 0;
const DEFAULT_MAX_RUNNERS: u32 = 3;

/// The runner image: actions/runner tag v2.336.0, `.github/workflows/release.yml` publishes
/// `ghcr.io/actions/actions-runner:<version>` for linux/amd64 and linux/arm64; it carries the
/// docker CLI 29.6.1 and buildx 0.35.0 (`images/Dockerfile`), no daemon.
pub const RUNNER_IMAGE: &str = "ghcr.io/actions/actions-runner:2.336.0";
/// Rootless BuildKit (moby/buildkit tag v0.32.2; `vX.Y.Z-rootless` naming from
/// `docs/images-readme.md`).
pub use crate::ci::BUILDKIT_IMAGE;
/// Where buildkitd listens: pod-local TCP (the pod's containers share one network namespace;
/// rootless BuildKit's network mode is host, `docs/rootless.md`). A Unix socket would need a
/// shared directory and group: buildkitd makes its default socket directory 0700.
pub const BUILDKIT_ADDR: &str = "tcp://127.0.0.1:1234";
/// Docker-in-Docker for builds: dind: the official image (docker-library/official-images
/// `library/docker` at commit 37079fb336f572a88700cf32e5e1f6be54a04e8f: `29.7.2-dind`,
/// architectures amd64, arm32v6, arm32v7, arm64v8).
pub use crate::ci::DIND_IMAGE;
/// Kaniko from the maintained fork (GoogleContainerTools/kaniko was archived in 2025).
pub use crate::ci::KANIKO_IMAGE;
/// The kubernetes-mode work volume's size (default storage class).
const WORK_VOLUME_SIZE: &str = "1Gi";

fn error(message: impl Into<String>) -> CiError {
    CiError::new(RunnerKind::Github, message)
}

fn arm64() -> Value {
    json!({"kubernetes.io/arch": "arm64"})
}

/// The scale set's name (what `runs-on:` uses).
pub(crate) fn scale_set_name(spec: &RunnerSpec) -> &str {
    spec.name.as_deref().unwrap_or(DEFAULT_NAME)
}

/// How the runner authenticates, from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    App,
    Token,
}

fn auth_of(spec: &RunnerSpec) -> Auth {
    let app = spec.app_id.is_some()
        || spec.installation_id.is_some()
        || spec.private_key_env.is_some()
        || spec.private_key_file.is_some();
    if app { Auth::App } else { Auth::Token }
}

/// Checks the organisation or repository URL: `https://HOST/ORG` or `https://HOST/ORG/REPO`
/// (github.com or a GitHub Enterprise Server host).
pub fn check_url(url: &str) -> Result<(), String> {
    let example = "the organisation or repository the runners serve, e.g. \
                   https://github.com/ORG or https://github.com/ORG/REPO (or your GitHub \
                   Enterprise Server's https://HOST/ORG[/REPO])";
    if url.starts_with("http://") {
        return Err(format!(
            "plain http is refused: the runners' credentials would travel unencrypted; {example}"
        ));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!("must be {example}"));
    };
    let mut parts = rest.split('/');
    let host = parts.next().unwrap_or_default();
    let path: Vec<&str> = parts.collect();
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    let segment_ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !host_ok || path.is_empty() || path.len() > 2 || !path.iter().all(|s| segment_ok(s)) {
        return Err(format!("must be {example}"));
    }
    if path[0] == "enterprises" {
        return Err(
            "enterprise-level runner scale sets are not offered by pinode (they need a classic \
             token with enterprise scope, which can administer every organisation); register \
             the runners with an organisation or repository: https://github.com/ORG[/REPO]"
                .into(),
        );
    }
    Ok(())
}

/// Checks a scale set name: at most 45 characters (the chart fails on more), letters,
/// digits, `-`, `_` and `.`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 45
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the runner scale set's name (what workflows give as `runs-on:`) must be 1 to 45 \
             letters, digits, '-', '_' or '.', e.g. {DEFAULT_NAME}"
        ))
    }
}

/// GitHub's value rules for the runner at `at`.
pub(crate) fn check(spec: &RunnerSpec, at: &str, out: &mut Vec<SpecProblem>) {
    match spec.url.as_deref().map(check_url) {
        None => out.push(SpecProblem::error(
            format!("{at}.url"),
            "the organisation or repository the runners serve, e.g. https://github.com/ORG or \
             https://github.com/ORG/REPO",
        )),
        Some(Ok(())) => {}
        Some(Err(message)) => out.push(SpecProblem::error(format!("{at}.url"), message)),
    }
    if let Some(name) = &spec.name
        && let Err(message) = check_name(name)
    {
        out.push(SpecProblem::error(format!("{at}.name"), message));
    }
    let min = spec.min_runners.unwrap_or(DEFAULT_MIN_RUNNERS);
    let max = spec.max_runners.unwrap_or(DEFAULT_MAX_RUNNERS);
    if max == 0 {
        out.push(SpecProblem::error(
            format!("{at}.max_runners"),
            "must be at least 1: with 0 no job ever runs",
        ));
    } else if min > max {
        let field = if spec.min_runners.is_some() {
            "min_runners"
        } else {
            "max_runners"
        };
        out.push(SpecProblem::error(
            format!("{at}.{field}"),
            format!("min_runners ({min}) is more than max_runners ({max})"),
        ));
    }
    let token = spec.token_env.is_some() || spec.token_file.is_some();
    if auth_of(spec) == Auth::App {
        if token {
            let field = if spec.token_env.is_some() {
                "token_env"
            } else {
                "token_file"
            };
            out.push(SpecProblem::error(
                format!("{at}.{field}"),
                "give either a GitHub App (app_id, installation_id, private_key_env or \
                 private_key_file) or a token (token_env or token_file), not both",
            ));
        }
        if spec.app_id.is_none() {
            out.push(SpecProblem::error(
                format!("{at}.app_id"),
                "a GitHub App login needs the App's id (App settings > General > App ID)",
            ));
        }
        if spec.installation_id.is_none() {
            out.push(SpecProblem::error(
                format!("{at}.installation_id"),
                "a GitHub App login needs the installation's id (the number at the end of the \
                 installation's settings URL, .../settings/installations/ID)",
            ));
        }
    }
}

/// A GitHub App login needs its private key; otherwise the token (missing: the profile
/// says give token_env or token_file). With both kinds of setting, both are resolved and
/// `check` refuses the mix.
pub(crate) fn secrets(spec: &RunnerSpec) -> Vec<SecretSlot> {
    match auth_of(spec) {
        Auth::App if spec.token_env.is_some() || spec.token_file.is_some() => {
            vec![SecretSlot::Token, SecretSlot::PrivateKey]
        }
        Auth::App => vec![SecretSlot::PrivateKey],
        Auth::Token => vec![SecretSlot::Token],
    }
}

/// Checks a secret's form; the message says what to create (never the value).
pub(crate) fn check_secret(slot: SecretSlot, value: &str) -> Result<(), String> {
    match slot {
        SecretSlot::Token => check_token(value),
        SecretSlot::PrivateKey => check_private_key(value),
        SecretSlot::AdminPassword => Err("a GitHub runner has no administrator password".into()),
    }
}

/// A personal access token: fine-grained (`github_pat_`, preferred: limited to one owner
/// and the permissions given) or classic (`ghp_`, accepted).
pub fn check_token(token: &str) -> Result<(), String> {
    let body = token
        .strip_prefix("github_pat_")
        .or_else(|| token.strip_prefix("ghp_"));
    if let Some(body) = body
        && body.len() >= 20
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Ok(());
    }
    let what = if token.starts_with("gho_")
        || token.starts_with("ghu_")
        || token.starts_with("ghs_")
        || token.starts_with("ghr_")
    {
        "an OAuth, App user or installation token, which expires within hours"
    } else {
        "not a GitHub personal access token"
    };
    Err(format!(
        "the token is {what}: create a fine-grained personal access token (github_pat_…, \
         preferred) for the organisation or repository, with the permission to manage its \
         self-hosted runners (organisation: Self-hosted runners read and write; repository: \
         Administration read and write), or a classic one (ghp_…); or use a GitHub App \
         (app_id, installation_id, private_key_file)"
    ))
}

/// A GitHub App's private key: the PEM file GitHub generates.
pub fn check_private_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    let ok = key.starts_with("-----BEGIN ")
        && key
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("PRIVATE KEY-----"))
        && key
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("-----END ") && l.ends_with("PRIVATE KEY-----"))
        && key.lines().count() > 2;
    if ok {
        Ok(())
    } else {
        Err(
            "the GitHub App's private key must be the PEM file GitHub generates (App settings \
             > General > Private keys > Generate a private key), from -----BEGIN RSA PRIVATE \
             KEY----- to its END line"
                .into(),
        )
    }
}

/// Why a build mode is not offered.
pub(crate) fn unsupported(_mode: BuildMode) -> &'static str {
    "not offered"
}

/// The controller chart's values: the controller pod on arm64 (its image, which the
/// listener pods use too, is published for linux/arm64).
pub(crate) fn controller_values() -> Value {
    json!({"nodeSelector": arm64()})
}

/// The runner pod's `template.spec` for `builds`.
fn runner_template(spec: &RunnerSpec) -> Value {
    let runner = json!({
        "name": "runner",
        "image": RUNNER_IMAGE,
        "command": ["/home/runner/run.sh"],
    });
    match spec.builds {
        BuildMode::Buildkit => {
            let mut runner = runner;
            runner["env"] = json!([{"name": "BUILDKIT_HOST", "value": BUILDKIT_ADDR}]);
            json!({
                "nodeSelector": arm64(),
                // A native sidecar (Kubernetes 1.29+): started, and ready, before the runner;
                // stopped with the pod when the runner exits.
                "initContainers": [{
                    "name": "buildkitd",
                    "image": BUILDKIT_IMAGE,
                    "args": ["--addr", BUILDKIT_ADDR, "--oci-worker-no-process-sandbox"],
                    "restartPolicy": "Always",
                    "securityContext": {
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "seccompProfile": {"type": "Unconfined"},
                        "appArmorProfile": {"type": "Unconfined"},
                    },
                    "startupProbe": {
                        "exec": {"command": ["buildctl", "--addr", BUILDKIT_ADDR, "debug", "workers"]},
                        "periodSeconds": 2,
                        "failureThreshold": 60,
                    },
                    "volumeMounts": [{"name": "buildkitd", "mountPath": "/home/user/.local/share/buildkit"}],
                }],
                "containers": [runner],
                "volumes": [{"name": "buildkitd", "emptyDir": {}}],
            })
        }
        // The chart's dind mode, written out (values.yaml l.312-366, `_helpers.tpl`
        // `dind-container` for Kubernetes 1.29+): the chart's own mode hard-codes the
        // unpinned `docker:dind`, this pins DIND_IMAGE.
        BuildMode::Dind => {
            let mut runner = runner;
            runner["env"] = json!([
                {"name": "DOCKER_HOST", "value": "unix:///var/run/docker.sock"},
                {"name": "RUNNER_WAIT_FOR_DOCKER_IN_SECONDS", "value": "120"},
            ]);
            runner["volumeMounts"] = json!([
                {"name": "work", "mountPath": "/home/runner/_work"},
                {"name": "dind-sock", "mountPath": "/var/run"},
            ]);
            json!({
                "nodeSelector": arm64(),
                "initContainers": [
                    {
                        "name": "init-dind-externals",
                        "image": RUNNER_IMAGE,
                        "command": ["cp", "-r", "/home/runner/externals/.", "/home/runner/tmpDir/"],
                        "volumeMounts": [{"name": "dind-externals", "mountPath": "/home/runner/tmpDir"}],
                    },
                    {
                        "name": "dind",
                        "image": DIND_IMAGE,
                        "args": ["dockerd", "--host=unix:///var/run/docker.sock", "--group=$(DOCKER_GROUP_GID)"],
                        "env": [{"name": "DOCKER_GROUP_GID", "value": "123"}],
                        "securityContext": {"privileged": true},
                        "restartPolicy": "Always",
                        "startupProbe": {
                            "exec": {"command": ["docker", "info"]},
                            "initialDelaySeconds": 0,
                            "failureThreshold": 24,
                            "periodSeconds": 5,
                        },
                        "volumeMounts": [
                            {"name": "work", "mountPath": "/home/runner/_work"},
                            {"name": "dind-sock", "mountPath": "/var/run"},
                            {"name": "dind-externals", "mountPath": "/home/runner/externals"},
                        ],
                    },
                ],
                "containers": [runner],
                "volumes": [
                    {"name": "work", "emptyDir": {}},
                    {"name": "dind-sock", "emptyDir": {}},
                    {"name": "dind-externals", "emptyDir": {}},
                ],
            })
        }
        // kubernetes mode: the chart adds the container hooks' env and the work volume.
        BuildMode::Kaniko | BuildMode::HostSocket => json!({
            "nodeSelector": arm64(),
            "containers": [runner],
        }),
    }
}

/// The scale set chart's values.
pub(crate) fn scale_set_values(spec: &RunnerSpec) -> Value {
    let mut values = json!({
        "githubConfigUrl": spec.url.as_deref().unwrap_or_default(),
        "githubConfigSecret": CONFIG_SECRET,
        "runnerScaleSetName": scale_set_name(spec),
        "minRunners": spec.min_runners.unwrap_or(DEFAULT_MIN_RUNNERS),
        "maxRunners": spec.max_runners.unwrap_or(DEFAULT_MAX_RUNNERS),
        // Given, so that the install needs no lookup of the controller's Deployment (which
        // fails while the controller is not installed yet).
        "controllerServiceAccount": {
            "namespace": CONTROLLER_NAMESPACE,
            "name": CONTROLLER_SERVICE_ACCOUNT,
        },
        "listenerTemplate": {"spec": {
            "nodeSelector": arm64(),
            "containers": [{"name": "listener"}],
        }},
        "template": {"spec": runner_template(spec)},
    });
    match spec.builds {
        BuildMode::Kaniko => {
            values["containerMode"] = json!({
                "type": "kubernetes",
                "kubernetesModeWorkVolumeClaim": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": WORK_VOLUME_SIZE}},
                },
            });
        }
        BuildMode::Buildkit | BuildMode::Dind | BuildMode::HostSocket => {}
    }
    values
}

/// One HelmChart: the chart named `chart` among `spec`'s sources, from its OCI repository
/// or embedded (`placement`).
fn helm_chart(
    name: &str,
    spec: &RunnerSpec,
    chart: &str,
    placement: &ChartPlacement,
    namespace: &str,
    values: &Value,
) -> Result<Value, CiError> {
    let values = serde_json::to_string_pretty(values).map_err(|e| error(format!("values: {e}")))?;
    let source = chart_source::sources_of(spec)
        .into_iter()
        .find(|s| s.chart == chart)
        .ok_or_else(|| error(format!("no chart {chart}")))?;
    let mut doc = json!({
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "targetNamespace": namespace,
            "createNamespace": true,
            "valuesContent": values + "\n",
        },
    });
    for (key, value) in chart_source::helm_chart_keys(&source, placement)? {
        doc["spec"][key] = Value::String(value);
    }
    Ok(doc)
}

/// `pinode-github-arc.yaml`: the controller's HelmChart, then the scale set's. Both are
/// installed by helm-controller jobs that run side by side: the scale set's install fails
/// until the controller's CRDs exist, and its job is retried (helm-controller's backOffLimit
/// 1000) until it succeeds. No lookup is needed: the controller's service account is given.
pub(crate) fn manifest(spec: &RunnerSpec, placement: &ChartPlacement) -> Result<String, CiError> {
    let docs = [
        helm_chart(
            CONTROLLER_RELEASE,
            spec,
            "gha-runner-scale-set-controller",
            placement,
            CONTROLLER_NAMESPACE,
            &controller_values(),
        )?,
        helm_chart(
            SCALE_SET_RELEASE,
            spec,
            "gha-runner-scale-set",
            placement,
            RUNNERS_NAMESPACE,
            &scale_set_values(spec),
        )?,
    ];
    let mut text = String::from(
        "# Written by pinode: GitHub Actions Runner Controller and its runner scale set,\n\
         # installed by the Helm controller. The credentials are in the Secret pinode-github\n\
         # (namespace arc-runners), written on the node from its root-only copies.\n",
    );
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_yaml::to_string(doc).map_err(|e| error(format!("manifest: {e}")))?);
    }
    Ok(text)
}

/// The secret files for the node, by their name among the stage's secrets (each the value
/// of one key of the Secret, byte for byte).
pub(crate) fn secret_files(runner: &Runner) -> Result<Vec<(&'static str, Vec<u8>)>, CiError> {
    let spec = runner.spec();
    match auth_of(spec) {
        Auth::Token => Ok(vec![(
            stage2::TOKEN,
            runner
                .required(SecretSlot::Token)?
                .expose_secret()
                .as_bytes()
                .to_vec(),
        )]),
        Auth::App => {
            let app_id = spec.app_id.ok_or_else(|| error("no app_id"))?;
            let installation = spec
                .installation_id
                .ok_or_else(|| error("no installation_id"))?;
            Ok(vec![
                (stage2::APP_ID, app_id.to_string().into_bytes()),
                (
                    stage2::INSTALLATION_ID,
                    installation.to_string().into_bytes(),
                ),
                (
                    stage2::PRIVATE_KEY,
                    runner
                        .required(SecretSlot::PrivateKey)?
                        .expose_secret()
                        .as_bytes()
                        .to_vec(),
                ),
            ])
        }
    }
}

/// The example workflow for the runner's build mode.
pub(crate) fn examples(spec: &RunnerSpec) -> Vec<Example> {
    let (text, about) = match spec.builds {
        BuildMode::Buildkit => (
            BUILDKIT_EXAMPLE,
            "example GitHub Actions workflow: arm64 images built by the runner's rootless BuildKit sidecar",
        ),
        BuildMode::Kaniko => (
            KANIKO_EXAMPLE,
            "example GitHub Actions workflow: arm64 images built by Kaniko as the job container",
        ),
        BuildMode::Dind => (
            DIND_EXAMPLE,
            "example GitHub Actions workflow: arm64 images built with Docker-in-Docker (privileged)",
        ),
        BuildMode::HostSocket => return Vec::new(),
    };
    // The name is JSON-quoted: a JSON string is a YAML scalar.
    let runs_on = serde_json::to_string(scale_set_name(spec)).unwrap_or_default();
    vec![Example {
        file_name: format!("github-workflow-{}.yml", spec.builds.as_str()),
        contents: text.replace("@RUNS_ON@", &runs_on),
        about,
    }]
}

/// Rootless BuildKit: buildx's remote driver talks to the pod's buildkitd sidecar.
pub const BUILDKIT_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's runners (pinode, builds: buildkit).
# The runner pod has a rootless BuildKit sidecar at tcp://127.0.0.1:1234 (BUILDKIT_HOST):
# no privileged pod, no Docker daemon; the runner image has the docker CLI and buildx.
name: image
on:
  push:
    branches: [main]
permissions:
  contents: read
  packages: write
jobs:
  build:
    runs-on: @RUNS_ON@
    steps:
      - uses: actions/checkout@v4
      - name: Use the pod's BuildKit
        run: docker buildx create --name pinode --driver remote "$BUILDKIT_HOST" --use
      - name: Log in to ghcr.io
        run: printf '%s' "$TOKEN" | docker login ghcr.io --username "$GITHUB_ACTOR" --password-stdin
        env:
          TOKEN: ${{ secrets.GITHUB_TOKEN }}
      - name: Build and push
        run: |
          image="ghcr.io/$(printf '%s' "$GITHUB_REPOSITORY" | tr '[:upper:]' '[:lower:]'):$GITHUB_SHA"
          docker buildx build --platform linux/arm64 --tag "$image" --push .
"#;

/// Kaniko: ARC's kubernetes mode runs the job in its own pod, from the job's container.
pub const KANIKO_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's runners (pinode, builds: kaniko).
# Every job needs a `container:` here (ARC's kubernetes mode): the job runs in its own pod.
# Kaniko from the maintained fork (the original project was archived in 2025); it builds
# without a daemon or privileges, but runs the Dockerfile's RUN steps as root in its pod.
name: image
on:
  push:
    branches: [main]
permissions:
  contents: read
  packages: write
jobs:
  build:
    runs-on: @RUNS_ON@
    container:
      image: ghcr.io/osscontainertools/kaniko:v1.28.3-debug
    steps:
      - name: Build and push with Kaniko
        env:
          TOKEN: ${{ secrets.GITHUB_TOKEN }}
        run: |
          image="ghcr.io/$(printf '%s' "$GITHUB_REPOSITORY" | tr '[:upper:]' '[:lower:]'):$GITHUB_SHA"
          auth=$(printf '%s:%s' "$GITHUB_ACTOR" "$TOKEN" | base64 | tr -d '\n')
          mkdir -p /kaniko/.docker
          printf '{"auths":{"ghcr.io":{"auth":"%s"}}}' "$auth" >/kaniko/.docker/config.json
          GIT_USERNAME=x-access-token GIT_PASSWORD="$TOKEN" /kaniko/executor \
            --context "git://github.com/$GITHUB_REPOSITORY.git#$GITHUB_REF#$GITHUB_SHA" \
            --custom-platform linux/arm64 \
            --destination "$image"
"#;

/// Docker-in-Docker: a privileged Docker daemon sidecar (the chart's dind mode), DOCKER_HOST set.
pub const DIND_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's runners (pinode, builds: dind).
# The runner pod has a privileged Docker daemon (DOCKER_HOST): any job can take over the
# node it runs on. Use builds: buildkit unless you need Docker itself.
name: image
on:
  push:
    branches: [main]
permissions:
  contents: read
  packages: write
jobs:
  build:
    runs-on: @RUNS_ON@
    steps:
      - uses: actions/checkout@v4
      - name: Log in to ghcr.io
        run: printf '%s' "$TOKEN" | docker login ghcr.io --username "$GITHUB_ACTOR" --password-stdin
        env:
          TOKEN: ${{ secrets.GITHUB_TOKEN }}
      - name: Build and push
        run: |
          image="ghcr.io/$(printf '%s' "$GITHUB_REPOSITORY" | tr '[:upper:]' '[:lower:]'):$GITHUB_SHA"
          docker buildx build --platform linux/arm64 --tag "$image" --push .
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunnerSpec {
        RunnerSpec {
            url: Some("https://github.com/acme".into()),
            token_env: Some("T".into()),
            ..RunnerSpec::new(RunnerKind::Github)
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://github.com/acme").is_ok());
        assert!(check_url("https://github.com/acme/app.web").is_ok());
        assert!(check_url("https://ghe.example.com/acme/app").is_ok());
        assert!(
            check_url("http://github.com/acme")
                .unwrap_err()
                .contains("plain http")
        );
        assert!(
            check_url("https://github.com/enterprises/big")
                .unwrap_err()
                .contains("enterprise")
        );
        for bad in [
            "https://github.com",
            "https://github.com/",
            "https://github.com/a/b/c",
            "github.com/a",
            "https://github.com/a b",
            "https://github.com/a?x=1",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_keys() {
        assert!(check_token("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz").is_ok());
        assert!(check_token("ghp_0123456789abcdefghijklmnopqrstuvwxyz").is_ok());
        let err = check_token("ghs_0123456789abcdefghijklmnopqrstuvwxyz").unwrap_err();
        assert!(
            err.contains("expires") && !err.contains("0123456789abc"),
            "{err}"
        );
        assert!(check_token("hunter2").unwrap_err().contains("fine-grained"));
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        assert!(check_private_key(key).is_ok());
        assert!(
            check_private_key("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----").is_err()
        );
    }

    #[test]
    fn auth_rules() {
        let mut out = Vec::new();
        check(&spec(), "r", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let app = RunnerSpec {
            app_id: Some(1),
            ..spec()
        };
        let mut out = Vec::new();
        check(&app, "r", &mut out);
        let fields: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["r.token_env", "r.installation_id"]);
        assert_eq!(secrets(&app), [SecretSlot::Token, SecretSlot::PrivateKey]);
        assert_eq!(secrets(&spec()), [SecretSlot::Token]);
    }

    #[test]
    fn the_values_pin_arm64_and_the_mode() {
        for mode in [BuildMode::Buildkit, BuildMode::Kaniko, BuildMode::Dind] {
            let v = scale_set_values(&RunnerSpec {
                builds: mode,
                ..spec()
            });
            assert_eq!(v["template"]["spec"]["nodeSelector"], arm64());
            assert_eq!(v["listenerTemplate"]["spec"]["nodeSelector"], arm64());
            assert_eq!(
                v["template"]["spec"]["containers"][0]["image"],
                RUNNER_IMAGE
            );
            assert_eq!(v["githubConfigSecret"], CONFIG_SECRET);
        }
        let kaniko = scale_set_values(&RunnerSpec {
            builds: BuildMode::Kaniko,
            ..spec()
        });
        assert_eq!(kaniko["containerMode"]["type"], "kubernetes");
    }
}
