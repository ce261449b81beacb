//! `pinode cache list` / `pinode cache clean`.

use serde_json::json;

use crate::error::Error;
use pinode::ui::Untrusted;

use super::{Output, Sources, size};

pub fn list(sources: &Sources, out: &Output) -> Result<(), Error> {
    let resolver = sources.resolver()?;
    let entries = resolver.cache.list()?;
    if out.json {
        out.json(&json!({
            "cache_dir": resolver.cache.root,
            "entries": entries,
        }));
        return Ok(());
    }
    out.say(format!("cache: {}", resolver.cache.root.display()));
    if entries.is_empty() {
        out.say("(empty)");
    }
    for e in &entries {
        let name = e.aliases.first().cloned().unwrap_or_else(|| {
            if e.name.is_empty() {
                "?".into()
            } else {
                e.name.clone()
            }
        });
        let state = if e.complete {
            format!("image {}", size(e.image_bytes))
        } else if e.partial_bytes > 0 {
            format!("partial download {}", size(e.partial_bytes))
        } else {
            "incomplete".to_string()
        };
        // The cache's metadata was copied from a catalog: outside text, shown escaped.
        out.say(format!(
            "{:30} {:10} {}…  {state}, {} on disk",
            Untrusted(&name),
            Untrusted(e.release_date.as_deref().unwrap_or("")),
            Untrusted(short(&e.sha256)),
            size(e.disk_bytes)
        ));
    }
    Ok(())
}

pub fn clean(sources: &Sources, out: &Output) -> Result<(), Error> {
    let resolver = sources.resolver()?;
    let (freed, busy) = resolver.cache.clean()?;
    for name in &busy {
        // An image's SHA-256 cut short, or a release's directory (`releases/k3s/<tag>`).
        let shown = if name.starts_with("releases/") {
            Untrusted(name.as_str()).to_string()
        } else {
            format!("{}…", Untrusted(short(name)))
        };
        out.warn(format!(
            "{shown}: in use by another pinode process, left alone"
        ));
    }
    out.say(format!(
        "cache: {} freed in {}",
        size(freed),
        resolver.cache.root.display()
    ));
    Ok(())
}

/// The first 12 characters of an entry's name, for display. The name is a directory name in
/// the cache (normally a SHA-256, but anything can be put there): cut at a character, never
/// at a byte, which could fall inside a multi-byte character and panic.
fn short(name: &str) -> &str {
    name.char_indices()
        .nth(12)
        .map_or(name, |(at, _)| &name[..at])
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_cuts_at_a_character_not_a_byte() {
        assert_eq!(short("aaaaaaaaaaaé\u{1b}[2Jzzz"), "aaaaaaaaaaaé");
        assert_eq!(short("ab"), "ab");
        assert_eq!(short(&"f".repeat(64)), "f".repeat(12));
    }
}
