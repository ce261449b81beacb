//! Progress bars for long byte streams, shown only where someone is watching: on a terminal,
//! not with `--json`, `-q`, or in CI. They draw the events of the library's
//! [`pinode::progress::Task`]s.

use std::io::IsTerminal;

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use pinode::progress::{Event, Progress, Task};

/// Progress bars on stderr, or nothing when nobody watches.
#[derive(Debug, Clone, Copy)]
pub struct TerminalProgress {
    enabled: bool,
}

impl TerminalProgress {
    /// Bars on stderr when it is a terminal, unless `quiet` or running under CI.
    pub fn detect(quiet: bool) -> Self {
        let ci = pinode::edge::settings().ci;
        TerminalProgress {
            enabled: !quiet && !ci && std::io::stderr().is_terminal(),
        }
    }

    /// Never draw.
    pub fn hidden() -> Self {
        TerminalProgress { enabled: false }
    }
}

/// A byte-counting bar with rate and ETA, drawing to `target`.
fn styled(total: u64, message: impl Into<String>, target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(
        "{msg:>14} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.into());
    bar
}

impl Progress for TerminalProgress {
    fn task(&self, label: &str, total: u64) -> Task {
        if !self.enabled {
            return Task::hidden();
        }
        // Drawn from its first bytes on, and cleared when finished or dropped unfinished
        // (a failed write, a read-back not done). A task made ahead of its turn (the card's
        // read-back is made with its write) would otherwise draw at once on the line of the
        // bar in progress, and the one dropped unfinished would stay on the screen.
        let bar = styled(total, label, ProgressDrawTarget::hidden())
            .with_finish(ProgressFinish::AndClear);
        let shown = AtomicBool::new(false);
        Task::new(move |event| {
            if matches!(event, Event::Position(_) | Event::Advance(_))
                && !shown.swap(true, Ordering::Relaxed)
            {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            match event {
                Event::Length(n) => bar.set_length(n),
                Event::Position(n) => bar.set_position(n),
                Event::Advance(n) => bar.inc(n),
                Event::Finish => bar.finish_and_clear(),
            }
        })
    }

    fn spinner(&self, label: &str) -> Task {
        if !self.enabled {
            return Task::hidden();
        }
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            spinner.set_style(style);
        }
        spinner.set_message(label.to_string());
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
        Task::new(move |event| {
            if event == Event::Finish {
                spinner.finish_and_clear();
            }
        })
    }
}

/// Several cards written at once (`flash --parallel`): one bar per task, stacked on stderr
/// (indicatif's `MultiProgress`), each with its own rate and ETA. Nothing is drawn where
/// [`TerminalProgress`] would draw nothing.
#[derive(Debug, Clone)]
pub struct MultiBars {
    multi: Option<MultiProgress>,
}

impl MultiBars {
    pub fn new(single: TerminalProgress) -> Self {
        MultiBars {
            multi: single
                .enabled
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Stops drawing (a question is asked on stderr); the work behind the bars goes on, and
    /// is never blocked by it (`suspend` would hold the writers' threads on their next tick).
    pub fn hide(&self) {
        if let Some(m) = &self.multi {
            m.set_draw_target(ProgressDrawTarget::hidden());
        }
    }

    /// Draws again after [`MultiBars::hide`].
    pub fn show(&self) {
        if let Some(m) = &self.multi {
            m.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Runs `f` (a line printed) with the bars out of the way, then redraws them.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }
}

impl Progress for MultiBars {
    fn task(&self, label: &str, total: u64) -> Task {
        let Some(multi) = self.multi.clone() else {
            return Task::hidden();
        };
        // Joins the stack with its first bytes, and leaves it when finished: a card's
        // read-back bar is made with its write bar and must not hold a line until it starts.
        let bar = styled(total, label, ProgressDrawTarget::hidden())
            .with_finish(ProgressFinish::AndClear);
        let shown = AtomicBool::new(false);
        Task::new(move |event| {
            if matches!(event, Event::Position(_) | Event::Advance(_))
                && !shown.swap(true, Ordering::Relaxed)
            {
                multi.add(bar.clone());
            }
            match event {
                Event::Length(n) => bar.set_length(n),
                Event::Position(n) => bar.set_position(n),
                Event::Advance(n) => bar.inc(n),
                Event::Finish => {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
        })
    }
}
