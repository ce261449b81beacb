//! GitLab Runner's part of the second first-boot stage: the runner's HelmChart and token on
//! the boot partition; the founder places the chart, with the token in the Secret
//! `gitlab-runner-token` (`runners.secret`), in the distribution's auto-applied manifests.

use super::{runner_manifest, runner_token_file};
use crate::bootfs::content::BootFile;
use crate::ci::stage2::RunnerFiles;
use crate::ci::{CiError, Runner, RunnerGlue, RunnerKind};
use crate::engine::stage2::{AutoManifests, StageContext};

/// The runner token's name among the stage's secrets.
const TOKEN: &str = "runner-token";

/// The chart reads both keys of the Secret; `runner-registration-token` stays empty with a
/// `glrt-` token (values.yaml of 0.86.0, the `extraObjects` example).
const FILES: RunnerFiles = RunnerFiles {
    kind: RunnerKind::Gitlab,
    manifest: "pinode-gitlab-runner.yaml",
    namespace: super::RUNNER_NAMESPACE,
    secret: super::RUNNER_SECRET,
    secret_manifest: "pinode-gitlab-runner-token.yaml",
    data: &[("runner-token", TOKEN), ("runner-registration-token", "")],
};

/// The shell code every cluster node's stage carries for a GitLab runner.
pub(crate) fn glue(ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
    FILES.glue(ctx, manifests)
}

/// The runner's files for the boot partition.
pub(crate) fn files(
    ctx: &StageContext,
    manifests: &AutoManifests,
    runner: &Runner,
) -> Result<Vec<BootFile>, CiError> {
    Ok(FILES.files(
        ctx,
        manifests,
        runner_manifest(runner.spec(), &runner.chart)?,
        vec![(TOKEN, runner_token_file(runner)?)],
    ))
}
