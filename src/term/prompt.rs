//! Questions on the terminal that also work with answers piped in.
//!
//! Flashing cards one after another asks short questions ("write worker-2 to /dev/sdb?",
//! "insert the next card") while it watches for a card to appear, so answers are read as
//! lines by a background thread, and the caller can wait for one with a timeout. The same
//! code serves a person at a terminal and a script feeding `y` lines on stdin.

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
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

/// How long [`Prompter::closed`] gives a pipe to end before counting it as open.
const STREAM_WAIT: Duration = Duration::from_millis(200);
/// …and a file or device, which ends at once unless the machine is very busy.
const FILE_WAIT: Duration = Duration::from_secs(5);

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

    /// Whether nobody will answer: standard input is not a terminal and is closed
    /// (`</dev/null`, an empty file, a pipe already ended), so that a run that will need
    /// answers can say what to pass instead before any work. A file or `/dev/null` ends at
    /// once, and is waited for as long as the reading thread needs; a pipe or socket may
    /// still be written to, so it gets [`STREAM_WAIT`], then counts as open. A line that
    /// comes meanwhile is kept as the next answer.
    pub fn closed(&self) -> bool {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return false;
        }
        let stream = stdin
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| std::fs::File::from(fd).metadata())
            .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
            .unwrap_or(true);
        self.closed_within(if stream { STREAM_WAIT } else { FILE_WAIT })
    }

    fn closed_within(&self, wait: Duration) -> bool {
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
