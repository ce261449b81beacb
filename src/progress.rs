//! Progress of long byte streams (downloads, decompression, writes, read-back), reported as
//! events. The library never draws anything: it reports to a [`Task`] that its caller made
//! through a [`Progress`], and the binary turns the events into progress bars, or drops them
//! under `--json`, `-q` and CI.

/// One thing that happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The total is now known (or changed), in bytes.
    Length(u64),
    /// This many bytes are done in all.
    Position(u64),
    /// This many more bytes are done.
    Advance(u64),
    /// The task ended (successfully or not): its display goes away.
    Finish,
}

type Listener = Box<dyn Fn(Event) + Send + Sync>;

/// The progress of one task, as the code doing the work sees it.
pub struct Task {
    listener: Option<Listener>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("listened", &self.listener.is_some())
            .finish()
    }
}

impl Task {
    /// A task nobody watches.
    pub fn hidden() -> Task {
        Task { listener: None }
    }

    /// A task whose events go to `listener`.
    pub fn new(listener: impl Fn(Event) + Send + Sync + 'static) -> Task {
        Task {
            listener: Some(Box::new(listener)),
        }
    }

    fn send(&self, event: Event) {
        if let Some(l) = &self.listener {
            l(event);
        }
    }

    pub(crate) fn inc(&self, bytes: u64) {
        self.send(Event::Advance(bytes));
    }

    pub(crate) fn set_position(&self, bytes: u64) {
        self.send(Event::Position(bytes));
    }

    pub(crate) fn set_length(&self, bytes: u64) {
        self.send(Event::Length(bytes));
    }

    /// Ends the task: its display goes away.
    pub(crate) fn finish(&self) {
        self.send(Event::Finish);
    }
}

/// Makes tasks: implemented by the binary (progress bars) and by [`Silent`].
pub trait Progress: Send + Sync {
    /// A new task called `label` (`downloading`, a hostname, …) of `total` bytes.
    fn task(&self, label: &str, total: u64) -> Task;

    /// A wait of unknown length called `label` (a server that may not answer): a spinner
    /// where someone watches, so that a pause is never a blank screen. Only
    /// [`Event::Finish`] is sent to it.
    fn spinner(&self, _label: &str) -> Task {
        Task::hidden()
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn task(&self, _label: &str, _total: u64) -> Task {
        Task::hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn events_reach_the_listener_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = Task::new(move |e| s.lock().unwrap().push(e));
        task.set_length(10);
        task.inc(4);
        task.set_position(9);
        task.finish();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                Event::Length(10),
                Event::Advance(4),
                Event::Position(9),
                Event::Finish
            ]
        );
        Task::hidden().inc(1);
    }
}
