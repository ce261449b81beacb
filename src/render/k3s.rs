//! K3s and the CI runner: the files the second first-boot stage uses.
//!
//! Everything structured (the K3s config, the Kubernetes manifests, the runner's TOML) is
//! produced by serialisers, never by pasting strings: JSON for YAML (JSON is YAML, and every
//! string in it is quoted) and the `toml` crate for the runner configuration.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::RenderError;
use super::k3s_flags::{self, Command};
use crate::plan::cluster::K3sRole;
use crate::profile::schema::{K3sSpec, RunnerSpec};

/// Flags pinode sets itself from the profile; giving them in `server_args`/`agent_args` too
/// would contradict the plan.
pub const MANAGED_FLAGS: &[&str] = &[
    "token",
    "token-file",
    "server",
    "cluster-init",
    "node-name",
    "agent-token",
    "agent-token-file",
];

/// Namespace the runner lives in.
pub const RUNNER_NAMESPACE: &str = "gitlab-runner";
/// Name of the Secret holding the runner token (`runners.secret` in the chart).
pub const RUNNER_SECRET: &str = "gitlab-runner-token";

/// One node's part in the cluster, secrets resolved.
#[derive(Clone)]
pub struct NodeCluster {
    pub cluster: String,
    pub role: K3sRole,
    pub ha: bool,
    pub api: String,
    pub token: SecretString,
    pub k3s: K3sSpec,
    /// Only on the founder: the runner is installed once.
    pub runner: Option<RunnerPlan>,
}

/// The CI runner, token resolved.
#[derive(Clone)]
pub struct RunnerPlan {
    pub spec: RunnerSpec,
    /// A `glrt-` runner authentication token.
    pub token: SecretString,
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

/// Checks that K3s can parse `token` as a join token. The message never quotes the token.
///
/// The rule is K3s's own, read from k3s-io/k3s `pkg/clientaccess/token.go` (`parseToken`,
/// constants `tokenPrefix = "K10"` and `caHashLength = sha256.Size * 2`):
/// - a token without the `K10` prefix is a bare password (or a kubeadm bootstrap token) and
///   is accepted as long as it is not empty;
/// - with the prefix, the rest is split once at `::` into CA hash and credentials; a hash
///   that is not empty must be exactly 64 characters, or K3s stops with "invalid token CA
///   hash length". K3s compares it with the lower-case hex SHA-256 of the cluster CA
///   (`hashCA`, `hex.EncodeToString`), so anything but 64 lower-case hex digits can never
///   match: pinode asks for exactly that;
/// - the credentials are a bootstrap token (`abcdef.0123456789abcdef`) or `user:password`
///   with a non-empty password, else "invalid token format".
pub fn check_cluster_token(token: &str) -> Result<(), String> {
    const FULL: &str = "K10<64 hex digits of the CA hash>::<user>:<password>";
    let Some(rest) = token.strip_prefix("K10") else {
        return if token.is_empty() {
            Err("the cluster token is empty".into())
        } else {
            Ok(())
        };
    };
    let creds = match rest.split_once("::") {
        Some((hash, creds)) => {
            let hex = hash
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !hash.is_empty() && (hash.len() != 64 || !hex) {
                return Err(format!(
                    "the cluster token starts with K10, so K3s reads it as a full token \
                     {FULL}, but its CA hash has {} characters{}: K3s would refuse it \
                     (\"invalid token CA hash length\"). Use the whole token from the \
                     server's /var/lib/rancher/k3s/server/token, or a plain token without \
                     the K10 prefix",
                    hash.chars().count(),
                    if hash.len() == 64 {
                        " that are not all lower-case hex digits"
                    } else {
                        ""
                    }
                ));
            }
            creds
        }
        None => rest,
    };
    if is_bootstrap_token(creds) {
        return Ok(());
    }
    match creds.split_once(':') {
        Some((_user, password)) if !password.is_empty() => Ok(()),
        _ => Err(format!(
            "the cluster token starts with K10, so K3s reads it as a full token {FULL}, \
             but it has no <user>:<password> part: K3s would refuse it (\"invalid token \
             format\"). Use the whole token from the server's \
             /var/lib/rancher/k3s/server/token, or a plain token without the K10 prefix"
        )),
    }
}

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`, which K3s also accepts as the
/// credentials of a full token.
fn is_bootstrap_token(creds: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    creds
        .split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

/// `/etc/rancher/k3s/config.yaml` for a node (keys are the server/agent flags without dashes).
pub fn config_yaml(
    hostname: &str,
    node: &NodeCluster,
    token_file: &str,
) -> Result<String, RenderError> {
    let mut config = Map::new();
    config.insert("node-name".into(), json!(hostname));
    config.insert("token-file".into(), json!(token_file));
    let server = matches!(node.role, K3sRole::Founder | K3sRole::JoiningServer);
    if server {
        let mut sans = vec![hostname.to_string(), format!("{hostname}.local")];
        sans.extend(node.k3s.tls_san.iter().cloned());
        config.insert("tls-san".into(), json!(sans));
        // Admin credentials stay root's; the first-boot program copies them to the user.
        config.insert("write-kubeconfig-mode".into(), json!("0600"));
    }
    match node.role {
        K3sRole::Founder if node.ha => {
            config.insert("cluster-init".into(), json!(true));
        }
        K3sRole::Founder => {}
        K3sRole::JoiningServer | K3sRole::Agent => {
            config.insert("server".into(), json!(node.api));
        }
    }
    let (extra, command) = if server {
        (&node.k3s.server_args, Command::Server)
    } else {
        (&node.k3s.agent_args, Command::Agent)
    };
    merge_flags(&mut config, extra, command).map_err(RenderError)?;
    to_json(&Value::Object(config), "k3s config.yaml")
}

/// Adds the profile's extra arguments for `command` to a config map (checked against K3s's
/// flags, see [`k3s_flags`]). A flag given twice, or one that pinode already set as a list,
/// becomes a list.
fn merge_flags(
    config: &mut Map<String, Value>,
    args: &[String],
    command: Command,
) -> Result<(), String> {
    let parsed = k3s_flags::parse_args(args, command, MANAGED_FLAGS).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("argument {}: {}", e.index + 1, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    for (name, value) in parsed {
        match config.get_mut(&name) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = json!([first, value]);
            }
            None => {
                config.insert(name, value);
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct RunnerToml {
    runners: Vec<RunnerEntry>,
}

#[derive(Serialize)]
struct RunnerEntry {
    kubernetes: KubernetesExecutor,
}

#[derive(Serialize)]
struct KubernetesExecutor {
    namespace: String,
    image: String,
    /// Job pods (build and helper containers) on arm64 nodes, so the runner picks the arm64
    /// helper image: it would pick amd64 otherwise.
    node_selector: std::collections::BTreeMap<String, String>,
}

/// The runner's `config.toml` fragment (the chart's `runners.config`).
pub fn runner_toml(runner: &RunnerSpec) -> Result<String, RenderError> {
    let config = RunnerToml {
        runners: vec![RunnerEntry {
            kubernetes: KubernetesExecutor {
                namespace: RUNNER_NAMESPACE.into(),
                image: runner.default_image.clone(),
                node_selector: [("kubernetes.io/arch".to_string(), "arm64".to_string())].into(),
            },
        }],
    };
    toml::to_string(&config).map_err(|e| RenderError(format!("runner config: {e}")))
}

/// The chart values. Only keys that are valid with a `glrt-` token: no `tags`, `locked`,
/// `runUntagged`, `protected`, `maximumTimeout` or `runnerRegistrationToken`, which make
/// such a runner fail to start (they are set on the GitLab server now).
pub fn runner_values(runner: &RunnerSpec) -> Result<Value, RenderError> {
    Ok(json!({
        "gitlabUrl": runner.url,
        "concurrent": runner.concurrent,
        "rbac": {"create": true},
        "runners": {
            "secret": RUNNER_SECRET,
            "config": runner_toml(runner)?,
        },
    }))
}

/// `pinode-gitlab-runner.yaml` for the server's auto-deploy manifests directory: the
/// namespace and a `HelmChart` that K3s's Helm controller installs. The token Secret is
/// written by the node itself from its root-only copy of the token.
pub fn runner_manifest(runner: &RunnerSpec) -> Result<String, RenderError> {
    let values = to_json(&runner_values(runner)?, "runner values")?;
    // Plain YAML for the fixed parts; the one user value outside the values is JSON-quoted,
    // and the values are JSON in a literal block (JSON is YAML, and the block keeps it as is).
    let version = match &runner.chart_version {
        Some(v) => format!(
            "  version: {}\n",
            serde_json::to_string(v).map_err(|e| RenderError(e.to_string()))?
        ),
        None => String::new(),
    };
    let values_block: String = values.lines().map(|l| format!("    {l}\n")).collect();
    Ok(format!(
        "# Written by pinode: GitLab Runner (Kubernetes executor), installed by K3s's Helm controller.\n\
         # The token is in the Secret gitlab-runner-token, written on the node from its root-only copy.\n\
         apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {RUNNER_NAMESPACE}\n---\n\
         apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: gitlab-runner\n  namespace: kube-system\n\
         spec:\n  repo: https://charts.gitlab.io\n  chart: gitlab-runner\n{version}\
         \x20 targetNamespace: {RUNNER_NAMESPACE}\n  createNamespace: true\n  valuesContent: |-\n{values_block}"
    ))
}

/// The runner token, for the node to place in a Secret. Kept apart from every other file,
/// without a line break: the file is the token, byte for byte.
pub fn runner_token_file(runner: &RunnerPlan) -> Vec<u8> {
    runner.token.expose_secret().as_bytes().to_vec()
}

/// An example `.gitlab-ci.yml` job that builds and pushes an arm64 image on this runner with
/// BuildKit in rootless mode: no privileged pod, no Docker socket.
pub const BUILDKIT_EXAMPLE: &str = r#"# Build and push an arm64 image on the cluster's runner with BuildKit, rootless.
# Why not Docker-in-Docker: it needs privileged pods. Why not the host's Docker or containerd
# socket: whoever can use it is root on the node. Kaniko, the old answer, was archived in 2025.
# Rootless BuildKit needs unprivileged user namespaces (on by default in Raspberry Pi OS) and
# a job pod that is not confined by a seccomp or AppArmor profile (the K3s default).
build-image:
  stage: build
  image:
    name: moby/buildkit:rootless
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

fn to_json(value: &Value, what: &str) -> Result<String, RenderError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| RenderError(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner() -> RunnerSpec {
        RunnerSpec {
            kind: crate::profile::schema::RunnerKind::Gitlab,
            url: "https://gitlab.example.com".into(),
            token_env: Some("T".into()),
            token_file: None,
            chart_version: None,
            concurrent: 2,
            default_image: "alpine:3.20\" x".into(),
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
    fn flags_merge_into_the_config() {
        let mut config = Map::new();
        config.insert("tls-san".into(), json!(["a"]));
        merge_flags(
            &mut config,
            &[
                "--tls-san=b".into(),
                "--disable=traefik".into(),
                "--disable=servicelb".into(),
                "--secrets-encryption".into(),
            ],
            Command::Server,
        )
        .unwrap();
        assert_eq!(config["tls-san"], json!(["a", "b"]));
        assert_eq!(config["disable"], json!(["traefik", "servicelb"]));
        assert_eq!(config["secrets-encryption"], json!(true));
        let managed = merge_flags(&mut config, &["--token=x".into()], Command::Server);
        assert!(managed.unwrap_err().contains("set by pinode"));
        assert!(merge_flags(&mut config, &["disable=x".into()], Command::Server).is_err());
        assert!(merge_flags(&mut config, &["--disable=x".into()], Command::Agent).is_err());
    }

    #[test]
    fn cluster_tokens_follow_k3s_parse_token() {
        let hash = "0123456789abcdef".repeat(4);
        assert!(check_cluster_token(&format!("K10{hash}::server:secret")).is_ok());
        assert!(check_cluster_token(&format!("K10{hash}::abcdef.0123456789abcdef")).is_ok());
        assert!(check_cluster_token("K10::server:secret").is_ok());
        assert!(check_cluster_token("a-plain-token-of-any-form::x").is_ok());
        let short = check_cluster_token("K10cafe::server:x").unwrap_err();
        assert!(short.contains("4 characters"), "{short}");
        assert!(
            !short.contains("cafe"),
            "the token must not be quoted: {short}"
        );
        let upper = hash.to_uppercase();
        assert!(check_cluster_token(&format!("K10{upper}::server:x")).is_err());
        assert!(check_cluster_token(&format!("K10{hash}::server:")).is_err());
        assert!(check_cluster_token("K10nocolon").is_err());
        assert!(check_cluster_token("").is_err());
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
