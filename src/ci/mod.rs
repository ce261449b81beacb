//! CI systems whose runner pinode installs on the cluster.
//!
//! GitLab is the only one today. Each system is one module (its token rule, its input type
//! and the files it renders) and one variant of `RunnerKind` (the profile's choice, shown in
//! its JSON Schema) and of [`Runner`] (the resolved runner). This layer sits below the profile
//! and the plan: it imports neither.
//!
//! # Adding a CI system (say Jenkins)
//!
//! 1. A module `ci/jenkins/` with its settings, its token rule, its resolved runner type
//!    and, for the second first-boot stage, a `glue(ctx, manifests) -> RunnerGlue` (the
//!    shell code every cluster node's stage carries) and a `files(ctx, manifests, runner)`
//!    (the runner's files for the boot partition). `gitlab::stage2` is the example. The
//!    distribution's auto-applied manifest directory arrives as a plain value
//!    (`crate::engine::stage2::AutoManifests`).
//! 2. The variants `RunnerKind::Jenkins` (added to `RunnerKind::ALL`) and
//!    `Runner::Jenkins(..)`, their arms in `RunnerKind::stage2_glue`, `Runner::kind` and
//!    `Runner::stage2_files` and, for its errors, a variant of `CiError`.
//!
//! The renderer (`crate::render::stage2`) matches on no CI system and needs no edit. Its
//! program carries the glue of every kind; today `HAS_RUNNER` tells GitLab's glue whether
//! the node has a runner; with a second kind, each kind's run steps must test that the
//! node's runner is theirs (a variable of the stage set from `Runner::kind`).

pub mod gitlab;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bootfs::content::BootFile;
use crate::engine::stage2::{AutoManifests, StageContext};

/// The profile's `cluster.runner`: which CI system, and its settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnerSpec {
    /// The CI system the runner serves.
    pub(crate) kind: RunnerKind,
    /// The GitLab instance, e.g. https://gitlab.example.com.
    pub url: String,
    /// Environment variable holding the glrt- runner authentication token.
    #[serde(default)]
    pub(crate) token_env: Option<String>,
    /// File holding the glrt- runner authentication token.
    #[serde(default)]
    pub(crate) token_file: Option<String>,
    /// The gitlab-runner Helm chart version; null: the version pinode was tested with
    /// (`gitlab::TESTED_CHART_VERSION`), never "whatever the repository offers today".
    #[serde(default)]
    pub(crate) chart_version: Option<String>,
    #[serde(default = "default_concurrent")]
    pub(crate) concurrent: u32,
    #[serde(default = "default_job_image")]
    pub(crate) default_image: String,
}

impl RunnerSpec {
    /// The Helm chart version the runner is installed from: the profile's, else the tested one.
    pub fn chart_version(&self) -> &str {
        self.chart_version
            .as_deref()
            .unwrap_or(gitlab::TESTED_CHART_VERSION)
    }
}

fn default_concurrent() -> u32 {
    2
}

fn default_job_image() -> String {
    "alpine:3.20".to_string()
}

/// The CI systems pinode can install a runner for (one variant per CI system module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunnerKind {
    Gitlab,
}

impl RunnerKind {
    /// Every CI system: the second first-boot stage carries the glue of each.
    pub(crate) const ALL: [RunnerKind; 1] = [RunnerKind::Gitlab];

    /// This system's shell code in the second first-boot stage.
    pub(crate) fn stage2_glue(self, ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
        match self {
            RunnerKind::Gitlab => gitlab::stage2::glue(ctx, manifests),
        }
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
    /// (it then applies the runner's manifests by itself).
    pub(crate) run_steps: String,
}

/// A runner file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CiError {
    #[error(transparent)]
    Gitlab(#[from] gitlab::GitlabError),
}

/// The runner a node installs, its token resolved.
#[derive(Clone)]
pub enum Runner {
    Gitlab(gitlab::RunnerPlan),
}

impl Runner {
    /// The CI system of this runner.
    #[allow(
        dead_code,
        reason = "one CI system today; with a second, the stage tells the runners apart by it (see the module doc)"
    )]
    fn kind(&self) -> RunnerKind {
        match self {
            Runner::Gitlab(_) => RunnerKind::Gitlab,
        }
    }

    /// The runner's files for the boot partition, in the stage's second first-boot stage.
    pub(crate) fn stage2_files(
        &self,
        ctx: &StageContext,
        manifests: &AutoManifests,
    ) -> Result<Vec<BootFile>, CiError> {
        match self {
            Runner::Gitlab(runner) => gitlab::stage2::files(ctx, manifests, runner),
        }
    }
}
