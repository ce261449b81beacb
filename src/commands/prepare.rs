//! `pinode prepare`: one ready image per node, for CI. No root, no mounting; the base image
//! is opened read-only and each node's changes live in an overlay until streamed out.

use serde_json::json;

use crate::error::Error;
use pinode::cache::source::SourceImage;
use pinode::cleanup::LockFile;
use pinode::customise::customise_image;
use pinode::disk::PartitionTable;
use pinode::disk::usage::allocation;
use pinode::image::Image;
use pinode::invoker::Invoker;
use pinode::osinfo::OsInfo;
use pinode::profile::{LoadedProfile, NodeConfig};
use pinode::sink::bmap;
use pinode::sink::card::Composed;
use pinode::sink::file::{remove_stale_outputs, write_atomic, write_image};

use super::{Output, Sources, load_profile, select_nodes, size};
use crate::cli::PrepareArgs;

pub fn run(args: &PrepareArgs, sources: &Sources, out: &Output) -> Result<(), Error> {
    // A failure before the first node still gets the document (nothing done, who was not
    // attempted): the nodes asked for with --node while the profile cannot be read, the
    // selected ones after.
    let profile = load_profile(&args.profile, out)
        .map_err(|e| not_started(out, args, args.nodes.iter().map(String::as_str), e))?;
    let nodes = select_nodes(&profile, &args.nodes)
        .map_err(|e| not_started(out, args, args.nodes.iter().map(String::as_str), e))?;
    let selected = || nodes.iter().map(|n| n.hostname.as_str());
    // Under sudo, the folders pinode creates are the invoking user's, like its outputs.
    Invoker::current()
        .create_dir_all(&args.out_dir, 0o777)
        .map_err(|e| not_started(out, args, selected(), Error::path(&args.out_dir, e)))?;
    // One run per node and output folder at a time: two would mix their files.
    let _locks = nodes
        .iter()
        .map(|node| lock_node(&args.out_dir, &node.hostname))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_started(out, args, selected(), e))?;
    let progress = out.progress();
    let base = SourceImage::for_profile(
        &profile,
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
    let mut os = None;
    let mut results = Vec::new();
    let mut failure = None;
    for (done, node) in nodes.iter().enumerate() {
        match prepare_node(node, &profile, &base, &mut os, args, out) {
            Ok(result) => results.push(result),
            Err(e) => {
                // CI reads the document to see what was made: it lists the nodes done, the
                // one that failed with its error, and those not attempted.
                results.push(json!({
                    "hostname": node.hostname,
                    "status": "failed",
                    "error": e.to_string(),
                }));
                let rest: Vec<&str> = nodes[done + 1..]
                    .iter()
                    .map(|n| n.hostname.as_str())
                    .collect();
                failure = Some((e, rest));
                break;
            }
        }
    }
    if out.json {
        let mut document = json!({
            "base": { "path": pinode::fetch::Redacted(&base.original), "os": os },
            "compression": args.compress,
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

/// With `--json`, prints the document of a run that failed before its first node, and
/// gives the error back.
fn not_started<'a>(
    out: &Output,
    args: &PrepareArgs,
    not_attempted: impl Iterator<Item = &'a str>,
    error: Error,
) -> Error {
    if out.json {
        out.json(&json!({
            "error": error.to_string(),
            "base": null,
            "compression": args.compress,
            "nodes": [],
            "not_attempted": not_attempted.collect::<Vec<_>>(),
        }));
    }
    error
}

/// Prepares one node's image (and bmap); returns its entry of the `--json` document.
fn prepare_node(
    node: &NodeConfig,
    profile: &LoadedProfile,
    base: &SourceImage,
    os: &mut Option<OsInfo>,
    args: &PrepareArgs,
    out: &Output,
) -> Result<serde_json::Value, Error> {
    let progress = out.progress();
    let mut image = Image::open(&base.path, false)?;
    let info = match os {
        Some(info) => Clone::clone(info),
        None => {
            let info = image.detect_os(base.init_format.as_deref(), profile.init_override())?;
            *os = Some(info.clone());
            info
        }
    };
    let (custom, _, notes) = customise_image(&mut image, profile, node, &info)?;
    notes.iter().for_each(|n| out.note(n));
    let len = image.len();
    let table = image.table().clone();
    let disk = image.into_disk();
    let bar = progress.bytes(len, node.hostname.clone());
    let written = write_image(
        disk.base(),
        len,
        disk.overlay(),
        &args.out_dir,
        &node.hostname,
        args.compress,
        &bar,
    )?;
    out.say(format!(
        "{}: {} ({}, sha256 {}…)",
        custom.hostname,
        written.path.display(),
        size(written.size),
        written.sha256.get(..12).unwrap_or(&written.sha256)
    ));
    let bmap = if args.bmap {
        let composed = Composed {
            base: disk.base(),
            len,
            overlay: disk.overlay(),
        };
        let (path, mapped) = write_bmap(&composed, len, &table, &args.out_dir, node)?;
        out.say(format!(
            "{}: {} ({} of the image in use)",
            custom.hostname,
            path.display(),
            size(mapped)
        ));
        Some(json!({ "path": path, "mapped_bytes": mapped }))
    } else {
        None
    };
    let mut produced = vec![written.path.clone(), written.sha256_file.clone()];
    if let Some(b) = bmap.as_ref().and_then(|b| b["path"].as_str()) {
        produced.push(b.into());
    }
    if let Some(name) = written.path.file_name() {
        let name = name.to_string_lossy();
        produced.push(args.out_dir.join(format!("{name}.sha256")));
    }
    for stale in remove_stale_outputs(&args.out_dir, &node.hostname, &produced)? {
        out.say(format!(
            "{}: removed {} (from an earlier run)",
            custom.hostname,
            stale.display()
        ));
    }
    Ok(json!({
        "hostname": custom.hostname,
        "status": "done",
        "role": custom.role.as_str(),
        "image": written.path,
        "size_bytes": written.size,
        "sha256": written.sha256,
        "sha256_file": written.sha256_file,
        "compressed_sha256": written.compressed_sha256,
        "changed_bytes": disk.overlay().bytes(),
        "bmap": bmap,
    }))
}

/// Writes `HOST.img.bmap` (found by `bmaptool copy` next to `HOST.img` and `HOST.img.xz`);
/// returns its path and the bytes it maps.
fn write_bmap(
    image: &Composed<'_>,
    len: u64,
    table: &PartitionTable,
    dir: &std::path::Path,
    node: &NodeConfig,
) -> Result<(std::path::PathBuf, u64), Error> {
    let path = dir.join(format!("{}.img.bmap", node.hostname));
    let failed = |e: std::io::Error| Error::path(&path, e);
    let allocation = allocation(image, len, table).map_err(failed)?;
    let text = bmap::render(image, len, &allocation.map).map_err(failed)?;
    write_atomic(&path, text.as_bytes()).map_err(failed)?;
    Ok((path, allocation.map.bytes()))
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
