//! A node's kubeadm part, resolved: its membership, the cluster's settings and the
//! cluster's PKI.
//!
//! The PKI (the cluster CA, the service account key pair, the front proxy and etcd CAs; see
//! `crate::engine::kubeadm::pki`) is generated once and kept private in pinode's state
//! directory, `clusters/NAME/kubeadm-pki/`, like the cluster token: a node prepared next
//! month must trust the same CA. The directory is made whole in a private temporary
//! directory and renamed into place, so it either does not exist or holds every file; when
//! several pinode processes start a cluster at once, one rename wins and the others read
//! the winner's files. Under sudo it belongs to the invoking user. Under CI pinode never
//! generates it (see [`CI_REFUSAL`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::cluster::{ClusterPlan, state_dir};
use crate::edge::Settings;
use crate::engine::Membership;
use crate::engine::kubeadm::pki::{self, FILES, PkiFile};
use crate::engine::kubeadm::{ClusterPki, KubeadmNode};
use crate::invoker::Invoker;
use crate::profile::{FieldError, LoadedProfile};

/// The kept PKI's directory name in the cluster's state directory.
const DIR: &str = "kubeadm-pki";
/// More than this is not a PEM file pinode wrote.
const MAX_FILE: u64 = 64 * 1024;

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
    if std::fs::symlink_metadata(dir).is_ok() {
        return read_kept(dir).map(|files| (files, None));
    }
    if settings.ci {
        return Err(CI_REFUSAL.to_string());
    }
    kept(dir)
}

/// Reads the PKI kept at `dir`, generating it if there is none yet.
fn kept(dir: &Path) -> Result<(Vec<PkiFile>, Option<String>), String> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return read_kept(dir).map(|files| (files, None));
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let invoker = Invoker::current();
    invoker
        .create_dir_all(parent, 0o700)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let files = pki::generate().map_err(|e| e.to_string())?;
    let temp = tempfile::Builder::new()
        .prefix(".kubeadm-pki-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
    for file in &files {
        write_private(&temp.path().join(file.path.name), file, invoker).map_err(|e| {
            format!(
                "cannot write the cluster's PKI in {}: {e}",
                parent.display()
            )
        })?;
    }
    invoker.give_back_tree(temp.path());
    let staged = temp.keep();
    match std::fs::rename(&staged, dir) {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Err(_) if std::fs::symlink_metadata(dir).is_ok() => {
            // Another pinode got there first: use its PKI.
            let _ = std::fs::remove_dir_all(&staged);
            return read_kept(dir).map(|files| (files, None));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(format!("cannot create {}: {e}", dir.display()));
        }
    }
    Ok((
        files,
        Some(format!(
            "note: generated the kubeadm cluster's CA (with its service account key, front \
             proxy and etcd CAs) and kept it in {} (back it up: nodes prepared later need it, \
             and whoever has it controls the cluster)",
            dir.display()
        )),
    ))
}

/// Writes one file of the PKI, 0600 from its creation, synced.
fn write_private(path: &Path, file: &PkiFile, invoker: &Invoker) -> std::io::Result<()> {
    use secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    out.write_all(file.contents.expose_secret().as_bytes())?;
    out.sync_all()?;
    invoker.give_back_file(&out)
}

/// Reads every file of the kept PKI: each private (0600), a regular file, and present.
fn read_kept(dir: &Path) -> Result<Vec<PkiFile>, String> {
    use crate::input::InputError;
    let mut files = Vec::new();
    for path in FILES {
        let file = dir.join(path.name);
        let bytes = crate::input::read_private(&file, MAX_FILE).map_err(|e| match e {
            InputError::Io { source, .. } => format!(
                "cannot read {} of the cluster's kept PKI: {source}; do not delete the \
                 directory, nodes may trust it: run pinode as the user whose state it is, or \
                 restore the file from a backup or a server's /etc/kubernetes/pki",
                file.display()
            ),
            other => other.to_string(),
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{} is not a PEM file", file.display()))?;
        files.push(PkiFile {
            path,
            contents: SecretString::from(text),
        });
    }
    Ok(files)
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
