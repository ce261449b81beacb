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
    /// A plan that works but is known to fail in use (an HA datastore on SD cards): a
    /// warning everywhere, never refused.
    Advice,
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
    ha_on_sd_cards(profile, &plan, nodes, &mut found);
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

/// Servers of an HA cluster planned for SD cards (`storage: sd-card`, the default).
///
/// An HA control plane keeps its datastore in a Raft log that is fsynced on every write:
/// K3s's embedded etcd (`cluster-init`, two or more servers here), kubeadm's stacked etcd
/// (two or more control-plane nodes) and MicroK8s' dqlite (replicated from three control-
/// plane nodes on). An SD card takes long enough to fsync that heartbeats come late, the
/// members lose their leader and elect again, and the API server restarts in a loop
/// (platform.md: restart loops on a card writing 10 MB per second, gone on one writing 60). The K3s
/// documentation warns: "Embedded etcd (HA) may have performance issues on slower disks
/// such as Raspberry Pis running with SD cards" (k3s-io/docs, docs/datastore/ha-embedded.md);
/// etcd's own hardware guide names disk write latency as the most critical factor
/// (etcd-io/website, content/en/docs/v3.5/op-guide/hardware.md); dqlite's Raft log is fsynced
/// the same way (its slowness on slow disks: canonical/microk8s#3227). One warning per
/// `storage` key (or hostname, when the key is absent) that puts servers on SD cards.
fn ha_on_sd_cards(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    nodes: &[&NodeConfig],
    found: &mut Found,
) {
    use crate::engine::Distribution;
    let (datastore, at_least) = match plan.distribution {
        Distribution::K3s => ("K3s's embedded etcd", 2),
        Distribution::Kubeadm => ("kubeadm's stacked etcd", 2),
        Distribution::Microk8s => ("MicroK8s' replicated dqlite", 3),
    };
    if plan.servers.len() < at_least {
        return;
    }
    // Servers sharing the field that says so (a range, or `defaults.storage`): one warning.
    let mut by_field: Vec<(&str, Vec<&str>)> = Vec::new();
    for node in nodes {
        if node.storage.value != crate::profile::Storage::SdCard
            || !plan.servers.contains(&node.hostname)
        {
            continue;
        }
        match by_field.iter_mut().find(|(f, _)| *f == node.storage.field) {
            Some((_, hosts)) => hosts.push(&node.hostname),
            None => by_field.push((&node.storage.field, vec![&node.hostname])),
        }
    }
    for (field, hosts) in by_field {
        found.push(
            ProblemKind::Advice,
            profile.error_at(
                field,
                format!(
                    "{} {} of an HA cluster ({} servers) {} {datastore} on an SD card \
                     (storage: sd-card, the default): its Raft log is fsynced on every write, \
                     and an SD card's fsync latency makes heartbeats late, so the servers lose \
                     their leader and the API server restarts in a loop (the K3s docs: embedded \
                     etcd \"may have performance issues on slower disks such as Raspberry Pis \
                     running with SD cards\"). Boot the servers from a USB SSD or NVMe drive and \
                     say so with `storage: usb-ssd` or `storage: nvme`",
                    if hosts.len() == 1 {
                        "server"
                    } else {
                        "servers"
                    },
                    hosts.join(", "),
                    plan.servers.len(),
                    if hosts.len() == 1 { "keeps" } else { "keep" },
                ),
            ),
        );
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
