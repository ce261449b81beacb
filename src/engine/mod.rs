//! Kubernetes distributions: the engine a cluster runs.
//!
//! K3s is the only one today. Each distribution is one module (its facts, its value rules,
//! its input type and the files of its own it renders) and one variant of [`Engine`]; the
//! profile validation and the renderer reach a distribution only through here. This layer
//! sits below the profile and the plan: it imports neither.

pub mod k3s;

/// The distribution a node runs, with that node's resolved part in it.
#[derive(Clone)]
pub enum Engine {
    K3s(k3s::K3sNode),
}
