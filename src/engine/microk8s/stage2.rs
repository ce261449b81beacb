//! MicroK8s' part of the second first-boot stage. SKELETON (lead).

use super::{Microk8sError, Microk8sNode};
use crate::engine::stage2::{EngineStage2, StageContext};

/// MicroK8s' part of the stage for `node`.
pub(crate) fn stage2(
    ctx: &StageContext,
    node: &Microk8sNode,
) -> Result<EngineStage2, Microk8sError> {
    let _ = (ctx, node);
    Err(Microk8sError("MicroK8s is not written yet".into())) // skeleton
}
