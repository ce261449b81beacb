//! Terminal output: progress bars and their policy.

pub mod progress;
