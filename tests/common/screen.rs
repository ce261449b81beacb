//! A terminal screen, enough to read what a person sees once a run has ended, drawn by the
//! `vt100` crate (a terminal emulator's parser) rather than by the tests' own reading of
//! escape sequences.

pub struct Screen {
    parser: vt100::Parser,
}

/// Rows enough that a run's whole output stays on the screen (nothing scrolls away).
const ROWS: u16 = 2000;

impl Screen {
    /// `bytes` (a run's whole output, as a terminal received it) drawn on a screen `width`
    /// columns wide.
    pub fn of(bytes: &[u8], width: u16) -> Screen {
        let size = |n: u16| std::num::NonZeroU16::new(n).expect("a screen size above 0");
        let mut parser = vt100::Parser::new(size(ROWS), size(width), 0);
        parser.process(bytes);
        Screen { parser }
    }

    /// The lines, without trailing blanks, and without blank lines at the end.
    pub fn lines(&self) -> Vec<String> {
        let width = self.parser.screen().size().1.get();
        let mut lines: Vec<String> = self
            .parser
            .screen()
            .rows(0, width)
            .map(|r| r.trim_end().to_string())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
}
