//! A node's kubeadm part, resolved: its membership, the cluster's settings and the
//! cluster's PKI.
//!
//! The PKI (the cluster CA, the service account key pair, the front proxy and etcd CAs; see
//! `crate::engine::kubeadm::pki`) is generated once and kept private in pinode's state
//! directory, `clusters/NAME/kubeadm-pki/` (a [`KeptPki`], as K3s's CA is): a node prepared
//! next month must trust the same CA. Under CI pinode never generates it (see
//! [`CI_REFUSAL`]).

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::cluster::{ClusterPlan, state_dir};
use super::kept_pki::KeptPki;
use crate::edge::Settings;
use crate::engine::Membership;
use crate::engine::kubeadm::pki::{self, FILES, PkiFile};
use crate::engine::kubeadm::{ClusterPki, KubeadmNode};
use crate::profile::{FieldError, LoadedProfile};

/// The kept PKI's directory name in the cluster's state directory.
const DIR: &str = "kubeadm-pki";

/// Why pinode does not generate the cluster CA under CI, and what to do instead.
pub(super) const CI_REFUSAL: &str = "CI is set and this kubeadm cluster has no kept PKI yet, so \
     pinode would generate the cluster CA; a CA generated on a throw-away CI machine differs on \
     every run, so nodes prepared in different pipelines would never join one cluster. Run \
     pinode once where its state is kept (or restore the kubeadm-pki directory into \
     PINODE_STATE_DIR, e.g. a cached folder) so that the CA exists before CI prepares nodes";

/// Where the cluster's PKI is kept.
pub(super) fn kept_dir(plan: &ClusterPlan, settings: &Settings) -> PathBuf {
    state_dir(settings)
        .join("clusters")
        .join(&plan.name)
        .join(DIR)
}

/// The node's kubeadm part: its membership, the cluster's settings and the PKI, whose files
/// only servers carry.
pub(super) fn resolve(
    profile: &LoadedProfile,
    plan: &ClusterPlan,
    member: Membership,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<KubeadmNode, FieldError> {
    let dir = kept_dir(plan, settings);
    let (files, notice) =
        kept_or_refused(&dir, settings).map_err(|e| profile.error_at("cluster", e))?;
    notes.extend(notice);
    let ca_hash = pki::hash_of(&files).map_err(|e| {
        profile.error_at("cluster", format!("the kept PKI in {}: {e}", dir.display()))
    })?;
    let files = if member.role.is_server() {
        files
    } else {
        Vec::new()
    };
    Ok(KubeadmNode {
        member,
        spec: plan.spec.kubeadm().clone(),
        pki: ClusterPki { ca_hash, files },
        registry_mirror: plan.spec.registry_mirror.clone(),
    })
}

/// Every problem reading the kept PKI would meet, found without generating it (for
/// `profile check` and the check before `prepare`); `true` when the problem is the
/// environment's (CI with no PKI kept).
pub(super) fn probe(plan: &ClusterPlan, settings: &Settings) -> Result<(), (bool, String)> {
    let dir = kept_dir(plan, settings);
    if std::fs::symlink_metadata(&dir).is_ok() {
        let files = read_kept(&dir).map_err(|e| (false, e))?;
        pki::hash_of(&files)
            .map(|_| ())
            .map_err(|e| (false, format!("the kept PKI in {}: {e}", dir.display())))
    } else if settings.ci {
        Err((true, CI_REFUSAL.to_string()))
    } else {
        Ok(())
    }
}

/// The kept PKI at `dir`; generating it only when not under CI.
fn kept_or_refused(
    dir: &Path,
    settings: &Settings,
) -> Result<(Vec<PkiFile>, Option<String>), String> {
    if !kept_pki(dir).exists() && settings.ci {
        return Err(CI_REFUSAL.to_string());
    }
    kept(dir)
}

/// The kept PKI directory at `dir` (see [`KeptPki`]).
fn kept_pki(dir: &Path) -> KeptPki {
    KeptPki {
        dir: dir.to_path_buf(),
        names: FILES.iter().map(|p| p.name).collect(),
        what: "the kubeadm cluster's CA (with its service account key, front proxy and etcd CAs)",
        restore: "a server's /etc/kubernetes/pki",
    }
}

/// Reads the PKI kept at `dir`, generating it if there is none yet.
fn kept(dir: &Path) -> Result<(Vec<PkiFile>, Option<String>), String> {
    let (contents, notice) = kept_pki(dir).kept(|| {
        pki::generate()
            .map(|files| files.into_iter().map(|f| f.contents).collect())
            .map_err(|e| e.to_string())
    })?;
    Ok((with_paths(contents), notice))
}

/// Reads every file of the kept PKI (see [`KeptPki::read`]).
fn read_kept(dir: &Path) -> Result<Vec<PkiFile>, String> {
    kept_pki(dir).read().map(with_paths)
}

/// The kept files' contents, in [`FILES`]' order, with their paths.
fn with_paths(contents: Vec<SecretString>) -> Vec<PkiFile> {
    FILES
        .into_iter()
        .zip(contents)
        .map(|(path, contents)| PkiFile { path, contents })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_pki_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let kept_at = dir.path().join("clusters/c/kubeadm-pki");
        let (first, notice) = kept(&kept_at).unwrap();
        assert!(notice.is_some_and(|n| n.contains("back it up")));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&kept_at), 0o700);
        for path in FILES {
            assert_eq!(mode(&kept_at.join(path.name)), 0o600, "{}", path.name);
        }
        let (again, notice) = kept(&kept_at).unwrap();
        assert!(notice.is_none());
        assert_eq!(pki::hash_of(&first).unwrap(), pki::hash_of(&again).unwrap());
        assert_eq!(
            first[1].contents.expose_secret(),
            again[1].contents.expose_secret()
        );
        let key = kept_at.join("ca.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(kept(&kept_at).unwrap_err().contains("chmod 600"));
        std::fs::remove_file(&key).unwrap();
        assert!(kept(&kept_at).unwrap_err().contains("ca.key"));
    }
}
