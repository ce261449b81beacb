//! Progress bars for long byte streams, shown only where someone is watching: on a terminal,
//! not with `--json`, `-q`, or in CI.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress bars may be drawn at all.
#[derive(Debug, Clone, Copy)]
pub struct ProgressPolicy {
    enabled: bool,
}

impl ProgressPolicy {
    /// Bars on stderr when it is a terminal, unless `quiet` or running under CI.
    pub fn detect(quiet: bool) -> Self {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        ProgressPolicy {
            enabled: !quiet && !ci && std::io::stderr().is_terminal(),
        }
    }

    /// Never draw.
    pub fn hidden() -> Self {
        ProgressPolicy { enabled: false }
    }

    /// A byte-counting bar with rate and ETA.
    pub fn bytes(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(message.into());
        bar
    }
}
