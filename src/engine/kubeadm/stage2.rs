//! kubeadm's part of the second first-boot stage. SKELETON (lead).

use super::{KubeadmError, KubeadmNode};
use crate::engine::stage2::{EngineStage2, StageContext};

/// kubeadm's part of the stage for `node`.
pub(crate) fn stage2(ctx: &StageContext, node: &KubeadmNode) -> Result<EngineStage2, KubeadmError> {
    let _ = (ctx, node);
    Err(KubeadmError("kubeadm is not written yet".into())) // skeleton
}
