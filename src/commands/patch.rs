//! `pinode patch IMAGE|DEVICE --profile P --node HOST`: customise in place.

use serde_json::json;

use crate::error::Error;
use pinode::pipeline::patch::PatchedImage;

use super::{Output, load_profile, single_node};
use crate::cli::PatchArgs;

pub fn run(args: &PatchArgs, sources: &super::Sources, out: &Output) -> Result<(), Error> {
    let profile = load_profile(&args.profile, out)?;
    let node = single_node(&profile, args.node.as_deref())?;
    // With cluster.airgap, the runners' charts (from the cache, or downloaded through it).
    let charts = pinode::pipeline::charts_for_profile(&profile, &sources.resolver()?)?;
    // Opening a block device exclusively fails while any of its partitions is mounted.
    let mut image = PatchedImage::new(&args.target, &profile, node, &charts)?;
    image.notes.iter().for_each(|n| out.note(n));
    let changed_blocks = image.changed_blocks();
    // Only now, when the edits are ready and nothing can fail before they are written: a
    // refused patch leaves the file exactly as it was, mode included.
    if let Some(note) = make_private(&args.target, image.file())? {
        out.warn(note);
    }
    let written = image.commit()?;
    let PatchedImage {
        custom, report, os, ..
    } = image;
    if out.json {
        out.json(&json!({
            "target": args.target,
            "hostname": custom.hostname,
            "os": os,
            "bytes_written": written,
            "changed_blocks": changed_blocks,
            "report": report,
        }));
        return Ok(());
    }
    out.say(format!(
        "{}: customised as {} ({} {}, first boot via {}), {} bytes written",
        args.target.display(),
        custom.hostname,
        custom.role.as_str(),
        os.describe(),
        os.init,
        written
    ));
    if out.verbose > 0 {
        for (path, change) in &report.files {
            out.say(format!("  {path}: {change:?}"));
        }
        for path in &report.removed {
            out.say(format!("  {path}: removed"));
        }
        out.say(format!(
            "  cmdline.txt: {:?}, config.txt: {:?}",
            report.cmdline, report.config
        ));
    }
    Ok(())
}

/// A patched image file holds the node's secrets (password hash, Wi-Fi key, tokens), so,
/// like the images `prepare` writes, it must be readable by its owner only. Before the edits
/// are written: a group/world-readable image file that pinode may change (its owner, or root)
/// is made 0600 through `file`, the descriptor the edits are written through (not the path
/// opened again, which could by now name another file, or a FIFO), with a note; one that
/// pinode cannot make private is refused, with the reason. Block devices (cards) are left
/// alone: their node's mode is udev's business. `target` names the file in messages.
/// Returns the note to show, if any.
fn make_private(target: &std::path::Path, file: &std::fs::File) -> Result<Option<String>, Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = file.metadata().map_err(|e| Error::path(target, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() || mode & 0o077 == 0 {
        return Ok(None);
    }
    let euid = rustix::process::geteuid().as_raw();
    if euid != 0 && meta.uid() != euid {
        return Err(Error::path(
            target,
            format!(
                "the image is readable by others (mode {mode:04o}) and belongs to another user, \
                 so pinode cannot make it private after writing secrets into it: copy it, or \
                 have its owner chmod 600 it first"
            ),
        ));
    }
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::path(target, e))?;
    Ok(Some(format!(
        "{}: was mode {mode:04o}; made it 0600, as it now holds the node's secrets",
        target.display()
    )))
}
