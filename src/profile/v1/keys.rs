//! Unknown keys, all of them at once.
//!
//! serde's `deny_unknown_fields` stops at the first unknown key, so a profile with three typos
//! took three runs to fix. This walk compares every mapping of the document with the profile's
//! JSON Schema ([`crate::profile::json_schema`], derived from the same serde types, so the two
//! cannot disagree), reports each key the schema does not allow, with a "did you mean" when a
//! known key is close, and removes it: what remains is deserialised and its values checked in
//! the same run.

use std::sync::LazyLock;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// The schema, built once per process.
static SCHEMA: LazyLock<Json> = LazyLock::new(crate::profile::json_schema);

/// A key the schema does not allow: its dotted path and the message.
pub(crate) struct UnknownKey {
    pub(crate) field: String,
    pub(crate) message: String,
}

/// Reports and removes every key of `doc` that the schema does not allow.
pub(crate) fn strip_unknown(doc: &mut Yaml) -> Vec<UnknownKey> {
    let mut found = Vec::new();
    walk(&SCHEMA, &SCHEMA, doc, "", &mut found);
    found
}

/// The schema `s` stands for when it describes `doc`: `$ref` followed, and of an `anyOf`
/// (how schemars writes an `Option<Struct>`, and `cluster.runner`'s "one or a list") the
/// branch that describes a list when `doc` is one, else a mapping.
fn resolve<'a>(root: &'a Json, s: &'a Json, doc: &Yaml) -> &'a Json {
    let list = matches!(doc, Yaml::Sequence(_));
    let mut s = s;
    // A bound, not a loop guard against a malformed schema: ours nests two levels at most.
    for _ in 0..8 {
        if let Some(name) = s
            .get("$ref")
            .and_then(Json::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            && let Some(def) = root.get("$defs").and_then(|d| d.get(name))
        {
            s = def;
            continue;
        }
        if let Some(branch) = s
            .get("anyOf")
            .and_then(Json::as_array)
            .and_then(|branches| {
                let usable = || {
                    branches
                        .iter()
                        .filter(|b| b.get("type").and_then(Json::as_str) != Some("null"))
                };
                usable()
                    .find(|b| {
                        let b = resolve_ref(root, b);
                        (b.get("type").and_then(Json::as_str) == Some("array")) == list
                    })
                    .or_else(|| usable().next())
            })
        {
            s = branch;
            continue;
        }
        break;
    }
    s
}

/// `s` with one `$ref` followed.
fn resolve_ref<'a>(root: &'a Json, s: &'a Json) -> &'a Json {
    s.get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| root.get("$defs").and_then(|d| d.get(name)))
        .unwrap_or(s)
}

fn walk(root: &Json, schema: &Json, doc: &mut Yaml, at: &str, found: &mut Vec<UnknownKey>) {
    let schema = resolve(root, schema, doc);
    match doc {
        Yaml::Mapping(map) => {
            let Some(properties) = schema.get("properties").and_then(Json::as_object) else {
                return;
            };
            let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
            let mut unknown = Vec::new();
            for (key, value) in map.iter_mut() {
                let name = key_text(key);
                let path = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                match key.as_str().and_then(|k| properties.get(k)) {
                    Some(inner) => walk(root, inner, value, &path, found),
                    None if closed => {
                        let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                        found.push(UnknownKey {
                            field: path,
                            message: message(&name, &known),
                        });
                        unknown.push(key.clone());
                    }
                    None => {}
                }
            }
            for key in unknown {
                map.remove(&key);
            }
        }
        Yaml::Sequence(items) => {
            let Some(item) = schema.get("items") else {
                return;
            };
            for (i, value) in items.iter_mut().enumerate() {
                walk(root, item, value, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// A key as it reads in a message: the text of a string key, else its YAML form (`1`, `[a]`).
fn key_text(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// serde's wording ("unknown field `x`, expected one of …", as before this walk) and the
/// closest known key when one is close enough to be a typo.
fn message(name: &str, known: &[&str]) -> String {
    let listed = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!("unknown field `{name}`, expected one of {listed}");
    if let Some(close) = closest(name, known) {
        text.push_str(&format!("; did you mean `{close}`?"));
    }
    text
}

/// The known key nearest to `name`, if it is a likely typo: at most a third of its letters
/// differ (`hostnme`, `ssh_authorised_keys`). A guess further off (`ssh_keys_file` → `ssh`)
/// would send the reader the wrong way; the full list is in the message anyway.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, k)| *d * 3 <= k.len().max(name.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_unknown_key_and_removes_it() {
        let mut doc: Yaml = serde_yaml::from_str(
            "version: 1\nbogus: 1\ndefaults:\n  localle: x\n  user:\n    nme: a\nnodes:\n  - hostname: a\n    hostnme: b\n",
        )
        .unwrap();
        let found = strip_unknown(&mut doc);
        let fields: Vec<&str> = found.iter().map(|u| u.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "bogus",
                "defaults.localle",
                "defaults.user.nme",
                "nodes[0].hostnme"
            ]
        );
        assert!(
            found[1].message.ends_with("did you mean `locale`?"),
            "{}",
            found[1].message
        );
        assert!(found[3].message.contains("did you mean `hostname`?"));
        assert!(!found[0].message.contains("did you mean"));
        let again = strip_unknown(&mut doc);
        assert!(again.is_empty(), "the unknown keys are gone");
        assert_eq!(doc["nodes"][0]["hostname"], Yaml::from("a"));
    }

    /// `cluster.runner` is a mapping or a list: unknown keys are found in either form.
    #[test]
    fn a_runner_list_is_walked_like_a_runner() {
        for (text, field) in [
            (
                "cluster:\n  runner:\n    kind: gitlab\n    urll: x\n",
                "cluster.runner.urll",
            ),
            (
                "cluster:\n  runner:\n    - kind: gitlab\n    - kind: jenkins\n      admin_usr: x\n",
                "cluster.runner[1].admin_usr",
            ),
        ] {
            let mut doc: Yaml = serde_yaml::from_str(text).unwrap();
            let found = strip_unknown(&mut doc);
            let fields: Vec<&str> = found.iter().map(|u| u.field.as_str()).collect();
            assert_eq!(fields, [field], "{text}");
            assert!(
                found[0].message.contains("did you mean"),
                "{}",
                found[0].message
            );
        }
    }
}
