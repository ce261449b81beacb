//! `pinode inspect IMAGE|DEVICE`.

use std::path::Path;

use serde_json::json;

use crate::error::Error;
use pinode::bootfs::manifest::Manifest;
use pinode::bootfs::state::boot_state;
use pinode::image::Image;
use pinode::osinfo::{ForcedInit, InitChooser, InitRoute};
use pinode::pipeline::BaseImage;
use pinode::ui::Untrusted;

use super::{Output, size};

pub fn run(target: &Path, out: &Output) -> Result<(), Error> {
    // A compressed image file (`.img.xz`, `.img.zst`, `.img.gz`, found by its magic bytes) is
    // decompressed once, bounded, into a private registered temporary file that is removed
    // when done, on Ctrl-C, or by the next run after a kill (see pinode::cleanup), the same
    // way `prepare` reads one. A raw file or a card is read in place.
    let is_file = std::fs::metadata(target).is_ok_and(|m| m.is_file());
    let base = if is_file {
        Some(BaseImage::open(
            target,
            &std::env::temp_dir(),
            &out.progress(),
            None,
        )?)
    } else {
        None
    };
    let mut image = Image::open(base.as_ref().map_or(target, |b| &b.path), false)?;
    // A card pinode prepared says which route it was prepared for (os.init may have forced it).
    let prepared = image.with_boot_fs(|fs| Manifest::read(fs))?;
    let forced = prepared
        .as_ref()
        .map(|m| m.init)
        .filter(|init| *init != InitRoute::None)
        .map(|route| ForcedInit {
            route,
            by: InitChooser::Prepared,
        });
    let os = image.detect_os(None, forced)?;
    let fat = image.boot_fat_kind()?;
    let mount = os.boot_mount();
    let (label, state) = image.with_boot_fs(|fs| Ok((fs.label(), boot_state(fs, mount)?)))?;
    let table = image.table().clone();
    let boot = image.boot_partition().clone();
    if out.json {
        out.json(&json!({
            "path": target,
            "size_bytes": image.len(),
            "partition_table": table.kind,
            "disk_id": table.disk_id,
            "partitions": table.partitions.iter().map(|p| json!({
                "index": p.index, "start_bytes": p.start, "size_bytes": p.size, "type": p.kind.to_string(),
            })).collect::<Vec<_>>(),
            "boot_partition": {
                "index": boot.index, "start_bytes": boot.start, "size_bytes": boot.size,
                "fs": fat, "label": label,
            },
            "os": os,
            "boot": state,
        }));
        return Ok(());
    }
    out.say(format!(
        "{}: {} image, {} partition table (disk id {})",
        target.display(),
        size(image.len()),
        table.kind,
        table.disk_id
    ));
    for p in &table.partitions {
        let marker = if p.index == boot.index {
            "  <- boot"
        } else {
            ""
        };
        out.say(format!(
            "  p{}: {:>10} at {:>10}  type {}{marker}",
            p.index,
            size(p.size),
            p.start,
            p.kind
        ));
    }
    // Everything read from the image (label, os-release, hostname, the manifest, the node's
    // report) is shown through `Untrusted`: an image must not drive the terminal.
    out.say(format!(
        "boot partition: p{} {fat} \"{}\"",
        boot.index,
        Untrusted(&label)
    ));
    let name = os
        .pretty_name
        .as_deref()
        .map(|n| format!(" ({})", Untrusted(n)))
        .unwrap_or_default();
    // "bookworm (Debian GNU/Linux 12 (bookworm))", "Ubuntu 24.04 LTS (Ubuntu 24.04.1 LTS)".
    out.say(format!(
        "os: {}{name}, first boot via {}",
        Untrusted(&os.describe()),
        os.init
    ));
    if out.verbose > 0 {
        for e in &os.evidence {
            out.say(format!("  because {}", Untrusted(&e.to_string())));
        }
        if let Some(snapd) = os.has_snapd {
            let installed = if snapd { "installed" } else { "not installed" };
            out.say(format!("  snapd {installed} on the root partition"));
        }
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    out.say(format!(
        "boot: ssh {}, cgroups {}, arm_64bit {}, first boot pending {}",
        yes(state.ssh),
        yes(state.cgroups),
        yes(state.arm_64bit),
        yes(state.firstboot)
    ));
    match (&state.hostname, &state.pinode) {
        (Some(h), Some(m)) => out.say(format!(
            "node: {} ({}), prepared by pinode {}",
            Untrusted(h),
            m.role.as_str(),
            Untrusted(&m.pinode)
        )),
        (Some(h), None) => out.say(format!("node: {}", Untrusted(h))),
        _ => out.say("node: not customised"),
    }
    if let Some(status) = &state.status {
        out.say("first-boot report (pinode-status.txt):");
        for line in status.lines() {
            out.say(format!("  {}", Untrusted(line)));
        }
    }
    Ok(())
}
