//! Jenkins's part of the second first-boot stage: not built yet.

use crate::bootfs::content::BootFile;
use crate::ci::{CiError, Runner, RunnerGlue, RunnerKind};
use crate::engine::stage2::{AutoManifests, StageContext};

pub(crate) fn glue(_ctx: &StageContext, _manifests: &AutoManifests) -> RunnerGlue {
    RunnerGlue {
        install_lines: String::new(),
        functions: String::new(),
        run_steps: String::new(),
    }
}

pub(crate) fn files(
    _ctx: &StageContext,
    _manifests: &AutoManifests,
    _runner: &Runner,
) -> Result<Vec<BootFile>, CiError> {
    Err(CiError::new(RunnerKind::Jenkins, "not built yet"))
}
