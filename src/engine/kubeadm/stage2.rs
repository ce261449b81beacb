//! kubeadm's part of the second first-boot stage.
//!
//! Prepare: the memory cgroup, kubeadm's own preflight minimums on servers, the kernel
//! modules and sysctls CRI-O and the pod network need (persisted and in effect), swap off
//! for good (the kubelet refuses to start with swap on). Install: the two apt repositories
//! with their keys (signed-by), kubelet, kubeadm, kubectl and CRI-O, held; then `kubeadm
//! init --config` on the founder, `kubeadm join --config` elsewhere (the configuration is a
//! secret: it holds the bootstrap token), with the cluster's PKI placed in
//! /etc/kubernetes/pki first on servers. On servers the admin kubeconfig for the login
//! user; on the founder the CNI manifest and pinode's manifests, applied once the API
//! answers.

use secrecy::ExposeSecret;

use super::config::{self, CRI_SOCKET};
use super::pki::PkiFile;
use super::{CONTROL_PLANE_CPUS, CONTROL_PLANE_MEMORY_MB, KubeadmError, KubeadmNode, kubevip};
use crate::bootfs::content::BootFile;
use crate::engine::stage2::{
    APPLY_MANIFESTS, AutoManifests, EngineStage2, MEMORY_CGROUP_CHECK, PINODE_MANIFESTS,
    StageContext, fill,
};
use crate::engine::{Distribution, NodeRole};

/// The kubeadm configuration's name among the stage's secrets.
const CONFIG: &str = "kubeadm-config.yaml";
/// The PKI files' prefix among the stage's secrets.
const PKI_PREFIX: &str = "kubeadm-pki-";
/// kube-vip's manifest on the boot partition, relative to the stage's directory.
const KUBE_VIP: &str = "kubeadm/kube-vip.yaml";

const PREPARE_FUNCTIONS: &str = r##"
# kubeadm's preflight minimums on a control-plane node (cmd/kubeadm/app/constants:
# ControlPlaneMem 1700 MB, ControlPlaneNumCPU 2), checked before anything is installed.
check_resources() {
	[ "$KUBEADM_EXEC" = agent ] && return 0
	mem=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo 2>/dev/null)
	if [ "${mem:-0}" -lt @MEMORY_MB@ ]; then
		log "this server has ${mem:-0} MB of RAM: kubeadm's preflight check needs @MEMORY_MB@ MB on a control-plane node (a Raspberry Pi with 2 GB or more)"
		return 1
	fi
	cpus=$(nproc 2>/dev/null || echo 1)
	if [ "$cpus" -lt @CPUS@ ]; then
		log "this server has $cpus CPU: kubeadm's preflight check needs @CPUS@ on a control-plane node"
		return 1
	fi
}

# The kernel modules and sysctls of CRI-O and the pod network, for every boot and now.
kernel_setup() {
	printf '# pinode: for CRI-O and the pod network (kubeadm)\noverlay\nbr_netfilter\n' \
		>/etc/modules-load.d/pinode-kubeadm.conf || return 1
	printf '# pinode: for the pod network (kubeadm)\n%s = 1\n%s = 1\n%s = 1\n' \
		net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables net.ipv4.ip_forward \
		>/etc/sysctl.d/90-pinode-kubeadm.conf || return 1
	for module in overlay br_netfilter; do
		if ! why=$(modprobe "$module" 2>&1); then
			log "cannot load the kernel module $module: ${why:-modprobe failed}"
			return 1
		fi
	done
	if ! why=$(sysctl -p /etc/sysctl.d/90-pinode-kubeadm.conf 2>&1); then
		log "cannot set the sysctls: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
	for key in net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables net.ipv4.ip_forward; do
		value=$(sysctl -n "$key" 2>/dev/null)
		if [ "$value" != 1 ]; then
			log "$key is ${value:-unset} after sysctl -p, not 1"
			return 1
		fi
	done
}

# Swap off now and at every boot: the kubelet refuses to start with swap on (failSwapOn).
# Bookworm swaps to a file with dphys-swapfile; trixie with rpi-swap (zram, a file or both),
# which a drop-in turns off.
swap_off() {
	if command -v dphys-swapfile >/dev/null 2>&1; then
		dphys-swapfile swapoff >/dev/null 2>&1
		dphys-swapfile uninstall >/dev/null 2>&1
		systemctl --no-reload disable dphys-swapfile.service >/dev/null 2>&1
	fi
	if [ -e /etc/rpi/swap.conf ]; then
		mkdir -p /etc/rpi/swap.conf.d &&
			printf '# pinode: the kubelet needs swap off\n[Main]\nMechanism=none\n' \
				>/etc/rpi/swap.conf.d/90-pinode-kubeadm.conf || return 1
	fi
	if ! why=$(swapoff -a 2>&1); then
		log "cannot turn swap off: ${why:-swapoff failed}"
		return 1
	fi
	left=$(swapon --show=NAME --noheadings 2>/dev/null)
	if [ -n "$left" ]; then
		log "swap is still on after swapoff -a: $(printf '%s' "$left" | tr '\n' ' ')"
		return 1
	fi
}
"##;

const INSTALL_FUNCTIONS: &str = r##"
# fetch_key NAME URL: a repository's signing key, ASCII-armoured as apt reads it in signed-by.
fetch_key() {
	key=/etc/apt/keyrings/pinode-$1.asc
	if ! why=$(curl --fail --silent --show-error --location --connect-timeout 20 --max-time 120 \
		--output "$key.new" "$2" 2>&1); then
		log "cannot download the $1 repository's key from $2: ${why:-curl failed}"
		return 1
	fi
	chmod 644 "$key.new" && mv -f "$key.new" "$key"
}

# The Kubernetes and CRI-O repositories (one minor each), kubelet, kubeadm, kubectl and CRI-O
# from them, held at that version, CRI-O running.
install_packages() {
	mkdir -p /etc/apt/keyrings || return 1
	fetch_key kubernetes "$KUBERNETES_KEY" || return 1
	fetch_key cri-o "$CRIO_KEY" || return 1
	printf 'deb [signed-by=/etc/apt/keyrings/pinode-kubernetes.asc] %s /\n' "$KUBERNETES_REPOSITORY" \
		>/etc/apt/sources.list.d/pinode-kubernetes.list || return 1
	printf 'deb [signed-by=/etc/apt/keyrings/pinode-cri-o.asc] %s /\n' "$CRIO_REPOSITORY" \
		>/etc/apt/sources.list.d/pinode-cri-o.list || return 1
	export DEBIAN_FRONTEND=noninteractive
	# Ubuntu's and Pi OS's own apt jobs may hold the dpkg lock at first boot: wait for it
	# (apt 1.9.11 and later) instead of failing at once.
	if ! why=$(apt-get -o DPkg::Lock::Timeout=600 update -q 2>&1); then
		log "apt-get update failed: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
	printf '%s\n' "$why" >>"$PINODE_LOG"
	if ! why=$(apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends cri-o kubelet kubeadm kubectl 2>&1); then
		log "cannot install kubelet, kubeadm, kubectl and cri-o: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
	printf '%s\n' "$why" >>"$PINODE_LOG"
	apt-mark hold cri-o kubelet kubeadm kubectl >>"$PINODE_LOG" 2>&1 || return 1
	# CRI-O's packages bring a bridge network of their own (cni0, 10.85.0.0/16, for a
	# CRI-O without Kubernetes). Left in place, pods started before the CNI manifest (CoreDNS)
	# take it, and flannel then fails on every new pod: "cni0 already has an IP address
	# different from 10.244.0.1/24". The cluster's CNI is the only one.
	for conflist in /etc/cni/net.d/*crio*bridge*.conflist; do
		[ -f "$conflist" ] || continue
		mv -f "$conflist" "$conflist.pinode-disabled" || return 1
		log "moved CRI-O's own bridge network aside: $conflist (the cluster's CNI replaces it)"
	done
	if ! why=$(systemctl enable --now crio.service 2>&1); then
		log "cannot start CRI-O: ${why:-systemctl failed}"
		return 1
	fi
	systemctl enable kubelet.service >>"$PINODE_LOG" 2>&1
}

# The configuration kubeadm reads, with the installed kubeadm's own version as
# kubernetesVersion (instead of the stable-1.NN label, which kubeadm would look up online).
kubeadm_config() {
	version=$(kubeadm version -o short 2>/dev/null)
	case "$version" in
	v[0-9]*.[0-9]*.[0-9]*) ;;
	*) version='' ;;
	esac
	case "$version" in
	*[!0-9A-Za-z.+-]*) version='' ;;
	esac
	if [ -n "$version" ]; then
		sed "s/\"kubernetesVersion\": \"[^\"]*\"/\"kubernetesVersion\": \"$version\"/" \
			@CONFIG@ >@KUBEADM_CONFIG@.new || return 1
	else
		cp @CONFIG@ @KUBEADM_CONFIG@.new || return 1
	fi
	chmod 600 @KUBEADM_CONFIG@.new && mv -f @KUBEADM_CONFIG@.new @KUBEADM_CONFIG@
}

# The cluster's PKI (servers): the CAs and the service account key pinode generated, where
# kubeadm looks for them; it signs every other certificate with them.
place_pki() {
@PKI_LINES@}

# run_kubeadm init|join: kubeadm init (founder) or join, from the configuration file. A failed
# attempt is reset so that the next one starts from a clean node (`retry`), and the PKI put back.
run_kubeadm() {
	[ -e /var/lib/pinode/kubeadm.done ] && return 0
	log "kubeadm $1: Kubernetes $KUBERNETES_VERSION, API $KUBEADM_API"
	if [ -e /etc/kubernetes/kubelet.conf ] || [ -e /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
		log "an earlier kubeadm run stopped half-way: resetting the node first"
		kubeadm reset --force --cri-socket @CRI_SOCKET@ >>"$PINODE_LOG" 2>&1
	fi
	place_pki || return 1
	kubeadm_config || return 1
	if [ "$KUBEADM_EXEC" = init ] && [ "$KUBE_VIP" = yes ]; then
		# kube-vip serves the VIP (the control-plane endpoint) while init waits for it; until
		# init has bound admin.conf to cluster-admin it needs super-admin.conf.
		mkdir -p /etc/kubernetes/manifests &&
			sed 's#"path": "@ADMIN_CONF@"#"path": "@SUPER_ADMIN_CONF@"#' @NODE_DIR@/kube-vip.yaml \
				>/etc/kubernetes/manifests/kube-vip.yaml &&
			chmod 600 /etc/kubernetes/manifests/kube-vip.yaml || return 1
	fi
	# kubeadm init prints a join command with the bootstrap token: the output goes to the
	# console and the journal (readable by the adm group) and the log only with every
	# token-shaped word masked.
	output=/var/lib/pinode/kubeadm.out
	{
		kubeadm "$1" --config @KUBEADM_CONFIG@ 2>&1
		echo "$?" >"$output.status"
	} | sed 's/[a-z0-9]\{6\}\.[a-z0-9]\{16\}/<bootstrap token>/g' | tee "$output" >&2
	status=$(cat "$output.status" 2>/dev/null || echo 1)
	cat "$output" >>"$PINODE_LOG" 2>/dev/null
	if [ "$status" -ne 0 ]; then
		log "kubeadm $1 failed (exit $status): $(tail -n 1 "$output")"
		kubeadm reset --force --cri-socket @CRI_SOCKET@ >>"$PINODE_LOG" 2>&1
		return 1
	fi
	date -u '+%Y-%m-%dT%H:%M:%SZ' >/var/lib/pinode/kubeadm.done
}

# kube-vip's static pod on a server, with admin.conf: placed after `kubeadm join` (join
# wants an empty manifest directory), and on the founder in place of the init-time copy.
place_kube_vip() {
	install -D -m 600 @NODE_DIR@/kube-vip.yaml /etc/kubernetes/manifests/kube-vip.yaml
}

# The admin kubeconfig, for the login user (kubeadm writes it root-only).
copy_kubeconfig() {
	[ -f /etc/kubernetes/admin.conf ] || return 1
	home=$(getent passwd "$USER_NAME" | cut -d: -f6)
	[ -n "$home" ] || return 1
	mkdir -p "$home/.kube" &&
		install -m 600 /etc/kubernetes/admin.conf "$home/.kube/config" &&
		chown -R "$USER_NAME:" "$home/.kube"
}

# The pod network: the CNI manifest, applied by the founder once its API answers.
apply_cni() {
	if ! why=$(kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f "$CNI_MANIFEST" 2>&1); then
		log "cannot apply the CNI manifest $CNI_MANIFEST: $(printf '%s\n' "$why" | tail -n 1)"
		return 1
	fi
	printf '%s\n' "$why" >>"$PINODE_LOG"
}
"##;

const INSTALL_LINES: &str = r##"	mkdir -p @NODE_DIR@/kubeadm || return 1
"##;

const KUBE_VIP_INSTALL_LINES: &str = r##"	install -m 600 "$boot/@KUBE_VIP@" @NODE_DIR@/kube-vip.yaml || return 1
"##;

const PREPARE_STEPS: &str = r##"	step "memory cgroup" check_memory_cgroup
	step "kubeadm minimums" check_resources
	step "kernel modules and sysctls" kernel_setup
	step "swap off" swap_off
"##;

const INSTALL_STEPS: &str = r##"	step "kubernetes packages" retry install_packages
	if [ "$KUBEADM_EXEC" = init ]; then
		step "kubeadm init" retry run_kubeadm init
	else
		step "kubeadm join" retry run_kubeadm join
	fi
	if [ "$KUBEADM_EXEC" != agent ]; then
		if [ "$KUBE_VIP" = yes ]; then
			step "kube-vip" place_kube_vip
		fi
		step "kubeconfig for $USER_NAME" copy_kubeconfig
	fi
	if [ "$KUBEADM_EXEC" = init ]; then
		step "pod network" retry apply_cni
		step "pinode's manifests" retry apply_manifests kubectl --kubeconfig /etc/kubernetes/admin.conf
	fi
"##;

/// The line of `place_pki` that puts `file` in place (private keys 0600, the rest 0644,
/// as kubeadm writes them).
fn pki_line(ctx: &StageContext, file: &PkiFile) -> String {
    let mode = if file.path.private { "600" } else { "644" };
    format!(
        "\tinstall -D -m {mode} {} /etc/kubernetes/pki/{} || return 1\n",
        ctx.node_secret(&format!("{PKI_PREFIX}{}", file.path.name)),
        file.path.kubeadm
    )
}

/// kubeadm's part of the stage for `node`.
pub(crate) fn stage2(ctx: &StageContext, node: &KubeadmNode) -> Result<EngineStage2, KubeadmError> {
    let member = &node.member;
    let exec = match member.role {
        NodeRole::Founder => "init",
        NodeRole::JoiningServer => "server",
        NodeRole::Agent => "agent",
    };
    let mut files = vec![BootFile {
        path: ctx.boot_secret(CONFIG),
        contents: config::render(ctx.hostname, node)?.into_bytes(),
        secret: true,
    }];
    // Servers carry the PKI; agents only its hash, in their join configuration.
    let mut pki_lines = String::new();
    if member.role.is_server() {
        for file in &node.pki.files {
            files.push(BootFile {
                path: ctx.boot_secret(&format!("{PKI_PREFIX}{}", file.path.name)),
                contents: file.contents.expose_secret().as_bytes().to_vec(),
                secret: true,
            });
            pki_lines.push_str(&pki_line(ctx, file));
        }
    }
    if pki_lines.is_empty() {
        pki_lines.push_str("\t:\n");
    }
    let config_secret = ctx.node_secret(CONFIG);
    let kubeadm_config = format!("{}/kubeadm/kubeadm.yaml", ctx.node_dir);
    let kube_vip_file = format!("{}/{KUBE_VIP}", ctx.boot_dir);
    let paths = [
        ("@CONFIG@", config_secret.as_str()),
        ("@KUBEADM_CONFIG@", kubeadm_config.as_str()),
        ("@NODE_DIR@", ctx.node_dir),
        ("@KUBE_VIP@", kube_vip_file.as_str()),
        ("@CRI_SOCKET@", CRI_SOCKET),
        ("@ADMIN_CONF@", kubevip::ADMIN_CONF),
        ("@SUPER_ADMIN_CONF@", kubevip::SUPER_ADMIN_CONF),
        ("@PKI_LINES@", pki_lines.as_str()),
    ];
    let mut install_lines = fill(INSTALL_LINES, &paths);
    let kube_vip = member.kube_vip.as_ref().filter(|_| member.role.is_server());
    if let Some(vip) = kube_vip {
        files.push(BootFile {
            path: kube_vip_file.clone(),
            contents: kubevip::manifest(vip, kubevip::ADMIN_CONF)?.into_bytes(),
            secret: false,
        });
        install_lines.push_str(&fill(KUBE_VIP_INSTALL_LINES, &paths));
    }
    let mut prepare_steps = PREPARE_STEPS.to_string();
    if let Some(mirror) = &node.registry_mirror {
        crate::engine::registry_mirror::add_crio(
            ctx,
            mirror,
            &mut files,
            &mut install_lines,
            &mut prepare_steps,
        );
    }
    let mut install_functions = fill(INSTALL_FUNCTIONS, &paths);
    install_functions.push_str(APPLY_MANIFESTS);
    let spec = &node.spec;
    let role = Distribution::Kubeadm
        .describe_role(member.role, member.ha)
        .to_string();
    Ok(EngineStage2 {
        title: "kubeadm",
        status_name: "kubeadm",
        role_var: "KUBEADM_ROLE",
        units: "crio.service kubelet.service",
        vars: vec![
            ("KUBEADM_ROLE", role),
            ("KUBEADM_EXEC", exec.to_string()),
            ("KUBEADM_API", member.api.clone()),
            ("KUBERNETES_VERSION", spec.version()),
            ("KUBERNETES_REPOSITORY", spec.repository()),
            ("KUBERNETES_KEY", spec.repository_key()),
            ("CRIO_REPOSITORY", spec.crio_repository()),
            ("CRIO_KEY", spec.crio_repository_key()),
            ("CNI_MANIFEST", spec.cni_manifest_url()),
            (
                "KUBE_VIP",
                if kube_vip.is_some() { "yes" } else { "no" }.to_string(),
            ),
        ],
        files,
        install_lines,
        prepare_functions: [
            MEMORY_CGROUP_CHECK,
            &fill(
                PREPARE_FUNCTIONS,
                &[
                    ("@MEMORY_MB@", &CONTROL_PLANE_MEMORY_MB.to_string()),
                    ("@CPUS@", &CONTROL_PLANE_CPUS.to_string()),
                ],
            ),
        ]
        .concat(),
        install_functions,
        prepare_steps,
        install_steps: INSTALL_STEPS.to_string(),
        // Every node, the founder too: kubeadm, the kubelet and kubectl resolve names with
        // Go's resolver, which knows nothing of mDNS, and the founder's own kubeconfigs
        // name the control-plane endpoint.
        api_mdns_host: crate::engine::k3s::mdns_host_of(&member.api).map(str::to_string),
        manifests: AutoManifests {
            boot_dir: format!("{}/kubeadm", ctx.boot_dir),
            node_dir: PINODE_MANIFESTS,
            helm_controller: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kubeadm::{ClusterPki, KubeadmSpec, pki};

    fn ctx() -> StageContext<'static> {
        StageContext::for_test()
    }

    fn node(role: NodeRole) -> KubeadmNode {
        let files = pki::generate().unwrap();
        KubeadmNode {
            member: crate::engine::Membership {
                token: "abcdef.0123456789abcdef".to_string().into(),
                ..crate::engine::Membership::for_test(role, "https://node-1.local:6443")
            },
            spec: KubeadmSpec::default(),
            pki: ClusterPki {
                ca_hash: pki::hash_of(&files).unwrap(),
                files: if role.is_server() { files } else { Vec::new() },
            },
            registry_mirror: None,
        }
    }

    #[test]
    fn servers_carry_the_pki_as_secrets_and_agents_do_not() {
        let server = stage2(&ctx(), &node(NodeRole::JoiningServer)).unwrap();
        let secrets: Vec<_> = server.files.iter().filter(|f| f.secret).collect();
        assert_eq!(secrets.len(), 1 + pki::FILES.len());
        assert!(
            server
                .install_functions
                .contains("install -D -m 600 /etc/stage/secrets/kubeadm-pki-etcd-ca.key /etc/kubernetes/pki/etcd/ca.key")
        );
        let agent = stage2(&ctx(), &node(NodeRole::Agent)).unwrap();
        let paths: Vec<_> = agent.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["stage/secrets/kubeadm-config.yaml"]);
        assert!(agent.files[0].secret);
        for part in [&server, &agent] {
            let code = [
                &part.install_lines,
                &part.prepare_functions,
                &part.install_functions,
                &part.prepare_steps,
                &part.install_steps,
            ];
            let placeholder = |c: &str| {
                c.split('@')
                    .skip(1)
                    .any(|rest| rest.starts_with(|ch: char| ch.is_ascii_uppercase()))
            };
            assert!(
                !code.iter().any(|c| placeholder(c)),
                "a placeholder is left"
            );
            assert_eq!(part.api_mdns_host.as_deref(), Some("node-1.local"));
        }
    }
}
