//! Progress events of the library drawn as indicatif bars (see `pinode::progress`): where a
//! bar appears is still decided by [`ProgressPolicy`] (a terminal, not `--json`, `-q` or CI).

use indicatif::ProgressBar;
use pinode::progress::{Event, Progress, Task};
use pinode::ui::progress::ProgressPolicy;

/// Draws each task as a byte-counting bar, when the policy allows bars.
#[derive(Debug, Clone, Copy)]
pub struct Bars(pub ProgressPolicy);

impl Progress for Bars {
    fn task(&self, label: &str, total: u64) -> Task {
        let bar = self.0.bytes(total, label);
        if bar.is_hidden() {
            return Task::hidden();
        }
        Task::new(move |event| draw(&bar, event))
    }
}

fn draw(bar: &ProgressBar, event: Event) {
    match event {
        Event::Length(n) => bar.set_length(n),
        Event::Position(n) => bar.set_position(n),
        Event::Advance(n) => bar.inc(n),
        Event::Finish => bar.finish_and_clear(),
    }
}
