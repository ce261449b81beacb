//! The block devices of this machine: which ones could be cards (discovery through `/sys`
//! and `/proc`), whether writing one is safe (safety verdicts), and whether two paths are
//! the same device or file (identity).

pub mod discover;
pub mod identity;
pub mod safety;
