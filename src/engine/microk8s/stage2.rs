//! MicroK8s' part of the second first-boot stage: the launch configuration (a secret: it
//! holds the join token) placed where the snap's install hook reads it, the snap installed
//! (from its channel, or from `.snap` + `.assert` files), the wait until MicroK8s has
//! applied the configuration (the join included), the login user in group `microk8s` with
//! the admin kubeconfig on servers, and on the founder pinode's manifests applied once.
//!
//! MicroK8s applies no manifest directory by itself: the founder applies
//! [`PINODE_MANIFESTS`] with `microk8s kubectl` (kube-vip, the runner's manifests).

use serde_json::json;

use super::{API_PORT, CLUSTER_AGENT_PORT, Microk8sError, Microk8sNode, launch};
use crate::bootfs::content::BootFile;
use crate::engine::k3s::kubevip::{self, KubeVip};
use crate::engine::stage2::{
    APPLY_MANIFESTS, AutoManifests, EngineStage2, MEMORY_CGROUP_CHECK, PINODE_MANIFESTS,
    StageContext, fill,
};
use crate::engine::{Distribution, NodeRole};

/// The launch configuration's name among the stage's secrets.
const LAUNCH_SECRET: &str = "microk8s-launch.yaml";
/// The stage's directory of MicroK8s files on the boot partition, relative to its root.
const DIR: &str = "microk8s";
/// The snap's services, which the API-host pin runs before (snapd names them
/// `snap.SNAP.daemon-APP`, the apps of MicroK8s' snapcraft.yaml).
const UNITS: &str = "snap.microk8s.daemon-containerd.service snap.microk8s.daemon-k8s-dqlite.service snap.microk8s.daemon-kubelite.service snap.microk8s.daemon-cluster-agent.service snap.microk8s.daemon-apiserver-proxy.service";
/// How long a node waits for MicroK8s to apply its launch configuration: a joining node
/// waits for the founder, which may still be downloading the snap.
const APPLY_WAIT_SECONDS: u32 = 2400;
/// The cluster agent's copy of the launch configuration, renamed `*.applied` once it has
/// applied all of it (`cmd/cluster-agent.go`: it tries again every 5 s until then).
const LAUNCHER_DIR: &str = "/var/snap/microk8s/common/etc/launcher";

const KUBE_VIP_INSTALL_LINES: &str = r##"	install -m 600 "$boot/@KUBE_VIP@" @NODE_DIR@/@KUBE_VIP_NAME@ || return 1
"##;

const KUBE_VIP_PREPARE_STEPS: &str = r##"	step "kube-vip manifest" install -D -m 600 @NODE_DIR@/@KUBE_VIP_NAME@ @MANIFESTS_DIR@/@KUBE_VIP_NAME@
"##;

const PREPARE_STEPS: &str = r##"	step "memory cgroup" check_memory_cgroup
"##;

const INSTALL_FUNCTIONS: &str = r##"
# place_launch_config: the launch configuration where the snap's install hook reads it,
# root-only. MicroK8s (1.29 and later) refuses a join URL whose host is not an IP address,
# so a joining node's .local founder is resolved first (pinned in /etc/hosts by now).
place_launch_config() {
	target=@LAUNCH_PATH@
	host=$MICROK8S_JOIN_HOST
	address=$host
	case "$host" in
	*.local)
		address=$(getent ahostsv4 "$host" 2>/dev/null | awk 'NR == 1 { print $1 }')
		if [ -z "$address" ]; then
			log "cannot resolve $host, the founder: a MicroK8s join needs its IP address"
			return 1
		fi
		;;
	esac
	mkdir -p "${target%/*}" || return 1
	pattern=$(printf '%s' "$host" | sed 's/\./\\./g')
	(
		umask 077
		if [ "$address" != "$host" ]; then
			sed "s|\"$pattern:@PORT@/|\"$address:@PORT@/|" @CONFIG@ >"$target.pinode-new"
		else
			cat @CONFIG@ >"$target.pinode-new"
		fi
	) || return 1
	chmod 600 "$target.pinode-new" && mv -f "$target.pinode-new" "$target"
}

# fetch_file URL FILE: one download, its reason logged.
fetch_file() {
	if ! why=$(curl --fail --silent --show-error --location --connect-timeout 20 --max-time 1800 \
		--output "$2" "$1" 2>&1); then
		log "cannot download $1: ${why:-curl failed}"
		return 1
	fi
}

# snap_step WHAT COMMAND...: a snap command, its output logged, its last line the reason.
snap_step() {
	what=$1
	shift
	if ! why=$("$@" 2>&1); then
		log "$what failed: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
	printf '%s\n' "$why" >>"$PINODE_LOG"
}

# install_microk8s_files: the profile's .snap and .assert files, in order, the last one
# (MicroK8s) --classic: Canonical's offline install (snap ack, then snap install FILE).
install_microk8s_files() {
	dir=/var/lib/pinode/snaps
	mkdir -p "$dir" || return 1
	set -f
	# shellcheck disable=SC2086 # the URLs are checked: no spaces, split on purpose
	set -- $MICROK8S_SNAPS
	set +f
	while [ "$#" -ge 2 ]; do
		snap_file="$dir/${1##*/}"
		snap_file=${snap_file%%[?#]*}
		assert_file="$dir/${2##*/}"
		assert_file=${assert_file%%[?#]*}
		fetch_file "$1" "$snap_file" || return 1
		fetch_file "$2" "$assert_file" || return 1
		shift 2
		snap_step "snap ack ${assert_file##*/}" snap ack "$assert_file" || return 1
		if [ "$#" -eq 0 ]; then
			snap_step "snap install ${snap_file##*/}" snap install --classic "$snap_file" || return 1
		else
			snap_step "snap install ${snap_file##*/}" snap install "$snap_file" || return 1
		fi
	done
}

# install_microk8s: the snap, once (a later boot finds it installed: snapd links the
# revision's data directory as /var/snap/microk8s/current at install). The install hook
# copies the launch configuration into the launcher directory (cp keeps our 0600); the
# directory is made root's only too, whatever a later snap revision's hook does.
install_microk8s() {
	if [ ! -e /var/snap/microk8s/current ]; then
		# On the first boot of Ubuntu Server snapd is still seeding its preinstalled snaps and
		# refuses installs until then ("too early for operation, device not yet seeded").
		# Bounded: a seeding that never ends fails this attempt with a reason (retry tries again)
		# instead of holding the stage until systemd stops it without one.
		snap_step "snap wait system seed.loaded" timeout 900 snap wait system seed.loaded || return 1
		if [ -n "$MICROK8S_SNAPS" ]; then
			install_microk8s_files || return 1
		else
			snap_step "snap install microk8s --channel=$MICROK8S_CHANNEL" \
				snap install microk8s --classic --channel="$MICROK8S_CHANNEL" || return 1
		fi
	fi
	chmod -R go-rwx @LAUNCHER_DIR@ 2>/dev/null
	return 0
}

# wait_launch_applied: until the cluster agent has applied the launch configuration (the
# addons on the founder, the join elsewhere); it renames its copy *.applied then.
wait_launch_applied() {
	if [ ! -e @LAUNCHER_DIR@/install.yaml ] && [ ! -e @LAUNCHER_DIR@/install.yaml.applied ]; then
		log "the MicroK8s snap did not take pinode's launch configuration (no @LAUNCHER_DIR@/install.yaml: does /etc/microk8s.yaml exist? the install hook reads only the first file it finds)"
		return 1
	fi
	waited=0
	while [ ! -e @LAUNCHER_DIR@/install.yaml.applied ] && [ "$waited" -lt @WAIT@ ]; do
		sleep 10
		waited=$((waited + 10))
	done
	if [ ! -e @LAUNCHER_DIR@/install.yaml.applied ]; then
		log "MicroK8s has not applied its launch configuration after ${waited}s (the join or an addon keeps failing: journalctl -u snap.microk8s.daemon-cluster-agent)"
		return 1
	fi
}

# wait_microk8s_ready: the API and its services answer (servers).
wait_microk8s_ready() {
	if ! why=$(microk8s status --wait-ready --timeout 600 2>&1); then
		log "MicroK8s is not ready after 600s: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
}

# The admin kubeconfig, for the login user (microk8s config prints it).
copy_kubeconfig() {
	home=$(getent passwd "$USER_NAME" | cut -d: -f6)
	[ -n "$home" ] || return 1
	mkdir -p "$home/.kube" || return 1
	if ! (umask 077 && microk8s config >"$home/.kube/config.pinode-new"); then
		log "microk8s config failed"
		return 1
	fi
	mv -f "$home/.kube/config.pinode-new" "$home/.kube/config" &&
		chmod 600 "$home/.kube/config" &&
		chown -R "$USER_NAME:" "$home/.kube"
}
"##;

const INSTALL_STEPS: &str = r##"	step "microk8s launch configuration" retry place_launch_config
	step "microk8s install" retry install_microk8s
	step "microk8s launch configuration applied" wait_launch_applied
	step "microk8s group for $USER_NAME" usermod -a -G microk8s "$USER_NAME"
	if [ "$MICROK8S_NODE_ROLE" != agent ]; then
		step "microk8s ready" wait_microk8s_ready
		step "kubeconfig for $USER_NAME" copy_kubeconfig
	fi
	if [ "$MICROK8S_NODE_ROLE" = founder ]; then
		step "pinode manifests" retry apply_manifests microk8s kubectl
	fi
"##;

/// MicroK8s' part of the stage for `node`.
pub(crate) fn stage2(
    ctx: &StageContext,
    node: &Microk8sNode,
) -> Result<EngineStage2, Microk8sError> {
    let member = &node.member;
    let role = match member.role {
        NodeRole::Founder => "founder",
        NodeRole::JoiningServer => "server",
        NodeRole::Agent => "agent",
    };
    let join_host = match member.role {
        NodeRole::Founder => "",
        _ => member.founder_host.as_str(),
    };
    let mut snaps = Vec::new();
    for file in &node.spec.snaps {
        for url in [&file.snap, &file.assert] {
            if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Microk8sError(
                    "cluster.microk8s.snaps: a URL with spaces cannot be installed".into(),
                ));
            }
            snaps.push(url.as_str());
        }
    }
    let mut files = vec![BootFile {
        path: ctx.boot_secret(LAUNCH_SECRET),
        contents: launch::config(ctx.hostname, node)?.into_bytes(),
        secret: true,
    }];
    let config = ctx.node_secret(LAUNCH_SECRET);
    let kube_vip_file = format!("{}/{DIR}/{}", ctx.boot_dir, kubevip::MANIFEST);
    let port = CLUSTER_AGENT_PORT.to_string();
    let wait = APPLY_WAIT_SECONDS.to_string();
    let paths = [
        ("@CONFIG@", config.as_str()),
        ("@LAUNCH_PATH@", launch::PATH),
        ("@LAUNCHER_DIR@", LAUNCHER_DIR),
        ("@PORT@", port.as_str()),
        ("@WAIT@", wait.as_str()),
        ("@NODE_DIR@", ctx.node_dir),
        ("@KUBE_VIP@", kube_vip_file.as_str()),
        ("@KUBE_VIP_NAME@", kubevip::MANIFEST),
        ("@MANIFESTS_DIR@", PINODE_MANIFESTS),
    ];
    let mut install_lines = String::new();
    let mut prepare_steps = PREPARE_STEPS.to_string();
    // The founder applies pinode's manifests, kube-vip's among them: one DaemonSet runs it
    // on every server. The VIP is in every server's certificate (launch.rs).
    if let (NodeRole::Founder, Some(vip)) = (member.role, &member.kube_vip) {
        files.push(BootFile {
            path: kube_vip_file.clone(),
            contents: kube_vip_manifest(vip)?.into_bytes(),
            secret: false,
        });
        install_lines.push_str(&fill(KUBE_VIP_INSTALL_LINES, &paths));
        prepare_steps.push_str(&fill(KUBE_VIP_PREPARE_STEPS, &paths));
    }
    Ok(EngineStage2 {
        title: "MicroK8s",
        status_name: "microk8s",
        role_var: "MICROK8S_ROLE",
        units: UNITS,
        vars: vec![
            (
                "MICROK8S_ROLE",
                Distribution::Microk8s
                    .describe_role(member.role, member.ha)
                    .to_string(),
            ),
            ("MICROK8S_NODE_ROLE", role.to_string()),
            ("MICROK8S_CHANNEL", node.spec.channel.clone()),
            ("MICROK8S_SNAPS", snaps.join(" ")),
            ("MICROK8S_JOIN_HOST", join_host.to_string()),
        ],
        files,
        install_lines,
        prepare_functions: MEMORY_CGROUP_CHECK.to_string(),
        install_functions: fill(INSTALL_FUNCTIONS, &paths) + APPLY_MANIFESTS,
        prepare_steps,
        install_steps: INSTALL_STEPS.to_string(),
        api_mdns_host: (member.role != NodeRole::Founder && join_host.ends_with(".local"))
            .then(|| join_host.to_string()),
        manifests: AutoManifests {
            boot_dir: format!("{}/{DIR}", ctx.boot_dir),
            node_dir: PINODE_MANIFESTS,
            helm_controller: false,
        },
    })
}

/// kube-vip's manifest for MicroK8s: K3s's (the same RBAC and DaemonSet), with MicroK8s'
/// API port and its control-plane label (`node.kubernetes.io/microk8s-controlplane`, in the
/// snap's `default-args/kubelet`; MicroK8s sets no `node-role.kubernetes.io/*` label, so
/// K3s's affinity would match no node).
fn kube_vip_manifest(vip: &KubeVip) -> Result<String, Microk8sError> {
    let mut docs = kubevip::objects(vip);
    for value in docs.iter_mut().filter(|d| d["kind"] == "DaemonSet") {
        let spec = &mut value["spec"]["template"]["spec"];
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = json!([{"matchExpressions": [{
            "key": "node.kubernetes.io/microk8s-controlplane",
            "operator": "Exists",
        }]}]);
        if let Some(env) = spec["containers"][0]["env"].as_array_mut() {
            for var in env.iter_mut() {
                if var["name"] == "port" {
                    var["value"] = json!(API_PORT.to_string());
                }
            }
        }
    }
    let text = crate::engine::stage2::yaml_documents(&docs)
        .map_err(|e| Microk8sError(format!("kube-vip manifest: {e}")))?;
    Ok(format!("{}{text}", kubevip::header(vip)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Membership;
    use crate::engine::microk8s::Microk8sSpec;
    use std::net::Ipv4Addr;

    fn ctx() -> StageContext<'static> {
        StageContext::for_test()
    }

    fn node(role: NodeRole, vip: bool) -> Microk8sNode {
        Microk8sNode {
            member: Membership {
                kube_vip: vip.then(|| KubeVip {
                    address: Ipv4Addr::new(192, 168, 1, 9),
                    interface: "eth0".into(),
                }),
                ..Membership::for_test(role, "https://node-1.local:16443")
            },
            spec: Microk8sSpec::default(),
            registry_mirror: None,
        }
    }

    #[test]
    fn the_launch_configuration_is_a_secret_and_placeholders_are_filled() {
        let part = stage2(&ctx(), &node(NodeRole::Agent, false)).unwrap();
        let paths: Vec<_> = part.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["stage/secrets/microk8s-launch.yaml"]);
        assert!(part.files[0].secret);
        assert!(
            part.install_functions
                .contains("cat /etc/stage/secrets/microk8s-launch.yaml")
        );
        for code in [
            &part.install_functions,
            &part.prepare_steps,
            &part.install_lines,
        ] {
            assert!(
                !code.contains("@CONFIG@") && !code.contains("@PORT@"),
                "{code}"
            );
        }
        assert_eq!(part.api_mdns_host.as_deref(), Some("node-1.local"));
        assert_eq!(part.manifests.node_dir, PINODE_MANIFESTS);
        let founder = stage2(&ctx(), &node(NodeRole::Founder, true)).unwrap();
        assert_eq!(founder.api_mdns_host, None);
        assert_eq!(founder.files.len(), 2);
        assert!(
            founder
                .prepare_steps
                .contains("/var/lib/pinode/manifests/pinode-kube-vip.yaml")
        );
        // Another server with the VIP: in its certificate, but the founder deploys kube-vip.
        let server = stage2(&ctx(), &node(NodeRole::JoiningServer, true)).unwrap();
        assert_eq!(server.files.len(), 1);
    }

    #[test]
    fn kube_vip_runs_on_microk8s_control_plane_nodes_at_its_api_port() {
        let vip = KubeVip {
            address: Ipv4Addr::new(192, 168, 1, 9),
            interface: "eth0".into(),
        };
        let text = kube_vip_manifest(&vip).unwrap();
        assert!(text.starts_with("# Written by pinode"));
        let docs: Vec<serde_json::Value> = text
            .split_once('\n')
            .unwrap()
            .1
            .split("---\n")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 4);
        let ds = &docs[3]["spec"]["template"]["spec"];
        let terms = &ds["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"];
        assert_eq!(
            terms[0]["matchExpressions"][0]["key"],
            "node.kubernetes.io/microk8s-controlplane"
        );
        let env = ds["containers"][0]["env"].as_array().unwrap();
        let port = env.iter().find(|v| v["name"] == "port").unwrap();
        assert_eq!(port["value"], "16443");
    }
}
