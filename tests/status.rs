//! `pinode status` against real OpenSSH servers: one sshd per node on 127.0.0.1, each with
//! the host key pinode made for that node, and a named STAND-IN as sshd's ForceCommand that
//! runs pinode's real remote script with stand-ins for `sudo` and `systemctl` serving the
//! node's fixtures: its status.json, the first-boot log, and on the server the documents
//! `k3s kubectl get nodes -o json` and `get deployment gitlab-runner -o json` print, in the
//! Kubernetes API's shape (core/v1 NodeList as kubectl prints it, apps/v1 Deployment).
//! Each connection may see a later set of fixtures ("poll-N"), so `--watch` sees changes.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::sshd::*;
use common::*;
use pinode::status::probe::NodeState;
use pinode::status::report::StatusReport;

/// The login user on the test's sshd (as in tests/kubeconfig.rs).
const USER: &str = "pinodekube";

/// The STAND-IN for a node: logs the command (one line per connection), picks the fixtures
/// of this connection (`poll-N`, else the last one there is) and runs the command pinode sent,
/// for real, with the `sudo` and `systemctl` stand-ins first on PATH.
const NODE_STAND_IN: &str = r#"#!/bin/sh
# STAND-IN for a node answering `pinode status`: the real remote script runs here.
base=@BASE@
printf '%s\n' "$SSH_ORIGINAL_COMMAND" >>"$base/commands"
n=$(wc -l <"$base/commands")
while [ "$n" -gt 1 ] && [ ! -d "$base/poll-$n" ]; do n=$((n - 1)); done
FIX="$base/poll-$n"
export FIX
PATH="$base/bin:$PATH" exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"#;

/// STAND-IN for `sudo -n` on a node: the root-only files and the kubectl answers of the
/// node's fixtures.
const SUDO_STAND_IN: &str = r#"#!/bin/sh
# STAND-IN for sudo on a node (pinode status reads through `sudo -n`).
[ "$1" = -n ] || { echo "sudo without -n would wait for a password" >&2; exit 1; }
[ -f "$FIX/no-sudo" ] && { echo 'sudo: a password is required' >&2; exit 1; }
shift
case "$1" in
true) exit 0 ;;
cat) [ -f "$FIX$2" ] && exec cat "$FIX$2"; echo "cat: $2: No such file or directory" >&2; exit 1 ;;
tail) [ -f "$FIX$4" ] && exec tail "$2" "$3" "$FIX$4"; exit 1 ;;
k3s)
	case "$*" in
	'k3s kubectl get nodes -o json '*) f="$FIX/nodes.json" ;;
	'k3s kubectl -n gitlab-runner get deployment gitlab-runner -o json '*) f="$FIX/runner.json" ;;
	*) echo "unexpected: $*" >&2; exit 1 ;;
	esac
	[ -f "$f" ] && exec cat "$f"
	echo 'The connection to the server 127.0.0.1:6443 was refused' >&2
	exit 1 ;;
esac
echo "unexpected: sudo $*" >&2
exit 1
"#;

/// STAND-IN for `systemctl is-active pinode-firstboot.service`.
const SYSTEMCTL_STAND_IN: &str = r#"#!/bin/sh
# STAND-IN for systemctl on a node.
[ "$*" = 'is-active pinode-firstboot.service' ] || { echo "unexpected: systemctl $*" >&2; exit 1; }
cat "$FIX/unit" 2>/dev/null || echo inactive
"#;

/// status.json as the first-boot program writes it (tests/cluster.rs checks the program).
fn status_json(state: &str, step: &str, reason: Option<&str>) -> String {
    let finished = if state == "running" {
        "null".to_string()
    } else {
        "\"2026-11-30T04:12:09Z\"".to_string()
    };
    let (last_error, reason) = match reason {
        Some(r) => (format!("\"{step}\""), format!("\"{r}\"")),
        None => ("null".into(), "null".into()),
    };
    format!(
        "{{\"version\":1,\"stage\":\"firstboot\",\"state\":\"{state}\",\"step\":\"{step}\",\"started\":\"2026-11-30T04:10:01Z\",\"finished\":{finished},\"last_error\":{last_error},\"reason\":{reason}}}\n"
    )
}

/// One Node of `kubectl get nodes -o json`, as K3s's kubectl prints it (fields trimmed to a
/// realistic few).
fn node_json(name: &str, ready: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"annotations":{{"k3s.io/hostname":"{name}"}},"creationTimestamp":"2026-11-30T04:11:40Z","labels":{{"kubernetes.io/arch":"arm64","kubernetes.io/hostname":"{name}","kubernetes.io/os":"linux"}},"name":"{name}","resourceVersion":"812","uid":"6f1c2d7e-1111-4c5e-9a70-0d5c1b2a3f40"}},"spec":{{"podCIDR":"10.42.0.0/24","podCIDRs":["10.42.0.0/24"],"providerID":"k3s://{name}"}},"status":{{"addresses":[{{"address":"10.0.0.5","type":"InternalIP"}},{{"address":"{name}","type":"Hostname"}}],"allocatable":{{"cpu":"4","memory":"7997476Ki","pods":"110"}},"capacity":{{"cpu":"4","memory":"7997476Ki","pods":"110"}},"conditions":[{{"lastHeartbeatTime":"2026-11-30T04:12:40Z","lastTransitionTime":"2026-11-30T04:11:40Z","message":"kubelet has sufficient memory available","reason":"KubeletHasSufficientMemory","status":"False","type":"MemoryPressure"}},{{"lastHeartbeatTime":"2026-11-30T04:12:40Z","lastTransitionTime":"2026-11-30T04:11:52Z","message":"kubelet is posting ready status","reason":"KubeletReady","status":"{ready}","type":"Ready"}}],"nodeInfo":{{"architecture":"arm64","bootID":"3b1f0e4c-8d2a-4f61-9c55-2e7a9d0b6c13","machineID":"9f2c4e1a7b3d4c5e8f6a1b2c3d4e5f60","systemUUID":"9f2c4e1a7b3d4c5e8f6a1b2c3d4e5f60","containerRuntimeVersion":"containerd://2.1.4-k3s1","kernelVersion":"6.12.47+rpt-rpi-2712","kubeProxyVersion":"v1.33.5+k3s1","kubeletVersion":"v1.33.5+k3s1","operatingSystem":"linux","osImage":"Debian GNU/Linux 12 (bookworm)"}}}}}}"#
    )
}

/// `kubectl get nodes -o json`: a List of Nodes.
fn nodes_json(nodes: &[(&str, &str)]) -> String {
    let items: Vec<String> = nodes.iter().map(|(n, r)| node_json(n, r)).collect();
    format!(
        "{{\n    \"apiVersion\": \"v1\",\n    \"items\": [{}],\n    \"kind\": \"List\",\n    \"metadata\": {{\n        \"resourceVersion\": \"\"\n    }}\n}}\n",
        items.join(",")
    )
}

/// `kubectl -n gitlab-runner get deployment gitlab-runner -o json` (apps/v1).
fn runner_json(ready: u32) -> String {
    let ready_field = if ready > 0 {
        format!(",\"readyReplicas\":{ready},\"availableReplicas\":{ready}")
    } else {
        String::new()
    };
    format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"gitlab-runner","namespace":"gitlab-runner","generation":1,"labels":{{"app":"gitlab-runner","chart":"gitlab-runner-0.71.0"}}}},"spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"gitlab-runner"}}}},"template":{{"metadata":{{"labels":{{"app":"gitlab-runner"}}}},"spec":{{"containers":[{{"name":"gitlab-runner","image":"registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v17.6.0"}}]}}}}}},"status":{{"observedGeneration":1,"replicas":1,"updatedReplicas":1{ready_field},"conditions":[{{"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"}}]}}}}"#
    )
}

struct Cluster {
    dir: tempfile::TempDir,
    ports: Vec<(String, u16)>,
    _started: Started,
}

impl Cluster {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `pinode status` with each node's `--address`.
    fn status(&self, args: &[&str]) -> Command {
        let mut c = pinode();
        c.env("PINODE_STATE_DIR", self.path("state"))
            .env("SSH_AUTH_SOCK", self.path("agent.sock"))
            .arg("status")
            .arg("--profile")
            .arg(self.path("lab.yaml"))
            .args(args);
        for (host, port) in &self.ports {
            c.arg("--address").arg(format!("{host}=127.0.0.1:{port}"));
        }
        c
    }

    /// The fixtures node `host` serves from its connection `poll` on.
    fn fixtures(&self, host: &str, poll: u32, files: &[(&str, &str)]) {
        for (name, body) in files {
            let path = self.path(&format!("{host}/poll-{poll}/{name}"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
        }
        run(Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(self.path(host)));
    }

    /// The commands node `host` was sent, one per connection.
    fn commands(&self, host: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(&format!("{host}/commands")))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

fn profile_text(key: &str) -> String {
    format!(
        "version: 1\ndefaults:\n  user:\n    name: {USER}\n    ssh_authorized_keys: [\"{key}\"]\ncluster:\n  name: lab\n  token_env: K3S_TOKEN\n  runner:\n    kind: gitlab\n    url: https://gitlab.example.com\n    token_env: GITLAB_RUNNER_TOKEN\nnodes:\n  - hostname: kube1\n    role: server\n  - hostname: kube2\n    role: agent\n"
    )
}

/// Renders both nodes (which makes their host keys), then one sshd per node with its key
/// and the node STAND-IN.
fn cluster() -> Cluster {
    assert!(
        is_root(),
        "this test runs sshd (which needs root) as CI does; run it as root"
    );
    ensure_user(USER);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    chmod(d, "755");
    let key = client_key(d);
    std::fs::write(d.join("lab.yaml"), profile_text(key.trim())).unwrap();
    let mut started = Started(Vec::new());
    let mut ports = Vec::new();
    for host in ["kube1", "kube2"] {
        run(pinode()
            .env("PINODE_STATE_DIR", d.join("state"))
            .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
            .env("GITLAB_RUNNER_TOKEN", "glrt-status-test-0123456789")
            .args(["render", "--generation", "bookworm", "--node", host])
            .arg("--profile")
            .arg(d.join("lab.yaml"))
            .arg("--out-dir")
            .arg(d.join(format!("render-{host}"))));
        let base = d.join(host);
        std::fs::create_dir_all(base.join("bin")).unwrap();
        // The login user logs each connection here.
        chmod(&base, "777");
        for (name, text) in [
            ("bin/sudo", SUDO_STAND_IN.to_string()),
            ("bin/systemctl", SYSTEMCTL_STAND_IN.to_string()),
            (
                "node-stand-in",
                NODE_STAND_IN.replace("@BASE@", &format!("'{}'", base.display())),
            ),
        ] {
            std::fs::write(base.join(name), text).unwrap();
            chmod(&base.join(name), "755");
        }
        let port = start_sshd(
            d,
            &d.join(format!("state/clusters/lab/host-keys/{host}_ed25519")),
            USER,
            &base.join("node-stand-in"),
            &mut started,
        );
        ports.push((host.to_string(), port));
    }
    start_agent(d, &mut started);
    Cluster {
        dir,
        ports,
        _started: started,
    }
}

const JSON: &str = "var/lib/pinode/status.json";
const LOG: &str = "var/log/pinode-firstboot.log";

fn ready_fixtures(c: &Cluster, poll: u32) {
    let nodes = nodes_json(&[("kube1", "True"), ("kube2", "True")]);
    let runner = runner_json(1);
    let done = status_json("ok", "kubeconfig for pinodekube", None);
    c.fixtures(
        "kube1",
        poll,
        &[
            (JSON, &done),
            ("unit", "active\n"),
            ("nodes.json", &nodes),
            ("runner.json", &runner),
        ],
    );
    let done = status_json("ok", "k3s install", None);
    c.fixtures("kube2", poll, &[(JSON, &done), ("unit", "active\n")]);
}

#[test]
fn a_ready_cluster_exits_0_with_one_connection_per_node() {
    let c = cluster();
    ready_fixtures(&c, 1);
    let out = output(&mut c.status(&[]));
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kube1: node Ready, runner Running"), "{text}");
    assert!(text.contains("kube2: node Ready\n"), "{text}");
    assert!(
        text.contains("every node is Ready, the runner running"),
        "{text}"
    );
    for host in ["kube1", "kube2"] {
        let commands = c.commands(host);
        assert_eq!(commands.len(), 1, "one ssh call per node: {commands:?}");
    }
    // Only the server is asked for the cluster's view.
    assert!(c.commands("kube1")[0].contains("kubectl get nodes -o json"));
    assert!(!c.commands("kube2")[0].contains("kubectl"));

    // --json: one document of the report's type.
    let out = output(&mut c.status(&["--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let report: StatusReport = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(report.ready && !report.failed);
    assert_eq!((report.cluster.as_str(), report.polls), ("lab", 1));
    assert_eq!(report.nodes.len(), 2);
    assert_eq!(report.nodes[0].state, NodeState::RunnerRunning);
    assert_eq!(
        (report.nodes[0].role.as_str(), report.nodes[0].runner),
        ("server", true)
    );
    assert_eq!(report.nodes[1].state, NodeState::Ready);
    let fb = report.nodes[1].first_boot.as_ref().unwrap();
    assert_eq!(fb.finished.as_deref(), Some("2026-11-30T04:12:09Z"));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["nodes"][0]["state"], "runner_running");
    assert!(value["nodes"][0]["state_since_seconds"].is_number());
    assert!(value["elapsed_seconds"].as_f64().unwrap() < 30.0);
}

#[test]
fn a_failed_first_boot_shows_its_reason_and_log_and_exits_1() {
    let c = cluster();
    ready_fixtures(&c, 1);
    let reason = "the memory cgroup is off: cmdline.txt lacks cgroup_enable=memory (the firmware passes cgroup_disable=memory)";
    let failed = status_json("failed", "memory cgroup", Some(reason));
    let log = "2026-11-30T04:10:01Z pinode firstboot: k3s agent on kube2\n2026-11-30T04:10:02Z pinode firstboot: the memory cgroup is off\n2026-11-30T04:10:02Z pinode firstboot: FAILED: memory cgroup\n";
    c.fixtures(
        "kube2",
        1,
        &[(JSON, &failed), ("unit", "failed\n"), (LOG, log)],
    );
    let out = output(&mut c.status(&[]));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "kube2: first boot failed at memory cgroup: {reason}"
        )),
        "{text}"
    );
    assert!(
        text.contains("    | 2026-11-30T04:10:02Z pinode firstboot: FAILED: memory cgroup"),
        "{text}"
    );
    only_error_line(&out, &["the first boot failed on kube2"]);
    let out = output(&mut c.status(&["--json", "--node", "kube2"]));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let report: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.failed && !report.ready);
    assert_eq!(report.nodes.len(), 1);
    match &report.nodes[0].state {
        NodeState::FirstBootFailed { log_tail, .. } => assert_eq!(log_tail.len(), 3),
        other => panic!("{other:?}"),
    }

    // A user whose sudo asks for a password: said so, not "booting" for ever.
    c.fixtures("kube2", 1, &[("no-sudo", ""), ("unit", "activating\n")]);
    let out = output(&mut c.status(&["--node", "kube2"]));
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kube2: reachable, but sudo asks for a password"),
        "{text}"
    );
}

#[test]
fn watch_without_a_terminal_prints_one_line_per_change() {
    let c = cluster();
    // Poll 1: the server installs K3s, the agent has no status yet.
    let running = status_json("running", "k3s install", None);
    c.fixtures("kube1", 1, &[(JSON, &running), ("unit", "activating\n")]);
    c.fixtures("kube2", 1, &[("unit", "inactive\n")]);
    // Poll 2: both done; the agent not Ready yet, the runner not running yet.
    let nodes = nodes_json(&[("kube1", "True"), ("kube2", "False")]);
    let runner = runner_json(0);
    let done = status_json("ok", "kubeconfig for pinodekube", None);
    c.fixtures(
        "kube1",
        2,
        &[
            (JSON, &done),
            ("unit", "active\n"),
            ("nodes.json", &nodes),
            ("runner.json", &runner),
        ],
    );
    let done = status_json("ok", "k3s install", None);
    c.fixtures("kube2", 2, &[(JSON, &done), ("unit", "active\n")]);
    // Poll 3 (and 4, the same): all Ready, the runner running.
    ready_fixtures(&c, 3);
    let (out, took) = run_within(
        &mut c.status(&["--watch", "--timeout", "2m"]),
        Duration::from_secs(60),
        "pinode status --watch",
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let changes: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with('['))
        .map(|l| l.split_once("] ").unwrap().1)
        .collect();
    assert_eq!(
        changes,
        [
            "kube1: first boot running (firstboot: k3s install)",
            "kube2: booting (reachable, no first-boot status yet)",
            "kube1: node Ready",
            "kube2: installed, running (node not Ready yet)",
            "kube1: node Ready, runner Running",
            "kube2: node Ready",
        ],
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no terminal codes without a terminal"
    );
    assert_eq!(c.commands("kube1").len(), 3, "three polls");
    eprintln!("watch: 3 polls in {took:?}");
}

/// A listener that accepts connections and never speaks: ssh waits for a banner.
fn silent_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn unreachable_nodes_end_within_the_timeout_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("lab.yaml");
    std::fs::write(&profile, profile_text(KEY_1)).unwrap();
    let closed = free_port();
    let (_silent, silent) = silent_listener();
    let status = |args: &[&str]| {
        let mut c = pinode();
        c.env("PINODE_STATE_DIR", dir.path().join("state"))
            .args(["status", "--profile"])
            .arg(&profile)
            .arg("--address")
            .arg(format!("kube1=127.0.0.1:{closed}"))
            .arg("--address")
            .arg(format!("kube2=127.0.0.1:{silent}"))
            .args(args);
        c
    };
    // One poll: the closed port at once, the silent one after the connect timeout (3 s).
    let (out, took) = run_within(
        &mut status(&["--timeout", "3s"]),
        Duration::from_secs(20),
        "status",
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kube1: unreachable: cannot reach kube1 at 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("kube2: unreachable:"), "{text}");
    only_error_line(&out, &["2 of 2 nodes not Ready yet"]);
    assert!(took < Duration::from_secs(5), "{took:?}");
    eprintln!("one poll, no node reachable, --timeout 3s: {took:?}");
    // --watch: polls until the timeout, then exit 3.
    let (out, took) = run_within(
        &mut status(&["--watch", "--timeout", "4s"]),
        Duration::from_secs(20),
        "status --watch",
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    only_error_line(&out, &["2 of 2 nodes not Ready after", "--timeout passed"]);
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(5),
        "{took:?}"
    );
    eprintln!("--watch, no node reachable, --timeout 4s: {took:?}");
    let out = output(&mut status(&["--json", "--timeout", "2s"]));
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let report: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(matches!(
        report.nodes[0].state,
        NodeState::Unreachable { .. }
    ));
}

/// The cloud-init route before pinode's second stage: cloud-init's own record (its files in
/// /run/cloud-init, as cloud-init writes them) says the first stage failed, through the real
/// remote script.
#[test]
fn a_failed_cloud_init_stage_is_reported_from_cloud_inits_record() {
    let c = cluster();
    ready_fixtures(&c, 1);
    let error =
        "('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))";
    c.fixtures(
        "kube2",
        2,
        &[
            ("unit", "inactive\n"),
            (
                "run/cloud-init/status.json",
                r#"{"v1": {"datasource": "DataSourceNoCloud", "stage": null, "modules-final": {"errors": [], "finished": 1732547800.9, "start": 1732547550.2}}}"#,
            ),
            (
                "run/cloud-init/result.json",
                &format!(r#"{{"v1": {{"datasource": "DataSourceNoCloud", "errors": ["{error}"]}}}}"#),
            ),
        ],
    );
    // Connection 1 reads poll-1 (done); kube2's second connection reads poll-2.
    let _ = output(&mut c.status(&["--node", "kube2"]));
    let out = output(&mut c.status(&["--node", "kube2"]));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "kube2: first boot failed at cloud-init: cloud-init reported: {error}"
        )),
        "{text}"
    );
}

/// A node that answers with another host key than the one pinode made is not "unreachable"
/// (exit 3, wait on): it is refused, nothing is sent to it, and status exits 1 at once, even
/// under --watch. Here kube2's address is kube1's sshd, which holds kube1's key.
#[test]
fn another_host_key_is_refused_and_exits_1() {
    let c = cluster();
    ready_fixtures(&c, 1);
    let kube1 = c.ports[0].1;
    let status = |args: &[&str]| {
        let mut cmd = pinode();
        cmd.env("PINODE_STATE_DIR", c.path("state"))
            .env("SSH_AUTH_SOCK", c.path("agent.sock"))
            .args(["status", "--node", "kube2", "--profile"])
            .arg(c.path("lab.yaml"))
            .arg("--address")
            .arg(format!("kube2=127.0.0.1:{kube1}"))
            .args(args);
        cmd
    };
    let (out, took) = run_within(
        &mut status(&["--watch", "--timeout", "60s"]),
        Duration::from_secs(30),
        "status --watch",
    );
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(took < Duration::from_secs(10), "--watch waited: {took:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "kube2: host key mismatch: the host key of kube2 differs from the one pinode generated"
        ),
        "{text}"
    );
    only_error_line(
        &out,
        &["kube2 answered with another host key than the one pinode made"],
    );
    assert!(c.commands("kube1").is_empty(), "a command was sent");
    let out = output(&mut status(&["--json"]));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let report: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.failed && !report.ready);
    assert!(
        matches!(report.nodes[0].state, NodeState::HostKeyMismatch { .. }),
        "{:?}",
        report.nodes[0].state
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["nodes"][0]["state"], "host_key_mismatch");
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("lab.yaml");
    std::fs::write(&profile, profile_text(KEY_1)).unwrap();
    let no_cluster = write_profile(
        dir.path(),
        "plain.yaml",
        &profile_yaml("", "", "nodes:\n  - hostname: a\n"),
    );
    let status = |file: &std::path::Path| {
        let mut c = pinode();
        c.env("PINODE_STATE_DIR", dir.path().join("state"))
            .args(["status", "--profile"])
            .arg(file);
        c
    };
    usage_errors(
        || status(&profile),
        &[
            vec!["--node", "nobody"],
            vec!["--address", "nobody=127.0.0.1"],
            vec!["--timeout", "soon"],
            vec!["--timeout", "0s"],
        ],
    );
    usage_errors(|| status(&no_cluster), &[vec![]]);
}

/// On a terminal, `--watch` redraws one table in place (a spinner, the elapsed time, a line
/// per node): the screen a person is left with holds the last table and the verdict, and no
/// earlier state.
#[test]
fn watch_on_a_terminal_redraws_one_table() {
    use common::screen::Screen;
    use expectrl::Expect;
    let c = cluster();
    let running = status_json("running", "k3s install", None);
    c.fixtures("kube1", 1, &[(JSON, &running), ("unit", "activating\n")]);
    c.fixtures("kube2", 1, &[("unit", "inactive\n")]);
    ready_fixtures(&c, 2);
    let mut cmd = c.status(&["--watch", "--timeout", "1m"]);
    cmd.env("TERM", "xterm");
    let mut s = expectrl::session::OsSession::spawn(cmd).unwrap();
    s.get_process_mut().set_window_size(200, 40).unwrap();
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    let all = s.expect(expectrl::Eof).unwrap();
    let raw = [all.before(), all.get(0).unwrap_or_default()].concat();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("first boot running (firstboot: k3s install)"),
        "the first table was drawn: {text:?}"
    );
    let lines = Screen::of(&raw, 200).lines();
    let screen = lines.join("\n");
    assert_eq!(lines.len(), 4, "{screen}");
    let (spinner, rest) = lines[0].split_at(1);
    assert!("|/-\\".contains(spinner), "{screen}");
    assert!(
        rest.starts_with(" 00:0") && rest.ends_with("poll 2"),
        "{screen}"
    );
    assert_eq!(lines[1], "  kube1  node Ready, runner Running");
    assert_eq!(lines[2], "  kube2  node Ready");
    assert!(
        lines[3].starts_with("every node is Ready, the runner running"),
        "{screen}"
    );
}

/// A node added to the profile later (here kube2, the agent), joining a cluster whose
/// server is Ready: status lists it from the profile, says where its first boot is, then
/// that it is installed but not in the cluster yet; not all Ready, exit 3.
#[test]
fn a_node_joining_later_is_listed_from_the_profile_until_it_is_ready() {
    let c = cluster();
    ready_fixtures(&c, 1);
    let server_only = nodes_json(&[("kube1", "True")]);
    c.fixtures("kube1", 1, &[("nodes.json", &server_only)]);
    let installing = status_json("running", "k3s install", None);
    c.fixtures("kube2", 1, &[(JSON, &installing), ("unit", "activating\n")]);
    let out = output(&mut c.status(&[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kube2: first boot running (firstboot: k3s install)"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let joined = status_json("ok", "k3s install", None);
    c.fixtures("kube2", 2, &[(JSON, &joined), ("unit", "active\n")]);
    let out = output(&mut c.status(&[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kube2: installed, running (node not Ready yet)"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
}

/// The root device's write speed the first boot measured (status.json's
/// `root_write_bytes_per_second`, see tests/storage.rs for the shell that writes it): shown
/// per node, a slow one flagged with the threshold and why; in --json as the node wrote it.
#[test]
fn the_measured_write_speed_is_shown_and_a_slow_card_flagged() {
    let c = cluster();
    ready_fixtures(&c, 1);
    let with_speed = |state: &str, step: &str, bps: u64| {
        status_json(state, step, None).replace(
            "\"reason\":null}",
            &format!("\"reason\":null,\"root_write_bytes_per_second\":{bps}}}"),
        )
    };
    c.fixtures(
        "kube1",
        1,
        &[(
            JSON,
            &with_speed("ok", "kubeconfig for pinodekube", 87_400_000),
        )],
    );
    c.fixtures(
        "kube2",
        1,
        &[(JSON, &with_speed("ok", "k3s install", 9_800_000))],
    );
    let out = output(&mut c.status(&[]));
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kube1: node Ready, runner Running\n  root device writes at 83.3 MiB/s\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "kube2: node Ready\n  root device writes at 9.3 MiB/s: SLOW, under 20.0 MiB/s"
        ),
        "{text}"
    );
    let out = output(&mut c.status(&["--json"]));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        value["nodes"][1]["first_boot"]["root_write_bytes_per_second"],
        9_800_000
    );
}
