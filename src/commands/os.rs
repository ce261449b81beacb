//! `pinode os list`: the images the catalog offers, with the aliases pinode accepts.

use serde_json::json;

use crate::error::Error;
use pinode::fetch::Redacted;
use pinode::ui::Untrusted;

use super::{Output, Sources, size};

pub fn list(all: bool, sources: &Sources, out: &Output) -> Result<(), Error> {
    let resolver = sources.resolver()?;
    let http = resolver.http()?;
    let mut catalog = resolver.load_catalog(http.as_ref(), &out.progress())?;
    if let Some(note) = &catalog.fallback {
        out.warn(note);
    }
    // A kept copy stands in for a catalog that cannot be reached: its sub-lists cannot be
    // fetched now either, and are not tried.
    let http = if catalog.fallback.is_some() {
        None
    } else {
        http
    };
    if all {
        catalog.load_all(http.as_ref());
    }
    for skipped in &catalog.skipped {
        out.warn(format!("sub-list skipped: {}", Untrusted(skipped)));
    }
    // Each entry with its aliases, parsed from the URL once (a catalog may have 100k entries).
    let mut entries: Vec<_> = catalog.entries.iter().map(|e| (e, e.aliases())).collect();
    // Raspberry Pi OS and Ubuntu Server (the entries with aliases) first, newest first within a
    // name.
    entries.sort_by(|(a, a_aliases), (b, b_aliases)| {
        a_aliases
            .is_empty()
            .cmp(&b_aliases.is_empty())
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| b.release_date.cmp(&a.release_date))
    });
    if out.json {
        let items: Vec<_> = entries
            .iter()
            .map(|(e, aliases)| {
                json!({
                    "name": e.name,
                    "aliases": aliases,
                    "release_date": e.release_date,
                    "url": Redacted(&e.url),
                    "download_bytes": e.image_download_size,
                    "extract_size": e.extract_size,
                    "extract_sha256": e.extract_sha256,
                    "init_format": e.init_format,
                    "devices": e.devices,
                    "category": e.category,
                })
            })
            .collect();
        out.json(&json!({
            "catalog": Redacted(&catalog.source),
            "images": items,
            "skipped_sublists": catalog.skipped,
        }));
        return Ok(());
    }
    // Names, dates and aliases come from the catalog, a document from the network: shown
    // through `Untrusted`, never obeyed by the terminal.
    out.say(format!(
        "catalog: {}",
        Untrusted(&Redacted(&catalog.source).to_string())
    ));
    for (e, aliases) in &entries {
        let first = aliases.first().cloned().unwrap_or_else(|| "-".into());
        out.say(format!(
            "{:30} {:10} {:>10}  {}",
            Untrusted(&first),
            Untrusted(e.release_date.as_deref().unwrap_or("?")),
            e.image_download_size.map(size).unwrap_or_default(),
            Untrusted(&e.name)
        ));
        if aliases.len() > 1 {
            out.say(format!(
                "{:30} also: {}",
                "",
                Untrusted(&aliases[1..].join(", "))
            ));
        }
    }
    if entries.iter().all(|(_, aliases)| aliases.is_empty()) {
        out.warn("no Raspberry Pi OS or Ubuntu Server images in this catalog (none has an alias)");
    }
    Ok(())
}
