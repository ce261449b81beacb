//! What the user sees: progress bars and questions.

pub mod progress;
pub mod prompt;
