//! Defaults taken from the machine the wizard runs on: its time zone, locale, keyboard, user
//! and SSH public keys. A value that does not pass pinode's own checks is not offered.
//! The environment (`TZ`, `LC_ALL`, `LANG`) is read through [`crate::edge::settings`].

use std::path::{Path, PathBuf};

use crate::profile::values;

/// The host's IANA time zone (`/etc/timezone`, or where `/etc/localtime` points).
pub fn timezone() -> String {
    let from_file = read_small("/etc/timezone")
        .ok()
        .map(|t| t.trim().to_string());
    let from_link = std::fs::read_link("/etc/localtime").ok().and_then(|p| {
        let p = p.to_string_lossy().into_owned();
        p.split_once("zoneinfo/").map(|(_, zone)| zone.to_string())
    });
    let from_env = crate::edge::settings().var("TZ").ok().map(str::to_string);
    [from_env, from_file, from_link]
        .into_iter()
        .flatten()
        .find(|z| values::timezone(z).is_ok())
        .unwrap_or_else(|| "Etc/UTC".into())
}

/// The host's locale (`LC_ALL`, `LANG`), when it names a language and territory, spelt as
/// glibc's list has it (`en_US.utf8` → `en_US.UTF-8`) so that the default passes the rule.
pub fn locale() -> String {
    ["LC_ALL", "LANG"]
        .iter()
        .filter_map(|v| crate::edge::settings().var(v).ok())
        .filter(|l| l.contains('_'))
        .find_map(values::listed_locale)
        .unwrap_or_else(|| "en_GB.UTF-8".into())
}

/// The territory of a locale (`en_GB.UTF-8` → `GB`), as a Wi-Fi country default.
pub fn country(locale: &str) -> Option<String> {
    let territory = locale.split_once('_')?.1;
    let code: String = territory
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    values::country(&code).is_ok().then_some(code)
}

/// The host's keyboard layout (`XKBLAYOUT` in `/etc/default/keyboard`).
pub fn keyboard() -> String {
    read_small("/etc/default/keyboard")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.trim().strip_prefix("XKBLAYOUT=").map(|v| {
                    v.trim_matches('"')
                        .split(',')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
            })
        })
        .filter(|k| values::keyboard(k).is_ok())
        .unwrap_or_else(|| "gb".into())
}

/// The name of the user running the wizard (the one behind sudo), when it is a valid,
/// non-root name: the invoking user's account name (see [`crate::invoker`]), so that "who"
/// has one answer everywhere, not `$USER`, which may name someone else.
pub fn user() -> Option<String> {
    crate::invoker::Invoker::current()
        .name
        .clone()
        .filter(|u| u != "root" && values::user_name(u).is_ok())
}

/// Valid public keys in the invoking user's `~/.ssh/*.pub`: (file, key line). Under sudo
/// that is the user behind sudo, not root (see [`crate::invoker`]).
pub fn ssh_public_keys() -> Vec<(PathBuf, String)> {
    crate::invoker::Invoker::current()
        .home
        .as_ref()
        .map(|home| public_keys_in(&home.join(".ssh")))
        .unwrap_or_default()
}

fn public_keys_in(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .filter_map(|p| {
                    let text = crate::input::read_text(&p, 64 << 10, "a public key file").ok()?;
                    let line = text.lines().next()?.trim().to_string();
                    values::ssh_public_key(&line).ok()?;
                    Some((p, line))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A small system file (through the bounded reader: even these may be replaced by a FIFO).
fn read_small(path: &str) -> Result<String, crate::input::InputError> {
    crate::input::read_text(Path::new(path), 64 << 10, "a system setting")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_from_locale() {
        assert_eq!(country("en_GB.UTF-8").as_deref(), Some("GB"));
        assert_eq!(country("de_DE@euro").as_deref(), Some("DE"));
        assert_eq!(country("C.UTF-8"), None);
    }

    #[test]
    fn only_valid_public_keys_are_offered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("id_ed25519.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E a@b\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.pub"), "not a key\n").unwrap();
        std::fs::write(dir.path().join("id_ed25519"), "PRIVATE\n").unwrap();
        let keys = public_keys_in(dir.path());
        assert_eq!(keys.len(), 1);
        assert!(keys[0].1.starts_with("ssh-ed25519 "));
    }
}
