//! What `prepare` and `flash` will need, checked for every node at once before anything is
//! written, and by `profile check` before anyone runs them.
//!
//! Resolving a node ([`super::NodePlan::resolve`]) stops at its first problem, and `prepare`
//! resolves one node after another: a profile with a missing key file and an unset variable
//! took two runs to learn both, and a problem in the third node was found after two images
//! had been written. This check walks every selected node through the same steps (the same
//! functions, so the two cannot disagree) and keeps every problem: the files named (key
//! files, `*_file` secrets, a local `os.image`), the variables named by `*_env`, and the
//! values read from them that K3s, GitLab or WPA would refuse. It reads secrets but keeps
//! none, and it never generates the cluster token.

use std::collections::HashSet;
use std::path::Path;

use secrecy::ExposeSecret;

use crate::cache::resolve::ImageRef;
use crate::edge::Settings;
use crate::profile::{FieldError, LoadedProfile, NodeConfig, Password, SecretRef, secret, values};

use super::cluster::ClusterPlan;

/// How much a problem weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The environment lacks something the profile names (a `*_env` variable not set, CI
    /// without a cluster token). `profile check` may run elsewhere than `prepare`, so it
    /// warns unless `--strict`; `prepare` and `flash` refuse.
    Environment,
    /// A file missing or unreadable, or a value read that would fail on the node: always an
    /// error.
    Error,
    /// A secret file that group or others may read: a warning everywhere.
    Exposed,
}

/// One problem, located in the profile.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemKind,
    pub error: FieldError,
}

/// Every problem `prepare` would meet for `nodes` of `profile`, each once (a secret set in
/// `defaults` is every node's, and is reported once). `image` is the `--image` given on the
/// command line, which replaces `os.image`.
pub fn check(
    profile: &LoadedProfile,
    nodes: &[&NodeConfig],
    settings: &Settings,
    image: Option<&Path>,
) -> Vec<Problem> {
    let mut found = Found::default();
    if image.is_none() {
        local_image(profile, &mut found);
    }
    let base = profile.base_dir();
    for node in nodes {
        if let Err(e) = super::user_keys(profile, node) {
            found.push(ProblemKind::Error, e);
        }
        if let Password::Plain(secret) = &node.user.password {
            found.secret(profile, secret, settings, |_| Ok(()));
        }
        if let Some(wifi) = &node.wifi {
            found.secret(profile, &wifi.psk, settings, |v| {
                values::wifi_passphrase(v.expose_secret())
            });
        }
    }
    let Some(plan) = ClusterPlan::of(profile, settings) else {
        return found.problems;
    };
    if let Err((environment, e)) = plan.probe_token(profile, settings) {
        found.push(kind(environment), e);
    }
    if plan.distribution == crate::engine::Distribution::Kubeadm
        && let Err((environment, e)) = super::kubeadm::probe(&plan, settings)
    {
        found.push(kind(environment), profile.error_at("cluster", e));
    }
    if plan.distribution == crate::engine::Distribution::K3s
        && let Err(e) = super::k3s::probe(profile, &plan, settings)
    {
        found.push(ProblemKind::Error, e);
    }
    if let super::cluster::TokenSource::Given(secret) = &plan.token
        && let Some(warning) = secret.exposed_file(&base)
    {
        found.push(
            ProblemKind::Exposed,
            profile.error_at(&secret.field, warning),
        );
    }
    let founder = nodes.iter().any(|n| n.hostname == plan.founder);
    if let (Some(runners), true) = (&plan.spec.runner, founder) {
        for (at, spec) in runners.entries() {
            for slot in crate::ci::secrets_of(spec) {
                if let Some(secret) = crate::profile::v1::secrets::one(
                    crate::profile::v1::secrets::runner_secret(&at, spec, slot),
                ) {
                    found.secret(profile, &secret, settings, |v| {
                        spec.kind().check_secret(slot, v.expose_secret())
                    });
                }
            }
        }
    }
    found.problems
}

fn kind(environment: bool) -> ProblemKind {
    if environment {
        ProblemKind::Environment
    } else {
        ProblemKind::Error
    }
}

/// The problems so far, without repeats.
#[derive(Default)]
struct Found {
    problems: Vec<Problem>,
    seen: HashSet<(String, String)>,
}

impl Found {
    fn push(&mut self, kind: ProblemKind, error: FieldError) {
        if self
            .seen
            .insert((error.field.clone(), error.message.clone()))
        {
            self.problems.push(Problem { kind, error });
        }
    }

    /// Reads `secret` as resolving it would, checks the value with `rule`, drops it, and
    /// warns about a secret file others may read.
    fn secret(
        &mut self,
        profile: &LoadedProfile,
        secret: &SecretRef,
        settings: &Settings,
        rule: impl Fn(&secrecy::SecretString) -> Result<(), String>,
    ) {
        let base = profile.base_dir();
        match secret.resolve(settings, &base) {
            Ok(value) => {
                if let Err(e) = rule(&value) {
                    self.push(ProblemKind::Error, profile.error_at(&secret.field, e));
                }
            }
            Err(e) => self.push(
                kind(e.is_environment()),
                profile.error_at(&secret.field, e.to_string()),
            ),
        }
        if let Some(warning) = secret.exposed_file(&base) {
            self.push(
                ProblemKind::Exposed,
                profile.error_at(&secret.field, warning),
            );
        }
    }
}

/// A local `os.image` must be there and readable (an alias or a URL is the cache's).
fn local_image(profile: &LoadedProfile, found: &mut Found) {
    let image = &profile.profile.os.image;
    if !matches!(ImageRef::classify(image), ImageRef::Path(_)) {
        return;
    }
    let problem = match secret::expand_path(image, &profile.base_dir()) {
        Err(e) => Some(e.to_string()),
        // Opened only when a regular file: opening a FIFO would wait for a writer.
        Ok(path) => match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("{} does not exist", path.display()))
            }
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
            Ok(meta) if meta.is_file() => std::fs::File::open(&path)
                .err()
                .map(|e| format!("cannot read {}: {e}", path.display())),
            Ok(_) => None,
        },
    };
    if let Some(message) = problem {
        found.push(ProblemKind::Error, profile.error_at("os.image", message));
    }
}
