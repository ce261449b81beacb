//! The Forgejo runner's part of the second first-boot stage: its manifests and registration
//! token on the boot partition; the founder places the manifests, with the token in the
//! Secret `forgejo-runner-token` that the registering init container reads.

use super::{runner_manifest, token_file};
use crate::bootfs::content::BootFile;
use crate::ci::stage2::RunnerFiles;
use crate::ci::{CiError, Runner, RunnerGlue, RunnerKind};
use crate::engine::stage2::{AutoManifests, StageContext};

/// The registration token's name among the stage's secrets.
pub(crate) const TOKEN: &str = "forgejo-runner-token";

const FILES: RunnerFiles = RunnerFiles {
    kind: RunnerKind::Forgejo,
    manifest: "pinode-forgejo-runner.yaml",
    namespace: super::NAMESPACE,
    secret: super::SECRET,
    secret_manifest: "pinode-forgejo-runner-token.yaml",
    data: &[(super::SECRET_KEY, TOKEN)],
};

/// The shell code every cluster node's stage carries for a Forgejo runner.
pub(crate) fn glue(ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
    FILES.glue(ctx, manifests)
}

/// The runner's files for the boot partition: the manifests (no secret) and the token (a
/// secret file, moved off the boot partition by the stage).
pub(crate) fn files(
    ctx: &StageContext,
    manifests: &AutoManifests,
    runner: &Runner,
) -> Result<Vec<BootFile>, CiError> {
    Ok(FILES.files(
        ctx,
        manifests,
        runner_manifest(runner.spec())?,
        vec![(TOKEN, token_file(runner)?)],
    ))
}
