//! One poll of one node: the read-only remote script, its answer split into sections, and
//! the node's state from that answer and the cluster's view.
//!
//! Why one script per poll: one SSH connection per node per poll, whatever it asks. It
//! only reads (`cat`, `tail`, `systemctl is-active`, `kubectl get`), through `sudo -n`
//! (the status directory is root-only; `-n` never waits for a password that BatchMode
//! could not type), each command bounded in time by `timeout` so a stuck K3s API cannot
//! hold the poll.

use serde::{Deserialize, Serialize};

use super::FirstBootStatus;
use super::kube::{Deployment, NodeList};

/// The most a poll's answer may be: status.json, 20 log lines, and a NodeList of a few
/// hundred nodes. Anything longer is stopped (see `crate::remote::Ssh::run`).
pub const MAX_ANSWER: u64 = 8 * 1024 * 1024;

/// Lines of the first-boot log shown for a failed first boot.
pub const LOG_LINES: usize = 20;

/// A section marker: a line the answers of the commands cannot start with by chance.
const MARK: &str = "@@pinode-status@@ ";

/// A runner's workload on the founder: (namespace, `deployment` or `statefulset`, name),
/// pinode's own fixed names (see `crate::ci::Workload`).
pub type RunnerWorkload = (&'static str, &'static str, &'static str);

/// The remote script for a node; `kubectl`, the distribution's kubectl command on a server
/// (`k3s kubectl`), adds the cluster's view (servers only) and the state of `runners` (the
/// founder's). Static text: no value of the profile is in it, and the command and names are
/// pinode's own. Every marker starts on a line of its own (`echo;` first), even after an
/// answer without a final line break.
pub fn remote_script(kubectl: Option<&str>, runners: &[RunnerWorkload]) -> String {
    let mut s = format!(
        "timeout 10 sudo -n true 2>/dev/null || echo '{MARK}no-sudo'; \
         echo '{MARK}status'; timeout 10 sudo -n cat {json} 2>/dev/null; \
         echo; echo '{MARK}unit'; systemctl is-active pinode-firstboot.service 2>/dev/null; \
         echo; echo '{MARK}log'; timeout 10 sudo -n tail -n {LOG_LINES} {log} 2>/dev/null; \
         echo; echo '{MARK}cloud-init-status'; timeout 10 sudo -n cat {ci_status} 2>/dev/null; \
         echo; echo '{MARK}cloud-init-result'; timeout 10 sudo -n cat {ci_result} 2>/dev/null; ",
        json = super::STATUS_JSON,
        log = super::FIRSTBOOT_LOG,
        ci_status = CLOUD_INIT_STATUS,
        ci_result = CLOUD_INIT_RESULT,
    );
    if let Some(kubectl) = kubectl {
        s.push_str(&format!(
            "echo; echo '{MARK}nodes'; timeout 20 sudo -n {kubectl} get nodes -o json --request-timeout=15s 2>/dev/null; "
        ));
        for (i, (namespace, resource, name)) in runners.iter().enumerate() {
            s.push_str(&format!(
                "echo; echo '{MARK}runner-{i}'; timeout 20 sudo -n {kubectl} -n {namespace} get {resource} {name} -o json --request-timeout=15s 2>/dev/null; "
            ));
        }
    }
    s.push_str(&format!("echo; echo '{MARK}end'"));
    s
}

/// cloud-init's own record of its run, on the cloud-init route: which stage runs (status) and,
/// once it is over, every error (result). Format "v1", written by cloud-init since 0.7.9
/// (cloudinit/cmd/main.py, `status_wrapper`); absent where cloud-init is not used.
const CLOUD_INIT_STATUS: &str = "/run/cloud-init/status.json";
const CLOUD_INIT_RESULT: &str = "/run/cloud-init/result.json";

/// `{"v1": {...}}` of either file; only what `status` needs, other keys ignored.
#[derive(Debug, Deserialize)]
struct CloudInitFile {
    v1: CloudInitV1,
}

#[derive(Debug, Deserialize)]
struct CloudInitV1 {
    /// The stage running (`init-local`, `init`, `modules-config`, `modules-final`), null
    /// between and after them.
    #[serde(default)]
    stage: Option<String>,
    /// One line per error, e.g. `('scripts_user', RuntimeError('Runparts: 1 failures …'))`.
    #[serde(default)]
    errors: Vec<String>,
}

/// Where cloud-init is, before pinode's own stage writes status.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudInit {
    /// A stage runs (or cloud-init is between stages).
    Running { stage: Option<String> },
    /// Over: `result.json` is written; its errors, if any.
    Done { errors: Vec<String> },
}

/// What one node answered.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// status.json, when there is one and it parses.
    pub status: Option<FirstBootStatus>,
    /// Why status.json was there but unreadable.
    pub status_error: Option<String>,
    /// `systemctl is-active pinode-firstboot.service`: active, activating, failed, inactive…
    pub unit: String,
    /// The last lines of the first-boot log.
    pub log_tail: Vec<String>,
    /// On a server whose K3s answers: its view of the nodes.
    pub nodes: Option<NodeList>,
    /// On the founder, each runner workload asked for (in the order asked), once it exists.
    pub runners: Vec<Option<Deployment>>,
    /// `sudo -n` refused (it needs a password): the root-only status cannot be read.
    pub no_sudo: bool,
    /// cloud-init's record, on the cloud-init route.
    pub cloud_init: Option<CloudInit>,
}

impl Answer {
    /// Splits the remote script's output into its sections and parses them.
    pub fn parse(bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes);
        let mut sections: Vec<(&str, String)> = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix(MARK) {
                sections.push((name, String::new()));
            } else if let Some((_, body)) = sections.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        let get = |name: &str| {
            sections
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.trim())
                .filter(|b| !b.is_empty())
        };
        let mut answer = Answer {
            no_sudo: sections.iter().any(|(n, _)| *n == "no-sudo"),
            ..Answer::default()
        };
        if let Some(json) = get("status") {
            match FirstBootStatus::parse(json.as_bytes()) {
                Ok(s) => answer.status = Some(s),
                Err(e) => answer.status_error = Some(e),
            }
        }
        answer.unit = get("unit").unwrap_or("").to_string();
        answer.log_tail = get("log")
            .map(|l| {
                l.lines()
                    .map(|line| crate::ui::terminal_safe(line).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        answer.nodes = get("nodes").and_then(|j| serde_json::from_str(j).ok());
        answer.runners = sections
            .iter()
            .filter(|(n, _)| n.starts_with("runner-"))
            .map(|(n, _)| get(n).and_then(|j| serde_json::from_str(j).ok()))
            .collect();
        let read = |name| get(name).and_then(|j| serde_json::from_str::<CloudInitFile>(j).ok());
        answer.cloud_init = match (read("cloud-init-result"), read("cloud-init-status")) {
            (Some(result), _) => Some(CloudInit::Done {
                errors: result
                    .v1
                    .errors
                    .iter()
                    .map(|e| crate::ui::terminal_safe(e).into_owned())
                    .collect(),
            }),
            (None, Some(status)) => Some(CloudInit::Running {
                stage: status.v1.stage,
            }),
            (None, None) => None,
        };
        answer
    }
}

/// Where a node is, from the least to the most done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeState {
    /// No SSH connection (or no login): `reason` is ssh's explanation.
    Unreachable { reason: String },
    /// The node answered with another host key than the one pinode made (another machine at
    /// that address, or a card flashed without this state directory): nothing was sent to it.
    /// A failure, not "unreachable": waiting would not change it.
    HostKeyMismatch { reason: String },
    /// Reachable, but `sudo -n` needs a password: the root-only status cannot be read.
    NoSudo,
    /// Reachable, but no first-boot status yet.
    Booting,
    /// A first-boot stage runs (or the second one has not started yet).
    FirstBootRunning { stage: String, step: Option<String> },
    /// A first-boot stage failed: its reason line and the log's last lines.
    FirstBootFailed {
        step: Option<String>,
        reason: String,
        log_tail: Vec<String>,
    },
    /// The first boot is done (the distribution is installed and runs); the cluster does not
    /// (yet) list the node as Ready.
    Installed,
    /// The cluster lists the node with its Ready condition True.
    Ready,
    /// Ready, and every runner's workload has a ready replica (the founder, with runners).
    RunnerRunning,
}

impl NodeState {
    /// The state from a node's answer and the cluster's view (every server's NodeList).
    /// `runner` asks for the runner's state (the founder of a cluster with a runner).
    pub fn of(host: &str, answer: &Answer, views: &[&NodeList], runner: bool) -> NodeState {
        let failed = |step: Option<String>, reason: String| NodeState::FirstBootFailed {
            step,
            reason,
            log_tail: answer.log_tail.clone(),
        };
        let Some(status) = &answer.status else {
            if answer.unit == "failed" {
                return failed(None, "pinode-firstboot.service failed".into());
            }
            if let Some(e) = &answer.status_error {
                return failed(None, e.clone());
            }
            if answer.no_sudo {
                return NodeState::NoSudo;
            }
            // The cloud-init route, before pinode's second stage writes status.json: cloud-init
            // is the first stage, and its own record says where it is and what failed.
            return match &answer.cloud_init {
                Some(CloudInit::Done { errors }) if !errors.is_empty() => failed(
                    Some("cloud-init".into()),
                    format!("cloud-init reported: {}", errors.join("; ")),
                ),
                Some(CloudInit::Done { .. }) => NodeState::FirstBootRunning {
                    stage: "cloud-init".into(),
                    step: Some("waiting for the second stage".into()),
                },
                Some(CloudInit::Running { stage }) => NodeState::FirstBootRunning {
                    stage: "cloud-init".into(),
                    step: stage.clone(),
                },
                None => NodeState::Booting,
            };
        };
        match status.state {
            super::StepState::Failed => {
                return failed(
                    status.last_error.clone().or_else(|| status.step.clone()),
                    status
                        .reason
                        .clone()
                        .unwrap_or_else(|| "a step failed".into()),
                );
            }
            super::StepState::Running => {
                return NodeState::FirstBootRunning {
                    stage: status.stage.clone(),
                    step: status.step.clone(),
                };
            }
            super::StepState::Ok if status.stage != super::SECOND_STAGE => {
                return NodeState::FirstBootRunning {
                    stage: status.stage.clone(),
                    step: Some("waiting for the second stage".into()),
                };
            }
            super::StepState::Ok => {}
        }
        if answer.unit == "failed" {
            return failed(
                status.step.clone(),
                "pinode-firstboot.service failed".into(),
            );
        }
        if !views.iter().any(|v| v.ready(host) == Some(true)) {
            return NodeState::Installed;
        }
        let running = |d: &Option<Deployment>| d.as_ref().is_some_and(Deployment::running);
        if runner && !answer.runners.is_empty() && answer.runners.iter().all(running) {
            return NodeState::RunnerRunning;
        }
        NodeState::Ready
    }

    /// Whether this node is where `status` waits for it to be.
    pub fn done(&self, runner: bool) -> bool {
        match self {
            NodeState::RunnerRunning => true,
            NodeState::Ready => !runner,
            _ => false,
        }
    }

    /// A reason to stop waiting and exit 1: a failed first boot, or a host key that is not
    /// the one pinode made.
    pub fn failed(&self) -> bool {
        matches!(
            self,
            NodeState::FirstBootFailed { .. } | NodeState::HostKeyMismatch { .. }
        )
    }

    /// One line (without the host name).
    pub fn line(&self) -> String {
        match self {
            NodeState::Unreachable { reason } => format!("unreachable: {reason}"),
            NodeState::HostKeyMismatch { reason } => format!("host key mismatch: {reason}"),
            NodeState::NoSudo => {
                "reachable, but sudo asks for a password, so the node's root-only \
                                   status cannot be read (give the user passwordless sudo: \
                                   the profile's `user.sudo: nopasswd`)"
                    .into()
            }
            NodeState::Booting => "booting (reachable, no first-boot status yet)".into(),
            NodeState::FirstBootRunning { stage, step } => match step {
                Some(step) => format!("first boot running ({stage}: {step})"),
                None => format!("first boot running ({stage})"),
            },
            NodeState::FirstBootFailed { step, reason, .. } => match step {
                Some(step) => format!("first boot failed at {step}: {reason}"),
                None => format!("first boot failed: {reason}"),
            },
            NodeState::Installed => "installed, running (node not Ready yet)".into(),
            NodeState::Ready => "node Ready".into(),
            NodeState::RunnerRunning => "node Ready, runner Running".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DONE: &str = r#"{"version":1,"stage":"firstboot","state":"ok","step":"k3s install","started":"2026-01-01T00:00:00Z","finished":"2026-01-01T00:05:00Z","last_error":null,"reason":null}"#;

    fn answer(sections: &[(&str, &str)]) -> Answer {
        let mut text = String::new();
        for (name, body) in sections {
            text.push_str(&format!("{MARK}{name}\n{body}\n"));
        }
        Answer::parse(text.as_bytes())
    }

    #[test]
    fn states_follow_status_and_the_cluster() {
        let a = answer(&[("status", ""), ("unit", "inactive")]);
        assert_eq!(NodeState::of("n", &a, &[], false), NodeState::Booting);
        let a = answer(&[("status", DONE), ("unit", "active")]);
        assert_eq!(NodeState::of("n", &a, &[], false), NodeState::Installed);
        let list: NodeList = serde_json::from_str(
            r#"{"items":[{"metadata":{"name":"n"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(NodeState::of("n", &a, &[&list], false), NodeState::Ready);
        assert!(!NodeState::Ready.done(true));
        let failed = DONE
            .replace(r#""state":"ok""#, r#""state":"failed""#)
            .replace(r#""reason":null"#, r#""reason":"the memory cgroup is off""#);
        let a = answer(&[("status", &failed), ("log", "line 1\nline 2")]);
        let state = NodeState::of("n", &a, &[&list], false);
        assert!(state.failed());
        assert!(
            state.line().contains("the memory cgroup is off"),
            "{}",
            state.line()
        );
        assert!(
            remote_script(Some("k3s kubectl"), &[])
                .contains("sudo -n k3s kubectl get nodes -o json")
        );
        assert!(!remote_script(None, &[("ns", "deployment", "d")]).contains("kubectl"));
    }

    /// With several runners, the founder is done only when every runner's workload has a
    /// ready replica (a Deployment or a StatefulSet: both report `readyReplicas`).
    #[test]
    fn every_runner_workload_must_be_ready() {
        let script = remote_script(
            Some("k3s kubectl"),
            &[
                ("gitlab-runner", "deployment", "gitlab-runner"),
                ("jenkins", "statefulset", "jenkins"),
            ],
        );
        assert!(script.contains("-n gitlab-runner get deployment gitlab-runner -o json"));
        assert!(script.contains("-n jenkins get statefulset jenkins -o json"));
        let list: NodeList = serde_json::from_str(
            r#"{"items":[{"metadata":{"name":"n"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}]}"#,
        )
        .unwrap();
        let ready = r#"{"metadata":{"name":"x"},"status":{"replicas":1,"readyReplicas":1}}"#;
        let starting = r#"{"metadata":{"name":"x"},"status":{"replicas":1}}"#;
        let a = answer(&[
            ("status", DONE),
            ("runner-0", ready),
            ("runner-1", starting),
        ]);
        assert_eq!(NodeState::of("n", &a, &[&list], true), NodeState::Ready);
        let a = answer(&[("status", DONE), ("runner-0", ready), ("runner-1", "")]);
        assert_eq!(NodeState::of("n", &a, &[&list], true), NodeState::Ready);
        let a = answer(&[("status", DONE), ("runner-0", ready), ("runner-1", ready)]);
        assert_eq!(
            NodeState::of("n", &a, &[&list], true),
            NodeState::RunnerRunning
        );
    }

    /// On the cloud-init route, before status.json: cloud-init's own files, in the shape
    /// cloud-init writes them (cloudinit/cmd/main.py, status_wrapper: per-stage objects in
    /// status.json, the errors of every stage gathered in result.json).
    #[test]
    fn before_the_second_stage_cloud_init_says_where_it_is() {
        let status = r#"{"v1": {"datasource": null, "init": {"errors": [], "finished": null, "start": 1732547546.8}, "init-local": {"errors": [], "finished": 1732547545.6, "start": 1732547545.3}, "modules-config": {"errors": [], "finished": null, "start": null}, "modules-final": {"errors": [], "finished": null, "start": null}, "stage": "init"}}"#;
        let a = answer(&[("cloud-init-status", status), ("unit", "inactive")]);
        assert_eq!(
            NodeState::of("n", &a, &[], false).line(),
            "first boot running (cloud-init: init)"
        );
        let ok = r#"{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vda1][dsmode=net]", "errors": []}}"#;
        let a = answer(&[("cloud-init-status", status), ("cloud-init-result", ok)]);
        assert_eq!(
            NodeState::of("n", &a, &[], false).line(),
            "first boot running (cloud-init: waiting for the second stage)"
        );
        let bad = r#"{"v1": {"datasource": "DataSourceNoCloud", "errors": ["('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"]}}"#;
        let a = answer(&[("cloud-init-result", bad), ("unit", "inactive")]);
        let state = NodeState::of("n", &a, &[], false);
        assert!(state.failed());
        assert_eq!(
            state.line(),
            "first boot failed at cloud-init: cloud-init reported: ('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"
        );
        // pinode's own status wins once there is one.
        let a = answer(&[("status", DONE), ("cloud-init-result", bad)]);
        assert_eq!(NodeState::of("n", &a, &[], false), NodeState::Installed);
        // The firstrun route has no cloud-init record: booting, as before.
        let a = answer(&[("cloud-init-status", ""), ("cloud-init-result", "")]);
        assert_eq!(NodeState::of("n", &a, &[], false), NodeState::Booting);
    }
}
