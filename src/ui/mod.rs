//! Text from outside pinode (a card's status file, an image's `PRETTY_NAME`, a reader's
//! model) made safe to show: the library quotes it in errors and reports, the binary prints
//! it. Drawing and asking (progress bars, questions) are the binary's (`src/term/`).

pub mod size;
pub(crate) mod untrusted;

pub use untrusted::{Untrusted, quoted, terminal_safe};
