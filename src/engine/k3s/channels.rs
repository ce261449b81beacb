//! K3s release channels and versions, checked against the channels K3s really serves.
//!
//! The install script asks `update.k3s.io` for a channel; a name it does not serve (`1.33`,
//! without the `v`) fails on the Pi at first boot, long after `profile check` said yes. The
//! names come from `data/k3s/channels.txt` (derived from k3s-io/k3s `channel.yaml`; its
//! header says which minors and when), embedded and parsed once.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The channel list, from the repository's data directory.
const CHANNELS_TXT: &str = include_str!("../../../data/k3s/channels.txt");

static CHANNELS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    CHANNELS_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Whether K3s serves a channel of this name (`stable`, `latest`, `testing`, `v1.33`, …).
pub(crate) fn is_channel(channel: &str) -> bool {
    CHANNELS.contains(channel)
}

/// The oldest and newest minors that have a channel, as `((1, 16), (1, 37))`: what a
/// message names as the list's range; above the newest, a `vX.Y` may be a release newer than
/// the data.
pub(crate) fn minor_range() -> ((u32, u32), (u32, u32)) {
    let minors = || CHANNELS.iter().filter_map(|c| minor(c));
    (
        minors().min().unwrap_or((1, 0)),
        minors().max().unwrap_or((1, 0)),
    )
}

/// The `(major, minor)` of a minor channel name `vX.Y`.
pub(crate) fn minor(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix('v')?.split_once('.')?;
    Some((number(major)?, number(minor)?))
}

/// Whether `v` has the form of a K3s release tag: `vX.Y.Z+k3sN`, or a pre-release
/// `vX.Y.Z-rcN+k3sN` (also `-alphaN`, `-betaN`, the forms `channel.yaml`'s `testing`
/// channel matches). Every K3s release carries its `+k3sN` build suffix; `v1.33.5` alone
/// names no release.
pub(crate) fn is_version(v: &str) -> bool {
    let Some((release, build)) = v.split_once("+k3s") else {
        return false;
    };
    let Some(core) = release.strip_prefix('v') else {
        return false;
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| number(p).is_some())
        && number(build).is_some()
        && pre.is_none_or(|p| {
            ["rc", "alpha", "beta"]
                .iter()
                .any(|tag| p.strip_prefix(tag).is_some_and(|n| number(n).is_some()))
        })
}

/// A decimal number of at most 9 digits (no sign, no spaces).
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_from_the_data_file() {
        for name in ["stable", "latest", "testing", "v1.16", "v1.33", "v1.37"] {
            assert!(is_channel(name), "{name}");
        }
        for name in [
            "1.33",
            "v1.15",
            "v1.33.5+k3s1",
            "Stable",
            "",
            "v1.19-testing",
        ] {
            assert!(!is_channel(name), "{name}");
        }
        assert_eq!(minor_range(), ((1, 16), (1, 37)));
        assert_eq!(minor("v1.9"), Some((1, 9)));
        assert_eq!(minor("stable"), None);
    }

    #[test]
    fn versions_are_release_tags() {
        for v in [
            "v1.33.5+k3s1",
            "v1.30.0-rc2+k3s1",
            "v1.25.16+k3s4",
            "v1.34.0-beta1+k3s1",
        ] {
            assert!(is_version(v), "{v}");
        }
        for v in [
            "1.33.5+k3s1",
            "v1.33.5",
            "v1.33+k3s1",
            "v1.33.5+k3s",
            "v1.33.5-rc+k3s1",
            "v1.33.5-foo1+k3s1",
            "vx",
            "v1.33 5+k3s1",
            "v1.33.5+k3s1 ",
        ] {
            assert!(!is_version(v), "{v}");
        }
    }
}
