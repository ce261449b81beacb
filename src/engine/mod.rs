//! Kubernetes distributions: the engine a cluster runs.
//!
//! K3s is the only one today. Each distribution is one module (its facts, its value rules,
//! its input type and the files of its own it renders) and one variant of `Engine`; the
//! profile validation and the renderer reach a distribution only through here. This layer
//! sits below the profile and the plan: it imports neither.
//!
//! # Adding a distribution (say microk8s)
//!
//! 1. A module `engine/microk8s/` with its input type, its value rules and a
//!    `stage2(ctx, node) -> Result<EngineStage2, _>` that fills the slots of the second
//!    first-boot stage (see `stage2::EngineStage2`: its files, shell variables and
//!    functions, the lines that install it, the API host to pin, where it applies
//!    manifests by itself). `k3s::stage2` is the example.
//! 2. The variant `Engine::Microk8s(..)`, its arm in `Engine::stage2` and, for its
//!    errors, a variant of `EngineError`.
//!
//! The renderer (`crate::render::stage2`) matches on no distribution and needs no edit.
//! The profile's choice and the plan's resolution of it are theirs (`profile/`, `plan/`).

pub(crate) mod k3s;

/// kube-vip, which serves an HA cluster's virtual IP, and the release pinode deploys.
pub use k3s::kubevip::{KubeVip, VERSION as KUBE_VIP_VERSION};
pub(crate) mod stage2;

use stage2::{EngineStage2, StageContext};

/// The distribution a node runs, with that node's resolved part in it.
#[derive(Clone)]
pub(crate) enum Engine {
    K3s(k3s::K3sNode),
}

/// A distribution's file that cannot be written (never contains a secret).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum EngineError {
    #[error(transparent)]
    K3s(#[from] k3s::K3sError),
}

impl Engine {
    /// The distribution's part of the second first-boot stage for this node.
    pub(crate) fn stage2(&self, ctx: &StageContext) -> Result<EngineStage2, EngineError> {
        match self {
            Engine::K3s(node) => Ok(k3s::stage2::stage2(ctx, node)?),
        }
    }
}
