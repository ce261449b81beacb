//! What the user sees: progress bars, questions, and untrusted text made safe to show.

pub mod progress;
pub mod prompt;
pub mod untrusted;

pub use untrusted::{Untrusted, quoted, terminal_safe};
