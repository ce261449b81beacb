//! Profile format version 1: its types (`schema`), its value rules (`validate`), which
//! keys name each secret ([`secrets`]) and its translation into the internal model
//! ([`expand`]: nodes with defaults merged in).
//!
//! Butane's per-version `schema` / `validate` / `translate` packages are the model: a second
//! profile version gets a module beside this one that reads its own document and translates
//! it into the same [`crate::profile::LoadedProfile`], and [`crate::profile`] dispatches on the
//! `version` key before either module sees the document.

pub mod expand;
mod keys;
mod network;
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

/// One problem found in a v1 document: the dotted path of the field and the message.
pub(crate) struct Issue {
    pub(crate) field: String,
    pub(crate) message: String,
    /// Points at the key itself (an unknown key), not at its value.
    pub(crate) at_key: bool,
}

impl Issue {
    fn value(field: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue {
            field: field.into(),
            message: message.into(),
            at_key: false,
        }
    }
}

/// Why a v1 document was refused.
pub(crate) enum Refused {
    /// The text is not YAML (serde_yaml located the syntax error).
    Syntax {
        position: Option<Position>,
        message: String,
    },
    /// Every problem found: unknown keys, values of the wrong type, values that break a rule;
    /// with the document as far as it could be read when it deserialised (for `profile
    /// check`, which goes on to check the files and variables it names).
    Invalid {
        issues: Vec<Issue>,
        partial: Option<Box<Parsed>>,
    },
}

/// The most shape errors one run reports: each costs a deserialisation of the document.
const MAX_SHAPE_ERRORS: usize = 100;

/// Parses, checks and translates `text` as a version 1 profile, finding every problem in one
/// run: unknown keys are listed and removed first ([`keys`]), then each value of the wrong
/// type is listed and its key removed (for a list item, the whole list), and when what
/// remains deserialises its values are checked too. Only a problem no removal can get past
/// (a required key missing, or removed for its type) ends the search before the value checks.
pub(crate) fn load(text: &str) -> Result<Parsed, Refused> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Refused::Syntax {
        position: e.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        }),
        message: clean_yaml_message(&e),
    })?;
    let mut issues: Vec<Issue> = keys::strip_unknown(&mut doc)
        .into_iter()
        .map(|u| Issue {
            field: u.field,
            message: u.message,
            at_key: true,
        })
        .collect();
    let mut removed: Vec<String> = Vec::new();
    let mut profile = None;
    for _ in 0..MAX_SHAPE_ERRORS {
        match serde_path_to_error::deserialize::<_, Profile>(&doc) {
            Ok(p) => {
                profile = Some(p);
                break;
            }
            Err(e) => {
                let field = match e.path().to_string() {
                    p if p == "." => String::new(),
                    p => p,
                };
                let message = clean_yaml_message(e.inner());
                // A required key removed for its wrong type is now missing: already said.
                let consequence = message.starts_with("missing field")
                    && removed.iter().any(|r| parent(r) == Some(field.as_str()));
                if !consequence {
                    issues.push(Issue::value(field.clone(), message));
                }
                // A list item cannot go without moving those after it (and their paths):
                // the whole list goes instead.
                let target = key_ancestor(&field);
                if consequence || !remove(&mut doc, target) {
                    break;
                }
                removed.push(target.to_string());
            }
        }
    }
    let Some(profile) = profile else {
        return Err(Refused::Invalid {
            issues,
            partial: None,
        });
    };
    let mut report = validate::Report::default();
    validate::profile(&profile, &mut report);
    let nodes = expand::expand(&profile, &mut report);
    issues.extend(report.errors.into_iter().map(|(f, m)| Issue::value(f, m)));
    let parsed = Parsed {
        profile,
        nodes,
        warnings: report.warnings,
    };
    if !issues.is_empty() {
        return Err(Refused::Invalid {
            issues,
            partial: Some(Box::new(parsed)),
        });
    }
    Ok(parsed)
}

/// The path of the mapping that holds `field` (`defaults.user.name` → `defaults.user`,
/// `version` → ``); `None` for a list item or the root.
fn parent(field: &str) -> Option<&str> {
    let Some(cut) = field.rfind(['.', '[']) else {
        return (!field.is_empty()).then_some("");
    };
    if field[cut..].starts_with('[') {
        return None;
    }
    Some(&field[..cut])
}

/// `field` itself when it ends in a mapping key, else the closest ancestor that does
/// (`defaults.user.ssh_authorized_keys[0]` → `defaults.user.ssh_authorized_keys`).
fn key_ancestor(field: &str) -> &str {
    let mut at = field;
    while at.ends_with(']') {
        match at.rfind('[') {
            Some(open) => at = &at[..open],
            None => break,
        }
    }
    at
}

/// Removes the key `field` names from `doc`; false when `field` is not a mapping key (the
/// root, a list item), which cannot be removed without moving the items after it.
fn remove(doc: &mut serde_yaml::Value, field: &str) -> bool {
    let (holder, key) = match field.rfind(['.', '[']) {
        None if !field.is_empty() => ("", field),
        Some(cut) if field[cut..].starts_with('.') => (&field[..cut], &field[cut + 1..]),
        _ => return false,
    };
    let mut at = doc;
    for part in split(holder) {
        let next = match part {
            Part::Key(k) => at.get_mut(k),
            Part::Index(i) => at.get_mut(i),
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    at.as_mapping_mut().and_then(|m| m.remove(key)).is_some()
}

enum Part<'a> {
    Key(&'a str),
    Index(usize),
}

/// `nodes[1].user.name` → `nodes`, 1, `user`, `name` (the paths serde_path_to_error prints).
fn split(path: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let mut rest = segment;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                parts.push(Part::Key(&rest[..open]));
            }
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    parts.push(Part::Index(i));
                }
                rest = &rest[close + 1..];
            }
        } else {
            parts.push(Part::Key(rest));
        }
    }
    parts
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => Vec::new(),
            Err(Refused::Syntax { message, .. }) => vec![message],
            Err(Refused::Invalid { issues, .. }) => issues.into_iter().map(|i| i.field).collect(),
        }
    }

    #[test]
    fn a_wrong_type_does_not_hide_the_rest() {
        let text = "version: 1\ndefaults:\n  user:\n    name: a\n    ssh_authorized_keys: [1, 2]\n  \
                    boot: {cgroups: maybe}\n  keyboard: uk\nnodes: [{hostname: a, role: 7}]\n";
        let mut found = fields(text);
        found.sort();
        assert_eq!(
            found,
            [
                "defaults.boot.cgroups",
                "defaults.keyboard",
                "defaults.user.ssh_authorized_keys[0]",
                "nodes[0].role",
                // Said because the keys were removed: true, none of them is usable.
                "nodes[0].user",
            ]
        );
    }

    #[test]
    fn a_required_key_removed_for_its_type_is_said_once() {
        assert_eq!(fields("version: 1\nnodes: 5\n"), ["nodes"]);
        assert_eq!(
            fields("version: 1\nnodes: [{hostname: [a]}]\n"),
            ["nodes[0].hostname"]
        );
        assert_eq!(key_ancestor("a.b[0][1]"), "a.b");
        assert_eq!(key_ancestor("nodes[1]"), "nodes");
    }
}
