//! Where composed images (`disk::Composed`) go: image files with their bmaps
//! (`prepare`) and cards (`flash`). Finding a card and judging it safe to write is
//! [`crate::device`]'s; putting a node's image together and choosing the sink is
//! [`crate::pipeline`]'s.

pub(crate) mod aligned;
pub mod blockdev;
pub(crate) mod bmap;
pub mod card;
pub mod file;
