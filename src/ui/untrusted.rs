//! Text from outside pinode, made safe to show on a terminal.
//!
//! A terminal obeys the escape sequences in whatever it prints. A card's
//! `pinode-status.txt`, an image's `PRETTY_NAME`, a reader's vendor and model strings in
//! sysfs, or a catalog entry's name could otherwise clear the screen, move the cursor and
//! repaint the "Erase it?" question so that it names another card. Every human output of
//! such text goes through [`Untrusted`], which shows control characters (C0, DEL, C1) and
//! the Unicode bidirectional overrides as Rust escapes (`\u{1b}`, `\r`), the way
//! `profile check` shows them in its errors. The output sinks (`Output::say`/`warn`, the
//! error lines, the prompter) pass their whole line through [`terminal_safe`] as well, so
//! that text which reaches them inside an error message is covered too.
//!
//! Error messages quote a value with [`quoted`]: the same escaping inside double quotes,
//! with `"` and `\` escaped too so that the quotes show where the value ends. This is the
//! one style for outside text in pinode's messages (it reads like Rust's `{:?}`, which
//! profile errors used before).
//!
//! JSON output needs none of this: serde_json escapes control characters itself.

use std::borrow::Cow;
use std::fmt;

/// A string from an untrusted source, displayed with every control character escaped
/// (line breaks and tabs included: one value stays on one line).
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` keeps width and alignment (`{:30}`) working on the escaped text.
        f.pad(&escape(self.0, |_| false))
    }
}

/// `text` in double quotes for an error message, escaped as [`Untrusted`] escapes it, and
/// with `"` and `\` escaped so that the value cannot seem to end early.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if dangerous(c) || matches!(c, '"' | '\\') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// A whole line (or several) for the terminal: escapes what [`Untrusted`] escapes except
/// line breaks and tabs, which pinode's own multi-line messages use.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| dangerous(c) && !matches!(c, '\n' | '\t'))
    {
        return Cow::Borrowed(text);
    }
    Cow::Owned(escape(text, |c| matches!(c, '\n' | '\t')))
}

/// Characters a terminal may act on rather than show, or that hide what is shown: control
/// characters; the bidirectional overrides, isolates and marks that reorder text; and the
/// invisible formatting characters (zero-width spaces and joiners, the line and paragraph
/// separators, the byte order mark) that make two different values look alike; Rust's
/// `{:?}`, which profile errors used to show values, escapes these too.
fn dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
        )
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if dangerous(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_bidi_characters() {
        let shown = Untrusted("a\x1b[2J\rb\nc\u{202e}d\u{9b}").to_string();
        assert_eq!(shown, "a\\u{1b}[2J\\rb\\nc\\u{202e}d\\u{9b}");
        assert_eq!(format!("{:6}|", Untrusted("ab")), "ab    |");
        assert_eq!(terminal_safe("x\n\ty\x1b"), "x\n\ty\\u{1b}");
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
        assert_eq!(
            quoted("a\"b\\c\x1b\u{200f}é"),
            "\"a\\\"b\\\\c\\u{1b}\\u{200f}é\""
        );
        // The style of `{:?}` for what both escape, so messages read as before.
        for text in [
            "x\ny",
            "tab\there",
            "q\"uote",
            "back\\slash",
            "\x1b[2J\r",
            "plain",
        ] {
            assert_eq!(quoted(text), format!("{text:?}"));
        }
    }
}
