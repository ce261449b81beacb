//! Jenkins's part of the second first-boot stage: the HelmChart on the boot partition, the
//! administrator's name and password as secret files; the founder places the chart and
//! writes the Secret `jenkins-admin` (the chart's `controller.admin.existingSecret`).

use super::{manifest, password_file};
use crate::bootfs::content::BootFile;
use crate::ci::stage2::RunnerFiles;
use crate::ci::{CiError, Runner, RunnerGlue, RunnerKind};
use crate::engine::stage2::{AutoManifests, StageContext};

/// The administrator's password and name among the stage's secrets (the name is no secret,
/// but travels the same way so that the Secret is written from files alone).
const PASSWORD: &str = "jenkins-admin-password";
const USER: &str = "jenkins-admin-user";

/// The Secret's keys are the chart's defaults (`controller.admin.userKey`, `passwordKey`).
const FILES: RunnerFiles = RunnerFiles {
    kind: RunnerKind::Jenkins,
    manifest: "pinode-jenkins.yaml",
    namespace: super::NAMESPACE,
    secret: super::ADMIN_SECRET,
    secret_manifest: "pinode-jenkins-admin.yaml",
    data: &[
        ("jenkins-admin-user", USER),
        ("jenkins-admin-password", PASSWORD),
    ],
};

/// The shell code every cluster node's stage carries for a Jenkins runner.
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
        manifest(runner.spec(), &runner.chart)?,
        vec![
            (USER, super::admin_user(runner.spec()).as_bytes().to_vec()),
            (PASSWORD, password_file(runner)?),
        ],
    ))
}
