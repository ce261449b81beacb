//! A terminal screen, enough to read what a person sees once a run has ended: text with
//! automatic wrap at the width, carriage return, line feed, cursor up/down/left/right/column
//! and erase in line or display. Colours, cursor visibility and OSC titles are dropped.

pub struct Screen {
    width: usize,
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

impl Screen {
    /// `bytes` (a run's whole output, as a terminal received it) drawn on a screen `width`
    /// columns wide.
    pub fn of(bytes: &[u8], width: usize) -> Screen {
        let mut screen = Screen {
            width,
            rows: vec![Vec::new()],
            row: 0,
            col: 0,
        };
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => screen.col = 0,
                '\n' => screen.down(1),
                '\x08' => screen.col = screen.col.saturating_sub(1),
                '\x07' => {}
                '\x1b' => match chars.next() {
                    Some('[') => {
                        let mut params = String::new();
                        let mut last = None;
                        for c in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&c) {
                                last = Some(c);
                                break;
                            }
                            params.push(c);
                        }
                        screen.csi(&params, last);
                    }
                    // OSC: up to BEL or ESC \.
                    Some(']') => {
                        while let Some(c) = chars.next() {
                            if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                                break;
                            }
                        }
                    }
                    _ => {}
                },
                c if c.is_control() => {}
                c => screen.put(c),
            }
        }
        screen
    }

    /// The lines, without trailing blanks, and without blank lines at the end.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_string())
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }

    fn line(&mut self) -> &mut Vec<char> {
        while self.rows.len() <= self.row {
            self.rows.push(Vec::new());
        }
        &mut self.rows[self.row]
    }

    fn down(&mut self, n: usize) {
        self.row += n;
        self.line();
    }

    fn put(&mut self, c: char) {
        if self.col >= self.width {
            self.col = 0;
            self.down(1);
        }
        let col = self.col;
        let line = self.line();
        if line.len() <= col {
            line.resize(col + 1, ' ');
        }
        line[col] = c;
        self.col += 1;
    }

    fn csi(&mut self, params: &str, last: Option<char>) {
        let n = |default: usize| {
            params
                .trim_start_matches('?')
                .split(';')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(default)
        };
        match last {
            Some('A') => self.row = self.row.saturating_sub(n(1).max(1)),
            Some('B') => self.down(n(1).max(1)),
            Some('C') => self.col = (self.col + n(1).max(1)).min(self.width),
            Some('D') => self.col = self.col.saturating_sub(n(1).max(1)),
            Some('G') => self.col = n(1).max(1) - 1,
            Some('K') => {
                let col = self.col;
                let line = self.line();
                match n(0) {
                    0 => line.truncate(col),
                    1 => line.iter_mut().take(col + 1).for_each(|c| *c = ' '),
                    _ => line.clear(),
                }
            }
            Some('J') => match n(0) {
                0 => {
                    let col = self.col;
                    self.line().truncate(col);
                    self.rows.truncate(self.row + 1);
                }
                _ => {
                    self.rows = vec![Vec::new()];
                    self.row = 0;
                }
            },
            _ => {}
        }
    }
}
