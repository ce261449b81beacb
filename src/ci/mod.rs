//! CI systems whose runners pinode installs on the cluster: GitLab, Jenkins, GitHub Actions
//! and Forgejo.
//!
//! A profile's `cluster.runner` is one runner or a list of them ([`Runners`]), at most one per
//! CI system. Every runner has the same shape ([`RunnerSpec`]): the CI system (`kind`), how
//! its jobs build container images (`builds`, [`BuildMode`]) and the settings of its system;
//! a setting of another system is refused by name. Each system is one module with the same
//! functions, called from the `match`es here:
//!
//! - `KEYS` (its settings), `BUILD_MODES`, `check` (its value rules) and `secrets` (which
//!   secrets it needs, with `check_secret` for their form): what `profile check` enforces;
//! - `stage2::glue` (the shell code every cluster node's second first-boot stage carries)
//!   and `stage2::files` (the runner's files for the boot partition): a `HelmChart` or plain
//!   manifests in the distribution's auto-applied manifest directory
//!   ([`crate::engine::stage2::AutoManifests`]), and its secrets, which the node turns into
//!   Kubernetes Secrets from its root-only copies (no manifest on the FAT holds a secret);
//! - `examples` (a pipeline for its build mode, written by `pinode render`) and `WORKLOADS`
//!   (what `pinode status` waits for).
//!
//! This layer sits below the profile and the plan: it imports neither.

pub mod chart_source;
pub mod forgejo;
pub mod github;
pub mod gitlab;
pub mod jenkins;
pub(crate) mod oci_pull;
pub(crate) mod stage2;

use std::borrow::Cow;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bootfs::content::BootFile;
use crate::engine::SpecProblem;
use crate::engine::stage2::{AutoManifests, StageContext};

/// Rootless BuildKit, the default build mode of every CI system (moby/buildkit's newest
/// release, v0.32.2).
pub const BUILDKIT_IMAGE: &str = "moby/buildkit:v0.32.2-rootless";
/// Kaniko from the maintained fork osscontainertools/kaniko (the original was archived in June
/// 2025), the debug image (with the shell CI jobs need), built for arm64 by the fork's
/// .github/workflows/images.yaml at v1.28.3.
pub const KANIKO_IMAGE: &str = "ghcr.io/osscontainertools/kaniko:v1.28.3-debug";
/// Docker-in-Docker and its client, one Docker version for every CI system (arm64v8 listed
/// for it in docker-library/official-images `library/docker`).
pub const DIND_IMAGE: &str = "docker:29.7.2-dind";
pub const DOCKER_CLI_IMAGE: &str = "docker:29.7.2-cli";

/// The profile's `cluster.runner`: one runner (a mapping) or several (a list).
#[derive(Debug, Clone, Default)]
pub struct Runners {
    items: Vec<RunnerSpec>,
    /// Written as a list: fields are `cluster.runner[i].x`, not `cluster.runner.x`.
    listed: bool,
}

impl Runners {
    /// One runner, written as a mapping.
    pub fn one(spec: RunnerSpec) -> Runners {
        Runners {
            items: vec![spec],
            listed: false,
        }
    }

    /// Each runner with the profile path of its mapping (`cluster.runner`,
    /// `cluster.runner[1]`).
    pub fn entries(&self) -> impl Iterator<Item = (String, &RunnerSpec)> {
        self.items.iter().enumerate().map(|(i, spec)| {
            let at = if self.listed {
                format!("cluster.runner[{i}]")
            } else {
                "cluster.runner".to_string()
            };
            (at, spec)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &RunnerSpec> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether any runner builds images with rootless BuildKit: every node then checks at
    /// first boot that it allows what rootless BuildKit needs (job pods run on any node).
    pub fn rootless_builds(&self) -> bool {
        self.items.iter().any(|r| r.builds == BuildMode::Buildkit)
    }
}

impl<'de> Deserialize<'de> for Runners {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Runners, D::Error> {
        struct OneOrList;
        impl<'de> serde::de::Visitor<'de> for OneOrList {
            type Value = Runners;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a runner (a mapping with `kind`) or a list of runners")
            }
            // Through the same map and sequence accessors, so that a wrong field inside is
            // reported at its own path and line.
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Runners, A::Error> {
                RunnerSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Runners::one)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Runners, A::Error> {
                Vec::<RunnerSpec>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(|items| Runners {
                        items,
                        listed: true,
                    })
            }
        }
        deserializer.deserialize_any(OneOrList)
    }
}

impl Serialize for Runners {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.listed, self.items.as_slice()) {
            (false, [one]) => one.serialize(serializer),
            _ => self.items.serialize(serializer),
        }
    }
}

impl JsonSchema for Runners {
    fn schema_name() -> Cow<'static, str> {
        "Runners".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = generator.subschema_for::<RunnerSpec>();
        let list = generator.subschema_for::<Vec<RunnerSpec>>();
        schemars::json_schema!({
            "description": "One runner, or a list of runners (at most one per CI system).",
            "anyOf": [one, list]
        })
    }
}

/// One runner of `cluster.runner`: the CI system, how its jobs build images, and the
/// settings of that system (the others' are refused). Secrets come from `*_env` (an
/// environment variable) or `*_file` (a file), never from the profile itself.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnerSpec {
    /// The CI system: gitlab, jenkins, github or forgejo.
    pub(crate) kind: RunnerKind,
    /// How jobs build container images: buildkit (rootless, the default), kaniko, or dind
    /// (Docker-in-Docker: privileged pods, with `privileged: true`).
    #[serde(default, skip_serializing_if = "BuildMode::is_default")]
    pub(crate) builds: BuildMode,
    /// Allows privileged job pods; required by, and only allowed with, `builds: dind`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) privileged: bool,
    /// gitlab: the instance (https://gitlab.example.com); github: the organisation or
    /// repository (https://github.com/ORG[/REPO]); forgejo: the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Environment variable holding the token: gitlab's glrt- runner authentication token,
    /// github's fine-grained personal access token, forgejo's registration token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_env: Option<String>,
    /// File holding that token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_file: Option<String>,
    /// The Helm chart version; null: the version pinode was tested with, never "whatever
    /// the repository offers today".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chart_version: Option<String>,
    /// Where the chart is read from. gitlab and jenkins: a Helm chart repository (default
    /// https://charts.gitlab.io, https://charts.jenkins.io); github: the OCI directory of
    /// ARC's two charts (default oci://ghcr.io/actions/actions-runner-controller-charts).
    /// With `cluster.airgap` pinode downloads the charts from it at prepare time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chart_repo: Option<String>,
    /// gitlab: jobs at once (default 2); forgejo: the runner's capacity (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) concurrent: Option<u32>,
    /// gitlab: the image of a job that names none (default alpine:3.20); forgejo: the image
    /// of `docker://` jobs with builds: dind (default node:22-bookworm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_image: Option<String>,
    /// jenkins: the administrator's name (default admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) admin_user: Option<String>,
    /// jenkins: environment variable holding the administrator's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) admin_password_env: Option<String>,
    /// jenkins: file holding the administrator's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) admin_password_file: Option<String>,
    /// jenkins: the storage class of the controller's volume (default: the cluster's
    /// default class, local-path on K3s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage_class: Option<String>,
    /// jenkins: the size of the controller's volume (default 8Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage_size: Option<String>,
    /// github: the GitHub App's id (with `installation_id` and a private key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) app_id: Option<u64>,
    /// github: the App's installation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) installation_id: Option<u64>,
    /// github: environment variable holding the App's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) private_key_env: Option<String>,
    /// github: file holding the App's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) private_key_file: Option<String>,
    /// github: the runner scale set's name, which workflows use in `runs-on:` (default
    /// pinode-arm64); forgejo: the runner's name (default pinode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// github: runners kept waiting when there is no job (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) min_runners: Option<u32>,
    /// github: most runners at once (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_runners: Option<u32>,
}

impl RunnerSpec {
    /// A runner of `kind` with every setting at its default.
    pub fn new(kind: RunnerKind) -> RunnerSpec {
        RunnerSpec {
            kind,
            builds: BuildMode::default(),
            privileged: false,
            url: None,
            token_env: None,
            token_file: None,
            chart_version: None,
            chart_repo: None,
            concurrent: None,
            default_image: None,
            admin_user: None,
            admin_password_env: None,
            admin_password_file: None,
            storage_class: None,
            storage_size: None,
            app_id: None,
            installation_id: None,
            private_key_env: None,
            private_key_file: None,
            name: None,
            min_runners: None,
            max_runners: None,
        }
    }

    pub fn kind(&self) -> RunnerKind {
        self.kind
    }

    pub fn builds(&self) -> BuildMode {
        self.builds
    }

    /// The Helm chart version the runner is installed from: the profile's, else the tested one.
    pub fn chart_version(&self) -> &str {
        self.chart_version
            .as_deref()
            .unwrap_or(self.kind.tested_chart_version())
    }

    /// One line for `profile check`: the system, where it serves, how it builds and what it
    /// is installed from (no secret: the URL is redacted by the caller if needed).
    pub fn describe(&self) -> String {
        let serves = self
            .url
            .as_deref()
            .map(|u| format!(" for {u}"))
            .unwrap_or_default();
        format!(
            "{}{serves}, builds {}{}, {} {}",
            self.kind.title(),
            self.builds.as_str(),
            if self.privileged { " (privileged)" } else { "" },
            self.kind.installed_from(),
            self.chart_version()
        )
    }

    pub(crate) fn concurrent(&self) -> u32 {
        self.concurrent.unwrap_or(2)
    }

    pub(crate) fn default_image(&self) -> &str {
        self.default_image.as_deref().unwrap_or("alpine:3.20")
    }

    /// The environment variable named for the secret `slot`, if one is.
    pub(crate) fn secret_env(&self, slot: SecretSlot) -> Option<&str> {
        match slot {
            SecretSlot::Token => self.token_env.as_deref(),
            SecretSlot::AdminPassword => self.admin_password_env.as_deref(),
            SecretSlot::PrivateKey => self.private_key_env.as_deref(),
        }
    }

    /// The settings this mapping gives, by key (for the rule that a setting belongs to one
    /// CI system).
    fn given_keys(&self) -> Vec<&'static str> {
        let given: [(&'static str, bool); 19] = [
            ("url", self.url.is_some()),
            ("token_env", self.token_env.is_some()),
            ("token_file", self.token_file.is_some()),
            ("chart_version", self.chart_version.is_some()),
            ("chart_repo", self.chart_repo.is_some()),
            ("concurrent", self.concurrent.is_some()),
            ("default_image", self.default_image.is_some()),
            ("admin_user", self.admin_user.is_some()),
            ("admin_password_env", self.admin_password_env.is_some()),
            ("admin_password_file", self.admin_password_file.is_some()),
            ("storage_class", self.storage_class.is_some()),
            ("storage_size", self.storage_size.is_some()),
            ("app_id", self.app_id.is_some()),
            ("installation_id", self.installation_id.is_some()),
            ("private_key_env", self.private_key_env.is_some()),
            ("private_key_file", self.private_key_file.is_some()),
            ("name", self.name.is_some()),
            ("min_runners", self.min_runners.is_some()),
            ("max_runners", self.max_runners.is_some()),
        ];
        given
            .into_iter()
            .filter_map(|(key, is)| is.then_some(key))
            .collect()
    }

    /// The CI systems whose setting `key` is, for the message that refuses it elsewhere.
    fn owners(key: &str) -> Vec<&'static str> {
        RunnerKind::ALL
            .iter()
            .filter(|k| k.keys().contains(&key))
            .map(|k| k.as_str())
            .collect()
    }
}

/// The CI systems pinode can install a runner for (one variant per CI system module).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    Gitlab,
    Jenkins,
    Github,
    Forgejo,
}

impl RunnerKind {
    /// Every CI system: the second first-boot stage carries the glue of each.
    pub const ALL: [RunnerKind; 4] = [
        RunnerKind::Gitlab,
        RunnerKind::Jenkins,
        RunnerKind::Github,
        RunnerKind::Forgejo,
    ];

    /// The profile's word, also the stage's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Gitlab => "gitlab",
            RunnerKind::Jenkins => "jenkins",
            RunnerKind::Github => "github",
            RunnerKind::Forgejo => "forgejo",
        }
    }

    /// The name people know it by.
    pub fn title(self) -> &'static str {
        match self {
            RunnerKind::Gitlab => "GitLab Runner",
            RunnerKind::Jenkins => "Jenkins",
            RunnerKind::Github => "GitHub Actions Runner Controller",
            RunnerKind::Forgejo => "Forgejo runner",
        }
    }

    /// What the runner is installed from, for messages: the chart (or image) name.
    pub fn installed_from(self) -> &'static str {
        match self {
            RunnerKind::Gitlab => "chart gitlab-runner",
            RunnerKind::Jenkins => "chart jenkins",
            RunnerKind::Github => "charts gha-runner-scale-set(-controller)",
            RunnerKind::Forgejo => "runner image",
        }
    }

    /// This system's own settings (besides `kind`, `builds`, `privileged`, `chart_version`).
    fn keys(self) -> &'static [&'static str] {
        match self {
            RunnerKind::Gitlab => gitlab::KEYS,
            RunnerKind::Jenkins => jenkins::KEYS,
            RunnerKind::Github => github::KEYS,
            RunnerKind::Forgejo => forgejo::KEYS,
        }
    }

    /// The build modes this system's runner supports.
    pub fn build_modes(self) -> &'static [BuildMode] {
        match self {
            RunnerKind::Gitlab => gitlab::BUILD_MODES,
            RunnerKind::Jenkins => jenkins::BUILD_MODES,
            RunnerKind::Github => github::BUILD_MODES,
            RunnerKind::Forgejo => forgejo::BUILD_MODES,
        }
    }

    /// The chart version pinode was tested with (for forgejo, which has no chart, the runner
    /// image's version).
    pub fn tested_chart_version(self) -> &'static str {
        match self {
            RunnerKind::Gitlab => gitlab::TESTED_CHART_VERSION,
            RunnerKind::Jenkins => jenkins::TESTED_CHART_VERSION,
            RunnerKind::Github => github::TESTED_CHART_VERSION,
            RunnerKind::Forgejo => forgejo::TESTED_CHART_VERSION,
        }
    }

    /// This system's shell code in the second first-boot stage. Its run steps only act on
    /// a node whose `RUNNERS` names the system (`runner_wanted KIND`).
    pub(crate) fn stage2_glue(self, ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
        match self {
            RunnerKind::Gitlab => gitlab::stage2::glue(ctx, manifests),
            RunnerKind::Jenkins => jenkins::stage2::glue(ctx, manifests),
            RunnerKind::Github => github::stage2::glue(ctx, manifests),
            RunnerKind::Forgejo => forgejo::stage2::glue(ctx, manifests),
        }
    }

    /// What `pinode status` waits for once the runner is installed.
    pub fn workloads(self) -> &'static [Workload] {
        match self {
            RunnerKind::Gitlab => gitlab::WORKLOADS,
            RunnerKind::Jenkins => jenkins::WORKLOADS,
            RunnerKind::Github => github::WORKLOADS,
            RunnerKind::Forgejo => forgejo::WORKLOADS,
        }
    }

    /// Checks a secret's form; the message says what to create instead (never the value).
    pub fn check_secret(self, slot: SecretSlot, value: &str) -> Result<(), String> {
        match self {
            RunnerKind::Gitlab => gitlab::check_secret(slot, value),
            RunnerKind::Jenkins => jenkins::check_secret(slot, value),
            RunnerKind::Github => github::check_secret(slot, value),
            RunnerKind::Forgejo => forgejo::check_secret(slot, value),
        }
    }
}

/// How a runner's jobs build container images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum BuildMode {
    /// Rootless BuildKit: no privileged pod, no host socket (the default).
    #[default]
    #[serde(rename = "buildkit")]
    Buildkit,
    /// Kaniko, from a maintained fork (the upstream project is archived).
    #[serde(rename = "kaniko")]
    Kaniko,
    /// Docker-in-Docker: privileged pods; needs `privileged: true`.
    #[serde(rename = "dind")]
    Dind,
    /// The node's container socket mounted into jobs (Docker-outside-of-Docker). Read so
    /// that it can be refused with the reason, never rendered.
    #[serde(rename = "host-socket", alias = "dood", alias = "docker-socket")]
    HostSocket,
}

impl BuildMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildMode::Buildkit => "buildkit",
            BuildMode::Kaniko => "kaniko",
            BuildMode::Dind => "dind",
            BuildMode::HostSocket => "host-socket",
        }
    }

    fn is_default(&self) -> bool {
        *self == BuildMode::Buildkit
    }
}

/// A secret a runner needs; its keys in the profile are `<slot>_env` and `<slot>_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretSlot {
    /// `token_env` / `token_file`.
    Token,
    /// `admin_password_env` / `admin_password_file` (jenkins).
    AdminPassword,
    /// `private_key_env` / `private_key_file` (github App).
    PrivateKey,
}

impl SecretSlot {
    /// The profile keys' stem: `token` for `token_env` and `token_file`.
    pub fn stem(self) -> &'static str {
        match self {
            SecretSlot::Token => "token",
            SecretSlot::AdminPassword => "admin_password",
            SecretSlot::PrivateKey => "private_key",
        }
    }
}

/// The secrets `spec` needs, given its settings (a GitHub App needs its private key, a token
/// login the token).
pub fn secrets_of(spec: &RunnerSpec) -> Vec<SecretSlot> {
    match spec.kind {
        RunnerKind::Gitlab => gitlab::secrets(spec),
        RunnerKind::Jenkins => jenkins::secrets(spec),
        RunnerKind::Github => github::secrets(spec),
        RunnerKind::Forgejo => forgejo::secrets(spec),
    }
}

/// A workload `pinode status` waits for: Ready replicas of a Deployment or StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    pub namespace: &'static str,
    /// `deployment` or `statefulset`.
    pub resource: &'static str,
    pub name: &'static str,
}

/// What the cluster gives runners that keep data on a volume: a default StorageClass
/// (K3s's local-path; MicroK8s' with its hostpath-storage addon; none on kubeadm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClusterStorage {
    pub(crate) distribution: crate::engine::Distribution,
    /// MicroK8s with the hostpath-storage addon enabled by the profile.
    pub(crate) hostpath_addon: bool,
}

/// The rules every runner shares, and then its system's own: `at` is the runner's path
/// (`cluster.runner`, `cluster.runner[1]`). Secret sources are checked by the profile (it
/// knows the `*_env` / `*_file` rules), from [`secrets_of`].
pub(crate) fn check(runners: &Runners, storage: ClusterStorage) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    if runners.items.is_empty() {
        out.push(SpecProblem::error(
            "cluster.runner",
            "an empty list installs no runner: give at least one, or write `runner: null`",
        ));
    }
    let mut seen: Vec<RunnerKind> = Vec::new();
    for (at, spec) in runners.entries() {
        let kind = spec.kind;
        if seen.contains(&kind) {
            out.push(SpecProblem::error(
                format!("{at}.kind"),
                format!(
                    "a second {} runner: a cluster has at most one per CI system (one runner \
                     serves every project it is registered for)",
                    kind.as_str()
                ),
            ));
        }
        seen.push(kind);
        for key in spec.given_keys() {
            if !kind.keys().contains(&key) && key != "chart_version" {
                let owners = RunnerSpec::owners(key);
                out.push(SpecProblem::error(
                    format!("{at}.{key}"),
                    format!(
                        "`{key}` is a setting of kind {}, not of {}",
                        owners.join(" or "),
                        kind.as_str()
                    ),
                ));
            }
        }
        check_builds(spec, &at, &mut out);
        // (GitHub's own URL rule refuses any `@` already.)
        if let Some(url) = &spec.url
            && kind != RunnerKind::Github
            && has_credentials(url)
        {
            out.push(SpecProblem::error(
                format!("{at}.url"),
                "the URL carries a user name or password: it would be written into a manifest \
                 on the boot partition; give the instance URL alone, and the secret through \
                 token_env or token_file",
            ));
        }
        if let Some(version) = &spec.chart_version {
            let ok = !version.is_empty()
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c));
            if !ok {
                out.push(SpecProblem::error(
                    format!("{at}.chart_version"),
                    format!(
                        "{} is not a version such as {}",
                        crate::ui::quoted(version),
                        kind.tested_chart_version()
                    ),
                ));
            }
        }
        if !storage.hostpath_addon {
            storage_warning(spec, &at, storage.distribution, &mut out);
        }
        if kind == RunnerKind::Gitlab
            && spec.builds == BuildMode::Buildkit
            && storage.distribution == crate::engine::Distribution::Kubeadm
        {
            out.push(SpecProblem::warning(
                format!("{at}.builds"),
                "CRI-O gives a pod that names no seccomp profile its default one \
                 (seccomp_use_default_when_empty), and GitLab Runner 18.9 cannot name \
                 Unconfined for a job (its seccomp_profile field came in 18.11): rootless \
                 BuildKit jobs will likely fail there; use builds: kaniko on kubeadm",
            ));
        }
        match kind {
            RunnerKind::Gitlab => gitlab::check(spec, &at, &mut out),
            RunnerKind::Jenkins => jenkins::check(spec, &at, &mut out),
            RunnerKind::Github => github::check(spec, &at, &mut out),
            RunnerKind::Forgejo => forgejo::check(spec, &at, &mut out),
        }
    }
    out
}

/// Runners that keep data on a volume of the default StorageClass, on a distribution that
/// has none: the volume, and the runner, would stay Pending.
fn storage_warning(
    spec: &RunnerSpec,
    at: &str,
    distribution: crate::engine::Distribution,
    out: &mut Vec<SpecProblem>,
) {
    let what = match spec.kind {
        RunnerKind::Jenkins => {
            if let Some(note) = jenkins::storage_note(spec, distribution) {
                out.push(SpecProblem::warning(format!("{at}.storage_class"), note));
            }
            return;
        }
        RunnerKind::Github if spec.builds == BuildMode::Kaniko => {
            "ARC's kubernetes mode (builds: kaniko) gives each job a work volume"
        }
        RunnerKind::Forgejo => "the Forgejo runner keeps its registration on a volume",
        _ => return,
    };
    let fix = match distribution {
        crate::engine::Distribution::K3s => return,
        crate::engine::Distribution::Microk8s => {
            "on MicroK8s add hostpath-storage to cluster.microk8s.addons"
        }
        crate::engine::Distribution::Kubeadm => {
            "kubeadm clusters have none: install a provisioner and make its class the default"
        }
    };
    let key = if spec.kind == RunnerKind::Github {
        "builds"
    } else {
        "kind"
    };
    out.push(SpecProblem::warning(
        format!("{at}.{key}"),
        format!("{what} of the default StorageClass; {fix}, or it stays Pending"),
    ));
}

/// Whether `url` names a user or password (`https://user:pass@host`): never written anywhere.
fn has_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// `builds` and `privileged`: Docker-in-Docker only when the profile says so, the host's
/// socket never, and only the modes the CI system supports.
fn check_builds(spec: &RunnerSpec, at: &str, out: &mut Vec<SpecProblem>) {
    let field = format!("{at}.builds");
    match spec.builds {
        BuildMode::HostSocket => {
            out.push(SpecProblem::error(
                field,
                "mounting the node's container socket into jobs is refused: whoever can use \
                 that socket is root on the node, and K3s, MicroK8s and CRI-O nodes have no \
                 Docker socket to mount anyway; use buildkit (rootless, the default), or dind \
                 with privileged: true",
            ));
            return;
        }
        BuildMode::Dind if !spec.privileged => out.push(SpecProblem::error(
            field.clone(),
            "dind runs Docker in privileged pods: say `privileged: true` in this runner to \
             allow it (a job can then take over the node), or use buildkit (rootless, the \
             default)",
        )),
        BuildMode::Dind => out.push(SpecProblem::warning(
            format!("{at}.privileged"),
            "privileged job pods: any job this runner takes can take over the node it runs \
             on (and read every secret on it); use buildkit unless you need Docker itself",
        )),
        BuildMode::Buildkit | BuildMode::Kaniko if spec.privileged => out.push(SpecProblem::error(
            format!("{at}.privileged"),
            format!(
                "privileged: true only serves builds: dind; {} needs no privileged pod, \
                     so remove it",
                spec.builds.as_str()
            ),
        )),
        _ => {}
    }
    if !spec.kind.build_modes().contains(&spec.builds) {
        let supported: Vec<&str> = spec.kind.build_modes().iter().map(|m| m.as_str()).collect();
        out.push(SpecProblem::error(
            format!("{at}.builds"),
            format!(
                "{} does not support builds: {} here ({}); it supports {}",
                spec.kind.title(),
                spec.builds.as_str(),
                unsupported_reason(spec.kind, spec.builds),
                supported.join(", ")
            ),
        ));
    }
}

fn unsupported_reason(kind: RunnerKind, mode: BuildMode) -> &'static str {
    match kind {
        RunnerKind::Gitlab => gitlab::unsupported(mode),
        RunnerKind::Jenkins => jenkins::unsupported(mode),
        RunnerKind::Github => github::unsupported(mode),
        RunnerKind::Forgejo => forgejo::unsupported(mode),
    }
}

/// A CI system's shell code in the second first-boot stage, placed by the stage into its
/// skeleton.
#[derive(Debug)]
pub(crate) struct RunnerGlue {
    /// Lines of `install_stage` that move the runner's files off the boot partition (when
    /// they are there).
    pub(crate) install_lines: String,
    /// Its functions.
    pub(crate) functions: String,
    /// Lines of `run_stage` that place the runner, before the distribution is installed
    /// (it then applies the runner's manifests by itself). Each guards itself with
    /// `runner_wanted KIND`.
    pub(crate) run_steps: String,
}

/// `check_userns`, run on every node of a cluster with a rootless BuildKit runner: rootless
/// BuildKit makes a user namespace in the job pod, which a kernel can forbid. Not a failed
/// step (the cluster works; image builds would not): a line in the status file and the log.
pub(crate) const USERNS_CHECK: &str = r##"
# check_userns: what rootless BuildKit needs from the kernel, said in the status file if missing.
check_userns() {
	why=''
	if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
		why='kernel.unprivileged_userns_clone is 0'
	elif [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" = 0 ]; then
		why='user.max_user_namespaces is 0 (or the kernel has no user namespaces)'
	elif [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ]; then
		why='kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 23.10 and later): unconfined pods may not make user namespaces'
	fi
	if [ -n "$why" ]; then
		warn "rootless BuildKit jobs cannot run on this node: $why; set the sysctl (see pinode's README, CI systems)"
	else
		log "user namespaces allowed: rootless BuildKit jobs can run here"
	fi
	return 0
}
"##;

/// A runner file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} runner: {message}")]
pub struct CiError {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl CiError {
    pub(crate) fn new(kind: RunnerKind, message: impl Into<String>) -> CiError {
        CiError {
            kind: kind.as_str(),
            message: message.into(),
        }
    }
}

/// The runner a node installs, its secrets resolved (only on the founder).
#[derive(Clone)]
pub struct Runner {
    pub(crate) spec: RunnerSpec,
    pub(crate) secrets: Vec<(SecretSlot, SecretString)>,
    /// Where its HelmChart gets the chart: the repository, or embedded (`cluster.airgap`).
    pub(crate) chart: chart_source::ChartPlacement,
}

impl Runner {
    pub fn new(spec: RunnerSpec, secrets: Vec<(SecretSlot, SecretString)>) -> Runner {
        Runner {
            spec,
            secrets,
            chart: chart_source::ChartPlacement::Repository,
        }
    }

    /// With `cluster.airgap`: the chart must be embedded; until [`Runner::embed_from`] gives
    /// it, rendering the runner is an error (rather than silently needing the repository).
    pub(crate) fn require_embedded(&mut self) {
        if !chart_source::sources_of(&self.spec).is_empty() {
            self.chart = chart_source::ChartPlacement::Embedded(Default::default());
        }
    }

    /// The charts to embed, for a runner that must embed them.
    pub(crate) fn embed_from(&mut self, charts: &chart_source::Charts) {
        if let chart_source::ChartPlacement::Embedded(_) = self.chart {
            self.chart = chart_source::ChartPlacement::Embedded(charts.clone());
        }
    }

    pub fn kind(&self) -> RunnerKind {
        self.spec.kind
    }

    pub fn spec(&self) -> &RunnerSpec {
        &self.spec
    }

    /// The resolved secret of `slot`, if the runner needs it.
    pub(crate) fn secret(&self, slot: SecretSlot) -> Option<&SecretString> {
        self.secrets
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, v)| v)
    }

    /// The resolved secret of `slot`, or the error a missing one is.
    pub(crate) fn required(&self, slot: SecretSlot) -> Result<&SecretString, CiError> {
        self.secret(slot).ok_or_else(|| {
            CiError::new(
                self.kind(),
                format!("no {} was resolved", slot.stem().replace('_', " ")),
            )
        })
    }

    /// The runner's files for the boot partition, in the stage's second first-boot stage.
    pub(crate) fn stage2_files(
        &self,
        ctx: &StageContext,
        manifests: &AutoManifests,
    ) -> Result<Vec<BootFile>, CiError> {
        match self.kind() {
            RunnerKind::Gitlab => gitlab::stage2::files(ctx, manifests, self),
            RunnerKind::Jenkins => jenkins::stage2::files(ctx, manifests, self),
            RunnerKind::Github => github::stage2::files(ctx, manifests, self),
            RunnerKind::Forgejo => forgejo::stage2::files(ctx, manifests, self),
        }
    }

    /// Example pipelines for this runner's build mode, for `pinode render`'s output.
    pub fn examples(&self) -> Vec<Example> {
        examples_of(&self.spec)
    }
}

/// Example pipelines for `spec`'s CI system and build mode.
pub fn examples_of(spec: &RunnerSpec) -> Vec<Example> {
    match spec.kind {
        RunnerKind::Gitlab => gitlab::examples(spec),
        RunnerKind::Jenkins => jenkins::examples(spec),
        RunnerKind::Github => github::examples(spec),
        RunnerKind::Forgejo => forgejo::examples(spec),
    }
}

/// An example pipeline: its file name in `pinode render`'s output, its text, and one line
/// that says what it is.
#[derive(Debug, Clone)]
pub struct Example {
    pub file_name: String,
    pub contents: String,
    pub about: &'static str,
}
