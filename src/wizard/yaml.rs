//! The YAML the wizard writes, produced from the profile's own types by serde.
//!
//! serde_yaml would write `name: no` for the string "no" (read back as a string, but not by
//! every YAML 1.1 tool) and cannot place comments. This serializer turns any `Serialize` value
//! into block YAML in which every string is double-quoted (a JSON string is a valid YAML
//! double-quoted scalar, and never turns into a number, a boolean or null), enum variants,
//! numbers and booleans are bare, and each field may carry a comment, at the end of its line
//! or on the lines before it. It knows nothing of profiles: the wizard gives the value
//! ([`crate::profile::schema::Profile`]) and the comments.

use std::collections::HashMap;
use std::fmt;

use serde::ser::{self, Serialize};

/// Comments keyed by the dotted path of a field (`os.image`, `nodes[0].hostname`).
#[derive(Default)]
pub(crate) struct Comments {
    /// Written after the field's line: `key: value   # comment`.
    pub(crate) trailing: HashMap<String, String>,
    /// Lines written before the field, each as `# line`, at the field's indentation.
    pub(crate) before: HashMap<String, Vec<String>>,
    /// Fields left out (present in the value, but the document does not spell them).
    pub(crate) omit: Vec<String>,
    /// Fields written as `null` although they are null: everywhere else a null (an absent
    /// `Option`) and an empty list are left out, as a hand-written profile leaves them out.
    pub(crate) keep_null: Vec<String>,
}

impl Comments {
    /// Whether the field at `path` holding `value` is written.
    fn shows(&self, path: &str, value: &Node) -> bool {
        if self.omit.iter().any(|p| p == path) {
            return false;
        }
        match value {
            Node::Scalar(s) if s == "null" => self.keep_null.iter().any(|p| p == path),
            Node::Seq(items) => !items.is_empty(),
            _ => true,
        }
    }
}

/// `value` as block YAML, top-level keys separated by a blank line.
pub(crate) fn to_string<T: Serialize>(value: &T, comments: &Comments) -> Result<String, Error> {
    let node = value.serialize(Tree)?;
    let mut out = String::new();
    match &node {
        Node::Map(entries) => {
            let shown = entries
                .iter()
                .filter(|(key, value)| comments.shows(key, value));
            for (i, (key, value)) in shown.enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                entry(&mut out, 0, key, key, value, comments);
            }
        }
        _ => return Err(Error("the document must be a mapping".into())),
    }
    Ok(out)
}

/// The value, as a tree of rendered scalars.
#[derive(Debug)]
enum Node {
    /// Rendered already: `"text"`, `true`, `2`, `gitlab`.
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn line(out: &mut String, text: &str, path: &str, comments: &Comments) {
    out.push_str(text);
    if let Some(comment) = comments.trailing.get(path) {
        out.push_str("   # ");
        out.push_str(comment);
    }
    out.push('\n');
}

/// `key: value` at `indent`, or `key:` and the block below it.
fn entry(out: &mut String, indent: usize, key: &str, path: &str, value: &Node, c: &Comments) {
    if !c.shows(path, value) {
        return;
    }
    let pad = " ".repeat(indent);
    for comment in c.before.get(path).into_iter().flatten() {
        out.push_str(&format!("{pad}# {comment}\n"));
    }
    match value {
        Node::Scalar(s) => line(out, &format!("{pad}{key}: {s}"), path, c),
        Node::Map(entries) if entries.is_empty() => {
            line(out, &format!("{pad}{key}: {{}}"), path, c)
        }
        Node::Map(entries) => {
            line(out, &format!("{pad}{key}:"), path, c);
            for (k, v) in entries {
                entry(out, indent + 2, k, &child(path, k), v, c);
            }
        }
        Node::Seq(items) => {
            line(out, &format!("{pad}{key}:"), path, c);
            for (i, item) in items.iter().enumerate() {
                seq_item(out, indent + 2, &format!("{path}[{i}]"), item, c);
            }
        }
    }
}

/// `- value` at `indent`; a mapping item puts its first key on the dash's line.
fn seq_item(out: &mut String, indent: usize, path: &str, value: &Node, c: &Comments) {
    let pad = " ".repeat(indent);
    match value {
        Node::Map(entries) => {
            let shown: Vec<_> = entries
                .iter()
                .filter(|(k, v)| c.shows(&child(path, k), v))
                .collect();
            let Some(((k, v), rest)) = shown.split_first() else {
                return line(out, &format!("{pad}- {{}}"), path, c);
            };
            let mut first = String::new();
            entry(&mut first, indent + 2, k, &child(path, k), v, c);
            // The first entry's indentation becomes the dash.
            out.push_str(&pad);
            out.push_str("- ");
            out.push_str(first.get(indent + 2..).unwrap_or(""));
            for (k, v) in rest {
                entry(out, indent + 2, k, &child(path, k), v, c);
            }
        }
        Node::Scalar(s) => line(out, &format!("{pad}- {s}"), path, c),
        Node::Seq(items) if items.is_empty() => line(out, &format!("{pad}- []"), path, c),
        Node::Seq(_) => {
            // Not needed by any profile; written in flow style, which YAML reads alike.
            line(out, &format!("{pad}- {}", flow(value)), path, c)
        }
    }
}

fn flow(node: &Node) -> String {
    match node {
        Node::Scalar(s) => s.clone(),
        Node::Seq(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Node::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A value that cannot be written (a map with non-string keys, bytes…).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the profile as YAML: {0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn quoted(s: &str) -> Node {
    Node::Scalar(serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()))
}

/// Builds the [`Node`] tree.
struct Tree;

struct SeqBuilder(Vec<Node>);
struct MapBuilder {
    entries: Vec<(String, Node)>,
    key: Option<String>,
}

impl ser::Serializer for Tree {
    type Ok = Node;
    type Error = Error;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = ser::Impossible<Node, Error>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = ser::Impossible<Node, Error>;

    fn serialize_bool(self, v: bool) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_i8(self, v: i8) -> Result<Node, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Node, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Node, Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_u8(self, v: u8) -> Result<Node, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Node, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Node, Error> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_f32(self, v: f32) -> Result<Node, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<Node, Error> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn serialize_char(self, v: char) -> Result<Node, Error> {
        Ok(quoted(&v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Node, Error> {
        Ok(quoted(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<Node, Error> {
        Err(Error("bytes".into()))
    }
    fn serialize_none(self) -> Result<Node, Error> {
        Ok(Node::Scalar("null".into()))
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Node, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Node, Error> {
        Ok(Node::Scalar("null".into()))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Node, Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Node, Error> {
        // Bare, as a profile spells its keywords (`sudo: nopasswd`, `role: server`).
        Ok(Node::Scalar(variant.to_string()))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Node, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Node, Error> {
        Ok(Node::Map(vec![(
            variant.to_string(),
            value.serialize(self)?,
        )]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, Error> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error("tuple variants".into()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapBuilder, Error> {
        Ok(MapBuilder {
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<MapBuilder, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error("struct variants".into()))
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Node;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.0.push(value.serialize(Tree)?);
        Ok(())
    }
    fn end(self) -> Result<Node, Error> {
        Ok(Node::Seq(self.0))
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Node;
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Node, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Node;
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Node, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Node;
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        // Keys are written bare: only identifiers (the schema's field names) are accepted.
        let key = key.serialize(Tree)?;
        let Node::Scalar(text) = key else {
            return Err(Error("a key that is not a string".into()));
        };
        let bare: String = serde_json::from_str(&text).unwrap_or(text);
        if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error(format!("the key {bare:?} is not an identifier")));
        }
        self.key = Some(bare);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error("a value without a key".into()))?;
        self.entries.push((key, value.serialize(Tree)?));
        Ok(())
    }
    fn end(self) -> Result<Node, Error> {
        Ok(Node::Map(self.entries))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Node;
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.entries.push((key.to_string(), value.serialize(Tree)?));
        Ok(())
    }
    fn end(self) -> Result<Node, Error> {
        Ok(Node::Map(self.entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Gitlab,
    }

    #[derive(serde::Serialize)]
    struct Item {
        hostname: String,
        kind: Kind,
    }

    #[derive(serde::Serialize)]
    struct Doc {
        version: u32,
        name: String,
        keys: Vec<String>,
        gone: Option<String>,
        items: Vec<Item>,
    }

    #[test]
    fn strings_are_quoted_keywords_bare_comments_placed() {
        let doc = Doc {
            version: 1,
            name: "no".into(),
            keys: vec!["a: b".into()],
            gone: None,
            items: vec![Item {
                hostname: "cp".into(),
                kind: Kind::Gitlab,
            }],
        };
        let mut c = Comments::default();
        c.trailing
            .insert("items[0].hostname".into(), "first".into());
        c.before.insert("keys".into(), vec!["the keys".into()]);
        c.omit.push("version".into());
        let text = to_string(&doc, &c).unwrap();
        assert_eq!(
            text,
            "name: \"no\"\n\n# the keys\nkeys:\n  - \"a: b\"\n\nitems:\n  - hostname: \"cp\"   # first\n    kind: gitlab\n"
        );
    }
}
