//! XKB keyboard layouts Debian ships, for `keyboard`.
//!
//! keyboard-configuration writes any word to `/etc/default/keyboard`; a layout XKB does not
//! have (`uk`) leaves the console and X on the fallback `us` without a word. The list is
//! `data/xkb/layouts.txt` (from xkb-data's `rules/base.lst`; its header says which version).

use std::collections::HashSet;
use std::sync::LazyLock;

const LAYOUTS_TXT: &str = include_str!("../../data/xkb/layouts.txt");

static LAYOUTS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| super::names::parse(LAYOUTS_TXT));

/// Names people write for a layout that XKB names otherwise: (written, layout). `uk` is the
/// United Kingdom's internet domain; its ISO code, and XKB layout, is `gb`.
const MISTAKES: &[(&str, &str)] = &[("uk", "gb")];

pub(crate) fn is_layout(name: &str) -> bool {
    LAYOUTS.contains(name)
}

/// The layout a wrong name most likely meant: a known mistake (`uk` for `gb`), or the name in
/// lower case.
pub(crate) fn suggestion(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    MISTAKES
        .iter()
        .find(|(written, _)| *written == lower)
        .map(|(_, layout)| *layout)
        .or_else(|| LAYOUTS.get(lower.as_str()).copied())
        .filter(|layout| *layout != name && is_layout(layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_from_the_data_file() {
        assert!(is_layout("gb") && is_layout("us") && is_layout("de") && is_layout("latam"));
        assert!(!is_layout("uk") && !is_layout("custom") && !is_layout("GB"));
        assert_eq!(LAYOUTS.len(), 98);
        assert_eq!(suggestion("uk"), Some("gb"));
        assert_eq!(suggestion("GB"), Some("gb"));
        assert_eq!(suggestion("qq"), None);
    }
}
