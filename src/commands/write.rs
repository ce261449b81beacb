//! `pinode write IMAGE --device D`: an image prepared earlier (by `prepare`, often in CI)
//! written to one card with pinode's safe writer, without a profile.
//!
//! The card is judged by the same code as `flash`'s named cards (`flash::target`): the same
//! refusals, the image itself (or the file behind a loop device) refused as a target. The
//! image is opened read-only, checked against its `.sha256`, and written by the same card
//! writer (`pinode::pipeline::prepared`, through `pipeline::card`): exclusive open, only the
//! blocks in use (its `.bmap`, or its file systems), head last, read back.

use serde_json::json;

use super::flash::target::{self, Source};
use super::flash::{say_note, scratch_dir};
use super::{Output, size};
use crate::cli::WriteArgs;
use crate::error::Error;
use crate::term::prompt::{Prompter, Reply};
use pinode::device::discover::{BlockDevice, SystemView};
use pinode::device::safety::Overrides;
use pinode::pipeline::card::CardOptions;
use pinode::pipeline::prepared::PreparedImage;
use pinode::sink::card::{CardReport, TestHooks};
use pinode::ui::Untrusted;
use pinode::ui::size;

pub fn run(args: &WriteArgs, out: &Output) -> Result<(), Error> {
    let overrides = Overrides {
        unmount: args.card.unmount,
        allow_non_removable: args.card.allow_non_removable,
        named: true,
    };
    let view = SystemView::from_settings(pinode::edge::settings());
    // A refused card, or the image as its own target, fails before the image is read.
    let disk = target::check_named(&view, &args.device, None, &overrides)?;
    let mut source = Source::default();
    source.add(&view, &args.image);
    source.refuse(&disk)?;

    let progress = out.progress();
    let image = PreparedImage::open(&args.image, &scratch_dir(), &progress)?;
    source.add(&view, image.raw_path());
    source.refuse(&disk)?;
    // Judged again with the image's size: a card too small is refused before any write.
    let disk = target::check_named(&view, &args.device, Some(image.len()), &overrides)?;
    if out.verbose > 0 {
        for sum in &image.checked_by {
            out.say(format!(
                "{}: checked against {}",
                Untrusted(&args.image.display().to_string()),
                Untrusted(&sum.display().to_string())
            ));
        }
        if let Some(bmap) = &image.bmap {
            out.say(format!(
                "writing the ranges {} maps",
                Untrusted(&bmap.display().to_string())
            ));
        }
    }
    if image.checked_by.is_empty() {
        out.warn(format!(
            "no .sha256 beside {}: its integrity is not checked before writing",
            Untrusted(&args.image.display().to_string())
        ));
    }
    if !args.card.yes {
        confirm(&disk, &image)?;
    }

    let options = CardOptions {
        verify: !args.card.no_verify,
        full: args.card.full,
    };
    let hooks = TestHooks::from_settings(pinode::edge::settings());
    let report = image.write_to_card(&disk, options, &hooks, &progress, &mut |note| {
        say_note(out, note)
    })?;
    if out.json {
        out.json(&json!({
            "image": args.image,
            "device": disk.path,
            "outcome": "written",
            "sha256_checked_by": image.checked_by,
            "bmap": image.bmap,
            "report": report,
        }));
    } else {
        say_written(out, &image, &disk, &report);
    }
    Ok(())
}

/// Shows the card and what it holds, and asks; no answer (stdin closed) writes nothing.
fn confirm(disk: &BlockDevice, image: &PreparedImage) -> Result<(), Error> {
    eprintln!(
        "{}: {}, {}, {}\n  holds now: {}",
        Untrusted(&disk.path.display().to_string()),
        disk.description(),
        size::card(disk.size_bytes),
        disk.kind_and_bus(),
        Untrusted(&target::holds_now(&disk.path)),
    );
    let question = format!(
        "Erase it and write {}? Everything on it will be lost. [y/N]",
        Untrusted(&image.path.display().to_string())
    );
    match Prompter::new().ask(&question) {
        Reply::Line(a) if matches!(a.to_ascii_lowercase().as_str(), "y" | "yes") => Ok(()),
        Reply::Line(_) => Err(Error::Incomplete(format!(
            "{} not written",
            disk.path.display()
        ))),
        Reply::Closed | Reply::Pending => {
            // The question has no line end yet: the error goes on a line of its own.
            eprintln!();
            Err(Error::Usage(format!(
                "no answer (standard input is closed): {} not written; to write unattended, pass \
             --yes",
                disk.path.display()
            )))
        }
    }
}

fn say_written(out: &Output, image: &PreparedImage, disk: &BlockDevice, r: &CardReport) {
    let verify = match r.verified {
        Some(true) => format!(
            ", read back and verified in {:.1} s",
            r.verify_seconds.unwrap_or(0.0)
        ),
        _ => ", not verified".to_string(),
    };
    let what = match (&image.bmap, r.allocation_aware) {
        (Some(_), true) => format!(
            "{} of {} (the blocks its .bmap maps)",
            size(r.bytes),
            size(r.image_bytes)
        ),
        (None, true) => format!(
            "{} of {} (the blocks in use)",
            size(r.bytes),
            size(r.image_bytes)
        ),
        _ => size(r.bytes),
    };
    out.say(format!(
        "{}: {what} written to {} in {:.1} s ({}/s){verify}",
        Untrusted(&image.path.display().to_string()),
        disk.path.display(),
        r.write_seconds,
        size::binary(r.write_bytes_per_sec as u64),
    ));
    if r.is_slow() {
        out.warn(format!(
            "{} writes at only {}/s: K3s on a card this slow restarts in a loop (its datastore \
             misses fsync deadlines); use an A1/A2-rated card or a USB SSD",
            disk.path.display(),
            size::binary(r.write_bytes_per_sec as u64)
        ));
    }
}
