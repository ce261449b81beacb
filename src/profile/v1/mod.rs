//! Profile format version 1: its types (`schema`), its value rules (`validate`), which
//! keys name each secret ([`secrets`]) and its translation into the internal model
//! ([`expand`]: nodes with defaults merged in).
//!
//! Butane's per-version `schema` / `validate` / `translate` packages are the model: a second
//! profile version gets a module beside this one that reads its own document and translates
//! it into the same [`crate::profile::LoadedProfile`], and [`crate::profile`] dispatches on the
//! `version` key before either module sees the document.

pub mod expand;
pub(crate) mod schema;
pub mod secrets;
mod validate;

use super::Position;
use super::node::NodeConfig;
use schema::Profile;

/// A v1 document, parsed, checked and translated.
pub(crate) struct Parsed {
    pub(crate) profile: Profile,
    pub(crate) nodes: Vec<NodeConfig>,
    /// (field, message)
    pub(crate) warnings: Vec<(String, String)>,
}

/// Why a v1 document was refused.
pub(crate) enum Refused {
    /// The document does not have the shape of version 1 (unknown key, wrong type, bad YAML);
    /// serde_yaml located it.
    Shape {
        field: String,
        position: Option<Position>,
        message: String,
    },
    /// Values that break a rule: (field, message) each, located by the caller.
    Invalid(Vec<(String, String)>),
}

/// Parses, checks and translates `text` as a version 1 profile.
pub(crate) fn load(text: &str) -> Result<Parsed, Refused> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let profile: Profile = match serde_path_to_error::deserialize(deserializer) {
        Ok(profile) => profile,
        Err(e) => {
            let field = match e.path().to_string() {
                p if p == "." => String::new(),
                p => p,
            };
            let inner = e.into_inner();
            let position = inner.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            });
            return Err(Refused::Shape {
                field,
                position,
                message: clean_yaml_message(&inner),
            });
        }
    };
    let mut report = validate::Report::default();
    validate::profile(&profile, &mut report);
    let nodes = expand::expand(&profile, &mut report);
    if !report.errors.is_empty() {
        return Err(Refused::Invalid(report.errors));
    }
    Ok(Parsed {
        profile,
        nodes,
        warnings: report.warnings,
    })
}

/// serde_yaml's message without the path prefix and position suffix we print ourselves.
fn clean_yaml_message(e: &serde_yaml::Error) -> String {
    let mut message = e.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    if let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.contains(' ')
    {
        message = rest.to_string();
    }
    message
}
