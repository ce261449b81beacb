//! Profiles: parsing and validation only, with file/line/field errors.
//!
//! [`LoadedProfile::parse`] reads the `version` key first (`version`) and hands the document
//! to that version's module ([`v1`]), which checks it and translates it into the one internal
//! model: [`NodeConfig`]s with secrets as `SecretRef`s. Nothing here reads a secret or
//! renders a file: [`crate::plan`] resolves a node, [`crate::render`] writes it.

mod countries;
mod keyboards;
mod locales;
mod names;
pub mod network;
pub(crate) mod node;
pub(crate) mod secret;
mod spans;
pub mod v1;
pub mod values;
mod version;

/// The v1 types are the profile's types (a later version translates into them).
pub(crate) use v1::schema;

use std::fmt;
use std::path::{Path, PathBuf};

pub use node::NodeConfig;
pub(crate) use node::Password;
pub use schema::Storage;
pub(crate) use schema::{Profile, Role};
pub(crate) use secret::SecretRef;
pub(crate) use spans::{Position, SpanIndex};

/// Profiles are hand-written YAML; anything this large is a mistake, and refusing it keeps a
/// stray `pinode profile check /dev/zero` from eating memory.
const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// One problem in a profile, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub file: PathBuf,
    pub position: Option<Position>,
    /// Dotted path of the field, e.g. `nodes[1].hostname`.
    pub(crate) field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FieldError {}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile that is not a small regular text file (a FIFO, `/dev/zero`, 2 GB, …).
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// One or more problems; each is a line of its own.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// A profile read from a file, validated, with its nodes expanded.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub path: PathBuf,
    pub profile: Profile,
    spans: SpanIndex,
    pub nodes: Vec<NodeConfig>,
    pub warnings: Vec<FieldError>,
}

impl LoadedProfile {
    /// The K3s release `cluster.airgap` puts on the cards (`None` without air-gap, or
    /// without a pinned version).
    pub fn airgap_release(&self) -> Option<crate::engine::airgap::Release> {
        self.profile.cluster.as_ref()?.airgap_release()
    }

    /// Reads and validates the profile at `path`.
    pub fn load(path: &Path) -> Result<LoadedProfile, ProfileError> {
        let text = crate::input::read_text(path, MAX_PROFILE_BYTES, "a profile")?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<LoadedProfile, ProfileError> {
        match Self::parse_checked(path, text) {
            Checked {
                profile: Some(profile),
                errors,
            } if errors.is_empty() => Ok(profile),
            Checked { errors, .. } => Err(ProfileError::Invalid(errors)),
        }
    }

    /// Reads the profile at `path` for `profile check`: every problem, and the profile as far
    /// as it could be read despite them (see [`Checked`]).
    pub fn load_checked(path: &Path) -> Result<Checked, ProfileError> {
        let text = crate::input::read_text(path, MAX_PROFILE_BYTES, "a profile")?;
        Ok(Self::parse_checked(path, &text))
    }

    /// Every problem of `text` as if read from `path`, in the order of the file.
    pub fn parse_checked(path: &Path, text: &str) -> Checked {
        let at = |field: String, position, message: String| FieldError {
            file: path.to_path_buf(),
            position,
            field: one_line(field),
            message: one_line(message),
        };
        let refused = |errors| Checked {
            profile: None,
            errors,
        };
        if text.trim().is_empty() {
            return refused(vec![at(
                String::new(),
                None,
                "the profile is empty (it needs at least `version: 1` and `nodes`)".into(),
            )]);
        }
        let spans = SpanIndex::build(text);
        let locate =
            |field: &str, message: String| at(field.to_string(), spans.find(field), message);
        match version::declared(text) {
            version::Declared::Number(version::CURRENT) | version::Declared::Unreadable => {}
            version::Declared::Number(other) => {
                return refused(vec![locate("version", version::unsupported(other))]);
            }
        }
        let (parsed, issues) = match v1::load(text) {
            Ok(parsed) => (Some(parsed), Vec::new()),
            Err(v1::Refused::Syntax { position, message }) => {
                return refused(vec![at(String::new(), position, message)]);
            }
            Err(v1::Refused::Invalid { issues, partial }) => (partial.map(|p| *p), issues),
        };
        let mut errors: Vec<FieldError> = issues
            .into_iter()
            .map(|issue| {
                let position = if issue.at_key {
                    spans.find_key(&issue.field)
                } else {
                    spans.find(&issue.field)
                };
                at(issue.field, position, issue.message)
            })
            .collect();
        sort_by_position(&mut errors);
        let profile = parsed.map(|parsed| {
            let warnings = parsed
                .warnings
                .into_iter()
                .map(|(f, m)| locate(&f, m))
                .collect();
            let v1::Parsed { profile, nodes, .. } = parsed;
            LoadedProfile {
                path: path.to_path_buf(),
                profile,
                spans: spans.clone(),
                nodes,
                warnings,
            }
        });
        Checked { profile, errors }
    }

    /// An error about `field`, located in this profile's file.
    pub fn error_at(&self, field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            file: self.path.clone(),
            position: self.spans.find(field),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The directory relative paths in the profile are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The node called `hostname`.
    pub fn node(&self, hostname: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.hostname == hostname)
    }

    /// The profile's first-boot route override.
    pub fn init_override(&self) -> Option<crate::osinfo::ForcedInit> {
        self.profile
            .os
            .init
            .forced()
            .map(|route| crate::osinfo::ForcedInit {
                route,
                by: crate::osinfo::InitChooser::Profile,
            })
    }
}

/// A profile read for `profile check`: every problem found, and the profile as far as it
/// could be read despite them, so that the check can go on to the files and variables it
/// names and report those in the same run. `profile` is `None` when the document did not
/// deserialise (bad YAML, a missing required key, a list item of the wrong type).
#[derive(Debug)]
pub struct Checked {
    pub profile: Option<LoadedProfile>,
    pub errors: Vec<FieldError>,
}

/// Sorts problems in the order of the file, as an editor walks them; those with no line
/// come last. The sort is stable: problems of one line keep the order they were found in.
pub fn sort_by_position(errors: &mut [FieldError]) {
    errors.sort_by_key(|e| {
        e.position
            .map_or((usize::MAX, usize::MAX), |p| (p.line, p.column))
    });
}

/// `text` with control characters escaped (`\n`, `\u{1b}`…). Keys and values of the profile
/// reach error messages verbatim (serde_yaml's "unknown field `…`"), and each error must stay
/// one line, with nothing in it that a terminal would act on. Found by fuzzing (fuzz/,
/// target `profile`): a quoted key holding line breaks split its error over many lines.
/// The escaping is [`crate::ui::Untrusted`]'s, the one used for all outside text.
fn one_line(text: String) -> String {
    crate::ui::Untrusted(&text).to_string()
}

/// The JSON Schema of the profile format.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Profile)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::InitChoice;

    /// One route and one generation type: the profile, the CLI and serde agree on the words.
    #[test]
    fn one_word_per_route_and_generation() {
        use crate::osinfo::{Generation, InitRoute};
        for (word, route) in [
            ("firstrun", InitRoute::Firstrun),
            ("cloud-init", InitRoute::CloudInit),
        ] {
            assert_eq!(word.parse::<InitRoute>(), Ok(route));
            assert_eq!(route.to_string(), word);
            let choice: InitChoice = serde_yaml::from_str(word).unwrap();
            assert_eq!(choice, InitChoice::Forced(route));
            assert_eq!(choice.to_string(), word);
            assert_eq!(serde_json::to_value(route).unwrap(), word);
        }
        assert!(
            "none".parse::<InitRoute>().is_err(),
            "only detected, never asked for"
        );
        assert_eq!("auto".parse::<InitChoice>(), Ok(InitChoice::Auto));
        assert_eq!("trixie".parse::<Generation>(), Ok(Generation::Trixie));
        assert!("unknown".parse::<Generation>().is_err());
        let g: Generation = serde_json::from_value("bookworm".into()).unwrap();
        assert_eq!(g.to_string(), "bookworm");
    }

    #[test]
    fn errors_stay_on_one_line() {
        // Found by fuzzing: a quoted key with line breaks and an escape character.
        let text = "version: 1\nnodes:\n  - hostname: a\n    \"x\\n\\e[31my\": 1\n";
        let Err(ProfileError::Invalid(errors)) = LoadedProfile::parse(Path::new("p.yaml"), text)
        else {
            panic!("an unknown key must be refused");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for line in &shown {
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        assert!(
            shown.iter().any(|l| l.contains(r"x\n\u{1b}[31my")),
            "{shown:?}"
        );
    }
}
