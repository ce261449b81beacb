//! `pinode download`: fill the cache with a verified, decompressed base image.

use serde_json::json;

use crate::error::Error;
use pinode::fetch::Redacted;

use super::{Output, Sources, load_profile, size};
use crate::cli::DownloadArgs;

/// What `pinode download` fetches when nothing says otherwise.
const DEFAULT_OS: &str = "raspios-lite-arm64";

pub fn run(args: &DownloadArgs, sources: &Sources, out: &Output) -> Result<(), Error> {
    let profile = match &args.profile {
        Some(p) => Some(load_profile(p, out)?),
        None => None,
    };
    let (image, sha256) = match (&args.os, &profile) {
        (Some(os), _) => (os.clone(), args.sha256.clone()),
        (None, Some(p)) => (
            p.profile.os.image.clone(),
            args.sha256.clone().or_else(|| p.profile.os.sha256.clone()),
        ),
        (None, None) => (DEFAULT_OS.to_string(), args.sha256.clone()),
    };
    let resolver = sources.resolver()?;
    let http = resolver.http()?;
    let progress = out.progress();
    let wanted = resolver.wanted(&image, sha256.as_deref(), http.as_ref(), &progress)?;
    if let Some(note) = wanted.origin.fallback() {
        out.warn(note);
    }
    let cached = resolver
        .cache
        .obtain(&wanted, http.as_ref(), &progress, out.waiting_note())?;
    for note in &cached.notes {
        out.warn(note);
    }
    let image_bytes = std::fs::metadata(&cached.path)
        .map(|m| m.len())
        .unwrap_or(0);
    let what = if cached.downloaded_bytes > 0 {
        let resumed = if cached.resumed_from > 0 {
            format!(", resumed at {}", size(cached.resumed_from))
        } else {
            String::new()
        };
        format!("downloaded {}{resumed}", size(cached.downloaded_bytes))
    } else if cached.decompressed {
        "decompressed from the cached download".to_string()
    } else {
        "already in the cache".to_string()
    };
    out.say(format!(
        "{}: {} ({}, sha256 {}…; {what})",
        Redacted(&image),
        cached.path.display(),
        size(image_bytes),
        wanted.sha256.short()
    ));
    // What the cache entry records (a catalog copy does not rewrite it: see `Origin`).
    let facts = cached.facts();
    if out.json {
        out.json(&json!({
            "image": Redacted(&image),
            "name": facts.name,
            "url": Redacted(&facts.url),
            "aliases": facts.aliases,
            "release_date": facts.release_date,
            "init_format": facts.init_format,
            "path": cached.path,
            "size_bytes": image_bytes,
            "sha256": wanted.sha256,
            "downloaded_bytes": cached.downloaded_bytes,
            "resumed_from": cached.resumed_from,
            "decompressed": cached.decompressed,
            "notes": cached.notes,
        }));
    }
    Ok(())
}
