//! A boundary around third-party parsers of untrusted bytes.
//!
//! The FAT, GPT and ext4 libraries are good, but an image is input from anywhere, and pinode
//! promises never to panic on input. Work on an image runs inside [`contain`]: a panic deep in
//! a library becomes an ordinary error, and since every edit lands in an in-memory overlay
//! first, nothing has been written when it happens.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// A panic caught at the boundary, with its message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("internal error while reading the image ({0}); the image may be corrupt")]
pub struct Contained(pub String);

/// Runs `f`, turning a panic into [`Contained`].
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, Contained> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        Contained(message)
    })
}
