//! SHA-256 digests as text: parsed once, where they come in, and trusted after.
//!
//! A digest names a cache entry's directory, is shortened for display and is compared
//! with what was hashed. It comes from outside (the catalog, `--sha256`, `os.sha256`, a
//! cache `entry.json` on disk), so a plain `String` would let a short or multi-byte value
//! reach `digest[..12]` (a panic) or a path join (`../x`). [`Sha256Hex`] holds only 64
//! lowercase hex digits; serde goes through the same check, so a corrupt `entry.json` or
//! catalog entry is refused as a whole rather than half used.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// 64 lowercase hex digits: the SHA-256 of something, as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Hex(String);

/// Text that is not a SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a SHA-256 (64 hex digits)", crate::ui::quoted(.0))]
pub struct NotSha256(pub String);

impl Sha256Hex {
    /// Accepts 64 hex digits in either case, around white space (as `sha256sum` files and
    /// hand-typed values have them); keeps them lowercase.
    pub fn parse(text: &str) -> Result<Sha256Hex, NotSha256> {
        let hex = text.trim();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256Hex(hex.to_ascii_lowercase()))
        } else {
            Err(NotSha256(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For an optional digest in a document pinode does not control (a catalog): a value
    /// that is not a SHA-256 reads as `None` instead of failing the whole document.
    pub(crate) fn deserialize_lenient<'de, D>(d: D) -> Result<Option<Sha256Hex>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        let text: Option<String> = Option::deserialize(d)?;
        Ok(text.and_then(|t| Sha256Hex::parse(&t).ok()))
    }

    /// The first 12 digits, for human output.
    pub fn short(&self) -> &str {
        // Cannot fail: the value is 64 ASCII digits.
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl FromStr for Sha256Hex {
    type Err = NotSha256;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Sha256Hex::parse(text)
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = NotSha256;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Sha256Hex::parse(&text)
    }
}

impl From<Sha256Hex> for String {
    fn from(hex: Sha256Hex) -> String {
        hex.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for Sha256Hex {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Sha256Hex {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for Sha256Hex {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Sha256Hex> for String {
    fn eq(&self, other: &Sha256Hex) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_hex_digits_parse() {
        let upper = "AB".repeat(32);
        let hex = Sha256Hex::parse(&format!(" {upper}\n")).unwrap();
        assert_eq!(hex.as_str(), "ab".repeat(32));
        assert_eq!(hex.short(), "abababababab");
        for bad in [
            "",
            "ab",
            &"a".repeat(63),
            &"g".repeat(64),
            &"é".repeat(32),
            "../x",
        ] {
            assert!(Sha256Hex::parse(bad).is_err(), "{bad:?}");
        }
        let err = Sha256Hex::parse("x\x1by").unwrap_err().to_string();
        assert!(!err.contains('\x1b'), "{err}");
        assert!(serde_json::from_str::<Sha256Hex>("\"abc\"").is_err());
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default, deserialize_with = "Sha256Hex::deserialize_lenient")]
            d: Option<Sha256Hex>,
        }
        let lenient = |text: &str| serde_json::from_str::<Doc>(text).unwrap().d;
        assert_eq!(lenient(r#"{"d": "short"}"#), None);
        assert_eq!(lenient(r#"{"d": null}"#), None);
        assert_eq!(lenient("{}"), None);
        assert_eq!(
            lenient(&format!(r#"{{"d": "{upper}"}}"#)),
            Some(hex.clone())
        );
        let json = serde_json::to_string(&hex).unwrap();
        assert_eq!(serde_json::from_str::<Sha256Hex>(&json).unwrap(), hex);
    }
}
