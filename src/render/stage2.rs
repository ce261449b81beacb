//! The second first-boot stage, for cluster nodes: `pinode-firstboot.service`, which runs
//! once the network is up, installs the cluster's distribution in the node's role and, on
//! the first server, places the CI runner's manifests. Both first-boot routes hand over to
//! it: `firstrun.sh` and the cloud-init `runcmd` call `firstboot.sh install BOOT_DIR`, which
//! moves the secrets off the FAT partition into root-only files and enables the unit.
//!
//! This module is the skeleton every cluster node runs, whatever its distribution and CI
//! system: installing the stage, pinning the API host, the done-marker and the status file.
//! The distribution's part comes from `crate::engine::Engine::stage2` and the CI
//! system's from `RunnerKind::stage2_glue` and `crate::ci::Runner::stage2_files`;
//! nothing here names either, so a new one needs no edit here.
//!
//! Idempotent: a done-marker makes every later boot do nothing (the unit does not even
//! start); a failed run leaves no marker, so the next boot tries again.

use super::shell::{CORE, ShellProgram};
use super::{BootFile, RenderError};
use crate::ci::{RunnerGlue, RunnerKind};
use crate::engine::helm_controller;
use crate::engine::stage2::{EngineStage2, StageContext, fill};
use crate::plan::{NodeCluster, NodePlan};

/// Directory on the boot partition for this stage's files.
const DIR: &str = "pinode";
pub(crate) const SCRIPT: &str = "pinode/firstboot.sh";
const UNIT: &str = "pinode/pinode-firstboot.service";
const HOSTS_UNIT: &str = "pinode/pinode-hosts.service";

/// The boot-partition directory the node installs its distribution from without internet
/// (`cluster.airgap`), when it does.
pub(crate) fn airgap_dir(plan: &NodePlan) -> Option<String> {
    let cluster = plan.cluster.as_ref()?;
    cluster
        .engine
        .airgap()
        .then(|| format!("{DIR}/{}", crate::engine::k3s::stage2::AIRGAP_DIR))
}

/// Where the node keeps the stage's files and its secrets (root only).
const NODE_DIR: &str = "/etc/pinode";
const NODE_SECRETS: &str = "/etc/pinode/secrets";

const UNIT_TEXT: &str = "[Unit]
Description=pinode first boot: @ENGINE@ and the CI runner
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

/// The API host's address pinned in /etc/hosts at every boot, before the distribution
/// starts: distributions written in Go resolve names with Go's resolver, which reads
/// /etc/hosts and asks DNS but knows nothing of mDNS, so a `.local` API URL (the default)
/// would never resolve.
const HOSTS_UNIT_TEXT: &str = "[Unit]
Description=pinode: pin the @ENGINE@ API host's mDNS address in /etc/hosts
Wants=network-online.target
After=network-online.target avahi-daemon.service
Before=@UNITS@

[Service]
Type=oneshot
ExecStart=-/usr/local/lib/pinode/firstboot.sh hosts
TimeoutStartSec=3min

[Install]
WantedBy=multi-user.target
";

// The skeleton's shell code. `install_stage` and `run_stage` are assembled from these pieces
// with the distribution's and the CI systems' lines between them; `@ENGINE@`, `@ROLE_VAR@`
// and `@STATUS_NAME@` are the distribution's names (see `EngineStage2`).
const INSTALL_STAGE_HEAD: &str = r##"
# install_stage BOOT_DIR: called by the first stage; moves secrets and enables the unit (without
# a daemon reload, slow on a small board: the firstrun route reboots, the cloud-init route reloads).
# The first stage never runs again: whatever fails, no secret stays on the boot partition.
install_stage() {
	install_stage_steps "$1" && return 0
	for secret in "$1"/pinode/secrets/*; do
		scrub "$secret"
	done
	rmdir "$1/pinode/secrets" 2>/dev/null
	return 1
}

# install_stage_steps BOOT_DIR: the secrets first (root-only, scrubbed from the boot partition),
# before any copy that can fail on a full or broken root file system.
install_stage_steps() {
	boot=$1
	mkdir -p /usr/local/lib/pinode /var/lib/pinode /etc/pinode/secrets || return 1
	chmod 700 /etc/pinode /etc/pinode/secrets || return 1
	for secret in "$boot"/pinode/secrets/*; do
		[ -f "$secret" ] || continue
		install -m 600 "$secret" "/etc/pinode/secrets/${secret##*/}" || return 1
		scrub "$secret" || return 1
	done
	rmdir "$boot/pinode/secrets" 2>/dev/null
	install -m 755 "$boot/pinode/firstboot.sh" /usr/local/lib/pinode/firstboot.sh || return 1
	install -m 644 "$boot/pinode/pinode-firstboot.service" /etc/systemd/system/pinode-firstboot.service || return 1
"##;

const INSTALL_STAGE_TAIL: &str = r##"	if [ -n "$API_MDNS_HOST" ]; then
		install -m 644 "$boot/pinode/pinode-hosts.service" /etc/systemd/system/pinode-hosts.service || return 1
		systemctl --no-reload enable pinode-hosts.service || return 1
	fi
	systemctl --no-reload enable pinode-firstboot.service
}
"##;

const REFRESH_HOSTS: &str = r##"
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
		log "$API_MDNS_HOST does not resolve over mDNS yet; @ENGINE@ keeps trying, and every boot looks again"
		return 1
	fi
	grep -v ' # pinode-mdns$' /etc/hosts >/etc/hosts.pinode-new &&
		printf '%s\t%s # pinode-mdns\n' "$address" "$API_MDNS_HOST" >>/etc/hosts.pinode-new &&
		chmod 644 /etc/hosts.pinode-new && mv -f /etc/hosts.pinode-new /etc/hosts
}
"##;

const RETRY: &str = r##"
# retry COMMAND...: with a growing pause, for networks that come and go. Each attempt's own
# explanation (the last line it logged) is kept, so that a step that gives up fails with the
# real reason (say, curl's "returned error: 404"), not with "attempt 5 failed".
retry() {
	attempt=1
	pause=10
	while :; do
		LAST_LOG=''
		"$@" && return 0
		why=${LAST_LOG:-"$1 failed"}
		if [ "$attempt" -ge "$RETRIES" ]; then
			log "$why (gave up after $attempt attempts)"
			return 1
		fi
		log "attempt $attempt failed: $why; trying again in ${pause}s"
		sleep "$pause"
		attempt=$((attempt + 1))
		pause=$((pause * 2))
	done
}
"##;

const RUN_STAGE_HEAD: &str = r##"
run_stage() {
	if [ -e /var/lib/pinode/firstboot.done ]; then
		log "nothing to do: done on $(cat /var/lib/pinode/firstboot.done)"
		return 0
	fi
	log "@ENGINE@ $@ROLE_VAR@ on $NODE_HOSTNAME"
"##;

/// `runner_wanted KIND`: whether this node installs the runner of CI system KIND (`RUNNERS`
/// lists them: the founder's, empty elsewhere). `warn`: a problem that does not fail the
/// stage, said in the log and in the status file on the boot partition.
const RUNNERS_WANTED: &str = r##"
WARNINGS=''
runner_wanted() {
	case " $RUNNERS " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

warn() {
	log "warning: $*"
	WARNINGS="${WARNINGS}warning: $*
"
}
"##;

/// Every node of a cluster with a rootless BuildKit runner: job pods may land on any of them.
const RUN_STAGE_USERNS: &str = r##"	if [ "$ROOTLESS_BUILDS" = yes ]; then
		check_userns
	fi
"##;

const RUN_STAGE_PIN_HOSTS: &str = r##"	if [ -n "$API_MDNS_HOST" ] && ! refresh_hosts; then
		log "continuing without a pinned address for $API_MDNS_HOST"
	fi
"##;

const RUN_STAGE_TAIL: &str = r##"	if [ -n "$FAILED" ]; then
		result="failed: $FAILED (the next boot tries again)"
		write_status failed
	else
		result=ok
		date -u '+%Y-%m-%dT%H:%M:%SZ' >/var/lib/pinode/firstboot.done
		write_status ok
	fi
	printf '@STATUS_NAME@ (%s): %s\nfinished: %s\nlog: %s and journalctl -u pinode-firstboot on the node\n' \
		"$@ROLE_VAR@" "$result" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$PINODE_LOG" >>"$BOOT_DIR/pinode-status.txt"
	if [ -n "$WARNINGS" ]; then
		printf '%s' "$WARNINGS" >>"$BOOT_DIR/pinode-status.txt"
	fi
	log "@STATUS_NAME@ $result"
	[ -z "$FAILED" ]
}
"##;

/// `measure_root_write`: the root file system's sequential write speed, measured once and
/// kept, so that `pinode status` can show a card too slow for a cluster (see
/// `crate::status::SLOW_ROOT_WRITE`). 64 MiB of zeros written with `O_DIRECT` and a final
/// fsync (the page cache would otherwise measure memory) to a temporary file in the status
/// directory, on the root file system; the file is removed. Bounded: at most 120 s (`timeout`;
/// what was written by then counts), and skipped with less than 256 MiB free. A file system
/// that refuses `O_DIRECT` is measured with the fsync alone. The result, in bytes per second,
/// goes into `ROOT_WRITE_BPS` (status.json's `root_write_bytes_per_second`), the status
/// directory (`root-write-bps`: a later boot reuses it rather than write 64 MiB again) and
/// the boot partition's `pinode-status.txt` (a slow card as a warning). It never fails the
/// stage: a speed that cannot be measured is logged and left out.
const ROOT_WRITE_SPEED: &str = r##"
ROOT_WRITE_BPS=''
measure_root_write() {
	speed_kept="$PINODE_STATUS_DIR/root-write-bps"
	if [ -s "$speed_kept" ]; then
		ROOT_WRITE_BPS=$(head -c 20 "$speed_kept" | tr -cd '0-9')
		return 0
	fi
	if ! { mkdir -p "$PINODE_STATUS_DIR" && chmod 700 "$PINODE_STATUS_DIR"; }; then
		log "root write speed not measured: cannot create $PINODE_STATUS_DIR"
		return 0
	fi
	free_kib=$(df -Pk "$PINODE_STATUS_DIR" 2>/dev/null | awk 'NR == 2 { print $4 }')
	case $free_kib in
	'' | *[!0-9]*) free_kib=0 ;;
	esac
	if [ "$free_kib" -lt 262144 ]; then
		log "root write speed not measured: ${free_kib} KiB free on the root file system (256 MiB needed)"
		return 0
	fi
	if ! probe=$(mktemp "$PINODE_STATUS_DIR/write-speed.XXXXXX"); then
		log "root write speed not measured: cannot create a file in $PINODE_STATUS_DIR"
		return 0
	fi
	for flags in oflag=direct ''; do
		speed_start=$(date +%s%N)
		# shellcheck disable=SC2086 # $flags: no flag, or one word
		timeout 120 dd if=/dev/zero of="$probe" bs=1M count=64 $flags conv=fsync 2>/dev/null
		speed_end=$(date +%s%N)
		written=$(stat -c %s "$probe" 2>/dev/null)
		case $written in
		'' | *[!0-9]*) written=0 ;;
		esac
		[ "$written" -gt 0 ] && break
	done
	rm -f "$probe"
	elapsed=$((speed_end - speed_start))
	if [ "$written" -le 0 ] || [ "$elapsed" -le 0 ]; then
		log "root write speed not measured: dd wrote nothing"
		return 0
	fi
	ROOT_WRITE_BPS=$((written * 1000000000 / elapsed))
	printf '%s
' "$ROOT_WRITE_BPS" >"$speed_kept"
	speed_text="$((ROOT_WRITE_BPS / 1048576)).$((ROOT_WRITE_BPS * 10 / 1048576 % 10)) MiB/s"
	log "root file system writes at $speed_text ($written bytes${flags:+, $flags}, conv=fsync)"
	printf 'root file system write speed: %s
' "$speed_text" >>"$BOOT_DIR/pinode-status.txt"
	if [ "$ROOT_WRITE_BPS" -lt "$SLOW_WRITE_BPS" ]; then
		warn "the root file system writes at $speed_text, under $((SLOW_WRITE_BPS / 1048576)) MiB/s: too slow for a cluster node (K3s restarts in a loop on such cards); use a faster card or a USB SSD"
	fi
	return 0
}
"##;

/// The step that runs it, first: before the distribution writes its own gigabyte.
const RUN_STAGE_SPEED: &str = "\tstep \"root write speed\" measure_root_write\n";

/// helm-controller's manifest (only on a founder with a runner, on a distribution without a
/// controller of its own), moved off the boot partition into the manifests the founder
/// applies.
const HELM_CONTROLLER_INSTALL_LINES: &str = r##"	if [ -f "$boot/@FILE@" ]; then
		install -D -m 600 "$boot/@FILE@" @MANIFESTS_DIR@/@NAME@ || return 1
	fi
"##;

/// Where helm-controller's manifest waits on the boot partition.
fn helm_controller_file(engine: &EngineStage2) -> String {
    format!(
        "{}/{}",
        engine.manifests.boot_dir,
        helm_controller::MANIFEST
    )
}

/// The files of this stage for `plan` (which must have a cluster part).
pub(crate) fn files(
    plan: &NodePlan,
    cluster: &NodeCluster,
    boot_dir: &str,
) -> Result<Vec<BootFile>, RenderError> {
    let ctx = StageContext {
        hostname: &plan.hostname,
        boot_dir: DIR,
        node_dir: NODE_DIR,
        secrets_dir: NODE_SECRETS,
    };
    let engine = cluster.engine.stage2(&ctx)?;
    let mut files = vec![
        BootFile {
            path: SCRIPT.into(),
            contents: script(plan, &ctx, &engine, cluster, boot_dir)?.into_bytes(),
            secret: false,
        },
        BootFile {
            path: UNIT.into(),
            contents: fill(UNIT_TEXT, &[("@ENGINE@", engine.title)]).into_bytes(),
            secret: false,
        },
    ];
    let hosts_unit = engine.api_mdns_host.is_some();
    let helm_controller_path = helm_controller_file(&engine);
    files.extend(engine.files);
    if hosts_unit {
        files.push(BootFile {
            path: HOSTS_UNIT.into(),
            contents: fill(
                HOSTS_UNIT_TEXT,
                &[("@ENGINE@", engine.title), ("@UNITS@", engine.units)],
            )
            .into_bytes(),
            secret: false,
        });
    }
    for runner in &cluster.runners {
        files.extend(runner.stage2_files(&ctx, &engine.manifests)?);
    }
    if !cluster.runners.is_empty() {
        // Runners are HelmCharts: where the distribution has no controller for them, the
        // founder deploys helm-controller first (see `crate::engine::helm_controller`).
        if !engine.manifests.helm_controller {
            files.push(BootFile {
                path: helm_controller_path.clone(),
                contents: helm_controller::manifest().into_bytes(),
                secret: false,
            });
        }
    }
    Ok(files)
}

/// The program: the skeleton, with the distribution's code and the code of every CI system
/// (the same on every node, with or without runners: `RUNNERS` names the node's).
fn script(
    plan: &NodePlan,
    ctx: &StageContext,
    engine: &EngineStage2,
    cluster: &NodeCluster,
    boot_dir: &str,
) -> Result<String, RenderError> {
    let runners: Vec<_> = RunnerKind::ALL
        .iter()
        .map(|kind| kind.stage2_glue(ctx, &engine.manifests))
        .collect();
    let join = |part: fn(&RunnerGlue) -> &str| -> String { runners.iter().map(part).collect() };
    let helm_controller = fill(
        HELM_CONTROLLER_INSTALL_LINES,
        &[
            ("@FILE@", &helm_controller_file(engine)),
            ("@MANIFESTS_DIR@", engine.manifests.node_dir),
            ("@NAME@", helm_controller::MANIFEST),
        ],
    );
    let install_stage = [
        INSTALL_STAGE_HEAD,
        &engine.install_lines,
        if engine.manifests.helm_controller {
            ""
        } else {
            &helm_controller
        },
        &join(|r| &r.install_lines),
        INSTALL_STAGE_TAIL,
    ]
    .concat();
    let run_stage = [
        RUN_STAGE_HEAD,
        RUN_STAGE_SPEED,
        RUN_STAGE_USERNS,
        &engine.prepare_steps,
        &join(|r| &r.run_steps),
        RUN_STAGE_PIN_HOSTS,
        &engine.install_steps,
        RUN_STAGE_TAIL,
    ]
    .concat();
    let names = [
        ("@ENGINE@", engine.title),
        ("@ROLE_VAR@", engine.role_var),
        ("@STATUS_NAME@", engine.status_name),
    ];
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
    .library(install_stage)
    .library(fill(REFRESH_HOSTS, &names))
    .library(RUNNERS_WANTED)
    .library(ROOT_WRITE_SPEED)
    .library(crate::ci::USERNS_CHECK)
    .library(crate::ci::stage2::PLACE_RUNNER)
    .library(engine.prepare_functions.clone());
    for runner in &runners {
        p.library(runner.functions.clone());
    }
    p.library(RETRY)
        .library(engine.install_functions.clone())
        .library(fill(&run_stage, &names))
        .propagate_status();
    p.var("PINODE_STAGE", "firstboot")?
        .var("STOP_AFTER_FAILURE", "yes")?
        .var("BOOT_DIR", boot_dir)?
        .var("NODE_HOSTNAME", &plan.hostname)?
        .var("USER_NAME", &plan.user.name)?;
    for (name, value) in &engine.vars {
        p.var(name, value)?;
    }
    let kinds: Vec<&str> = cluster.runners.iter().map(|r| r.kind().as_str()).collect();
    p.var("RUNNERS", &kinds.join(" "))?
        .var(
            "ROOTLESS_BUILDS",
            if cluster.rootless_builds { "yes" } else { "no" },
        )?
        .var(
            "API_MDNS_HOST",
            engine.api_mdns_host.as_deref().unwrap_or(""),
        )?
        .var("RETRIES", "6")?
        .var(
            "SLOW_WRITE_BPS",
            &crate::status::SLOW_ROOT_WRITE.bytes_per_second.to_string(),
        )?;
    p.step(r#"case "${1:-run}" in"#)
        .step(r#"install) install_stage "${2:-$BOOT_DIR}" ;;"#)
        .step(r#"run) run_stage ;;"#)
        .step(r#"hosts) refresh_hosts ;;"#)
        .step(r#"*) log "usage: firstboot.sh install BOOT_DIR | run | hosts"; return 2 ;;"#)
        .step("esac");
    Ok(p.render())
}
