//! Where composed images go: image files (`prepare`), and later cards.

pub mod file;
