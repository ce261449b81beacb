//! `pinode flash`: one verified card per node, several at once ([`parallel`]) or one after
//! another.
//!
//! The base image is obtained once; each node's changes live in an overlay and are streamed
//! with the base straight to the card (see `pinode::pipeline::card`). This command checks the
//! flags and the named cards, picks the card for each node, and prints. Which card gets which
//! node is decided in [`target`]: named with `--device` (once per node, or once for a reader
//! the cards are swapped in), or found by watching for a card to be inserted.

pub(crate) mod parallel;
pub(crate) mod target;
pub(crate) mod unattended;

use std::path::PathBuf;

use serde_json::json;

use crate::error::Error;
use crate::term::prompt::Prompter;
use pinode::device::discover::{BlockDevice, SystemView};
use pinode::device::safety::Overrides;
use pinode::disk::usage::Allocation;
use pinode::pipeline::card::{CardNote, CardOptions, write_to_card};
use pinode::pipeline::{BaseImage, NodeImage};
use pinode::profile::{LoadedProfile, NodeConfig};
use pinode::sink::card::{CardReport, TestHooks};

use super::{Output, Sources, load_profile, select_nodes, size, table};
use crate::cli::FlashArgs;
use target::{Choice, TargetOptions, Targets};

/// What `flash` does: the command line's choices, or the wizard's.
#[derive(Debug, Clone)]
pub struct FlashOptions {
    pub profile: PathBuf,
    /// The nodes to flash (all when empty).
    pub nodes: Vec<String>,
    /// The cards, when named (`--device`).
    pub devices: Vec<PathBuf>,
    /// Write named cards without asking.
    pub yes: bool,
    /// Read each card back and compare.
    pub verify: bool,
    /// Write every byte of the image, not only the blocks in use.
    pub full: bool,
    pub allow_non_removable: bool,
    pub unmount: bool,
    /// The base image instead of the profile's `os.image`.
    pub image: Option<PathBuf>,
    /// How many cards may be written at the same time (1: one after another, with the
    /// question to retry a failed card; see [`parallel`] for when several are).
    pub at_once: usize,
}

impl From<&FlashArgs> for FlashOptions {
    fn from(args: &FlashArgs) -> Self {
        FlashOptions {
            profile: args.profile.clone(),
            nodes: args.nodes.clone(),
            devices: args.devices.clone(),
            yes: args.card.yes,
            verify: !args.card.no_verify,
            full: args.card.full,
            allow_non_removable: args.card.allow_non_removable,
            unmount: args.card.unmount,
            image: args.image.clone(),
            at_once: match (args.serial, args.parallel) {
                (true, _) => 1,
                (false, Some(n)) => usize::from(n),
                (false, None) => parallel::DEFAULT_AT_ONCE,
            },
        }
    }
}

/// What happened to one node's card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    Written,
    Failed,
    Skipped,
    /// The batch was aborted before this node.
    NotReached,
}

#[derive(Debug, Clone, serde::Serialize)]
struct NodeResult {
    hostname: String,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<CardReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: &FlashArgs, sources: &Sources, out: &Output) -> Result<(), Error> {
    run_with(&FlashOptions::from(args), sources, out)
}

/// `flash` with the options given (the command line's, or the wizard's: one card at a time,
/// see `wizard::flash_options`).
pub fn run_with(args: &FlashOptions, sources: &Sources, out: &Output) -> Result<(), Error> {
    let at_once = args.at_once;
    let profile = load_profile(&args.profile, out)?;
    let nodes = select_nodes(&profile, &args.nodes)?;
    check_flags(args, nodes.len())?;
    // Every node's problems, before a card is looked at or an image downloaded.
    super::check_needs(&profile, &nodes, args.image.as_deref(), out)?;
    let overrides = Overrides {
        unmount: args.unmount,
        allow_non_removable: args.allow_non_removable,
        named: !args.devices.is_empty(),
    };
    let view = SystemView::from_settings(pinode::edge::settings());
    // A refused device fails before anything is downloaded or written, and so does a batch
    // that names one card twice (through symlinks, or two loop devices of one file).
    let mut named = Vec::new();
    for path in &args.devices {
        named.push((
            path.clone(),
            target::check_named(&view, path, None, &overrides)?,
        ));
    }
    target::check_distinct(&named)?;
    // The base image must not be its own target (a local file, or the file behind a loop
    // device), checked before the image is even read.
    let mut source = target::Source::default();
    if let Some(path) = BaseImage::locate(&profile, args.image.as_deref())? {
        source.add(&view, &path);
    }
    for (_, disk) in &named {
        source.refuse(disk)?;
    }

    // A run that will ask, with nobody to answer (`</dev/null`), says what to pass instead
    // before anything is downloaded or written.
    let hosts: Vec<String> = nodes.iter().map(|n| n.hostname.clone()).collect();
    let when_closed = unattended::what_is_missing(args, sources, &hosts);
    let prompter = if unattended::unattended(args.devices.len(), args.yes, nodes.len()) {
        None
    } else {
        let prompter = Prompter::new();
        if prompter.closed() {
            return Err(Error::Usage(when_closed));
        }
        Some(prompter)
    };

    let progress = out.progress();
    let scratch = scratch_dir();
    let base = BaseImage::for_profile(
        &profile,
        args.image.as_deref(),
        &sources.resolver()?,
        &scratch,
        &progress,
        out.waiting_note(),
    )?;
    for note in &base.notes {
        out.warn(note);
    }
    source.add(&view, &base.path);
    for (_, disk) in &named {
        source.refuse(disk)?;
    }
    let image_len = base.size()?;
    // …and a card too small for this image fails before the first card is written.
    for path in &args.devices {
        target::check_named(&view, path, Some(image_len), &overrides)?;
    }

    let naming = TargetOptions {
        devices: args.devices.clone(),
        yes: args.yes,
        when_closed,
    };
    let mut targets = Targets::new(&naming, view, overrides, image_len, nodes.len(), prompter);
    let hooks = TestHooks::from_settings(pinode::edge::settings());
    let card = CardOptions {
        verify: args.verify,
        full: args.full,
    };
    let batch = Batch {
        base: &base,
        profile: &profile,
        card,
        hooks: &hooks,
        out,
    };
    let at_once = if at_once > 1 && parallel::applies(args.devices.len(), nodes.len()) {
        in_flight(out, at_once.min(nodes.len()), base.airgap.bytes_per_node())
    } else {
        at_once
    };
    let Ran {
        mut results,
        stopped,
    } = if at_once > 1 && parallel::applies(args.devices.len(), nodes.len()) {
        parallel::flash_all(&batch, &nodes, &mut targets, &source, at_once)
    } else {
        serial(&batch, &nodes, &mut targets, &source)
    };
    for node in nodes.iter().skip(results.len()) {
        results.push(result(node, Outcome::NotReached, None, None, None));
    }
    // A cluster's cards are written: the next command follows its first boot.
    let next = pinode::plan::cluster::ClusterPlan::of(&profile, pinode::edge::settings())
        .map(|_| super::status_next(&args.profile));
    let redo = unattended::redo_command(args, sources, &results);
    let reported = report(out, &results, nodes.len() > 1, next, redo);
    stopped_first(reported, stopped, nodes.len() > 1)
}

/// How many cards are written at once: `wanted`, lowered (and said) when the air-gap files
/// every card's overlay holds would take more than the memory budget together
/// ([`pinode::pipeline::memory`]).
fn in_flight(out: &Output, wanted: usize, airgap_bytes: u64) -> usize {
    let fits = pinode::pipeline::memory::nodes_in_flight(wanted, airgap_bytes);
    if fits < wanted {
        out.note(&format!(
            "note: writing {fits} card(s) at once, not {wanted}: each holds the air-gap files \
             ({}) in memory until written, and the cards in flight stay within {}",
            size(airgap_bytes),
            size(pinode::pipeline::memory::BUDGET)
        ));
    }
    fits
}

/// What a batch did: every node's result so far, and the error that stopped it early (a
/// card refused mid-batch), if one did.
struct Ran {
    results: Vec<NodeResult>,
    stopped: Option<Error>,
}

/// The run's end once the summary is printed: the error that stopped the batch early wins
/// (its exit status, as before the summary was kept), the summary's own ending (what was
/// not written, and the command to redo it) said on stderr first for a batch, so that nothing
/// is lost (one node: the error says it all).
fn stopped_first(
    reported: Result<(), Error>,
    stopped: Option<Error>,
    batch: bool,
) -> Result<(), Error> {
    match (stopped, reported) {
        (None, reported) => reported,
        (Some(stopped), Ok(())) => Err(stopped),
        (Some(stopped), Err(_)) if !batch => Err(stopped),
        (Some(stopped), Err(incomplete)) => {
            eprintln!(
                "error: {}",
                pinode::ui::terminal_safe(&incomplete.to_string())
            );
            Err(stopped)
        }
    }
}

/// One card after another; after a failed card, the question to retry it (unattended: the
/// next node).
fn serial(
    batch: &Batch<'_>,
    nodes: &[&NodeConfig],
    targets: &mut Targets,
    source: &target::Source,
) -> Ran {
    let out = batch.out;
    let mut results: Vec<NodeResult> = Vec::new();
    // A refusal ends the batch, the node failed with it; the summary still follows.
    let stop = |results: &mut Vec<NodeResult>, node, disk, e: Error| {
        results.push(result(
            node,
            Outcome::Failed,
            disk,
            None,
            Some(e.to_string()),
        ));
        Some(e)
    };
    let mut stopped = None;
    'nodes: for (i, node) in nodes.iter().enumerate() {
        loop {
            let disk = match targets.choose(i, node) {
                Ok(Choice::Device(disk)) => disk,
                Ok(Choice::Skip) => {
                    results.push(result(node, Outcome::Skipped, None, None, None));
                    continue 'nodes;
                }
                Ok(Choice::Abort) => break 'nodes,
                Err(e) => {
                    stopped = stop(&mut results, node, None, e);
                    break 'nodes;
                }
            };
            if let Err(e) = source.refuse(&disk) {
                stopped = stop(&mut results, node, Some(&disk), e);
                break 'nodes;
            }
            let written = customise(batch, node).and_then(|image| {
                write_node(batch, &image, &disk, &out.progress(), &|n| say_note(out, n))
            });
            match written {
                Ok(report) => {
                    say_written(out, node, &disk, &report);
                    targets.remember(&disk, &node.hostname);
                    results.push(result(
                        node,
                        Outcome::Written,
                        Some(&disk),
                        Some(report),
                        None,
                    ));
                    break;
                }
                Err(e) => {
                    eprintln!(
                        "error: {}: {}",
                        node.hostname,
                        pinode::ui::terminal_safe(&e.to_string())
                    );
                    let message = Some(e.to_string());
                    match targets.after_failure(node) {
                        target::AfterFailure::Retry => continue,
                        target::AfterFailure::Next => {
                            results.push(result(node, Outcome::Failed, Some(&disk), None, message));
                            break;
                        }
                        target::AfterFailure::Abort => {
                            results.push(result(node, Outcome::Failed, Some(&disk), None, message));
                            break 'nodes;
                        }
                    }
                }
            }
        }
    }
    Ran { results, stopped }
}

/// Flags that only make sense together, checked before any work.
fn check_flags(args: &FlashOptions, nodes: usize) -> Result<(), Error> {
    if args.devices.is_empty() && (args.allow_non_removable || args.unmount) {
        return Err(Error::Usage(
            "--allow-non-removable and --unmount apply only to a device named with --device".into(),
        ));
    }
    let n = args.devices.len();
    if n > 1 && n != nodes {
        return Err(Error::Usage(format!(
            "{n} devices for {nodes} nodes: give one --device per node (in node order), or one \
             for all (the cards are swapped in the same reader)"
        )));
    }
    Ok(())
}

/// Where a compressed local image is decompressed for the duration of the run: `$TMPDIR`, or
/// `/var/tmp` (not `/tmp`, often a RAM disk too small for a multi-gigabyte image).
pub(crate) fn scratch_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

/// What every card of a run shares: the one base image (decompressed once, before the
/// first card), the profile, how cards are written and the test hooks.
pub(crate) struct Batch<'a> {
    base: &'a BaseImage,
    profile: &'a LoadedProfile,
    card: CardOptions,
    hooks: &'a TestHooks,
    out: &'a Output,
}

/// The node's image: the base with the node's changes in memory (its plan resolved, its
/// notes printed). Run for one node at a time, in node order, even when cards are written
/// at once: a cluster's token or key made by the first node is then kept for the next.
fn customise(batch: &Batch<'_>, node: &NodeConfig) -> Result<NodeImage, Error> {
    let image = NodeImage::new(batch.base, batch.profile, node)?;
    image.notes.iter().for_each(|n| batch.out.note(n));
    Ok(image)
}

/// Writes the node's image to the card (and reads it back), telling `note` what happens.
fn write_node(
    batch: &Batch<'_>,
    image: &NodeImage,
    disk: &BlockDevice,
    progress: &dyn pinode::progress::Progress,
    note: &(dyn Fn(CardNote<'_>) + Sync),
) -> Result<CardReport, Error> {
    let report = write_to_card(image, disk, batch.card, batch.hooks, progress, &mut |n| {
        note(n)
    })?;
    Ok(report)
}

/// What the card writer tells along the way: unmounts always, the rest with `-v`.
pub(crate) fn say_note(out: &Output, note: CardNote<'_>) {
    match note {
        CardNote::Unmounted(mount) => out.say(format!("unmounted {mount}")),
        _ if out.verbose == 0 => {}
        CardNote::Allocation { allocation, len } => say_allocation(out, allocation, len),
        CardNote::OldFiles { card, bytes } => out.say(format!(
            "{}: overwriting the {} its old file systems use",
            card.display(),
            size(bytes)
        )),
        CardNote::NoDirectIo(card) => out.say(format!(
            "{}: no direct I/O; writing through the page cache",
            card.display()
        )),
        CardNote::NoReread { card, error } => out.say(format!(
            "{}: the kernel did not re-read the partition table ({error}); unplug and replug the \
             card to see its partitions",
            card.display()
        )),
    }
}

fn result(
    node: &NodeConfig,
    outcome: Outcome,
    disk: Option<&BlockDevice>,
    report: Option<CardReport>,
    error: Option<String>,
) -> NodeResult {
    NodeResult {
        hostname: node.hostname.clone(),
        outcome,
        device: disk.map(|d| d.path.clone()),
        report,
        error,
    }
}

/// `-v`: how each partition is written.
fn say_allocation(out: &Output, allocation: &Allocation, len: u64) {
    for p in &allocation.partitions {
        let how = match &p.whole_because {
            Some(why) => format!("written whole ({why})"),
            None => format!("{} of {} in use", size(p.mapped), size(p.size)),
        };
        out.say(format!("partition {} ({}): {how}", p.index, p.filesystem));
    }
    out.say(format!(
        "writing {} of the {} image",
        size(allocation.map.bytes()),
        size(len)
    ));
}

fn say_written(out: &Output, node: &NodeConfig, disk: &BlockDevice, r: &CardReport) {
    let verify = match r.verified {
        Some(true) if r.allocation_aware => format!(
            ", the written blocks verified in {:.1} s",
            r.verify_seconds.unwrap_or(0.0)
        ),
        Some(true) => format!(", verified in {:.1} s", r.verify_seconds.unwrap_or(0.0)),
        _ => ", not verified".to_string(),
    };
    let what = if r.allocation_aware {
        format!(
            "{} of {} (the blocks in use)",
            size(r.bytes),
            size(r.image_bytes)
        )
    } else {
        size(r.bytes)
    };
    out.say(format!(
        "{}: {what} written to {} in {:.1} s ({}/s){verify}",
        node.hostname,
        disk.path.display(),
        r.write_seconds,
        size(r.write_bytes_per_sec as u64),
    ));
    if r.is_slow() {
        out.warn(format!(
            "{} writes at only {}/s: K3s on a card this slow restarts in a loop (its datastore \
             misses fsync deadlines); use an A1/A2-rated card or a USB SSD",
            disk.path.display(),
            size(r.write_bytes_per_sec as u64)
        ));
    }
}

/// The summary (a table for batches, JSON with `--json`), and the exit status: success only
/// when every selected node's card was written (and verified, unless `--no-verify`).
/// `next` (the command to run after the flash) ends the summary when a card was written;
/// `redo` (the command that writes the nodes not written) ends the error when one was not.
fn report(
    out: &Output,
    results: &[NodeResult],
    batch: bool,
    next: Option<String>,
    redo: Option<String>,
) -> Result<(), Error> {
    if out.json {
        match &redo {
            Some(redo) => out.json(&json!({ "nodes": results, "redo": redo })),
            None => out.json(&json!({ "nodes": results })),
        }
    } else if batch {
        let rows: Vec<[String; 6]> = results
            .iter()
            .map(|r| {
                let (bytes, speed, verify) = match &r.report {
                    Some(rep) => (
                        size(rep.bytes),
                        format!("{}/s", size(rep.write_bytes_per_sec as u64)),
                        match rep.verified {
                            Some(true) => "ok".to_string(),
                            _ => "skipped".to_string(),
                        },
                    ),
                    None if matches!(r.outcome, Outcome::Failed) => {
                        ("-".into(), "-".into(), "failed".into())
                    }
                    None => ("-".into(), "-".into(), "-".into()),
                };
                [
                    r.hostname.clone(),
                    r.device
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "-".into()),
                    bytes,
                    speed,
                    verify,
                    match r.outcome {
                        Outcome::Written => "written",
                        Outcome::Failed => "FAILED",
                        Outcome::Skipped => "skipped",
                        Outcome::NotReached => "not reached",
                    }
                    .to_string(),
                ]
            })
            .collect();
        let header = ["NODE", "DEVICE", "BYTES", "SPEED", "VERIFY", "RESULT"].map(String::from);
        out.say("");
        for line in table(&header, &rows) {
            out.say(line);
        }
    }
    let written = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Written))
        .count();
    if let (Some(next), true) = (next, written > 0) {
        out.say(next);
    }
    if written == results.len() {
        return Ok(());
    }
    let names = |wanted: fn(&Outcome) -> bool| -> Vec<&str> {
        results
            .iter()
            .filter(|r| wanted(&r.outcome))
            .map(|r| r.hostname.as_str())
            .collect()
    };
    let mut parts = vec![format!("{written} of {} cards written", results.len())];
    for (label, list) in [
        ("failed", names(|o| matches!(o, Outcome::Failed))),
        ("skipped", names(|o| matches!(o, Outcome::Skipped))),
        ("not reached", names(|o| matches!(o, Outcome::NotReached))),
    ] {
        if !list.is_empty() {
            parts.push(format!("{label}: {}", list.join(", ")));
        }
    }
    if let Some(redo) = redo {
        parts.push(format!("to write them: {redo}"));
    }
    Err(Error::Incomplete(parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_stopped_by_a_refusal_still_reports_and_exits_with_the_refusal() {
        let incomplete = || {
            Err(Error::Incomplete(
                "1 of 3 cards written; to write them: x".into(),
            ))
        };
        let refused = || Some(Error::Refused("/dev/sdz is mounted".into()));
        // The refusal is the run's error (and exit status), whatever the summary said.
        let end = stopped_first(incomplete(), refused(), true);
        assert!(matches!(end, Err(Error::Refused(m)) if m == "/dev/sdz is mounted"));
        let end = stopped_first(Ok(()), refused(), true);
        assert!(matches!(end, Err(Error::Refused(_))));
        // Not stopped: the summary's own ending.
        assert!(matches!(
            stopped_first(incomplete(), None, true),
            Err(Error::Incomplete(_))
        ));
        assert!(stopped_first(Ok(()), None, true).is_ok());
    }
}
