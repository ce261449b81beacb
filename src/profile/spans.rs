//! Where each field of a profile sits in its file, so that errors found after parsing (an
//! invalid hostname, a missing secret) can still name the line.
//!
//! serde_yaml reports positions only for errors it finds itself. This index walks the same
//! text with `yaml-rust2`'s event parser and records, for every key path such as
//! `nodes[1].hostname`, the line and column where its value starts.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Key path → position of the value.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpanIndex {
    positions: HashMap<String, Position>,
    /// Key path → position of the key itself: an unknown key is pointed at where it is
    /// written, as serde_yaml pointed at it.
    keys: HashMap<String, Position>,
}

impl SpanIndex {
    /// Indexes `text`. A document that does not parse yields an empty index (serde_yaml will
    /// have reported the syntax error with its position already).
    pub(crate) fn build(text: &str) -> SpanIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return SpanIndex::default();
        }
        SpanIndex {
            positions: builder.positions,
            keys: builder.keys,
        }
    }

    /// The position of the key that ends `path` (`defaults.colour` → where `colour:` is
    /// written), else that of its value or closest ancestor, as [`SpanIndex::find`].
    pub(crate) fn find_key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.find(path))
    }

    /// The position of `path`, or of its closest indexed ancestor (an error about a missing
    /// key points at the mapping that lacks it).
    pub(crate) fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(p) = self.positions.get(path) {
                return Some(*p);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl Builder {
    /// The path of the value that the next event starts, advancing the parent's state.
    fn next_value_path(&mut self) -> Option<String> {
        match self.stack.last_mut()? {
            Frame::Map { path, key } => {
                let key = key.take()?;
                Some(if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                })
            }
            Frame::Seq { path, index } => {
                let p = format!("{path}[{index}]");
                *index += 1;
                Some(p)
            }
        }
    }

    /// Whether the next scalar is a mapping key.
    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.positions.entry(path.to_string()).or_insert(Position {
            line: mark.line(),
            column: mark.col() + 1,
        });
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if self.expects_key() {
                    if let Some(Frame::Map { key, path }) = self.stack.last_mut() {
                        let at = if path.is_empty() {
                            value.clone()
                        } else {
                            format!("{path}.{value}")
                        };
                        self.keys.entry(at).or_insert(Position {
                            line: mark.line(),
                            column: mark.col() + 1,
                        });
                        *key = Some(value);
                    }
                } else if let Some(path) = self.next_value_path() {
                    self.record(&path, mark);
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.next_value_path() {
                    self.record(&path, mark);
                }
            }
            Event::MappingStart(..) => {
                let path = if self.stack.is_empty() {
                    String::new()
                } else {
                    self.next_value_path().unwrap_or_default()
                };
                self.record(&path, mark);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_value_path().unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_paths() {
        let text = "version: 1\ndefaults:\n  user:\n    name: alice\nnodes:\n  - hostname: a\n  - hostname: b\n    role: agent\n";
        let idx = SpanIndex::build(text);
        assert_eq!(
            idx.find("version"),
            Some(Position {
                line: 1,
                column: 10
            })
        );
        assert_eq!(idx.find("defaults.user.name").map(|p| p.line), Some(4));
        assert_eq!(idx.find("nodes[1].hostname").map(|p| p.line), Some(7));
        assert_eq!(idx.find("nodes[1].role").map(|p| p.line), Some(8));
        assert_eq!(
            idx.find_key("defaults.user"),
            Some(Position { line: 3, column: 3 })
        );
        // A missing key points at its parent.
        assert_eq!(idx.find("nodes[1].wifi.country").map(|p| p.line), Some(7));
    }

    #[test]
    fn flow_style_and_garbage() {
        let idx = SpanIndex::build("nodes: [{hostname: a}, {hostname: b}]\n");
        assert_eq!(idx.find("nodes[1].hostname").map(|p| p.line), Some(1));
        assert!(SpanIndex::build("a: [").find("a").is_none());
    }
}
