//! `pinode prepare`: one ready image per node, for CI. No root, no mounting; the base image
//! is opened read-only and each node's changes live in an overlay until streamed out.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::Error;
use pinode::cleanup::LockFile;
use pinode::invoker::Invoker;
use pinode::pipeline::file::{FileNote, FileOptions, write_files};
use pinode::pipeline::{BaseImage, NodeImage};
use pinode::profile::{LoadedProfile, NodeConfig};
use pinode::sink::file::Compression;
use pinode::ui::Untrusted;

use super::{Output, Sources, check_needs, load_profile, select_nodes, size};
use crate::cli::PrepareArgs;

/// What `prepare` makes: the command line's choices, or the wizard's.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub profile: PathBuf,
    /// The nodes to prepare (all when empty).
    pub nodes: Vec<String>,
    /// The base image instead of the profile's `os.image`.
    pub image: Option<PathBuf>,
    pub out_dir: PathBuf,
    pub compression: Compression,
    pub bmap: bool,
}

impl From<&PrepareArgs> for PrepareOptions {
    fn from(args: &PrepareArgs) -> Self {
        PrepareOptions {
            profile: args.profile.clone(),
            nodes: args.nodes.clone(),
            image: args.image.clone(),
            out_dir: args.out_dir.clone(),
            compression: args.compress,
            bmap: args.bmap,
        }
    }
}

pub fn run(args: &PrepareArgs, sources: &Sources, out: &Output) -> Result<(), Error> {
    run_with(&PrepareOptions::from(args), sources, out)
}

pub fn run_with(options: &PrepareOptions, sources: &Sources, out: &Output) -> Result<(), Error> {
    let args = options;
    // A failure before the first node still gets the document (nothing done, who was not
    // attempted): the nodes asked for with --node while the profile cannot be read, the
    // selected ones after.
    let profile = load_profile(&args.profile, out)
        .map_err(|e| not_started(out, args, args.nodes.iter().map(String::as_str), e))?;
    let nodes = select_nodes(&profile, &args.nodes)
        .map_err(|e| not_started(out, args, args.nodes.iter().map(String::as_str), e))?;
    let selected = || nodes.iter().map(|n| n.hostname.as_str());
    // Every node's problems, before the output folder is even made.
    check_needs(&profile, &nodes, args.image.as_deref(), out)
        .map_err(|e| not_started(out, args, selected(), e))?;
    let created = missing_dirs(&args.out_dir);
    // Under sudo, the folders pinode creates are the invoking user's, like its outputs.
    Invoker::current()
        .create_dir_all(&args.out_dir, 0o777)
        .map_err(|e| not_started(out, args, selected(), Error::path(&args.out_dir, e)))?;
    let result = prepare_nodes(args, &profile, &nodes, sources, out);
    if result.is_err() {
        // A run that failed leaves no empty folder behind that it made itself (one with a
        // node's image in it, or one that was there before, stays).
        remove_empty(&created);
    }
    result
}

/// The folders `create_dir_all(dir)` is about to create, deepest first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || std::fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    missing
}

/// Removes the folders in `dirs` (deepest first) while they are empty: `remove_dir` never
/// removes a folder with anything in it.
fn remove_empty(dirs: &[PathBuf]) {
    for dir in dirs {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// The part of `prepare` that runs in the output folder: lock, base image, the nodes.
fn prepare_nodes(
    args: &PrepareOptions,
    profile: &LoadedProfile,
    nodes: &[&NodeConfig],
    sources: &Sources,
    out: &Output,
) -> Result<(), Error> {
    let selected = || nodes.iter().map(|n| n.hostname.as_str());
    // One run per node and output folder at a time: two would mix their files.
    let _locks = nodes
        .iter()
        .map(|node| lock_node(&args.out_dir, &node.hostname))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_started(out, args, selected(), e))?;
    let progress = out.progress();
    let base = BaseImage::for_profile(
        profile,
        args.image.as_deref(),
        &sources
            .resolver()
            .map_err(|e| not_started(out, args, selected(), e))?,
        &args.out_dir,
        &progress,
        out.waiting_note(),
    )
    .map_err(|e| not_started(out, args, selected(), e.into()))?;
    for note in &base.notes {
        out.warn(note);
    }
    let files = FileOptions {
        out_dir: args.out_dir.clone(),
        compression: args.compression,
        bmap: args.bmap,
    };
    let workers = workers(nodes.len(), base.airgap.bytes_per_node(), out);
    let (results, failure) = prepare_in_parallel(nodes, profile, &base, &files, workers, out);
    if out.verbose > 0
        && let Some(os) = base.os()
    {
        out.say(format!("os: {}, first boot via {}", os.describe(), os.init));
        for e in &os.evidence {
            out.say(format!("  because {}", Untrusted(e)));
        }
    }
    if out.json {
        let mut document = json!({
            "base": { "path": pinode::fetch::Redacted(&base.original), "os": base.os() },
            "compression": args.compression,
            "nodes": results,
        });
        if let Some((e, rest)) = &failure {
            document["error"] = json!(e.to_string());
            document["not_attempted"] = json!(rest);
        }
        out.json(&document);
    }
    match failure {
        Some((e, _)) => Err(e),
        None => Ok(()),
    }
}

/// How many nodes are written at once: one per core (each node's SHA-256 keeps one core
/// busy, its reading and writing a little of another), at most one per node, and no more
/// than the memory budget holds when every node's overlay carries the air-gap files
/// (`airgap_bytes`, see [`pinode::pipeline::memory`]; lowered, it is said).
fn workers(nodes: usize, airgap_bytes: u64, out: &Output) -> usize {
    let cores = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(nodes)
        .max(1);
    let fits = pinode::pipeline::memory::nodes_in_flight(cores, airgap_bytes);
    if fits < cores {
        out.note(&format!(
            "note: preparing {fits} node(s) at once, not {cores}: each holds the air-gap files \
             ({}) in memory until written, and the nodes in flight stay within {}",
            size(airgap_bytes),
            size(pinode::pipeline::memory::BUDGET)
        ));
    }
    fits
}

/// Prepares `nodes`, `workers` at once (see [`workers`]), and returns each attempted node's
/// entry of the `--json` document in the profile's order, and the first failure (in that
/// order) with the nodes not attempted.
///
/// Memory stays bounded: a node's image (base plus its changes) is made only when a worker
/// takes it, so at most `workers` overlays and their few chunks in flight exist at once.
/// Planning a node (which may generate and keep the cluster token the first time) is done
/// one node at a time, under a lock, as before; only the writing runs side by side. After a
/// failure no further node is started; those already being written finish, and are listed
/// as done or failed, as they end. The lines each node prints are its own, as before (they
/// may interleave with another node's, each prefixed with its hostname).
fn prepare_in_parallel(
    nodes: &[&NodeConfig],
    profile: &LoadedProfile,
    base: &BaseImage,
    files: &FileOptions,
    workers: usize,
    out: &Output,
) -> (Vec<serde_json::Value>, Option<(Error, Vec<String>)>) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let planning = Mutex::new(());
    let outcomes: Vec<Mutex<Option<Result<serde_json::Value, Error>>>> =
        nodes.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(node) = nodes.get(i) else { break };
                    let result = prepare_node(node, profile, base, files, out, &planning);
                    if result.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut slot) = outcomes[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let mut results = Vec::new();
    let mut first_error = None;
    let mut not_attempted = Vec::new();
    for (node, outcome) in nodes.iter().zip(outcomes) {
        match outcome.into_inner().ok().flatten() {
            Some(Ok(entry)) => results.push(entry),
            Some(Err(e)) => {
                // CI reads the document to see what was made: it lists the nodes done, the
                // ones that failed with their errors, and those not attempted.
                results.push(json!({
                    "hostname": node.hostname,
                    "status": "failed",
                    "error": e.to_string(),
                }));
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
            None => not_attempted.push(node.hostname.clone()),
        }
    }
    (results, first_error.map(|e| (e, not_attempted)))
}

/// With `--json`, prints the document of a run that failed before its first node, and
/// gives the error back.
fn not_started<'a>(
    out: &Output,
    args: &PrepareOptions,
    not_attempted: impl Iterator<Item = &'a str>,
    error: Error,
) -> Error {
    if out.json {
        out.json(&json!({
            "error": error.to_string(),
            "base": null,
            "compression": args.compression,
            "nodes": [],
            "not_attempted": not_attempted.collect::<Vec<_>>(),
        }));
    }
    error
}

/// Prepares one node's image (and bmap), saying what was written; returns its entry of the
/// `--json` document.
fn prepare_node(
    node: &NodeConfig,
    profile: &LoadedProfile,
    base: &BaseImage,
    files: &FileOptions,
    out: &Output,
    planning: &std::sync::Mutex<()>,
) -> Result<serde_json::Value, Error> {
    let image = {
        // One node planned at a time: the first may generate the cluster token and keep it.
        // (A poisoned lock guards nothing: `()` has no state to be left half-changed.)
        let _one = planning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        NodeImage::new(base, profile, node)?
    };
    image.notes.iter().for_each(|n| out.note(n));
    let host = &image.custom.hostname;
    let written = write_files(&image, files, &out.progress(), &mut |note| match note {
        FileNote::Image(file) => out.say(format!(
            "{host}: {} ({}, sha256 {}…)",
            file.path.display(),
            size(file.size),
            file.sha256.get(..12).unwrap_or(&file.sha256)
        )),
        FileNote::Bmap(bmap) => out.say(format!(
            "{host}: {} ({} of the image in use)",
            bmap.path.display(),
            size(bmap.mapped_bytes)
        )),
        FileNote::Removed(stale) => out.say(format!(
            "{host}: removed {} (from an earlier run)",
            stale.display()
        )),
    })?;
    let file = &written.image;
    Ok(json!({
        "hostname": host,
        "status": "done",
        "role": image.custom.role.as_str(),
        "image": file.path,
        "size_bytes": file.size,
        "sha256": file.sha256,
        "sha256_file": file.sha256_file,
        "compressed_sha256": file.compressed_sha256,
        "changed_bytes": image.changed_bytes(),
        "bmap": written.bmap.as_ref().map(|b| json!({ "path": b.path, "mapped_bytes": b.mapped_bytes })),
    }))
}

/// Takes the lock of node `host`'s outputs in `dir`, refusing when another run holds it.
fn lock_node(dir: &std::path::Path, host: &str) -> Result<LockFile, Error> {
    let path = dir.join(format!(".pinode-lock.{host}"));
    match LockFile::try_acquire(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(Error::path(
            dir,
            format!(
                "another pinode run is writing {host}'s image here; wait for it to finish (or \
                 use another --out-dir)"
            ),
        )),
        Err(e) => Err(Error::path(&path, e)),
    }
}
