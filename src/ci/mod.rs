//! CI systems whose runner pinode installs on the cluster.
//!
//! GitLab is the only one today. Each system is one module (its token rule, its input type
//! and the files it renders) and one variant of [`RunnerKind`] (the profile's choice, shown in
//! its JSON Schema) and of [`Runner`] (the resolved runner). This layer sits below the profile
//! and the plan: it imports neither.

pub mod gitlab;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The profile's `cluster.runner`: which CI system, and its settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnerSpec {
    /// The CI system the runner serves.
    pub kind: RunnerKind,
    /// The GitLab instance, e.g. https://gitlab.example.com.
    pub url: String,
    /// Environment variable holding the glrt- runner authentication token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the glrt- runner authentication token.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Pin the gitlab-runner Helm chart version.
    #[serde(default)]
    pub chart_version: Option<String>,
    #[serde(default = "default_concurrent")]
    pub concurrent: u32,
    #[serde(default = "default_job_image")]
    pub default_image: String,
}

fn default_concurrent() -> u32 {
    2
}

fn default_job_image() -> String {
    "alpine:3.20".to_string()
}

/// The CI systems pinode can install a runner for: one variant per module of [`crate::ci`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    Gitlab,
}

/// The runner a node installs, its token resolved.
#[derive(Clone)]
pub enum Runner {
    Gitlab(gitlab::RunnerPlan),
}
