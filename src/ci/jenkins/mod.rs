//! Jenkins: the chart `jenkins` from https://charts.jenkins.io (jenkinsci/helm-charts), a
//! controller StatefulSet whose Kubernetes cloud (configured by the chart's JCasC) starts one
//! agent pod per build, plus one pod template pinode adds for the runner's build mode
//! (`buildkit`, `kaniko` or `dind`).
//!
//! Sources (read at jenkinsci/helm-charts tag `jenkins-5.9.53`, commit
//! 22055414e808938d0fc0585c4920d57661acce90, unless said otherwise):
//! - `charts/jenkins/values.yaml`: `controller.admin` (l.85-103), `controller.installPlugins`
//!   and `installLatestPlugins` (l.420-424), `controller.nodeSelector` (l.676),
//!   `agent.nodeSelector` (l.1157), `agent.podTemplates` (l.1239-1262), `persistence`
//!   (l.1308-1351);
//! - `templates/secret.yaml` (no admin Secret with `existingSecret`) and
//!   `templates/jenkins-controller-statefulset.yaml` l.386-393 (the admin Secret is mounted
//!   only with `createSecret: true`, from `existingSecret` when set): so `existingSecret` with
//!   `createSecret` left true;
//! - `templates/_helpers.tpl` l.241-245: each `agent.podTemplates` value is run through Helm
//!   `tpl` and indented under the cloud's `templates:` (so no `{{`, and a YAML list item), and
//!   `agent.nodeSelector` is not applied to it (l.527-535), hence its own `nodeSelector`;
//! - jenkinsci/configuration-as-code-plugin `docs/features/secrets.adoc`: JCasC resolves
//!   `${...}`, `^${...}` escapes it;
//! - jenkinsci/kubernetes-plugin `PodTemplate.java` (fields `name`, `label`, `nodeSelector`
//!   as `k=v`, `yaml`, `yamlMergeStrategy`) and `examples/kaniko-declarative.groovy`,
//!   `examples/dind.groovy` (HEAD a82d78a0087e9eaa10ec2339b48891549345c1a4);
//! - moby/buildkit `examples/kubernetes/job.rootless.yaml` (HEAD 73ed6825, the securityContext
//!   and state volume of rootless BuildKit) and `examples/buildctl-daemonless/
//!   buildctl-daemonless.sh` (the only reader of `BUILDKITD_FLAGS`).
//!
//! Everything structured is produced by serialisers (serde_json, serde_yaml), never by pasting
//! profile strings into YAML. No secret is in any manifest here: the admin Secret is written
//! on the node (see `stage2`).

pub(crate) mod stage2;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{BuildMode, CiError, Example, Runner, RunnerKind, RunnerSpec, SecretSlot, Workload};
use crate::engine::{Distribution, SpecProblem};

/// This system's settings.
pub(crate) const KEYS: &[&str] = &[
    "admin_user",
    "admin_password_env",
    "admin_password_file",
    "storage_class",
    "storage_size",
    "chart_repo",
];

/// The build modes a Jenkins runner supports: each is one pod template of the cloud.
pub(crate) const BUILD_MODES: &[BuildMode] =
    &[BuildMode::Buildkit, BuildMode::Kaniko, BuildMode::Dind];

/// The chart version a runner gets unless the profile names another: 5.9.53 (appVersion
/// 2.568.2, Jenkins LTS), the newest `jenkins-*` tag of jenkinsci/helm-charts when pinode's
/// values were checked against its `charts/jenkins/values.yaml` (sha256 d226ed0c…).
pub const TESTED_CHART_VERSION: &str = "5.9.53";

/// The release's namespace.
pub(crate) const NAMESPACE: &str = "jenkins";
/// The Secret the node writes with the administrator's name and password.
pub(crate) const ADMIN_SECRET: &str = "jenkins-admin";
/// Its keys (the chart's defaults of `controller.admin.userKey` / `passwordKey`).
pub(crate) const USER_KEY: &str = "jenkins-admin-user";
pub(crate) const PASSWORD_KEY: &str = "jenkins-admin-password";

/// The controller's StatefulSet: release `jenkins` of chart `jenkins`, whose full name is
/// then `jenkins`.
pub(crate) const WORKLOADS: &[Workload] = &[Workload {
    namespace: NAMESPACE,
    resource: "statefulset",
    name: "jenkins",
}];

/// Rootless BuildKit (moby/buildkit, newest release tag v0.32.2, commit 991535e0; tag form
/// from `.github/workflows/buildkit.yml`).
pub use crate::ci::BUILDKIT_IMAGE;
/// Docker's daemon and client (one Docker version for every CI system, see `crate::ci`).
pub use crate::ci::DIND_IMAGE;
pub use crate::ci::DOCKER_CLI_IMAGE;
/// Kaniko from the maintained fork (the upstream project is archived); the `-debug` image has
/// the busybox shell the kubernetes plugin's `sh` steps need.
pub use crate::ci::KANIKO_IMAGE;

const ARM64: &str = "kubernetes.io/arch=arm64";

/// dind's socket, shared by the daemon and the client container only.
const DIND_SOCKET_DIR: &str = "/run/dind";
const DIND_SOCKET_URL: &str = "unix:///run/dind/docker.sock";
const DIND_HOST_FLAG: &str = "--host=unix:///run/dind/docker.sock";

fn error(message: impl Into<String>) -> CiError {
    CiError::new(RunnerKind::Jenkins, message)
}

/// The administrator's name (default admin).
pub(crate) fn admin_user(spec: &RunnerSpec) -> &str {
    spec.admin_user.as_deref().unwrap_or("admin")
}

/// The controller volume's size (default 8Gi, the chart's).
pub(crate) fn storage_size(spec: &RunnerSpec) -> &str {
    spec.storage_size.as_deref().unwrap_or("8Gi")
}

/// A Kubernetes quantity as a volume size: digits, an optional fraction, an optional
/// binary or decimal suffix, and more than zero.
fn is_quantity(s: &str) -> bool {
    let number_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let suffixes = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    !whole.is_empty()
        && parts.next().is_none()
        && fraction.is_none_or(|f| !f.is_empty())
        && suffixes.contains(&suffix)
        && number.chars().any(|c| c.is_ascii_digit() && c != '0')
}

/// A Kubernetes object name (DNS subdomain: lowercase letters, digits, `-` and `.`).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Jenkins's value rules for the runner at `at`.
pub(crate) fn check(spec: &RunnerSpec, at: &str, out: &mut Vec<SpecProblem>) {
    let user = admin_user(spec);
    let user_ok = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !user_ok {
        out.push(SpecProblem::error(
            format!("{at}.admin_user"),
            "must be a Jenkins user id: letters, digits, `.`, `_`, `@` or `-` (at most 64), e.g. admin",
        ));
    }
    if let Some(class) = &spec.storage_class
        && !is_dns_subdomain(class)
    {
        out.push(SpecProblem::error(
            format!("{at}.storage_class"),
            "must be a StorageClass name (lowercase letters, digits, `-` and `.`), e.g. local-path",
        ));
    }
    if !is_quantity(storage_size(spec)) {
        out.push(SpecProblem::error(
            format!("{at}.storage_size"),
            "must be a Kubernetes quantity above zero, e.g. 8Gi or 20Gi",
        ));
    }
}

/// A Jenkins runner needs the administrator's password.
pub(crate) fn secrets(_spec: &RunnerSpec) -> Vec<SecretSlot> {
    vec![SecretSlot::AdminPassword]
}

/// The administrator's password: at least 8 characters, on one line.
pub(crate) fn check_secret(_slot: SecretSlot, value: &str) -> Result<(), String> {
    if value.chars().count() >= 8 && !value.contains(['\n', '\r', '\0']) {
        return Ok(());
    }
    Err(
        "the Jenkins administrator's password must be at least 8 characters on one line (a \
         file's one trailing line break is dropped, any other is refused); create one with e.g. \
         `openssl rand -base64 24 | tr -d '\\n'`"
            .into(),
    )
}

/// Why a build mode is not offered: only the host's socket, which the common rule refuses.
pub(crate) fn unsupported(_mode: BuildMode) -> &'static str {
    "the node's container socket is never mounted into agent pods"
}

/// A warning about the controller's volume on `distribution`: where no default StorageClass
/// exists, the PersistentVolumeClaim stays Pending and so does Jenkins. The chart leaves
/// `storageClassName` out unless `persistence.storageClass` is set (`templates/home-pvc.yaml`),
/// which means the cluster's default class. (Distribution defaults: general knowledge, not
/// verified on a cluster here.)
pub(crate) fn storage_note(spec: &RunnerSpec, distribution: Distribution) -> Option<String> {
    if spec.storage_class.is_some() {
        return None;
    }
    match distribution {
        Distribution::K3s => None,
        Distribution::Microk8s => Some(
            "Jenkins keeps its home on a volume of the default StorageClass: on MicroK8s enable \
             the hostpath-storage addon (`microk8s enable hostpath-storage`), or set \
             storage_class, or Jenkins stays Pending"
                .into(),
        ),
        Distribution::Kubeadm => Some(
            "kubeadm clusters have no default StorageClass: set storage_class to a class you \
             install, or Jenkins's volume (and Jenkins) stays Pending"
                .into(),
        ),
    }
}

/// The name (and label) of the pod template for `mode`.
pub(crate) fn template_name(mode: BuildMode) -> &'static str {
    mode.as_str()
}

/// The agent pod (the template's `yaml`) for `mode`; the kubernetes plugin adds its `jnlp`
/// container.
fn agent_pod(mode: BuildMode) -> Result<Value, CiError> {
    let containers = match mode {
        // moby/buildkit examples/kubernetes/job.rootless.yaml: Unconfined seccomp and
        // AppArmor (the fields need Kubernetes 1.19 and 1.30), uid 1000, the state in an
        // emptyDir. The container idles (`cat` with a tty) and the build runs
        // buildctl-daemonless.sh, the only reader of BUILDKITD_FLAGS.
        BuildMode::Buildkit => json!([{
            "name": "buildkit",
            "image": BUILDKIT_IMAGE,
            "command": ["cat"],
            "tty": true,
            "env": [{"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"}],
            "securityContext": {
                "seccompProfile": {"type": "Unconfined"},
                "appArmorProfile": {"type": "Unconfined"},
                "runAsUser": 1000,
                "runAsGroup": 1000,
            },
            "volumeMounts": [{"name": "buildkitd", "mountPath": "/home/user/.local/share/buildkit"}],
        }]),
        // kubernetes-plugin examples/kaniko-declarative.groovy: the debug image, idling.
        BuildMode::Kaniko => json!([{
            "name": "kaniko",
            "image": KANIKO_IMAGE,
            "command": ["sleep"],
            "args": ["99d"],
        }]),
        // kubernetes-plugin examples/dind.groovy: a privileged daemon and a client. The
        // daemon listens only on a Unix socket in a volume the two containers share: the
        // image's entrypoint, given no command, would also listen on tcp://0.0.0.0:2375
        // without TLS (docker-library's dockerd-entrypoint.sh with DOCKER_TLS_CERTDIR empty),
        // a root shell on the node for any pod that reaches this one.
        BuildMode::Dind => json!([
            {
                "name": "docker",
                "image": DOCKER_CLI_IMAGE,
                "command": ["sleep"],
                "args": ["99d"],
                "env": [{"name": "DOCKER_HOST", "value": DIND_SOCKET_URL}],
                "volumeMounts": [{"name": "docker-socket", "mountPath": DIND_SOCKET_DIR}],
            },
            {
                "name": "dind",
                "image": DIND_IMAGE,
                "args": ["dockerd", DIND_HOST_FLAG],
                "securityContext": {"privileged": true},
                "volumeMounts": [
                    {"name": "docker", "mountPath": "/var/lib/docker"},
                    {"name": "docker-socket", "mountPath": DIND_SOCKET_DIR},
                ],
            },
        ]),
        BuildMode::HostSocket => {
            return Err(error(
                "builds: host-socket is refused (the node's socket is never mounted)",
            ));
        }
    };
    let volumes = match mode {
        BuildMode::Buildkit => json!([{"name": "buildkitd", "emptyDir": {}}]),
        BuildMode::Dind => json!([
            {"name": "docker", "emptyDir": {}},
            {"name": "docker-socket", "emptyDir": {}},
        ]),
        _ => json!([]),
    };
    let mut spec = json!({
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
        "containers": containers,
    });
    if volumes.as_array().is_some_and(|v| !v.is_empty()) {
        spec["volumes"] = volumes;
    }
    Ok(json!({"apiVersion": "v1", "kind": "Pod", "spec": spec}))
}

/// The `agent.podTemplates` entry for `mode`: JCasC YAML for one item of the cloud's
/// `templates`, which the chart passes through Helm `tpl`.
pub(crate) fn pod_template(mode: BuildMode) -> Result<String, CiError> {
    let pod =
        serde_yaml::to_string(&agent_pod(mode)?).map_err(|e| error(format!("agent pod: {e}")))?;
    let name = template_name(mode);
    let template = json!([{
        "name": name,
        "label": name,
        "nodeSelector": ARM64,
        "yamlMergeStrategy": "override",
        "yaml": pod,
    }]);
    let text = serde_yaml::to_string(&template).map_err(|e| error(format!("pod template: {e}")))?;
    jcasc_safe(&text)
}

/// `text` as JCasC that Helm's `tpl` keeps as is: `${` escaped as `^${` (JCasC would resolve
/// it), and no `{{` (Helm would run it).
fn jcasc_safe(text: &str) -> Result<String, CiError> {
    if text.contains("{{") || text.contains("}}") {
        return Err(error(
            "a pod template may not contain `{{` or `}}` (Helm tpl)",
        ));
    }
    Ok(text.replace("${", "^${"))
}

/// The chart values.
pub(crate) fn values(spec: &RunnerSpec) -> Result<Value, CiError> {
    let mode = spec.builds;
    let mut persistence = json!({"enabled": true, "size": storage_size(spec)});
    if let Some(class) = &spec.storage_class {
        persistence["storageClass"] = json!(class);
    }
    let mut templates = serde_json::Map::new();
    templates.insert(template_name(mode).into(), json!(pod_template(mode)?));
    Ok(json!({
        "controller": {
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "admin": {
                "existingSecret": ADMIN_SECRET,
                "userKey": USER_KEY,
                "passwordKey": PASSWORD_KEY,
                "createSecret": true,
            },
            // Plugins' dependencies at the versions the chart's pinned plugins require, not
            // the update site's newest of the day (jenkins-plugin-cli --latest false).
            "installLatestPlugins": false,
            "JCasC": {"defaultConfig": true},
        },
        "agent": {
            "enabled": true,
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "podTemplates": templates,
        },
        "persistence": persistence,
    }))
}

/// `pinode-jenkins.yaml`: the namespace and the HelmChart (kube-system, target namespace
/// `jenkins`), each document JSON (which is YAML, every string quoted).
pub(crate) fn manifest(
    spec: &RunnerSpec,
    placement: &crate::ci::chart_source::ChartPlacement,
) -> Result<String, CiError> {
    let values = serde_json::to_string_pretty(&values(spec)?)
        .map_err(|e| error(format!("chart values: {e}")))?;
    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE},
    });
    let mut chart = json!({
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": "jenkins", "namespace": "kube-system"},
        "spec": {
            "targetNamespace": NAMESPACE,
            "createNamespace": true,
            "valuesContent": values + "\n",
        },
    });
    let source =
        crate::ci::chart_source::source_of(spec).ok_or_else(|| error("no chart source"))?;
    for (key, value) in crate::ci::chart_source::helm_chart_keys(&source, placement)? {
        chart["spec"][key] = Value::String(value);
    }
    let docs = crate::engine::stage2::yaml_documents([&namespace, &chart])
        .map_err(|e| error(format!("manifest: {e}")))?;
    Ok(format!(
        "# Written by pinode: Jenkins (chart jenkins), installed by the Helm controller.\n\
         # The administrator's password is in the Secret {ADMIN_SECRET}, written on the node.\n{docs}"
    ))
}

/// The administrator's password, byte for byte, for the node to place in the Secret.
pub(crate) fn password_file(runner: &Runner) -> Result<Vec<u8>, CiError> {
    Ok(runner
        .required(SecretSlot::AdminPassword)?
        .expose_secret()
        .as_bytes()
        .to_vec())
}

/// The example pipeline for the runner's build mode.
pub(crate) fn examples(spec: &RunnerSpec) -> Vec<Example> {
    let (contents, about) = match spec.builds {
        BuildMode::Buildkit => (
            BUILDKIT_EXAMPLE,
            "example Jenkinsfile: arm64 images built with rootless BuildKit",
        ),
        BuildMode::Kaniko => (
            KANIKO_EXAMPLE,
            "example Jenkinsfile: arm64 images built with kaniko",
        ),
        BuildMode::Dind => (
            DIND_EXAMPLE,
            "example Jenkinsfile: arm64 images built with Docker-in-Docker (privileged)",
        ),
        BuildMode::HostSocket => return Vec::new(),
    };
    vec![Example {
        file_name: format!("Jenkinsfile.{}", spec.builds.as_str()),
        contents: contents.into(),
        about,
    }]
}

/// Declarative pipeline: rootless BuildKit in the `buildkit` pod template.
pub const BUILDKIT_EXAMPLE: &str = r#"// Builds and pushes an arm64 image with rootless BuildKit in the "buildkit" pod template
// pinode adds to Jenkins's Kubernetes cloud: the build runs as uid 1000 in a user namespace,
// with no extra privilege and no Docker socket.
// Registry login: a Jenkins credential of kind "Username with password" with the id
// "registry" (Manage Jenkins > Credentials). Set REGISTRY and IMAGE below.
pipeline {
  agent {
    kubernetes {
      inheritFrom 'buildkit'
      defaultContainer 'buildkit'
    }
  }
  environment {
    REGISTRY = 'registry.example.com'
    IMAGE = 'registry.example.com/me/app'
  }
  stages {
    stage('Build and push') {
      steps {
        checkout scm
        withCredentials([usernamePassword(credentialsId: 'registry', usernameVariable: 'REGISTRY_USER', passwordVariable: 'REGISTRY_PASSWORD')]) {
          sh '''
            mkdir -p "$HOME/.docker"
            auth=$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASSWORD" | base64 | tr -d '\n')
            printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$auth" > "$HOME/.docker/config.json"
            buildctl-daemonless.sh build \
              --frontend dockerfile.v0 \
              --local context=. \
              --local dockerfile=. \
              --opt platform=linux/arm64 \
              --output "type=image,name=$IMAGE:$GIT_COMMIT,push=true"
          '''
        }
      }
    }
  }
}
"#;

/// Declarative pipeline: kaniko in the `kaniko` pod template (checkout in `jnlp`, which has
/// git; the kaniko image has none).
pub const KANIKO_EXAMPLE: &str = r#"// Builds and pushes an arm64 image with kaniko (the maintained fork) in the "kaniko" pod
// template pinode adds to Jenkins's Kubernetes cloud: no extra privilege, no Docker socket.
// Registry login: a Jenkins credential of kind "Username with password" with the id
// "registry" (Manage Jenkins > Credentials). Set REGISTRY and IMAGE below.
pipeline {
  agent {
    kubernetes {
      inheritFrom 'kaniko'
    }
  }
  environment {
    REGISTRY = 'registry.example.com'
    IMAGE = 'registry.example.com/me/app'
  }
  stages {
    stage('Build and push') {
      steps {
        checkout scm
        container('kaniko') {
          withCredentials([usernamePassword(credentialsId: 'registry', usernameVariable: 'REGISTRY_USER', passwordVariable: 'REGISTRY_PASSWORD')]) {
            sh '''
              auth=$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASSWORD" | base64 | tr -d '\n')
              printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$auth" > /kaniko/.docker/config.json
              /kaniko/executor \
                --context "$PWD" \
                --dockerfile "$PWD/Dockerfile" \
                --custom-platform linux/arm64 \
                --destination "$IMAGE:$GIT_COMMIT"
            '''
          }
        }
      }
    }
  }
}
"#;

/// Declarative pipeline: Docker-in-Docker in the `dind` pod template (privileged).
pub const DIND_EXAMPLE: &str = r#"// Builds and pushes an arm64 image with Docker-in-Docker in the "dind" pod template pinode
// adds to Jenkins's Kubernetes cloud. Its daemon runs privileged: any pipeline can take over
// the node it runs on. Prefer builds: buildkit unless you need Docker itself.
// Registry login: a Jenkins credential of kind "Username with password" with the id
// "registry" (Manage Jenkins > Credentials). Set REGISTRY and IMAGE below.
pipeline {
  agent {
    kubernetes {
      inheritFrom 'dind'
    }
  }
  environment {
    REGISTRY = 'registry.example.com'
    IMAGE = 'registry.example.com/me/app'
  }
  stages {
    stage('Build and push') {
      steps {
        checkout scm
        container('docker') {
          withCredentials([usernamePassword(credentialsId: 'registry', usernameVariable: 'REGISTRY_USER', passwordVariable: 'REGISTRY_PASSWORD')]) {
            sh '''
              until docker info >/dev/null 2>&1; do sleep 1; done
              printf '%s' "$REGISTRY_PASSWORD" | docker login --username "$REGISTRY_USER" --password-stdin "$REGISTRY"
              docker build --platform linux/arm64 --tag "$IMAGE:$GIT_COMMIT" .
              docker push "$IMAGE:$GIT_COMMIT"
            '''
          }
        }
      }
    }
  }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: BuildMode) -> RunnerSpec {
        RunnerSpec {
            builds: mode,
            privileged: mode == BuildMode::Dind,
            admin_password_env: Some("P".into()),
            ..RunnerSpec::new(RunnerKind::Jenkins)
        }
    }

    #[test]
    fn quantities() {
        for ok in ["8Gi", "20Gi", "1.5Gi", "500M", "1000000000"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "0Gi", "8 Gi", "8gb", "Gi", "1..5Gi", "-1Gi", "8Gi\""] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_secret(SecretSlot::AdminPassword, "correct horse").is_ok());
        let short = check_secret(SecretSlot::AdminPassword, "hunter2").unwrap_err();
        assert!(short.contains("at least 8") && !short.contains("hunter2"));
        assert!(check_secret(SecretSlot::AdminPassword, "longenough\n").is_err());
    }

    #[test]
    fn pod_templates_are_one_jcasc_list_item_with_the_arm64_selector() {
        for mode in BUILD_MODES {
            let text = pod_template(*mode).unwrap();
            assert!(text.starts_with("- "), "{text}");
            assert!(!text.contains("{{"));
            let items: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(items[0]["name"].as_str(), Some(mode.as_str()));
            assert_eq!(items[0]["nodeSelector"].as_str(), Some(ARM64));
            let pod: serde_yaml::Value =
                serde_yaml::from_str(items[0]["yaml"].as_str().unwrap()).unwrap();
            assert_eq!(
                pod["spec"]["nodeSelector"]["kubernetes.io/arch"].as_str(),
                Some("arm64")
            );
            let privileged = text.contains("privileged");
            assert_eq!(privileged, *mode == BuildMode::Dind, "{text}");
        }
    }

    #[test]
    fn jcasc_escapes_interpolation_and_refuses_helm_templates() {
        assert_eq!(jcasc_safe("a ${B} c").unwrap(), "a ^${B} c");
        assert!(jcasc_safe("{{ .Values }}").is_err());
    }

    #[test]
    fn storage_notes() {
        let s = spec(BuildMode::Buildkit);
        assert!(storage_note(&s, Distribution::K3s).is_none());
        assert!(
            storage_note(&s, Distribution::Kubeadm)
                .unwrap()
                .contains("storage_class")
        );
        assert!(
            storage_note(&s, Distribution::Microk8s)
                .unwrap()
                .contains("hostpath-storage")
        );
        let classed = RunnerSpec {
            storage_class: Some("fast".into()),
            ..s
        };
        assert!(storage_note(&classed, Distribution::Kubeadm).is_none());
    }

    #[test]
    fn the_chart_is_pinned_and_values_are_quoted() {
        let s = RunnerSpec {
            storage_class: Some("x\"\ny: 1".into()),
            ..spec(BuildMode::Kaniko)
        };
        let text = manifest(&s, &Default::default()).unwrap();
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(
            docs[1]["spec"]["version"].as_str(),
            Some(TESTED_CHART_VERSION)
        );
        let values: serde_yaml::Value =
            serde_yaml::from_str(docs[1]["spec"]["valuesContent"].as_str().unwrap()).unwrap();
        assert_eq!(
            values["persistence"]["storageClass"].as_str(),
            Some("x\"\ny: 1")
        );
    }
}
