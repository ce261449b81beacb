//! `cmdline.txt`: the kernel command line, which the firmware reads from the FIRST line only.
//!
//! Edits keep the file byte-for-byte except for the tokens pinode adds or removes: every stock
//! token stays where it was, with its spacing, and the original line ending is kept.

/// A parsed `cmdline.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// `(whitespace before, token)` for each token of the first line.
    tokens: Vec<(String, String)>,
    /// Whitespace after the last token of the first line.
    trailing: String,
    /// The line ending and any further lines (ignored by the firmware, kept verbatim).
    rest: String,
}

impl Cmdline {
    pub fn parse(text: &str) -> Cmdline {
        let (line, rest) = match text.find(['\r', '\n']) {
            Some(at) => (&text[..at], &text[at..]),
            None => (text, ""),
        };
        let mut tokens = Vec::new();
        let mut ws = String::new();
        let mut current = String::new();
        for c in line.chars() {
            if c == ' ' || c == '\t' {
                if !current.is_empty() {
                    tokens.push((std::mem::take(&mut ws), std::mem::take(&mut current)));
                }
                ws.push(c);
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            tokens.push((std::mem::take(&mut ws), current));
        }
        Cmdline {
            tokens,
            trailing: ws,
            rest: rest.to_string(),
        }
    }

    /// The tokens of the first line, in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(|(_, t)| t.as_str())
    }

    pub fn contains(&self, token: &str) -> bool {
        self.tokens().any(|t| t == token)
    }

    /// The value of the last `key=value` token for `key`.
    pub fn value_of(&self, key: &str) -> Option<&str> {
        self.tokens()
            .filter_map(|t| t.strip_prefix(key)?.strip_prefix('='))
            .last()
    }

    /// Adds `token` at the end unless it is there; removes any repeats. Returns whether the
    /// line changed.
    pub fn ensure(&mut self, token: &str) -> bool {
        let before = self.tokens.len();
        let mut seen = false;
        self.tokens.retain(|(_, t)| {
            if t != token {
                return true;
            }
            let keep = !seen;
            seen = true;
            keep
        });
        if !seen {
            self.push(token);
        }
        !seen || self.tokens.len() != before
    }

    /// Makes `key=value` the only token for `key` (the first such token is updated in place,
    /// later ones removed; appended if absent). Returns whether the line changed.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let wanted = format!("{key}={value}");
        let is_key = |t: &str| t.strip_prefix(key).is_some_and(|r| r.starts_with('='));
        let mut changed = false;
        let mut found = false;
        self.tokens.retain_mut(|(_, t)| {
            if !is_key(t) {
                return true;
            }
            if found {
                changed = true;
                return false;
            }
            found = true;
            if *t != wanted {
                *t = wanted.clone();
                changed = true;
            }
            true
        });
        if !found {
            self.push(&wanted);
            changed = true;
        }
        changed
    }

    /// Removes every token equal to `token`. Returns how many were removed.
    pub fn remove(&mut self, token: &str) -> usize {
        self.remove_where(|t| t == token)
    }

    /// Removes every token for which `pred` holds. Returns how many were removed.
    pub fn remove_where(&mut self, pred: impl Fn(&str) -> bool) -> usize {
        let before = self.tokens.len();
        let mut i = 0;
        while i < self.tokens.len() {
            if pred(&self.tokens[i].1) {
                let (ws, _) = self.tokens.remove(i);
                // The first token has no separator before it; hand its leading whitespace to
                // the next token so the line does not start with a stray space.
                if i == 0
                    && let Some(next) = self.tokens.first_mut()
                {
                    next.0 = ws;
                }
            } else {
                i += 1;
            }
        }
        before - self.tokens.len()
    }

    fn push(&mut self, token: &str) {
        let sep = if self.tokens.is_empty() {
            String::new()
        } else {
            " ".to_string()
        };
        self.tokens.push((sep, token.to_string()));
    }

    /// The file's new contents. Appending keeps the trailing whitespace and line ending that
    /// the original line had.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (ws, t) in &self.tokens {
            out.push_str(ws);
            out.push_str(t);
        }
        out.push_str(&self.trailing);
        out.push_str(&self.rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKWORM: &str = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n";

    #[test]
    fn round_trips_exactly() {
        for text in [
            BOOKWORM,
            "a  b\tc \r\n",
            "",
            "\n",
            "x",
            "a b\nsecond line\n",
        ] {
            assert_eq!(Cmdline::parse(text).render(), text);
        }
    }

    #[test]
    fn ensure_appends_once_and_keeps_line_ending() {
        let mut c = Cmdline::parse("a b\r\n");
        assert!(c.ensure("cgroup_enable=memory"));
        assert!(!c.ensure("cgroup_enable=memory"));
        assert_eq!(c.render(), "a b cgroup_enable=memory\r\n");
    }

    #[test]
    fn ensure_removes_duplicates() {
        let mut c = Cmdline::parse("x a x b x\n");
        assert!(c.ensure("x"));
        assert_eq!(c.render(), "x a b\n");
    }

    #[test]
    fn set_replaces_in_place() {
        let mut c = Cmdline::parse("a k=1 b k=2\n");
        assert!(c.set("k", "3"));
        assert_eq!(c.render(), "a k=3 b\n");
        assert!(!c.set("k", "3"));
        assert!(c.set("j", "1"));
        assert_eq!(c.render(), "a k=3 b j=1\n");
        assert_eq!(c.value_of("k"), Some("3"));
        assert_eq!(c.value_of("kk"), None);
    }

    #[test]
    fn set_does_not_confuse_prefixes() {
        let mut c = Cmdline::parse("ds=x dsx=1\n");
        c.set("ds", "y");
        assert_eq!(c.render(), "ds=y dsx=1\n");
    }

    #[test]
    fn remove_first_token_keeps_layout() {
        let mut c = Cmdline::parse("a b c\n");
        assert_eq!(c.remove("a"), 1);
        assert_eq!(c.render(), "b c\n");
        assert_eq!(c.remove("c"), 1);
        assert_eq!(c.render(), "b\n");
    }

    #[test]
    fn only_the_first_line_is_edited() {
        let mut c = Cmdline::parse("a\nb\n");
        c.ensure("b");
        assert_eq!(c.render(), "a b\nb\n");
    }

    /// Ubuntu Server's stock line (canonical/pi-gadget, see fixtures/make-images.sh): the
    /// cgroup tokens go at the end, `root=LABEL=writable` and `quiet splash` stay as they are.
    #[test]
    fn ubuntu_stock_line_gets_the_cgroup_tokens() {
        let stock = include_str!("../../fixtures/stock/ubuntu/cmdline.txt");
        assert_eq!(Cmdline::parse(stock).render(), stock);
        let mut c = Cmdline::parse(stock);
        for t in [
            "cgroup_memory=1",
            "cgroup_enable=memory",
            "cgroup_enable=cpuset",
        ] {
            assert!(c.ensure(t));
        }
        assert!(c.set("ds", "nocloud;i=pinode-x"));
        assert_eq!(
            c.render(),
            "console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable \
             rootfstype=ext4 rootwait fixrtc quiet splash cgroup_memory=1 cgroup_enable=memory \
             cgroup_enable=cpuset ds=nocloud;i=pinode-x\n"
        );
        let again = Cmdline::parse(&c.render());
        assert_eq!(again.value_of("root"), Some("LABEL=writable"));
        assert!(again.contains("cgroup_enable=memory"));
    }
}
