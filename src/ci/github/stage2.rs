//! GitHub Actions' part of the second first-boot stage: the HelmCharts of ARC's controller
//! and scale set on the boot partition, the credentials as secret files; the founder places
//! the charts, with the credentials in the Secret `pinode-github` (namespace `arc-runners`,
//! the scale set's `githubConfigSecret`).

use super::{manifest, secret_files};
use crate::bootfs::content::BootFile;
use crate::ci::stage2::RunnerFiles;
use crate::ci::{CiError, Runner, RunnerGlue, RunnerKind};
use crate::engine::stage2::{AutoManifests, StageContext};

/// The credentials' names among the stage's secrets: a token, or a GitHub App's id,
/// installation id and private key (the ids are not secret, but belong in the same Secret).
pub(crate) const TOKEN: &str = "github-token";
pub(crate) const APP_ID: &str = "github-app-id";
pub(crate) const INSTALLATION_ID: &str = "github-app-installation-id";
pub(crate) const PRIVATE_KEY: &str = "github-app-private-key";

/// The keys ARC reads from `githubConfigSecret` (values.yaml of gha-runner-scale-set 0.14.2);
/// only those of the login in use are on the node.
const FILES: RunnerFiles = RunnerFiles {
    kind: RunnerKind::Github,
    manifest: "pinode-github-arc.yaml",
    namespace: super::RUNNERS_NAMESPACE,
    secret: super::CONFIG_SECRET,
    secret_manifest: "pinode-github-secret.yaml",
    data: &[
        ("github_token", TOKEN),
        ("github_app_id", APP_ID),
        ("github_app_installation_id", INSTALLATION_ID),
        ("github_app_private_key", PRIVATE_KEY),
    ],
};

/// The shell code every cluster node's stage carries for a GitHub runner.
pub(crate) fn glue(ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
    FILES.glue(ctx, manifests)
}

/// The runner's files for the boot partition: the HelmCharts (no secret) and the
/// credentials (secret files only).
pub(crate) fn files(
    ctx: &StageContext,
    manifests: &AutoManifests,
    runner: &Runner,
) -> Result<Vec<BootFile>, CiError> {
    Ok(FILES.files(
        ctx,
        manifests,
        manifest(runner.spec(), &runner.chart)?,
        secret_files(runner)?,
    ))
}
