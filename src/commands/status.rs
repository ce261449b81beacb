//! `pinode status`: where each node is after the flash, polled over SSH (one connection per
//! node per poll, all nodes in parallel), until every node is Ready with `--watch`.
//!
//! Exit status: 0 when every node is Ready (and the runner running, when configured), 1
//! when a node's first boot failed, 3 when not all are Ready (or `--watch` timed out).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::cli::StatusArgs;
use crate::error::Error;
use pinode::plan::hostkey;
use pinode::remote::{RemoteError, Ssh, Target};
use pinode::status::probe::{Answer, MAX_ANSWER, NodeState, remote_script};
use pinode::status::report::{NodeReport, StatusReport};

use super::{Output, load_profile};

/// The pause between two polls with `--watch`.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// ssh's connect timeout at most: a node that does not answer in this long is unreachable.
const CONNECT_AT_MOST: u64 = 10;
/// The spinner of the terminal table.
const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

/// One node to poll.
struct Polled {
    target: Target,
    /// On a server: the distribution's kubectl, for the cluster's view.
    kubectl: Option<&'static str>,
    runner: bool,
    /// On the founder: the runners' workloads, waited for.
    workloads: Vec<pinode::status::probe::RunnerWorkload>,
}

pub fn run(args: &StatusArgs, out: &Output) -> Result<(), Error> {
    let loaded = load_profile(&args.profile, out)?;
    let settings = pinode::edge::settings();
    let plan = super::reachable_cluster(
        &loaded,
        &args.address,
        "`pinode status` follows a cluster's nodes",
    )?;
    for host in &args.node {
        if !loaded.nodes.iter().any(|n| &n.hostname == host) {
            return Err(Error::Usage(format!(
                "--node {host}: the profile has no node {host}"
            )));
        }
    }
    let has_runner = plan.spec.runner.as_ref().is_some_and(|r| !r.is_empty());
    let workloads: Vec<pinode::status::probe::RunnerWorkload> = plan
        .spec
        .runner
        .iter()
        .flat_map(|r| r.iter())
        .flat_map(|r| r.kind().workloads())
        .map(|w| (w.namespace, w.resource, w.name))
        .collect();
    let nodes: Vec<Polled> = loaded
        .nodes
        .iter()
        .filter(|n| args.node.is_empty() || args.node.contains(&n.hostname))
        .map(|n| Polled {
            target: Target::node(&n.hostname, &n.user.name, &args.address),
            kubectl: plan
                .servers
                .contains(&n.hostname)
                .then(|| plan.distribution.kubectl()),
            runner: has_runner && n.hostname == plan.founder,
            workloads: if n.hostname == plan.founder {
                workloads.clone()
            } else {
                Vec::new()
            },
        })
        .collect();
    let known_hosts = hostkey::known_hosts_path(settings, &plan.name);
    let start = Instant::now();
    let deadline = start + args.timeout;
    let terminal = args.watch && !args.json && !out.quiet && std::io::stdout().is_terminal();
    let mut states: Vec<Option<(NodeState, f64)>> = vec![None; nodes.len()];
    let mut first_boot = vec![None; nodes.len()];
    let mut polls = 0u32;
    let mut drawn = 0usize;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ssh =
            Ssh::new(known_hosts.clone()).connect_timeout(left.as_secs().clamp(1, CONNECT_AT_MOST));
        let answers = poll(&ssh, &nodes);
        polls += 1;
        let views: Vec<_> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok().and_then(|a| a.nodes.as_ref()))
            .collect();
        let elapsed = start.elapsed().as_secs_f64();
        for (i, (node, answer)) in nodes.iter().zip(&answers).enumerate() {
            let state = match answer {
                Ok(a) => {
                    first_boot[i] = a.status.clone();
                    NodeState::of(&node.target.host, a, &views, node.runner)
                }
                Err(state) => state.clone(),
            };
            let changed = states[i].as_ref().is_none_or(|(s, _)| *s != state);
            if changed {
                if args.watch && !terminal && !args.json {
                    out.say(format!(
                        "[{}] {}: {}",
                        clock(elapsed),
                        node.target.host,
                        state.line()
                    ));
                    log_tail(out, &state);
                }
                states[i] = Some((state, elapsed));
            }
        }
        let all = || states.iter().flatten().zip(&nodes);
        let ready = all().all(|((s, _), n)| s.done(n.runner));
        let failed = all().any(|((s, _), _)| s.failed());
        if terminal {
            drawn = draw(&nodes, &states, start.elapsed(), polls, drawn);
        }
        if !args.watch || ready || failed || Instant::now() >= deadline {
            break;
        }
        let pause = POLL_EVERY.min(deadline.saturating_duration_since(Instant::now()));
        // The spinner turns while waiting.
        let until = Instant::now() + pause;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(250).min(until - Instant::now()));
            if terminal {
                drawn = draw(&nodes, &states, start.elapsed(), polls, drawn);
            }
        }
        // No poll begins at the deadline: it would run past --timeout.
        if Instant::now() >= deadline {
            break;
        }
    }
    let elapsed = start.elapsed();
    let report = StatusReport {
        cluster: plan.name.clone(),
        ready: states
            .iter()
            .zip(&nodes)
            .all(|(s, n)| s.as_ref().is_some_and(|(s, _)| s.done(n.runner))),
        failed: states
            .iter()
            .any(|s| s.as_ref().is_some_and(|(s, _)| s.failed())),
        elapsed_seconds: elapsed.as_secs_f64(),
        polls,
        nodes: nodes
            .iter()
            .zip(states)
            .zip(first_boot)
            .map(|((n, s), fb)| {
                let (state, since) = s.unwrap_or((NodeState::Booting, 0.0));
                NodeReport {
                    host: n.target.host.clone(),
                    address: match n.target.port {
                        Some(p) => format!("{}:{p}", n.target.address),
                        None => n.target.address.clone(),
                    },
                    role: if n.kubectl.is_some() {
                        "server"
                    } else {
                        "agent"
                    }
                    .into(),
                    runner: n.runner,
                    state,
                    state_since_seconds: since,
                    first_boot: fb,
                }
            })
            .collect(),
    };
    if args.json {
        out.json(&serde_json::to_value(&report)?);
    } else if !args.watch {
        for n in &report.nodes {
            out.say(format!("{}: {}", n.host, n.state.line()));
            if let Some(speed) = n.first_boot.as_ref().and_then(|f| f.root_write()) {
                out.say(format!("  {}", speed.line()));
            }
            log_tail(out, &n.state);
        }
    } else {
        // The table showed the states; the speeds measured, after it.
        for n in &report.nodes {
            if let Some(speed) = n.first_boot.as_ref().and_then(|f| f.root_write()) {
                out.say(format!("{}: {}", n.host, speed.line()));
            }
        }
    }
    let hosts = |pick: fn(&NodeState) -> bool| -> Vec<&str> {
        report
            .nodes
            .iter()
            .filter(|n| pick(&n.state))
            .map(|n| n.host.as_str())
            .collect()
    };
    let mismatched = hosts(|s| matches!(s, NodeState::HostKeyMismatch { .. }));
    let failed = hosts(|s| matches!(s, NodeState::FirstBootFailed { .. }));
    let mut problems = Vec::new();
    if !failed.is_empty() {
        problems.push(format!(
            "the first boot failed on {}: see its log with `journalctl -u pinode-firstboot` on the node",
            failed.join(", ")
        ));
    }
    if !mismatched.is_empty() {
        problems.push(format!(
            "{} answered with another host key than the one pinode made: not trusted, not logged in to",
            mismatched.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(Error::NodeFailed(problems.join("; ")));
    }
    if report.ready {
        out.say(format!(
            "every node is Ready{} ({})",
            // Only when the founder was among the nodes polled: its runner was checked.
            if has_runner && report.nodes.iter().any(|n| n.runner) {
                ", the runner running"
            } else {
                ""
            },
            clock(elapsed.as_secs_f64())
        ));
        return Ok(());
    }
    // Each node still waited for, and for a Ready founder why: its runner.
    let waiting: Vec<String> = report
        .nodes
        .iter()
        .filter(|n| !n.state.done(n.runner))
        .map(|n| match n.state {
            NodeState::Ready => format!("{} (runner not Running yet)", n.host),
            _ => n.host.clone(),
        })
        .collect();
    Err(Error::NotReady(if args.watch {
        format!(
            "{} of {} nodes not Ready after {}: --timeout passed ({})",
            waiting.len(),
            report.nodes.len(),
            clock(elapsed.as_secs_f64()),
            waiting.join(", ")
        )
    } else {
        format!(
            "{} of {} nodes not Ready yet ({}): follow them with --watch",
            waiting.len(),
            report.nodes.len(),
            waiting.join(", ")
        )
    }))
}

/// Polls every node at once (one thread and one ssh each); an error is the line to show.
/// Each node's answer, or the state that explains why there is none: unreachable, or a host
/// key that is not the one pinode made (never "unreachable": that is worth stopping for).
fn poll(ssh: &Ssh, nodes: &[Polled]) -> Vec<Result<Answer, NodeState>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|n| {
                scope.spawn(move || {
                    ssh.run(
                        &n.target,
                        &remote_script(n.kubectl, &n.workloads),
                        MAX_ANSWER,
                    )
                    .map(|bytes| Answer::parse(&bytes))
                    .map_err(|e| match e {
                        RemoteError::HostKeyMismatch { .. } => NodeState::HostKeyMismatch {
                            reason: e.to_string(),
                        },
                        _ => NodeState::Unreachable {
                            reason: e.to_string(),
                        },
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(NodeState::Unreachable {
                        reason: "the poll stopped unexpectedly".into(),
                    })
                })
            })
            .collect()
    })
}

/// The log's last lines under a failed node's line.
fn log_tail(out: &Output, state: &NodeState) {
    if let NodeState::FirstBootFailed { log_tail, .. } = state {
        for line in log_tail {
            out.say(format!("    | {line}"));
        }
    }
}

/// `MM:SS` (or `H:MM:SS`).
fn clock(seconds: f64) -> String {
    let s = seconds as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Redraws the table on the terminal in place of the `drawn` lines of the last one; the
/// number of lines drawn.
fn draw(
    nodes: &[Polled],
    states: &[Option<(NodeState, f64)>],
    elapsed: Duration,
    polls: u32,
    drawn: usize,
) -> usize {
    let spinner = SPINNER[(elapsed.as_millis() / 250) as usize % SPINNER.len()];
    let width = nodes.iter().map(|n| n.target.host.len()).max().unwrap_or(0);
    let mut text = String::new();
    if drawn > 0 {
        text.push_str(&format!("\x1b[{drawn}A\x1b[J"));
    }
    text.push_str(&format!(
        "{spinner} {}  poll {polls}\n",
        clock(elapsed.as_secs_f64())
    ));
    let mut lines = 1;
    for (n, s) in nodes.iter().zip(states) {
        let line = s
            .as_ref()
            .map_or_else(|| "…".to_string(), |(s, _)| s.line());
        let line = pinode::ui::terminal_safe(&line).into_owned();
        text.push_str(&format!("  {:width$}  {line}\n", n.target.host));
        lines += 1;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    lines
}
