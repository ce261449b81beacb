//! Where composed images go: image files (`prepare`) and cards (`flash`), and how a card is
//! found and judged safe to write.

pub mod aligned;
pub mod blockdev;
pub mod bmap;
pub mod card;
pub mod file;
