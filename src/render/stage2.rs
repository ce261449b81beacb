//! The second first-boot stage, for cluster nodes: `pinode-firstboot.service`, which runs
//! once the network is up, installs K3s in the node's role and, on the first server, places
//! the CI runner's manifests. Both first-boot routes hand over to it: `firstrun.sh` and the
//! cloud-init `runcmd` call `firstboot.sh install BOOT_DIR`, which moves the secrets off the
//! FAT partition into root-only files and enables the unit.
//!
//! Idempotent: a done-marker makes every later boot do nothing (the unit does not even
//! start); a failed run leaves no marker, so the next boot tries again.

use super::shell::{CORE, ShellProgram};
use super::{BootFile, RenderError};
use crate::ci::Runner;
use crate::ci::gitlab::{self, RunnerPlan};
use crate::engine::Engine;
use crate::engine::k3s::{self, K3sNode, K3sRole};
use crate::plan::{NodeCluster, NodePlan};

/// Directory on the boot partition for this stage's files.
pub const DIR: &str = "pinode";
pub const SCRIPT: &str = "pinode/firstboot.sh";
pub const UNIT: &str = "pinode/pinode-firstboot.service";
pub const HOSTS_UNIT: &str = "pinode/pinode-hosts.service";
pub const K3S_CONFIG: &str = "pinode/k3s/config.yaml";
pub const RUNNER_MANIFEST: &str = "pinode/k3s/pinode-gitlab-runner.yaml";
pub const K3S_TOKEN: &str = "pinode/secrets/k3s-token";
pub const RUNNER_TOKEN: &str = "pinode/secrets/runner-token";

/// Where the node keeps the secrets (root only).
pub const NODE_SECRETS: &str = "/etc/pinode/secrets";
pub const DONE_MARKER: &str = "/var/lib/pinode/firstboot.done";

const UNIT_TEXT: &str = "[Unit]
Description=pinode first boot: K3s and the CI runner
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/pinode/firstboot.done

[Service]
Type=oneshot
ExecStart=/usr/local/lib/pinode/firstboot.sh run
RemainAfterExit=yes
TimeoutStartSec=90min
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
";

/// K3s resolves names with Go's resolver, which reads /etc/hosts and asks DNS but knows
/// nothing of mDNS: a `.local` API URL (the default) would never resolve. This unit pins the
/// API host's current address in /etc/hosts at every boot, before K3s starts.
const HOSTS_UNIT_TEXT: &str = "[Unit]
Description=pinode: pin the K3s API host's mDNS address in /etc/hosts
Wants=network-online.target
After=network-online.target avahi-daemon.service
Before=k3s.service k3s-agent.service

[Service]
Type=oneshot
ExecStart=-/usr/local/lib/pinode/firstboot.sh hosts
TimeoutStartSec=3min

[Install]
WantedBy=multi-user.target
";

const LIBRARY: &str = r##"
# install_stage BOOT_DIR: called by the first stage; moves secrets and enables the unit (without
# a daemon reload, slow on a small board: the firstrun route reboots, the cloud-init route reloads).
install_stage() {
	boot=$1
	mkdir -p /usr/local/lib/pinode /var/lib/pinode /etc/pinode/secrets || return 1
	chmod 700 /etc/pinode /etc/pinode/secrets || return 1
	install -m 755 "$boot/pinode/firstboot.sh" /usr/local/lib/pinode/firstboot.sh || return 1
	install -m 644 "$boot/pinode/pinode-firstboot.service" /etc/systemd/system/pinode-firstboot.service || return 1
	install -m 600 "$boot/pinode/k3s/config.yaml" /etc/pinode/k3s-config.yaml || return 1
	if [ -f "$boot/pinode/k3s/pinode-gitlab-runner.yaml" ]; then
		install -m 600 "$boot/pinode/k3s/pinode-gitlab-runner.yaml" /etc/pinode/pinode-gitlab-runner.yaml || return 1
	fi
	for secret in "$boot"/pinode/secrets/*; do
		[ -f "$secret" ] || continue
		install -m 600 "$secret" "/etc/pinode/secrets/${secret##*/}" || return 1
		scrub "$secret" || return 1
	done
	rmdir "$boot/pinode/secrets" 2>/dev/null
	if [ -n "$API_MDNS_HOST" ]; then
		install -m 644 "$boot/pinode/pinode-hosts.service" /etc/systemd/system/pinode-hosts.service || return 1
		systemctl --no-reload enable pinode-hosts.service || return 1
	fi
	systemctl --no-reload enable pinode-firstboot.service
}

# refresh_hosts: the API host's mDNS address into a marked /etc/hosts line (see pinode-hosts.service).
refresh_hosts() {
	[ -n "$API_MDNS_HOST" ] || return 0
	waited=0
	address=''
	while [ -z "$address" ] && [ "$waited" -le 120 ]; do
		address=$(getent ahostsv4 "$API_MDNS_HOST" 2>/dev/null | awk 'NR == 1 { print $1 }')
		[ -n "$address" ] && break
		sleep 5
		waited=$((waited + 5))
	done
	if [ -z "$address" ]; then
		log "$API_MDNS_HOST does not resolve over mDNS yet; K3s keeps trying, and every boot looks again"
		return 1
	fi
	grep -v ' # pinode-mdns$' /etc/hosts >/etc/hosts.pinode-new &&
		printf '%s\t%s # pinode-mdns\n' "$address" "$API_MDNS_HOST" >>/etc/hosts.pinode-new &&
		chmod 644 /etc/hosts.pinode-new && mv -f /etc/hosts.pinode-new /etc/hosts
}

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

place_runner_manifests() {
	dir=/var/lib/rancher/k3s/server/manifests
	mkdir -p "$dir" || return 1
	install -m 600 /etc/pinode/pinode-gitlab-runner.yaml "$dir/pinode-gitlab-runner.yaml" || return 1
	token=$(base64 -w 0 </etc/pinode/secrets/runner-token) || return 1
	write_file "$dir/pinode-gitlab-runner-token.yaml" 600 "apiVersion: v1
kind: Namespace
metadata:
  name: gitlab-runner
---
apiVersion: v1
kind: Secret
metadata:
  name: gitlab-runner-token
  namespace: gitlab-runner
type: Opaque
data:
  runner-token: $token
  runner-registration-token: \"\"
"
}

# retry COMMAND...: with a growing pause, for networks that come and go.
retry() {
	attempt=1
	pause=10
	while ! "$@"; do
		if [ "$attempt" -ge "$RETRIES" ]; then
			return 1
		fi
		log "attempt $attempt failed; trying again in ${pause}s"
		sleep "$pause"
		attempt=$((attempt + 1))
		pause=$((pause * 2))
	done
}

install_k3s() {
	installer=/var/lib/pinode/k3s-install.sh
	curl --fail --silent --show-error --location --connect-timeout 20 --max-time 600 \
		--output "$installer" "$K3S_INSTALL_URL" || return 1
	if [ -n "$K3S_VERSION" ]; then
		export INSTALL_K3S_VERSION="$K3S_VERSION"
	else
		export INSTALL_K3S_CHANNEL="$K3S_CHANNEL"
	fi
	export K3S_TOKEN_FILE=/etc/pinode/secrets/k3s-token
	if [ "$K3S_EXEC" = agent ]; then
		export K3S_URL="$K3S_API"
	fi
	sh "$installer" "$K3S_EXEC"
}

# The admin kubeconfig, for the login user (K3s writes it root-only).
copy_kubeconfig() {
	waited=0
	while [ ! -f /etc/rancher/k3s/k3s.yaml ] && [ "$waited" -lt 300 ]; do
		sleep 5
		waited=$((waited + 5))
	done
	[ -f /etc/rancher/k3s/k3s.yaml ] || return 1
	home=$(getent passwd "$USER_NAME" | cut -d: -f6)
	[ -n "$home" ] || return 1
	mkdir -p "$home/.kube" &&
		install -m 600 /etc/rancher/k3s/k3s.yaml "$home/.kube/config" &&
		chown -R "$USER_NAME:" "$home/.kube"
}

run_stage() {
	if [ -e /var/lib/pinode/firstboot.done ]; then
		log "nothing to do: done on $(cat /var/lib/pinode/firstboot.done)"
		return 0
	fi
	log "K3s $K3S_ROLE on $NODE_HOSTNAME"
	step "memory cgroup" check_memory_cgroup
	step "k3s config" install -D -m 600 /etc/pinode/k3s-config.yaml /etc/rancher/k3s/config.yaml
	if [ "$HAS_RUNNER" = yes ]; then
		step "runner manifests" place_runner_manifests
	fi
	if [ -n "$API_MDNS_HOST" ] && ! refresh_hosts; then
		log "continuing without a pinned address for $API_MDNS_HOST"
	fi
	step "k3s install" retry install_k3s
	if [ "$K3S_EXEC" = server ]; then
		step "kubeconfig for $USER_NAME" copy_kubeconfig
	fi
	if [ -n "$FAILED" ]; then
		result="failed: $FAILED (the next boot tries again)"
	else
		result=ok
		date -u '+%Y-%m-%dT%H:%M:%SZ' >/var/lib/pinode/firstboot.done
	fi
	printf 'k3s (%s): %s\nfinished: %s\nlog: %s and journalctl -u pinode-firstboot on the node\n' \
		"$K3S_ROLE" "$result" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$PINODE_LOG" >>"$BOOT_DIR/pinode-status.txt"
	log "k3s $result"
	[ -z "$FAILED" ]
}
"##;

/// The files of this stage for `plan` (which must have a cluster part).
pub fn files(
    plan: &NodePlan,
    cluster: &NodeCluster,
    boot_dir: &str,
) -> Result<Vec<BootFile>, RenderError> {
    let Engine::K3s(node) = &cluster.engine;
    let runner = cluster.runner.as_ref().map(|Runner::Gitlab(runner)| runner);
    let mut files = vec![
        BootFile {
            path: SCRIPT.into(),
            contents: script(plan, node, runner, boot_dir)?.into_bytes(),
            secret: false,
        },
        BootFile {
            path: UNIT.into(),
            contents: UNIT_TEXT.as_bytes().to_vec(),
            secret: false,
        },
        BootFile {
            path: K3S_CONFIG.into(),
            contents: k3s::config_yaml(&plan.hostname, node, &format!("{NODE_SECRETS}/k3s-token"))?
                .into_bytes(),
            secret: false,
        },
        BootFile {
            path: K3S_TOKEN.into(),
            // No line break: the file is the token, byte for byte.
            contents: secrecy::ExposeSecret::expose_secret(&node.token)
                .as_bytes()
                .to_vec(),
            secret: true,
        },
    ];
    if mdns_host(node).is_some() {
        files.push(BootFile {
            path: HOSTS_UNIT.into(),
            contents: HOSTS_UNIT_TEXT.as_bytes().to_vec(),
            secret: false,
        });
    }
    if let Some(runner) = runner {
        files.push(BootFile {
            path: RUNNER_MANIFEST.into(),
            contents: gitlab::runner_manifest(&runner.spec)?.into_bytes(),
            secret: false,
        });
        files.push(BootFile {
            path: RUNNER_TOKEN.into(),
            contents: gitlab::runner_token_file(runner),
            secret: true,
        });
    }
    Ok(files)
}

/// The API host, when it is an mDNS name this node must resolve (the founder need not).
fn mdns_host(node: &K3sNode) -> Option<&str> {
    if node.role == K3sRole::Founder {
        return None;
    }
    let rest = node
        .api
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(&node.api);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host.ends_with(".local").then_some(host)
}

fn script(
    plan: &NodePlan,
    node: &K3sNode,
    runner: Option<&RunnerPlan>,
    boot_dir: &str,
) -> Result<String, RenderError> {
    let exec = match node.role {
        K3sRole::Founder | K3sRole::JoiningServer => "server",
        K3sRole::Agent => "agent",
    };
    let mut p = ShellProgram::default();
    p.comment(format!(
        "pinode {} second first-boot stage for node {}.",
        env!("CARGO_PKG_VERSION"),
        plan.hostname
    ))
    .comment(
        "`firstboot.sh install BOOT_DIR` (run by the first stage) moves the secrets off the boot",
    )
    .comment(
        "partition and enables pinode-firstboot.service, which runs `firstboot.sh run` once the",
    )
    .comment("network is up. No secrets in here: they are files of their own.")
    .library(CORE)
    .library(LIBRARY)
    .propagate_status();
    p.var("PINODE_STAGE", "firstboot")?
        .var("BOOT_DIR", boot_dir)?
        .var("NODE_HOSTNAME", &plan.hostname)?
        .var("USER_NAME", &plan.user.name)?
        .var("K3S_ROLE", node.role.describe(node.ha))?
        .var("K3S_EXEC", exec)?
        .var("K3S_API", &node.api)?
        .var("K3S_VERSION", node.spec.version.as_deref().unwrap_or(""))?
        .var("K3S_CHANNEL", &node.spec.channel)?
        .var("K3S_INSTALL_URL", &node.spec.install_url)?
        .var("HAS_RUNNER", if runner.is_some() { "yes" } else { "no" })?
        .var("API_MDNS_HOST", mdns_host(node).unwrap_or(""))?
        .var("RETRIES", "6")?;
    p.step(r#"case "${1:-run}" in"#)
        .step(r#"install) install_stage "${2:-$BOOT_DIR}" ;;"#)
        .step(r#"run) run_stage ;;"#)
        .step(r#"hosts) refresh_hosts ;;"#)
        .step(r#"*) log "usage: firstboot.sh install BOOT_DIR | run | hosts"; return 2 ;;"#)
        .step("esac");
    Ok(p.render())
}
