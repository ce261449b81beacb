//! Questions on the terminal that also work with answers piped in.
//!
//! Flashing cards one after another asks short questions ("write worker-2 to /dev/sdb?",
//! "insert the next card") while it watches for a card to appear, so answers are read as
//! lines by a background thread, and the caller can wait for one with a timeout. The same
//! code serves a person at a terminal and a script feeding `y` lines on stdin.

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

/// A piped answer is not echoed by a terminal: show it, so that a log of the run reads like
/// the conversation it was.
fn echoed(line: String) -> Reply {
    if !std::io::stdin().is_terminal() {
        eprintln!("{}", pinode::ui::Untrusted(&line));
    }
    Reply::Line(line)
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A line, trimmed.
    Line(String),
    /// Standard input is closed: nobody will answer.
    Closed,
    /// Nothing yet (only from [`Prompter::poll`]).
    Pending,
}

pub struct Prompter {
    lines: Receiver<String>,
    /// A line read ahead by [`Prompter::closed_within`], the next answer.
    ahead: RefCell<Option<String>>,
}

impl Default for Prompter {
    fn default() -> Self {
        Self::new()
    }
}

impl Prompter {
    /// Starts reading standard input in the background.
    pub fn new() -> Prompter {
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim().to_string()).is_err() {
                    break;
                }
            }
        });
        Prompter {
            lines,
            ahead: RefCell::new(None),
        }
    }

    /// Shows `question` on stderr (the data stays on stdout), its control characters
    /// escaped: a question may name a card's model or contents.
    pub fn show(&self, question: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{} ", pinode::ui::terminal_safe(question));
        let _ = err.flush();
    }

    /// Asks and waits for the answer.
    pub fn ask(&self, question: &str) -> Reply {
        self.show(question);
        self.next()
    }

    /// Whether standard input turns out to be closed (`</dev/null`, a finished pipe) within
    /// `wait`, so that a run that will need answers can say what to pass instead before
    /// any work. A line that comes meanwhile is kept as the next answer.
    pub fn closed_within(&self, wait: Duration) -> bool {
        if self.ahead.borrow().is_some() {
            return false;
        }
        match self.lines.recv_timeout(wait) {
            Ok(line) => {
                *self.ahead.borrow_mut() = Some(line);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    /// Waits for the next line.
    pub fn next(&self) -> Reply {
        if let Some(line) = self.ahead.borrow_mut().take() {
            return echoed(line);
        }
        match self.lines.recv() {
            Ok(line) => echoed(line),
            Err(_) => Reply::Closed,
        }
    }

    /// The next line if one comes within `wait`.
    pub fn poll(&self, wait: Duration) -> Reply {
        if let Some(line) = self.ahead.borrow_mut().take() {
            return echoed(line);
        }
        match self.lines.recv_timeout(wait) {
            Ok(line) => echoed(line),
            Err(RecvTimeoutError::Timeout) => Reply::Pending,
            Err(RecvTimeoutError::Disconnected) => Reply::Closed,
        }
    }

    /// A yes/no question whose default is no (a line, so it waits for Enter); `None` when
    /// standard input is closed and nobody will answer.
    pub fn confirm(&self, question: &str) -> Option<bool> {
        match self.ask(&format!("{question} [y/N]")) {
            Reply::Line(answer) => {
                Some(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
            }
            Reply::Closed | Reply::Pending => None,
        }
    }
}
