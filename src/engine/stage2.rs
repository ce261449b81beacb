//! The contract between the second first-boot stage and what runs in it.
//!
//! The stage ([`crate::render::stage2`]) is one shell program with a fixed skeleton — wait
//! for the network, move the secrets off the boot partition, pin the API host, write the
//! status file and the done-marker. A distribution fills its slots with an [`EngineStage2`]
//! and a CI system with a [`crate::ci::RunnerGlue`]. The types live here, below the
//! renderer, so that both can fill them without importing it; the stage passes down what
//! they need (its paths, the distribution's manifest directory) as plain values.

use crate::bootfs::content::BootFile;

/// What the stage tells its contributors: the node, and where the stage keeps things.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageContext<'a> {
    pub(crate) hostname: &'a str,
    /// The stage's directory on the boot partition, relative to its root.
    pub(crate) boot_dir: &'a str,
    /// The root-only directory on the node that the stage's files are installed to.
    pub(crate) node_dir: &'a str,
    /// Where every file of `<boot_dir>/secrets/` lands on the node, under its own name
    /// (root only); the copy on the boot partition is scrubbed.
    pub(crate) secrets_dir: &'a str,
}

#[cfg(test)]
impl StageContext<'static> {
    /// The stage paths the engines' unit tests render with (node `node-2`, boot directory
    /// `stage`, node directory `/etc/stage`).
    pub(crate) fn for_test() -> StageContext<'static> {
        StageContext {
            hostname: "node-2",
            boot_dir: "stage",
            node_dir: "/etc/stage",
            secrets_dir: "/etc/stage/secrets",
        }
    }
}

impl StageContext<'_> {
    /// The boot-partition path of the secret `name`.
    pub(crate) fn boot_secret(&self, name: &str) -> String {
        format!("{}/secrets/{name}", self.boot_dir)
    }

    /// The node path of the secret `name`, once the stage has moved it.
    pub(crate) fn node_secret(&self, name: &str) -> String {
        format!("{}/{name}", self.secrets_dir)
    }
}

/// Where the cluster's manifests go on a server so that they are applied without anyone
/// running kubectl: a CI system puts its runner's manifests there.
#[derive(Debug, Clone)]
pub(crate) struct AutoManifests {
    /// On the boot partition, where the manifests wait for the stage.
    pub(crate) boot_dir: String,
    /// On the node, the directory the distribution watches (K3s), or pinode's own
    /// ([`PINODE_MANIFESTS`]) that the founder applies once with [`APPLY_MANIFESTS`].
    pub(crate) node_dir: &'static str,
    /// The distribution runs a Helm controller of its own (K3s): `HelmChart` resources work
    /// without pinode deploying one.
    pub(crate) helm_controller: bool,
}

/// `check_memory_cgroup`: every distribution's kubelet needs the memory cgroup, which the
/// Raspberry Pi firmware turns off (`cgroup_disable=memory`) unless cmdline.txt turns it on.
/// It logs the exact reason. Static text.
pub(crate) const MEMORY_CGROUP_CHECK: &str = r##"
# The memory cgroup: K3s cannot run without it, and the Pi firmware turns it off.
check_memory_cgroup() {
	if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		return 0
	fi
	if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
		log "no cgroup v2 hierarchy at /sys/fs/cgroup (is systemd.unified_cgroup_hierarchy=0 on the command line?)"
	elif ! grep -qw cgroup_enable=memory /proc/cmdline; then
		log "the memory cgroup is off: cmdline.txt lacks cgroup_enable=memory (the firmware passes cgroup_disable=memory)"
	else
		log "the memory cgroup is off although the command line has cgroup_enable=memory: $(cat /proc/cmdline)"
	fi
	return 1
}
"##;

/// For distributions that apply no manifest directory by themselves (MicroK8s, kubeadm):
/// pinode's own, applied once by the founder when its API answers.
pub(crate) const PINODE_MANIFESTS: &str = "/var/lib/pinode/manifests";

/// `apply_manifests KUBECTL...`: applies every manifest in [`PINODE_MANIFESTS`] with the
/// distribution's kubectl (a command and its arguments, e.g. `microk8s kubectl`). Run it
/// with `retry`: a custom resource is refused until its definition is established, and the
/// next attempt applies it. Server-side apply, so that applying the same files again
/// converges instead of fighting over fields. Static text.
pub(crate) const APPLY_MANIFESTS: &str = r##"
apply_manifests() {
	dir=/var/lib/pinode/manifests
	set -- "$@" apply --server-side --force-conflicts -f "$dir"
	if ! ls "$dir"/*.yaml >/dev/null 2>&1; then
		return 0
	fi
	if ! why=$("$@" 2>&1); then
		log "cannot apply pinode's manifests: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
	printf '%s\n' "$why" >>"$PINODE_LOG"
}
"##;

/// A distribution's part of the stage: its files, its shell variables and functions, and
/// the lines the skeleton places at fixed points.
#[derive(Debug)]
pub(crate) struct EngineStage2 {
    /// The distribution's name in the unit descriptions and the log.
    pub(crate) title: &'static str,
    /// Its name in the status file on the boot partition.
    pub(crate) status_name: &'static str,
    /// The shell variable (one of `vars`) describing the node's role.
    pub(crate) role_var: &'static str,
    /// Its systemd units, space-separated: the API-host pin runs before them.
    pub(crate) units: &'static str,
    /// Shell variables, assigned after the stage's own.
    pub(crate) vars: Vec<(&'static str, String)>,
    /// Its files for the boot partition (secrets under `<boot_dir>/secrets/`).
    pub(crate) files: Vec<BootFile>,
    /// Lines of `install_stage` that move its files off the boot partition.
    pub(crate) install_lines: String,
    /// Functions that check and prepare the node.
    pub(crate) prepare_functions: String,
    /// Functions that install the distribution.
    pub(crate) install_functions: String,
    /// Lines of `run_stage` before the runner's manifests are placed.
    pub(crate) prepare_steps: String,
    /// Lines of `run_stage` that install the distribution, after the API-host pin.
    pub(crate) install_steps: String,
    /// The API host, when this node reaches it by an mDNS name it must pin in /etc/hosts.
    pub(crate) api_mdns_host: Option<String>,
    /// Where its auto-applied manifests go.
    pub(crate) manifests: AutoManifests,
}

/// `docs` as one multi-document YAML file: each document pretty-printed JSON (which is YAML,
/// every string quoted, so no value can restructure it), separated by `---`.
pub(crate) fn yaml_documents<'a>(
    docs: impl IntoIterator<Item = &'a serde_json::Value>,
) -> Result<String, serde_json::Error> {
    let mut text = String::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_json::to_string_pretty(doc)?);
        text.push('\n');
    }
    Ok(text)
}

/// `template` with every `@NAME@` placeholder of `values` replaced: shell code keeps its
/// braces readable, which `format!` would double.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(name, value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_every_placeholder_and_keeps_braces() {
        let text = fill(
            "f() {\n\tx=@A@ y=@B@ z=@A@\n}\n",
            &[("@A@", "/etc/a"), ("@B@", "${b}")],
        );
        assert_eq!(text, "f() {\n\tx=/etc/a y=${b} z=/etc/a\n}\n");
    }

    #[test]
    fn secrets_move_under_their_own_name() {
        let ctx = StageContext {
            hostname: "n",
            boot_dir: "pinode",
            node_dir: "/etc/pinode",
            secrets_dir: "/etc/pinode/secrets",
        };
        assert_eq!(ctx.boot_secret("t"), "pinode/secrets/t");
        assert_eq!(ctx.node_secret("t"), "/etc/pinode/secrets/t");
    }
}
