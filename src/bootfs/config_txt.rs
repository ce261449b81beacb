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
        let mut newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut body = String::new();
        let mut previous_block = Vec::new();
        // Markers pair up like brackets: an END closes the latest open BEGIN, and the pair
        // with everything between is pinode's. Marker lines that pair with nothing (a
        // truncated or hand-edited file) stay in the body as ordinary text, so none of the
        // user's lines is dropped, and the body never holds a BEGIN before an END: appending a
        // fresh block and reading it back gives the same body (patching again is a no-op).
        // Each open block: its text verbatim (for the body, should it stay open) and its lines.
        let mut open: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim_end_matches(['\r', '\n']);
            if trimmed == BLOCK_BEGIN {
                open.push((line.to_string(), Vec::new()));
            } else if trimmed == BLOCK_END
                && let Some((raw, mut lines)) = open.pop()
            {
                previous_block.append(&mut lines);
                // pinode's block keeps the line ending it was written with, so that patching
                // again is a no-op even where guessing from the whole file would now differ
                // (a body ending in a lone \r, then the \n that pinode added after it).
                newline = if raw.split('\n').next().is_some_and(|l| l.ends_with('\r')) {
                    "\r\n"
                } else {
                    "\n"
                };
            } else if let Some((raw, lines)) = open.last_mut() {
                raw.push_str(line);
                if trimmed != "[all]" {
                    lines.push(trimmed.to_string());
                }
            } else {
                body.push_str(line);
            }
        }
        for (raw, _) in open {
            body.push_str(&raw);
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
    fn an_unclosed_block_is_ordinary_text() {
        // Found by fuzzing (fuzz/, target config_txt): an opening marker without a closing
        // one used to swallow every line after it, and the patched file lost them.
        let text = format!("a=1\n{BLOCK_BEGIN}\nuser_line=1\n[pi4]\n");
        let c = ConfigTxt::parse(&text);
        assert!(c.previous_block().is_empty());
        assert_eq!(c.render(&[]), text);
        let patched = c.render(&["b=2".into()]);
        assert!(patched.starts_with(&text));
        let again = ConfigTxt::parse(&patched);
        assert_eq!(again.previous_block(), ["b=2"]);
        assert_eq!(again.render(&["b=2".into()]), patched);
    }

    #[test]
    fn a_lone_cr_at_the_end_does_not_flip_the_line_ending() {
        // Found by fuzzing: "x\r" got "\n" + an LF block; read back, the new "\r\n" made the
        // file look CRLF, so patching again rewrote the whole block.
        let once = ConfigTxt::parse("x\r").render(&["b=2".into()]);
        assert_eq!(
            once,
            format!("x\r\n{BLOCK_BEGIN}\n[all]\nb=2\n{BLOCK_END}\n")
        );
        assert_eq!(ConfigTxt::parse(&once).render(&["b=2".into()]), once);
    }

    #[test]
    fn markers_pair_up_like_brackets() {
        // Found by fuzzing: taking out the inner block used to leave the outer markers
        // adjacent, so the next read saw them as a block and the body changed.
        let text = format!("{BLOCK_BEGIN}\n{BLOCK_BEGIN}\n{BLOCK_END}\n{BLOCK_END}");
        let c = ConfigTxt::parse(&text);
        assert_eq!(c.render(&[]), "");
        let text = format!("{BLOCK_END}\nx=1\n{BLOCK_BEGIN}\ny=2\n");
        let c = ConfigTxt::parse(&text);
        assert_eq!(c.render(&[]), text, "unpaired markers are ordinary text");
        let patched = c.render(&["b=2".into()]);
        let again = ConfigTxt::parse(&patched);
        assert_eq!(again.render(&[]), text);
        assert_eq!(again.render(&["b=2".into()]), patched);
    }

    #[test]
    fn keeps_crlf() {
        let out = ConfigTxt::parse("a=1\r\n").render(&["b=2".into()]);
        assert_eq!(
            out,
            format!("a=1\r\n{BLOCK_BEGIN}\r\n[all]\r\nb=2\r\n{BLOCK_END}\r\n")
        );
    }

    /// Ubuntu Server's stock file (canonical/pi-gadget, see fixtures/make-images.sh):
    /// `[all]` first, `kernel=vmlinuz`, `initramfs initrd.img followkernel` (no `=`),
    /// `arm_64bit=1` in an `[all]` section after `[pi4]`, a final `[cm4]` … `[all]`.
    #[test]
    fn ubuntu_stock_config_is_64_bit_everywhere_and_takes_a_block() {
        let stock = include_str!("../../fixtures/stock/ubuntu/config.txt");
        let c = ConfigTxt::parse(stock);
        assert!(c.is_effective_everywhere("arm_64bit", "1"));
        assert!(c.is_effective_everywhere("kernel", "vmlinuz"));
        assert!(
            !c.is_effective_everywhere("max_framebuffers", "2"),
            "[pi4] only"
        );
        assert_eq!(c.render(&[]), stock);
        let patched = c.render(&["dtparam=spi=on".into()]);
        assert_eq!(
            patched,
            format!("{stock}{BLOCK_BEGIN}\n[all]\ndtparam=spi=on\n{BLOCK_END}\n")
        );
        let again = ConfigTxt::parse(&patched);
        assert_eq!(again.previous_block(), ["dtparam=spi=on"]);
        assert_eq!(again.render(&["dtparam=spi=on".into()]), patched);
        // Without its `arm_64bit=1`, the file needs pinode's line.
        let without = stock.replace("arm_64bit=1\n", "");
        assert!(!ConfigTxt::parse(&without).is_effective_everywhere("arm_64bit", "1"));
    }
}
