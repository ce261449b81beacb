//! A node's K3s part, resolved: its membership with the full token that pins the cluster's
//! CA, and on servers the CA material itself.
//!
//! The CA (see `crate::engine::k3s::ca`) is generated once and kept private in pinode's
//! state directory, `clusters/NAME/k3s-ca/` (a [`KeptPki`], as kubeadm's PKI is), beside the
//! kept token: a node prepared next month gets the same token and pins the same CA.
//!
//! Under CI pinode never generates it: a CA made on a throw-away machine differs on every
//! run. Unlike kubeadm, K3s can still form a cluster without it (the first server makes
//! its own CA and nodes join with the bare token, trusting whichever server answers), so a
//! CI run without a kept CA renders the bare token and says so in a warning; a CA kept from
//! before (restored into `PINODE_STATE_DIR`) is used.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::cluster::{ClusterPlan, state_dir};
use super::kept_pki::KeptPki;
use crate::edge::Settings;
use crate::engine::Membership;
use crate::engine::k3s::ca::{self, CaFile, FILES};
use crate::engine::k3s::{K3sNode, K3sSpec};
use crate::profile::{FieldError, LoadedProfile};

/// The kept CA's directory name in the cluster's state directory.
const DIR: &str = "k3s-ca";

/// What a CI run without a kept CA is told.
const CI_WARNING: &str = "warning: CI is set and this K3s cluster has no kept CA yet, so pinode \
     does not generate one (a CA made on a throw-away CI machine would differ on every run): \
     the nodes get the bare cluster token and trust whichever server answers first. Run \
     pinode once where its state is kept (or restore the k3s-ca directory into \
     PINODE_STATE_DIR) so that agents verify the server";

/// Where the cluster's CA is kept.
pub(super) fn kept_dir(plan: &ClusterPlan, settings: &Settings) -> PathBuf {
    state_dir(settings)
        .join("clusters")
        .join(&plan.name)
        .join(DIR)
}

/// The kept CA directory at `dir`.
fn kept_ca(dir: &Path) -> KeptPki {
    KeptPki {
        dir: dir.to_path_buf(),
        names: FILES.iter().map(|p| p.name).collect(),
        what: "the K3s cluster's CA (server, client, request-header and etcd CAs, and the \
               service-account key)",
        restore: "a server's /var/lib/rancher/k3s/server/tls",
    }
}

/// The cluster's kept CA (generated the first time, see [`kept_or_none`]), `None` under CI
/// without one (and the warning saying so in `notes`).
///
/// Asked before anything else of the cluster is kept for this node (the token, the host
/// key): whether the CA may be generated depends on the cluster's state as it was before
/// this run, and the token and host keys of nodes planned in this run come after their CA.
pub(super) fn kept_ca_of(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<CaFile>>, FieldError> {
    let dir = kept_dir(plan, settings);
    match kept_or_none(&dir, settings).map_err(|e| profile.error_at("cluster", e))? {
        Some((kept, notice)) => {
            notes.extend(notice);
            Ok(Some(kept))
        }
        None => {
            notes.push(CI_WARNING.to_string());
            Ok(None)
        }
    }
}

/// The node's K3s part: the membership with the token pinning the kept CA `ca` (from
/// [`kept_ca_of`]; the token's own field is named when it carries another CA's hash), and
/// the CA files on servers.
pub(super) fn resolve(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    mut member: Membership,
    ca: Option<Vec<CaFile>>,
    settings: &Settings,
) -> Result<K3sNode, FieldError> {
    let mut files = Vec::new();
    if let Some(kept) = ca {
        let hash = ca::hash_of(&kept).map_err(|e| {
            let dir = kept_dir(plan, settings);
            profile.error_at("cluster", format!("the kept CA in {}: {e}", dir.display()))
        })?;
        let token = ca::pinned_token(member.token.expose_secret(), &hash)
            .map_err(|e| profile.error_at(plan.token_field(), e))?;
        member.token = SecretString::from(token);
        if member.role.is_server() {
            files = kept;
        }
    }
    Ok(K3sNode {
        member,
        spec: K3sSpec {
            airgap: plan.spec.airgap,
            ..plan.spec.k3s().clone()
        },
        ca: files,
        registry_mirror: plan.spec.registry_mirror.clone(),
    })
}

/// Every problem reading the kept CA (and pinning the given token to it) would meet, found
/// without generating it, for `profile check` and the check before `prepare`.
pub(super) fn probe(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    settings: &Settings,
) -> Result<(), FieldError> {
    let dir = kept_dir(plan, settings);
    let kept = kept_ca(&dir);
    if !kept.exists() {
        if !settings.ci
            && let Some(earlier) = earlier_state(&dir)
        {
            return Err(profile.error_at("cluster", founded_without_ca(&dir, &earlier)));
        }
        return Ok(());
    }
    let files = read(&kept).map_err(|e| profile.error_at("cluster", e))?;
    let hash = ca::hash_of(&files).map_err(|e| {
        profile.error_at("cluster", format!("the kept CA in {}: {e}", dir.display()))
    })?;
    if let Ok(token) = plan.token_value(profile, settings) {
        ca::pinned_token(token.expose_secret(), &hash)
            .map_err(|e| profile.error_at(plan.token_field(), e))?;
    }
    Ok(())
}

/// The kept CA's files, and the note when they were just generated.
type KeptCa = (Vec<CaFile>, Option<String>);

/// The kept CA at `dir`, generated when there is none and not under CI; `None` under CI
/// with none kept.
///
/// Refused (not generated) when the cluster's state directory already holds what nodes
/// prepared before left there (see [`earlier_state`]): that cluster was founded without a
/// kept CA (by an older pinode, or under CI), its servers run K3s's own CA, and a new one
/// pinned into the token would make every new node refuse them forever ("token CA hash does
/// not match"). The earlier state is looked at before the CA: a run that generates the CA
/// keeps its token and host keys only after it, so a concurrent run seeing them also sees
/// the CA.
fn kept_or_none(dir: &Path, settings: &Settings) -> Result<Option<KeptCa>, String> {
    let earlier = earlier_state(dir);
    let kept = kept_ca(dir);
    if !kept.exists() {
        if settings.ci {
            return Ok(None);
        }
        if let Some(earlier) = earlier {
            return Err(founded_without_ca(dir, &earlier));
        }
    }
    let (contents, notice) = kept.kept(|| {
        ca::generate()
            .map(|files| files.into_iter().map(|f| f.contents).collect())
            .map_err(|e| e.to_string())
    })?;
    Ok(Some((with_paths(contents), notice)))
}

/// What the cluster's state directory (the parent of the CA's `dir`) holds of nodes prepared
/// before: the kept token, the known_hosts file, host keys. `None` for a new cluster.
fn earlier_state(dir: &Path) -> Option<PathBuf> {
    let cluster = dir.parent()?;
    let exists = |name: &str| std::fs::symlink_metadata(cluster.join(name)).is_ok();
    let found = ["token", "known_hosts"].into_iter().find(|n| exists(n));
    let found = found.or_else(|| {
        std::fs::read_dir(cluster.join("host-keys"))
            .ok()?
            .next()
            .is_some()
            .then_some("host-keys")
    })?;
    Some(cluster.join(found))
}

/// The refusal to generate a CA for a cluster whose nodes were prepared without one.
fn founded_without_ca(dir: &Path, earlier: &Path) -> String {
    let cluster = dir.parent().unwrap_or(dir);
    format!(
        "this cluster was prepared before without a kept K3s CA ({} exists, {} does not): its \
         servers run their own CA, and nodes pinning a new one would never join. Copy the CA \
         files of a server's /var/lib/rancher/k3s/server/tls into {} (flattening etcd/x to \
         etcd-x, chmod 600; see docs/engines/k3s.md), or, if no node of this cluster ever \
         booted, delete {}",
        earlier.display(),
        dir.display(),
        dir.display(),
        cluster.display()
    )
}

/// Reads every kept file.
fn read(kept: &KeptPki) -> Result<Vec<CaFile>, String> {
    kept.read().map(with_paths)
}

/// The kept files' contents, in [`FILES`]' order, with their paths.
fn with_paths(contents: Vec<SecretString>) -> Vec<CaFile> {
    FILES
        .into_iter()
        .zip(contents)
        .map(|(path, contents)| CaFile { path, contents })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("clusters/c/k3s-ca");
        let settings = Settings::default();
        let (first, notice) = kept_or_none(&at, &settings).unwrap().unwrap();
        assert!(notice.is_some_and(|n| n.contains("back it up")));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&at), 0o700);
        for path in FILES {
            assert_eq!(mode(&at.join(path.name)), 0o600, "{}", path.name);
        }
        let (again, notice) = kept_or_none(&at, &settings).unwrap().unwrap();
        assert!(notice.is_none());
        assert_eq!(ca::hash_of(&first).unwrap(), ca::hash_of(&again).unwrap());
        let mut ci = Settings::default();
        ci.ci = true;
        assert!(
            kept_or_none(&dir.path().join("other"), &ci)
                .unwrap()
                .is_none()
        );
        assert!(kept_or_none(&at, &ci).unwrap().is_some());
    }
}
