//! `config.txt`: firmware settings, in sections (`[pi4]`, `[cm5]`, `[all]`…) that apply to
//! some boards only.
//!
//! pinode keeps its own lines in one marked block at the very end of the file, opened by
//! `[all]`, so they apply to every board and nothing after them can override them. Patching
//! again replaces the block; a file that needs nothing from pinode gets no block at all.

pub const BLOCK_BEGIN: &str = "# BEGIN pinode: managed block, rewritten on every patch";
pub const BLOCK_END: &str = "# END pinode";

/// A parsed `config.txt` with pinode's block taken out.
#[derive(Debug, Clone)]
pub struct ConfigTxt {
    /// The file without pinode's block, byte-for-byte.
    body: String,
    /// The lines of pinode's block as found (without markers and the `[all]` opener).
    previous_block: Vec<String>,
    newline: &'static str,
}

impl ConfigTxt {
    pub fn parse(text: &str) -> ConfigTxt {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut body = String::new();
        let mut previous_block = Vec::new();
        let mut in_block = false;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim_end_matches(['\r', '\n']);
            if !in_block && trimmed == BLOCK_BEGIN {
                in_block = true;
            } else if in_block && trimmed == BLOCK_END {
                in_block = false;
            } else if in_block {
                if trimmed != "[all]" {
                    previous_block.push(trimmed.to_string());
                }
            } else {
                body.push_str(line);
            }
        }
        ConfigTxt {
            body,
            previous_block,
            newline,
        }
    }

    /// Lines pinode put in the file last time.
    pub fn previous_block(&self) -> &[String] {
        &self.previous_block
    }

    /// Whether `key=value` is what every board ends up with: the last assignment of `key`
    /// in the file (outside pinode's block) is `value` and sits in a section that applies
    /// to all boards.
    pub fn is_effective_everywhere(&self, key: &str, value: &str) -> bool {
        let mut all_boards = true;
        let mut last: Option<(bool, String)> = None;
        for line in self.body.lines() {
            let line = line.trim();
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                all_boards = section.trim() == "all";
                continue;
            }
            if let Some((k, v)) = line.split_once('=')
                && k.trim() == key
            {
                last = Some((all_boards, v.trim().to_string()));
            }
        }
        matches!(last, Some((true, v)) if v == value)
    }

    /// The file with pinode's block set to `lines` (no block when `lines` is empty).
    pub fn render(&self, lines: &[String]) -> String {
        let mut out = self.body.clone();
        if lines.is_empty() {
            return out;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(self.newline);
        }
        let nl = self.newline;
        out.push_str(BLOCK_BEGIN);
        out.push_str(nl);
        out.push_str("[all]");
        out.push_str(nl);
        for line in lines {
            out.push_str(line);
            out.push_str(nl);
        }
        out.push_str(BLOCK_END);
        out.push_str(nl);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCK_64: &str =
        "dtparam=audio=on\n\n# Run in 64-bit mode\narm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n";

    #[test]
    fn stock_64_bit_config_needs_nothing() {
        let c = ConfigTxt::parse(STOCK_64);
        assert!(c.is_effective_everywhere("arm_64bit", "1"));
        assert_eq!(c.render(&[]), STOCK_64);
    }

    #[test]
    fn a_board_section_does_not_count() {
        let c = ConfigTxt::parse("[pi4]\narm_64bit=1\n");
        assert!(!c.is_effective_everywhere("arm_64bit", "1"));
        let c = ConfigTxt::parse("arm_64bit=1\n[pi5]\narm_64bit=0\n[all]\n");
        assert!(!c.is_effective_everywhere("arm_64bit", "1"));
    }

    #[test]
    fn block_is_appended_under_all_and_replaced() {
        let stock = "dtparam=audio=on\n[cm4]\notg_mode=1";
        let once = ConfigTxt::parse(stock).render(&["arm_64bit=1".into(), "dtparam=spi=on".into()]);
        assert_eq!(
            once,
            format!("{stock}\n{BLOCK_BEGIN}\n[all]\narm_64bit=1\ndtparam=spi=on\n{BLOCK_END}\n")
        );
        let parsed = ConfigTxt::parse(&once);
        assert_eq!(parsed.previous_block(), ["arm_64bit=1", "dtparam=spi=on"]);
        let twice = parsed.render(&["arm_64bit=1".into()]);
        assert_eq!(
            twice,
            format!("{stock}\n{BLOCK_BEGIN}\n[all]\narm_64bit=1\n{BLOCK_END}\n")
        );
        assert_eq!(ConfigTxt::parse(&twice).render(&[]), format!("{stock}\n"));
    }

    #[test]
    fn keeps_crlf() {
        let out = ConfigTxt::parse("a=1\r\n").render(&["b=2".into()]);
        assert_eq!(
            out,
            format!("a=1\r\n{BLOCK_BEGIN}\r\n[all]\r\nb=2\r\n{BLOCK_END}\r\n")
        );
    }
}
