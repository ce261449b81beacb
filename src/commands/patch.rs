//! `pinode patch IMAGE|DEVICE --profile P --node HOST`: customise in place.

use serde_json::json;

use pinode::Error;
use pinode::customise::customise_image;
use pinode::image::Image;

use super::{Output, load_profile, single_node};
use crate::cli::PatchArgs;

pub fn run(args: &PatchArgs, out: &Output) -> Result<(), Error> {
    let profile = load_profile(&args.profile, out)?;
    let node = single_node(&profile, args.node.as_deref())?;
    // Opening a block device exclusively fails while any of its partitions is mounted.
    let mut image = Image::open(&args.target, true)?;
    let os = image.detect_os(None, profile.init_override())?;
    let (custom, report) = customise_image(&mut image, &profile, node, &os)?;
    let changed_blocks = image.disk().overlay().len();
    let written = image.commit()?;
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
        os.generation,
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
