//! glibc locales Debian can generate, for `locale`.
//!
//! A first boot generates the locale named in the profile from `/usr/share/i18n/SUPPORTED`;
//! a name not listed there (`en_UK.UTF-8`) is not generated and the node runs in `C` with
//! warnings from every program. The list is `data/glibc/locales.txt` (the names of Debian's
//! SUPPORTED; its header says which version).

use std::collections::HashSet;
use std::sync::LazyLock;

const LOCALES_TXT: &str = include_str!("../../data/glibc/locales.txt");

static LOCALES: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| super::names::parse(LOCALES_TXT));

pub(crate) fn is_locale(name: &str) -> bool {
    LOCALES.contains(name)
}

/// The listed locale a wrong name most likely meant: the same name with the territory `UK`
/// written `GB`, or with the codeset spelt another way (`utf8`, `UTF8`), or both.
pub(crate) fn suggestion(name: &str) -> Option<&'static str> {
    respelt(&name.replacen("_UK", "_GB", 1)).filter(|listed| *listed != name)
}

/// The listed locale that is `name` with its codeset spelt another way (`en_US.utf8` is
/// `en_US.UTF-8`), or `name` itself when listed.
pub(crate) fn respelt(name: &str) -> Option<&'static str> {
    let (base, codeset) = match name.split_once('.') {
        Some((base, codeset)) => (base, Some(codeset)),
        None => (name, None),
    };
    let normal = |c: &str| c.to_ascii_lowercase().replace('-', "");
    let same = |candidate: &str| {
        let (b, c) = match candidate.split_once('.') {
            Some((b, c)) => (b, Some(c)),
            None => (candidate, None),
        };
        b == base && c.map(normal) == codeset.map(normal)
    };
    let mut candidates: Vec<&'static str> = LOCALES.iter().copied().filter(|c| same(c)).collect();
    candidates.sort_unstable();
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_from_the_data_file() {
        assert!(is_locale("en_GB.UTF-8") && is_locale("de_DE@euro") && is_locale("C.UTF-8"));
        assert!(is_locale("en_GB") && is_locale("nb_NO.UTF-8"));
        assert!(!is_locale("en_UK.UTF-8") && !is_locale("english") && !is_locale("C"));
        assert_eq!(suggestion("en_UK.UTF-8"), Some("en_GB.UTF-8"));
        assert_eq!(suggestion("en_GB.utf8"), Some("en_GB.UTF-8"));
        assert_eq!(suggestion("xx_YY.UTF-8"), None);
    }
}
