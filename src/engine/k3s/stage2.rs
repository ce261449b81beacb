//! K3s's part of the second first-boot stage: its `config.yaml` and join token on the boot
//! partition, the memory-cgroup check, the installer run in the node's role and the admin
//! kubeconfig for the login user. Manifests K3s applies by itself go to its auto-deploy
//! directory.

use secrecy::ExposeSecret;

use super::{K3sError, K3sNode, ca, config_yaml, kubevip};
use crate::bootfs::content::BootFile;
use crate::engine::stage2::{AutoManifests, EngineStage2, MEMORY_CGROUP_CHECK, StageContext, fill};
use crate::engine::{Distribution, NodeRole};

/// K3s applies every manifest in this directory of a server, and keeps it applied.
const MANIFESTS_DIR: &str = "/var/lib/rancher/k3s/server/manifests";
/// The node's `config.yaml`, relative to the stage's boot directory.
const CONFIG: &str = "k3s/config.yaml";
/// The join token's name among the stage's secrets.
const TOKEN: &str = "k3s-token";
/// The CA files' prefix among the stage's secrets.
const CA_PREFIX: &str = "k3s-ca-";

const INSTALL_LINES: &str = r##"	install -m 600 "$boot/@CONFIG@" @NODE_DIR@/k3s-config.yaml || return 1
"##;

/// kube-vip's manifest (servers of a cluster with a VIP), moved off the boot partition.
const KUBE_VIP_INSTALL_LINES: &str = r##"	install -m 600 "$boot/@KUBE_VIP@" @NODE_DIR@/@KUBE_VIP_NAME@ || return 1
"##;

/// ... and placed where K3s applies it by itself, before K3s first starts: the VIP comes up
/// as soon as the API does, without anyone running kubectl.
const KUBE_VIP_PREPARE_STEPS: &str = r##"	step "kube-vip manifest" install -D -m 600 @NODE_DIR@/@KUBE_VIP_NAME@ @MANIFESTS_DIR@/@KUBE_VIP_NAME@
"##;

const INSTALL_FUNCTIONS: &str = r##"
install_k3s() {
	installer=/var/lib/pinode/k3s-install.sh
	if ! why=$(curl --fail --silent --show-error --location --connect-timeout 20 --max-time 600 \
		--output "$installer" "$K3S_INSTALL_URL" 2>&1); then
		log "cannot download the K3s installer from $K3S_INSTALL_URL: ${why:-curl failed}"
		return 1
	fi
	if [ -n "$K3S_VERSION" ]; then
		export INSTALL_K3S_VERSION="$K3S_VERSION"
	else
		export INSTALL_K3S_CHANNEL="$K3S_CHANNEL"
	fi
	run_k3s_installer "$installer"
}
"##;

/// The installer run both install paths share (online and air-gap): in the node's role, agents
/// joining the API, its output and exit status kept.
const RUN_INSTALLER: &str = r##"
# run_k3s_installer INSTALLER: runs the K3s install script in the node's role (K3S_EXEC).
run_k3s_installer() {
	export K3S_TOKEN_FILE=@TOKEN_FILE@
	if [ "$K3S_EXEC" = agent ]; then
		export K3S_URL="$K3S_API"
	fi
	# The installer's output goes to the console and the journal as it comes (its last step,
	# `systemctl restart k3s`, can wait long for a server to join), and into the log; its last
	# line (K3s's "[ERROR] ...") is the reason when it fails. The pipe loses the installer's
	# exit status, so it is passed on in a file.
	output=/var/lib/pinode/k3s-install.out
	{
		sh "$1" "$K3S_EXEC" 2>&1
		echo "$?" >"$output.status"
	} | tee "$output" >&2
	status=$(cat "$output.status" 2>/dev/null || echo 1)
	cat "$output" >>"$PINODE_LOG" 2>/dev/null
	if [ "$status" -ne 0 ]; then
		log "the K3s installer failed (exit $status): $(tail -n 1 "$output")"
		return 1
	fi
}
"##;

const COPY_KUBECONFIG: &str = r##"
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
"##;

/// With `cluster.airgap`: the release files leave the boot partition as soon as the first
/// stage hands over (the binary where the installer expects it, the images archive where
/// K3s imports archives from at start, the installer root-only), and the FAT copies are
/// deleted. A copy already made (a stage run again) is not looked for twice.
const AIRGAP_INSTALL_LINES: &str = r##"	if [ -f "$boot/@AIRGAP@/@BINARY@" ]; then
		install -D -m 755 "$boot/@AIRGAP@/@BINARY@" /usr/local/bin/k3s || return 1
		install -D -m 644 "$boot/@AIRGAP@/@IMAGES@" @IMAGES_DIR@/@IMAGES@ || return 1
		install -m 700 "$boot/@AIRGAP@/@INSTALLER@" @NODE_DIR@/k3s-install.sh || return 1
		rm -f "$boot/@AIRGAP@/@BINARY@" "$boot/@AIRGAP@/@IMAGES@" "$boot/@AIRGAP@/@INSTALLER@" || return 1
		rmdir "$boot/@AIRGAP@" 2>/dev/null
	fi
"##;

/// With `cluster.airgap`: the installer of the pinned tag, from the files the stage moved off
/// the boot partition; `INSTALL_K3S_SKIP_DOWNLOAD=true` makes it use /usr/local/bin/k3s and
/// download nothing (k3s-io/k3s install.sh, `download_and_verify`; docs.k3s.io
/// installation/airgap, "Install K3s").
const AIRGAP_INSTALL_FUNCTIONS: &str = r##"
install_k3s() {
	installer=@NODE_DIR@/k3s-install.sh
	if [ ! -x /usr/local/bin/k3s ] || [ ! -f "$installer" ] || [ ! -f @IMAGES_DIR@/@IMAGES@ ]; then
		log "the K3s release files from the boot partition are missing (/usr/local/bin/k3s, $installer, @IMAGES_DIR@/@IMAGES@)"
		return 1
	fi
	log "installing K3s $K3S_VERSION from the files of the boot partition (no download)"
	export INSTALL_K3S_SKIP_DOWNLOAD=true
	run_k3s_installer "$installer"
}
"##;

/// The directory of the air-gap files on the boot partition, under the stage's own.
pub(crate) const AIRGAP_DIR: &str = "k3s/airgap";
/// Where K3s imports image archives from when it starts.
const IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";

const PREPARE_STEPS: &str = r##"	step "memory cgroup" check_memory_cgroup
	step "k3s config" install -D -m 600 @NODE_DIR@/k3s-config.yaml /etc/rancher/k3s/config.yaml
"##;

const INSTALL_STEPS: &str = r##"	step "k3s install" retry install_k3s
	if [ "$K3S_EXEC" = server ]; then
		step "kubeconfig for $USER_NAME" copy_kubeconfig
	fi
"##;

/// K3s's part of the stage for `node`.
pub(crate) fn stage2(ctx: &StageContext, node: &K3sNode) -> Result<EngineStage2, K3sError> {
    let exec = match node.member.role {
        NodeRole::Founder | NodeRole::JoiningServer => "server",
        NodeRole::Agent => "agent",
    };
    let config = format!("{}/{CONFIG}", ctx.boot_dir);
    let token_file = ctx.node_secret(TOKEN);
    let mut files = vec![
        BootFile {
            path: config.clone(),
            contents: config_yaml(ctx.hostname, node, &token_file)?.into_bytes(),
            secret: false,
        },
        BootFile {
            path: ctx.boot_secret(TOKEN),
            // No line break: the file is the token, byte for byte.
            contents: node.member.token.expose_secret().as_bytes().to_vec(),
            secret: true,
        },
    ];
    let kube_vip_file = format!("{}/k3s/{}", ctx.boot_dir, kubevip::MANIFEST);
    let paths = [
        ("@CONFIG@", config.as_str()),
        ("@NODE_DIR@", ctx.node_dir),
        ("@TOKEN_FILE@", token_file.as_str()),
        ("@KUBE_VIP@", kube_vip_file.as_str()),
        ("@KUBE_VIP_NAME@", kubevip::MANIFEST),
        ("@MANIFESTS_DIR@", MANIFESTS_DIR),
    ];
    let airgap_dir = format!("{}/{AIRGAP_DIR}", ctx.boot_dir);
    let airgap_paths = [
        ("@AIRGAP@", airgap_dir.as_str()),
        ("@BINARY@", crate::engine::airgap::BINARY),
        ("@IMAGES@", crate::engine::airgap::IMAGES),
        ("@INSTALLER@", crate::engine::airgap::INSTALLER),
        ("@IMAGES_DIR@", IMAGES_DIR),
        ("@NODE_DIR@", ctx.node_dir),
        ("@TOKEN_FILE@", token_file.as_str()),
    ];
    let mut install_lines = fill(INSTALL_LINES, &paths);
    let install_functions = if node.spec.airgap {
        install_lines.push_str(&fill(AIRGAP_INSTALL_LINES, &airgap_paths));
        fill(AIRGAP_INSTALL_FUNCTIONS, &airgap_paths)
    } else {
        fill(INSTALL_FUNCTIONS, &paths)
    } + &fill(RUN_INSTALLER, &paths)
        + COPY_KUBECONFIG;
    let mut prepare_steps = fill(PREPARE_STEPS, &paths);
    add_ca(ctx, node, &mut files, &mut prepare_steps);
    // Only servers carry kube-vip (the plan gives it to no agent): agents' files and
    // program stay as they were.
    if let Some(vip) = &node.member.kube_vip {
        files.push(BootFile {
            path: kube_vip_file.clone(),
            contents: kubevip::manifest(vip)?.into_bytes(),
            secret: false,
        });
        install_lines.push_str(&fill(KUBE_VIP_INSTALL_LINES, &paths));
        prepare_steps.push_str(&fill(KUBE_VIP_PREPARE_STEPS, &paths));
    }
    if let Some(mirror) = &node.registry_mirror {
        crate::engine::registry_mirror::add_k3s(
            ctx,
            mirror,
            &mut files,
            &mut install_lines,
            &mut prepare_steps,
        );
    }
    Ok(EngineStage2 {
        title: "K3s",
        status_name: "k3s",
        role_var: "K3S_ROLE",
        units: "k3s.service k3s-agent.service",
        vars: vec![
            (
                "K3S_ROLE",
                Distribution::K3s
                    .describe_role(node.member.role, node.member.ha)
                    .to_string(),
            ),
            ("K3S_EXEC", exec.to_string()),
            ("K3S_API", node.member.api.clone()),
            ("K3S_VERSION", node.spec.version.clone().unwrap_or_default()),
        ]
        .into_iter()
        // The air-gap installer is on the card: no channel, no URL to fetch it from.
        .chain(
            (!node.spec.airgap)
                .then(|| {
                    [
                        ("K3S_CHANNEL", node.spec.channel.clone()),
                        ("K3S_INSTALL_URL", node.spec.install_url.clone()),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .collect(),
        files,
        install_lines,
        prepare_functions: format!("{MEMORY_CGROUP_CHECK}{}", place_ca_function(ctx, node)),
        install_functions,
        prepare_steps,
        install_steps: INSTALL_STEPS.to_string(),
        api_mdns_host: mdns_host(node).map(str::to_string),
        manifests: AutoManifests {
            boot_dir: format!("{}/k3s", ctx.boot_dir),
            node_dir: MANIFESTS_DIR,
            helm_controller: true,
        },
    })
}

/// A server's CA material: secrets on the boot partition (moved off it at first boot with
/// the other secrets, into the root-only secrets directory), then placed root-only in K3s's
/// TLS directory before K3s first starts, where the first server uses it instead of
/// generating its own CAs (see [`ca`]). Agents carry none.
fn add_ca(
    ctx: &StageContext,
    node: &K3sNode,
    files: &mut Vec<BootFile>,
    prepare_steps: &mut String,
) {
    if node.ca.is_empty() || !node.member.role.is_server() {
        return;
    }
    prepare_steps.push_str("\tstep \"k3s CA\" place_k3s_ca\n");
    for file in &node.ca {
        let name = format!("{CA_PREFIX}{}", file.path.name);
        files.push(BootFile {
            path: ctx.boot_secret(&name),
            contents: file.contents.expose_secret().as_bytes().to_vec(),
            secret: true,
        });
    }
}

/// The shell function that places the CA files (servers with CA material): K3s's TLS
/// directories root-only (0700), each file 0600, copied from the node's secrets.
fn place_ca_function(ctx: &StageContext, node: &K3sNode) -> String {
    if node.ca.is_empty() || !node.member.role.is_server() {
        return String::new();
    }
    let mut lines = format!(
        "\nplace_k3s_ca() {{\n\tinstall -d -m 700 {dir} {dir}/etcd || return 1\n",
        dir = ca::TLS_DIR
    );
    for file in &node.ca {
        lines.push_str(&format!(
            "\tinstall -m 600 {} {}/{} || return 1\n",
            ctx.node_secret(&format!("{CA_PREFIX}{}", file.path.name)),
            ca::TLS_DIR,
            file.path.k3s
        ));
    }
    lines.push_str("}\n");
    lines
}

/// The API host, when it is an mDNS name this node must resolve (the founder need not):
/// K3s resolves names with Go's resolver, which knows nothing of mDNS.
fn mdns_host(node: &K3sNode) -> Option<&str> {
    if node.member.role == NodeRole::Founder {
        return None;
    }
    super::mdns_host_of(&node.member.api)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::k3s::K3sSpec;

    fn node(role: NodeRole, api: &str) -> K3sNode {
        K3sNode {
            member: crate::engine::Membership::for_test(role, api),
            spec: K3sSpec::default(),
            ca: Vec::new(),
            registry_mirror: None,
        }
    }

    fn ctx() -> StageContext<'static> {
        StageContext::for_test()
    }

    #[test]
    fn only_joining_nodes_pin_an_mdns_api_host() {
        let api = "https://node-1.local:6443";
        assert_eq!(mdns_host(&node(NodeRole::Agent, api)), Some("node-1.local"));
        assert_eq!(mdns_host(&node(NodeRole::Founder, api)), None);
        let dns = node(NodeRole::JoiningServer, "https://api.example.com:6443");
        assert_eq!(mdns_host(&dns), None);
    }

    #[test]
    fn files_and_code_follow_the_stage_paths() {
        let part = stage2(&ctx(), &node(NodeRole::Agent, "https://node-1.local:6443")).unwrap();
        let paths: Vec<_> = part.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["stage/k3s/config.yaml", "stage/secrets/k3s-token"]);
        assert!(part.files[1].secret);
        assert!(
            part.install_lines
                .contains("\"$boot/stage/k3s/config.yaml\" /etc/stage/k3s-config.yaml")
        );
        assert!(
            part.install_functions
                .contains("K3S_TOKEN_FILE=/etc/stage/secrets/k3s-token")
        );
        assert!(part.prepare_steps.contains("/etc/stage/k3s-config.yaml"));
        assert_eq!(part.manifests.boot_dir, "stage/k3s");
        let code = [
            &part.install_lines,
            &part.install_functions,
            &part.prepare_steps,
        ];
        assert!(
            code.iter().all(|c| !c.contains('@')),
            "a placeholder is left"
        );
    }
}
