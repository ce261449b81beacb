//! The `version` key, read before anything else, so that a document of another version is
//! refused as such ("profile version 2 is not supported…") and not as a v1 document with
//! unknown keys. Only this key is read here; every other key is ignored.

use serde::Deserialize;

/// The newest profile version this pinode reads.
pub(crate) const CURRENT: u64 = 1;

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    version: Option<serde_yaml::Value>,
}

/// What the document says its version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// A whole number.
    Number(u64),
    /// Missing, not a whole number, or the document is not a YAML mapping: the per-version
    /// parser explains it as before (missing field, invalid type, syntax error).
    Unreadable,
}

/// Reads the `version` key of `text`.
pub(crate) fn declared(text: &str) -> Declared {
    match serde_yaml::from_str::<Header>(text) {
        Ok(Header {
            version: Some(value),
        }) => value
            .as_u64()
            .map_or(Declared::Unreadable, Declared::Number),
        _ => Declared::Unreadable,
    }
}

/// The message for a version this pinode does not read.
pub(crate) fn unsupported(version: u64) -> String {
    format!(
        "profile version {version} is not supported by this pinode (it reads version {CURRENT})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_version() {
        assert_eq!(
            declared("version: 2\nnew_key: {a: 1}\n"),
            Declared::Number(2)
        );
        assert_eq!(declared("version: 1\n"), Declared::Number(1));
        assert_eq!(declared("version: \"1\"\n"), Declared::Unreadable);
        assert_eq!(declared("nodes: []\n"), Declared::Unreadable);
        assert_eq!(declared("- a\n"), Declared::Unreadable);
        assert_eq!(declared("a: ["), Declared::Unreadable);
    }
}
