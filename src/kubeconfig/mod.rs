//! Kubeconfig files: the one K3s writes on its first server, renamed for the cluster and
//! pointed at its API address, then written alone or merged into the user's kubeconfig.
//!
//! Why typed: a merge must replace exactly this cluster's cluster, user and context and
//! leave every other entry as it was. Each entry is kept as the YAML mapping it was
//! (`Named::body`), so other entries come out with the same content and key order, and a
//! second merge of the same cluster writes nothing. The file holds client keys: it is
//! written 0600, atomically, and its content never appears in an error.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

/// A kubeconfig is a few KiB; K3s's is about 3 KiB. Anything larger is not one.
pub const MAX_KUBECONFIG: u64 = 4 * 1024 * 1024;

/// Why a kubeconfig could not be used. Never holds the file's content.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{what} is not a kubeconfig: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{path}: {message}", path = .path.display())]
    Io { path: PathBuf, message: String },
    #[error("no kubeconfig to merge into: set KUBECONFIG or HOME, or use --output FILE")]
    NoPath,
    #[error(
        "{path} is being changed by another program (kubectl or pinode): its lock {lock} \
         exists; run again when it is done, or remove the lock if no such program runs",
        path = .path.display(),
        lock = .lock.display()
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error(
        "{path} holds other contexts ({others}): --output writes this cluster's kubeconfig \
         alone and would drop them; use --merge to add it to that file",
        path = .path.display()
    )]
    WouldDrop { path: PathBuf, others: String },
}

/// A kubeconfig file (`apiVersion: v1`, `kind: Config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub clusters: Vec<Named>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub contexts: Vec<Named>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub users: Vec<Named>,
    /// `None` for a missing or empty `current-context` (kubectl writes `""`).
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_is_none"
    )]
    pub current_context: Option<String>,
    /// `preferences` and anything else, kept as they were.
    #[serde(flatten)]
    pub other: Mapping,
}

/// One entry of `clusters`, `contexts` or `users`: its name and the rest as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    #[serde(flatten)]
    pub body: Mapping,
}

/// Whether the YAML mapping in `bytes` has one of `keys` at its top (already parsed once
/// as a kubeconfig, so it is a mapping).
fn has_key(bytes: &[u8], keys: &[&str]) -> bool {
    serde_yaml::from_slice::<Mapping>(bytes).is_ok_and(|m| keys.iter().any(|k| m.contains_key(*k)))
}

fn api_version() -> String {
    "v1".into()
}

fn kind() -> String {
    "Config".into()
}

fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Named>, D::Error> {
    Ok(Option::<Vec<Named>>::deserialize(d)?.unwrap_or_default())
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The file already held exactly this; nothing was written.
    Unchanged,
    /// Written; the earlier file (if any) kept at `backup`.
    Changed { backup: Option<PathBuf> },
}

impl Kubeconfig {
    /// Parses `bytes` (`what` names them in errors).
    pub fn parse(bytes: &[u8], what: &str) -> Result<Kubeconfig, KubeconfigError> {
        let invalid = |reason: String| KubeconfigError::Invalid {
            what: what.to_string(),
            reason,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Kubeconfig::empty());
        }
        // Only where: serde_yaml's messages quote the value they met (`invalid type: string
        // "…"`), which in a kubeconfig may be a token or a client key.
        let config: Kubeconfig = serde_yaml::from_slice(bytes).map_err(|e| {
            invalid(match e.location() {
                Some(at) => format!(
                    "not the shape of one at line {} column {}",
                    at.line(),
                    at.column()
                ),
                None => "not the shape of one (line unknown)".into(),
            })
        })?;
        if config.kind != "Config" {
            return Err(invalid("its kind is not Config".into()));
        }
        // `kind` and the lists may each be left out (kubectl reads such files), but not all
        // at once: that is some other YAML file, which a wrong KUBECONFIG would have pinode
        // merge into.
        if !has_key(
            bytes,
            &["kind", "clusters", "contexts", "users", "current-context"],
        ) {
            return Err(invalid(
                "it has none of a kubeconfig's keys (kind, clusters, contexts, users)".into(),
            ));
        }
        Ok(config)
    }

    /// A kubeconfig with no entries.
    pub fn empty() -> Kubeconfig {
        Kubeconfig {
            api_version: api_version(),
            kind: kind(),
            clusters: Vec::new(),
            contexts: Vec::new(),
            users: Vec::new(),
            current_context: None,
            other: Mapping::new(),
        }
    }

    /// K3s's own kubeconfig (one cluster, user and context, all named `default`, the server
    /// `https://127.0.0.1:6443`) made into this cluster's: everything named `name`, the
    /// server `api`, the current context `name`.
    pub fn for_cluster(&self, name: &str, api: &str) -> Result<Kubeconfig, KubeconfigError> {
        let invalid = |reason: &str| KubeconfigError::Invalid {
            what: "the founding server's /etc/rancher/k3s/k3s.yaml".into(),
            reason: reason.into(),
        };
        let context = match self.contexts.as_slice() {
            [one] => one,
            _ => return Err(invalid("it does not hold exactly one context")),
        };
        let inner = context
            .body
            .get("context")
            .and_then(Value::as_mapping)
            .ok_or_else(|| invalid("its context has no `context` mapping"))?;
        let field = |key: &str| inner.get(key).and_then(Value::as_str);
        let find = |list: &[Named], entry: Option<&str>, what: &str| {
            list.iter()
                .find(|n| Some(n.name.as_str()) == entry)
                .cloned()
                .ok_or_else(|| invalid(&format!("its context names no {what} it holds")))
        };
        let mut cluster = find(&self.clusters, field("cluster"), "cluster")?;
        let mut user = find(&self.users, field("user"), "user")?;
        only_known(&cluster, "cluster", CLUSTER_KEYS).map_err(|e| invalid(&e))?;
        only_known(&user, "user", USER_KEYS).map_err(|e| invalid(&e))?;
        let server = cluster
            .body
            .get_mut("cluster")
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| invalid("its cluster has no `cluster` mapping"))?;
        server.insert("server".into(), api.into());
        cluster.name = name.to_string();
        user.name = name.to_string();
        let mut context = context.clone();
        if let Some(Value::Mapping(inner)) = context.body.get_mut("context") {
            inner.insert("cluster".into(), name.into());
            inner.insert("user".into(), name.into());
        }
        context.name = name.to_string();
        Ok(Kubeconfig {
            clusters: vec![cluster],
            contexts: vec![context],
            users: vec![user],
            current_context: Some(name.to_string()),
            ..Kubeconfig::empty()
        })
    }

    /// `self` with `ours`'s entries in place of those of the same names (where they were,
    /// else at the end); every other entry untouched. The current context becomes ours only
    /// when `set_current` or when there was none.
    pub fn merged(&self, ours: &Kubeconfig, set_current: bool) -> Kubeconfig {
        let mut merged = self.clone();
        replace(&mut merged.clusters, &ours.clusters);
        replace(&mut merged.contexts, &ours.contexts);
        replace(&mut merged.users, &ours.users);
        if set_current || merged.current_context.is_none() {
            merged.current_context = ours.current_context.clone();
        }
        merged
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        serde_yaml::to_string(self).map_err(|e| KubeconfigError::Invalid {
            what: "the merged kubeconfig".into(),
            reason: e.to_string(),
        })
    }
}

/// What a cluster entry of K3s's kubeconfig holds.
const CLUSTER_KEYS: &[&str] = &["certificate-authority-data", "server"];
/// What a user entry of K3s's kubeconfig holds (client certificate; a token or basic
/// credentials in other setups).
const USER_KEYS: &[&str] = &[
    "client-certificate-data",
    "client-key-data",
    "token",
    "username",
    "password",
];

/// Refuses an entry of the fetched kubeconfig with a key K3s does not write. Why: the file
/// comes from a node, and kubectl acts on some keys on the user's machine: `exec` and
/// `auth-provider` run programs, `proxy-url` and `insecure-skip-tls-verify` redirect or
/// unguard the connection, `*-file` keys read local files. A node that has been tampered
/// with must not gain that by the user merging its kubeconfig. Names the key, never a value.
fn only_known(entry: &Named, what: &str, known: &[&str]) -> Result<(), String> {
    let inner = entry
        .body
        .get(what)
        .and_then(Value::as_mapping)
        .ok_or_else(|| format!("its {what} has no `{what}` mapping"))?;
    for key in inner.keys() {
        let name = key.as_str().unwrap_or("(not text)");
        if !known.contains(&name) {
            return Err(format!(
                "its {what} has `{}`, which K3s does not write and pinode does not copy",
                crate::ui::terminal_safe(name)
            ));
        }
    }
    Ok(())
}

fn replace(list: &mut Vec<Named>, ours: &[Named]) {
    for entry in ours {
        match list.iter_mut().find(|n| n.name == entry.name) {
            Some(old) => *old = entry.clone(),
            None => list.push(entry.clone()),
        }
    }
}

/// The kubeconfig `--merge` writes: the first file of `$KUBECONFIG`, else
/// `~/.kube/config` of the invoking user (under sudo, theirs, not root's).
pub fn default_path(settings: &crate::edge::Settings) -> Result<PathBuf, KubeconfigError> {
    if let Some(list) = &settings.kubeconfig {
        use std::os::unix::ffi::OsStrExt;
        // A list of files separated by `:`, as kubectl reads it; it writes new entries to
        // the first.
        if let Some(first) = list
            .as_bytes()
            .split(|b| *b == b':')
            .find(|p| !p.is_empty())
        {
            return Ok(PathBuf::from(std::ffi::OsStr::from_bytes(first)));
        }
    }
    crate::invoker::Invoker::current()
        .expand_tilde("~/.kube/config")
        .ok_or(KubeconfigError::NoPath)
}

/// Reads the kubeconfig at `path`; an absent file is an empty kubeconfig.
pub fn read(path: &Path) -> Result<(Kubeconfig, Option<String>), KubeconfigError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok((Kubeconfig::empty(), None));
    }
    let text = crate::input::read_text(path, MAX_KUBECONFIG, "a kubeconfig").map_err(|e| {
        KubeconfigError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    let config = Kubeconfig::parse(text.as_bytes(), &path.display().to_string())?;
    Ok((config, Some(text)))
}

/// Merges `ours` into the kubeconfig at `path` (see [`Kubeconfig::merged`]) and writes it
/// back with a backup; returns the merged kubeconfig and what was written.
///
/// Why a lock: the merge reads, changes and rewrites the file, and another writer in
/// between (a second pinode, `kubectl config use-context`) would have its change lost.
/// kubectl's lock is used, `PATH.lock` created exclusively, so pinode and kubectl exclude
/// each other. Why through a symlink: a kubeconfig linked from elsewhere (a dotfiles
/// repository) stays linked, as kubectl keeps it, instead of being replaced by a file.
pub fn merge_into(
    path: &Path,
    ours: &Kubeconfig,
    set_current: bool,
) -> Result<(Kubeconfig, Written), KubeconfigError> {
    let io = |p: &Path, e: std::io::Error| KubeconfigError::Io {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::invoker::Invoker::current()
            .create_dir_all(dir, 0o700)
            .map_err(|e| io(dir, e))?;
    }
    let mut lock = path.as_os_str().to_os_string();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let _held = match crate::cleanup::CreatedLock::create(&lock) {
        Ok(held) => held,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KubeconfigError::Locked {
                path: path.to_path_buf(),
                lock,
            });
        }
        Err(e) => return Err(io(&lock, e)),
    };
    let target = write_target(path, crate::invoker::Invoker::current())?;
    let (existing, old) = read(&target)?;
    let merged = existing.merged(ours, set_current);
    let written = write(&target, &merged, old.as_deref(), true)?;
    Ok((merged, written))
}

/// The file to write for `path`: the file a symlink points to (so that the link stays, as
/// kubectl keeps it), else `path`. Under sudo, only a file of the invoking user's: pinode
/// runs as root then, and a link in their folder must not steer a root write (and the
/// chown to them that follows) onto a file of the system's, such as a YAML file in /etc.
fn write_target(
    path: &Path,
    invoker: &crate::invoker::Invoker,
) -> Result<PathBuf, KubeconfigError> {
    use std::os::unix::fs::MetadataExt;
    let io = |e: std::io::Error| KubeconfigError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::canonicalize(path).map_err(io)?;
            let owner = std::fs::metadata(&target).map_err(io)?.uid();
            if invoker.sudo && owner != invoker.uid {
                return Err(KubeconfigError::Io {
                    path: path.to_path_buf(),
                    message: format!(
                        "a symlink to {}, which is not yours: not written under sudo",
                        target.display()
                    ),
                });
            }
            Ok(target)
        }
        _ => Ok(path.to_path_buf()),
    }
}

/// Writes `ours` alone to `path` (`--output`). A file already there is replaced only when
/// it is a kubeconfig holding no context but `ours`'s (an earlier `--output`): pointing
/// `--output` at `~/.kube/config` by mistake must not drop the user's other clusters, and
/// a file that is no kubeconfig at all (any YAML mapping parses as an empty one) is not
/// pinode's to replace.
pub fn write_alone(path: &Path, ours: &Kubeconfig) -> Result<Written, KubeconfigError> {
    let target = write_target(path, crate::invoker::Invoker::current())?;
    let (existing, old) = read(&target)?;
    let others: Vec<&str> = existing
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| !ours.contexts.iter().any(|o| o.name == *name))
        .collect();
    if old.as_deref().is_some_and(|text| !text.trim().is_empty()) && existing.contexts.is_empty() {
        return Err(KubeconfigError::Invalid {
            what: path.display().to_string(),
            reason: "it holds no context; not replaced (remove it, or pick another --output)"
                .into(),
        });
    }
    if !others.is_empty() {
        return Err(KubeconfigError::WouldDrop {
            path: path.to_path_buf(),
            others: crate::ui::terminal_safe(&others.join(", ")).into_owned(),
        });
    }
    write(&target, ours, old.as_deref(), false)
}

/// Writes `config` to `path` (mode 0600, atomically, under sudo the invoking user's),
/// unless the file holds exactly that text already. With `backup`, the earlier content is
/// kept first in `PATH.bak` (0600).
pub fn write(
    path: &Path,
    config: &Kubeconfig,
    old: Option<&str>,
    backup: bool,
) -> Result<Written, KubeconfigError> {
    let text = config.to_yaml()?;
    if old == Some(text.as_str()) {
        return Ok(Written::Unchanged);
    }
    let io = |p: &Path, e: std::io::Error| KubeconfigError::Io {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let invoker = crate::invoker::Invoker::current();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        invoker.create_dir_all(dir, 0o700).map_err(|e| io(dir, e))?;
    }
    let mut kept = None;
    if let (true, Some(old)) = (backup, old) {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".bak");
        let bak = path.with_file_name(name);
        crate::cleanup::write_atomic_with(&bak, old.as_bytes(), 0o600, |f| {
            invoker.give_back_file(f)
        })
        .map_err(|e| io(&bak, e))?;
        kept = Some(bak);
    }
    crate::cleanup::write_atomic_with(path, text.as_bytes(), 0o600, |f| invoker.give_back_file(f))
        .map_err(|e| io(path, e))?;
    Ok(Written::Changed { backup: kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {}\nusers:\n- name: default\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";

    #[test]
    fn another_yaml_file_is_not_taken_for_a_kubeconfig() {
        let err = Kubeconfig::parse(b"name: lab\nnodes: []\n", "values.yaml").unwrap_err();
        assert!(
            err.to_string().contains("none of a kubeconfig's keys"),
            "{err}"
        );
        // A kubeconfig without `kind` (kubectl reads it) is still one.
        let bare = "clusters: []\ncontexts: []\nusers: []\n";
        assert!(Kubeconfig::parse(bare.as_bytes(), "config").is_ok());
        assert!(Kubeconfig::parse(b"\n", "config").is_ok());
    }

    #[test]
    fn k3s_config_is_renamed_and_pointed_at_the_api() {
        let k3s = Kubeconfig::parse(K3S.as_bytes(), "k3s.yaml").unwrap();
        let ours = k3s.for_cluster("lab", "https://lab.example:6443").unwrap();
        assert_eq!(ours.clusters[0].name, "lab");
        let server = &ours.clusters[0].body["cluster"]["server"];
        assert_eq!(server.as_str(), Some("https://lab.example:6443"));
        assert_eq!(
            ours.contexts[0].body["context"]["user"].as_str(),
            Some("lab")
        );
        assert_eq!(
            ours.users[0].body["user"]["client-key-data"].as_str(),
            Some("S0VZ")
        );
        assert_eq!(ours.current_context.as_deref(), Some("lab"));
    }

    #[test]
    fn a_malformed_kubeconfig_is_refused_without_quoting_it() {
        for text in [
            "users: \"s3cr3t-token\"\n",
            "current-context: [s3cr3t-token]\nkind: Config\n",
            "users:\n- name: [s3cr3t-token]\n",
        ] {
            let err = Kubeconfig::parse(text.as_bytes(), "x")
                .unwrap_err()
                .to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(err.contains("line "), "{err}");
        }
    }

    #[test]
    fn a_merge_waits_for_no_one_and_keeps_a_linked_kubeconfig_linked() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Kubeconfig::parse(K3S.as_bytes(), "k3s.yaml")
            .unwrap()
            .for_cluster("lab", "https://lab:6443")
            .unwrap();
        let real = dir.path().join("dotfiles-kubeconfig");
        std::fs::write(&real, "current-context: other\n").unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // kubectl holds its lock: the merge refuses and changes nothing.
        std::fs::write(dir.path().join("config.lock"), "").unwrap();
        let err = merge_into(&link, &ours, false).unwrap_err();
        assert!(matches!(err, KubeconfigError::Locked { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "current-context: other\n"
        );
        std::fs::remove_file(dir.path().join("config.lock")).unwrap();
        let (merged, written) = merge_into(&link, &ours, false).unwrap();
        assert!(matches!(written, Written::Changed { .. }));
        assert_eq!(merged.current_context.as_deref(), Some("other"));
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::read_to_string(&real)
                .unwrap()
                .contains("name: lab")
        );
        assert!(!dir.path().join("config.lock").exists());
        let (_, again) = merge_into(&link, &ours, false).unwrap();
        assert_eq!(again, Written::Unchanged);
    }

    #[test]
    fn output_replaces_only_its_own_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Kubeconfig::parse(K3S.as_bytes(), "k3s.yaml")
            .unwrap()
            .for_cluster("lab", "https://lab:6443")
            .unwrap();
        let theirs = ours.for_cluster("work", "https://work:6443").unwrap();
        let full = dir.path().join("config");
        std::fs::write(&full, theirs.to_yaml().unwrap()).unwrap();
        let err = write_alone(&full, &ours).unwrap_err().to_string();
        assert!(err.contains("other contexts (work)"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&full).unwrap(),
            theirs.to_yaml().unwrap()
        );
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "shopping: milk\n").unwrap();
        assert!(write_alone(&notes, &ours).is_err());
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "shopping: milk\n");
        let alone = dir.path().join("lab.yaml");
        assert!(matches!(
            write_alone(&alone, &ours).unwrap(),
            Written::Changed { .. }
        ));
        assert_eq!(write_alone(&alone, &ours).unwrap(), Written::Unchanged);
    }

    #[test]
    fn keys_that_run_programs_or_unguard_the_connection_are_not_copied() {
        for (from, to) in [
            (
                "    client-key-data: S0VZ\n",
                "    client-key-data: S0VZ\n    exec:\n      command: /bin/sh\n",
            ),
            (
                "    server: https://127.0.0.1:6443\n",
                "    server: https://127.0.0.1:6443\n    proxy-url: http://evil:3128\n",
            ),
        ] {
            let text = K3S.replace(from, to);
            assert_ne!(text, K3S);
            let k3s = Kubeconfig::parse(text.as_bytes(), "k3s.yaml").unwrap();
            let err = k3s
                .for_cluster("lab", "https://lab:6443")
                .unwrap_err()
                .to_string();
            assert!(err.contains("which K3s does not write"), "{err}");
            assert!(!err.contains("evil") && !err.contains("/bin/sh"), "{err}");
        }
    }

    #[test]
    fn under_sudo_a_link_to_a_file_not_the_users_is_not_followed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("system.yaml");
        std::fs::write(&system, "a: 1\n").unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&system, &link).unwrap();
        let owner = std::fs::metadata(&system).unwrap().uid();
        let invoker = |uid, sudo| crate::invoker::Invoker {
            name: None,
            uid,
            gid: uid,
            home: None,
            sudo,
        };
        let err = write_target(&link, &invoker(owner + 1, true)).unwrap_err();
        assert!(err.to_string().contains("not yours"), "{err}");
        let real = std::fs::canonicalize(&system).unwrap();
        assert_eq!(write_target(&link, &invoker(owner, true)).unwrap(), real);
        assert_eq!(
            write_target(&link, &invoker(owner + 1, false)).unwrap(),
            real
        );
        assert_eq!(
            write_target(&system, &invoker(owner + 1, true)).unwrap(),
            system
        );
    }

    #[test]
    fn a_merge_replaces_only_our_entries_and_is_stable() {
        let k3s = Kubeconfig::parse(K3S.as_bytes(), "k3s.yaml").unwrap();
        let ours = k3s.for_cluster("lab", "https://lab:6443").unwrap();
        let mut theirs = k3s.for_cluster("other", "https://other:6443").unwrap();
        theirs
            .other
            .insert("preferences".into(), Value::Mapping(Mapping::new()));
        let once = theirs.merged(&ours, false);
        assert_eq!(once.current_context.as_deref(), Some("other"));
        assert_eq!(once.clusters.len(), 2);
        assert_eq!(once.clusters[0], theirs.clusters[0]);
        let twice = once.merged(&ours, false);
        assert_eq!(twice.to_yaml().unwrap(), once.to_yaml().unwrap());
        assert_eq!(
            once.merged(&ours, true).current_context.as_deref(),
            Some("lab")
        );
        assert!(Kubeconfig::parse(b"kind: Pod\n", "x").is_err());
        let empty = Kubeconfig::parse(b"clusters: null\ncurrent-context: \"\"\n", "x").unwrap();
        assert_eq!(
            empty.merged(&ours, false).current_context.as_deref(),
            Some("lab")
        );
    }
}
