//! `pinode devices`: the disks a card could be written to, each with a verdict.

use serde_json::json;

use crate::error::Error;
use pinode::device::discover::{BlockDevice, SystemView, Transport};
use pinode::device::safety::{Refusal, assess, verdict};

use super::Output;
use crate::cli::DevicesArgs;

pub fn run(args: &DevicesArgs, out: &Output) -> Result<(), Error> {
    let devices: Vec<BlockDevice> = SystemView::from_settings(pinode::edge::settings())
        .scan()?
        .into_iter()
        .filter(|d| args.all || d.transport != Transport::Loop)
        .collect();
    if out.json {
        let list: Vec<serde_json::Value> = devices
            .iter()
            .map(|d| {
                let refusals = assess(d, None);
                let mut value = serde_json::to_value(d).unwrap_or_default();
                value["kind_label"] = json!(d.kind.label());
                value["usable"] = json!(refusals.is_empty());
                value["refusals"] = json!(refusals.iter().map(refusal_json).collect::<Vec<_>>());
                value
            })
            .collect();
        out.json(&json!({ "devices": list }));
        return Ok(());
    }
    if devices.is_empty() {
        out.say("no disks found (insert a card, or use --all to include loop devices)");
        return Ok(());
    }
    let rows: Vec<[String; 6]> = devices
        .iter()
        .map(|d| {
            [
                d.path.display().to_string(),
                if d.size_bytes == 0 {
                    "-".into()
                } else {
                    pinode::ui::size::card(d.size_bytes)
                },
                d.kind.label().to_string(),
                d.transport.as_str().to_string(),
                d.description(),
                verdict(&assess(d, None)),
            ]
        })
        .collect();
    let header = ["DEVICE", "SIZE", "KIND", "BUS", "MODEL", "VERDICT"].map(String::from);
    for line in super::table(&header, &rows) {
        out.say(line);
    }
    Ok(())
}

fn refusal_json(r: &Refusal) -> serde_json::Value {
    let mut value = serde_json::to_value(r).unwrap_or_default();
    value["message"] = json!(r.message());
    value["override"] = json!(r.override_flag());
    value
}
