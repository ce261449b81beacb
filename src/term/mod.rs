//! The terminal, which only the binary touches: progress bars drawn from the library's
//! progress events, and questions asked on stderr with answers read from stdin. The library
//! reports progress through `pinode::progress` and never prints.

pub mod progress;
pub mod prompt;
