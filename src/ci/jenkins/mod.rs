//! Jenkins: not built yet (issue 19 builds it in this module; see `crate::ci` for the
//! functions every CI system module has).

pub(crate) mod stage2;

use super::{BuildMode, Example, RunnerSpec, SecretSlot, Workload};
use crate::engine::SpecProblem;

/// This system's settings.
pub(crate) const KEYS: &[&str] = &[
    "admin_user",
    "admin_password_env",
    "admin_password_file",
    "storage_class",
    "storage_size",
];

/// The build modes this runner supports.
pub(crate) const BUILD_MODES: &[BuildMode] = &[];

pub const TESTED_CHART_VERSION: &str = "";

/// What `pinode status` waits for.
pub(crate) const WORKLOADS: &[Workload] = &[];

pub(crate) fn check(_spec: &RunnerSpec, at: &str, out: &mut Vec<SpecProblem>) {
    out.push(SpecProblem::error(format!("{at}.kind"), "not built yet"));
}

pub(crate) fn secrets(_spec: &RunnerSpec) -> Vec<SecretSlot> {
    Vec::new()
}

pub(crate) fn check_secret(_slot: SecretSlot, _value: &str) -> Result<(), String> {
    Err("not built yet".into())
}

pub(crate) fn unsupported(_mode: BuildMode) -> &'static str {
    "not built yet"
}

pub(crate) fn examples(_spec: &RunnerSpec) -> Vec<Example> {
    Vec::new()
}
