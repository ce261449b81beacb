//! A boundary around third-party parsers of untrusted bytes.
//!
//! The FAT, GPT and ext4 libraries are good, but an image is input from anywhere, and pinode
//! promises never to panic on input. Work on an image runs inside [`contain`]: a panic deep in
//! a library becomes an ordinary error, and since every edit lands in an in-memory overlay
//! first, nothing has been written when it happens.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A panic caught at the boundary, with its message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("internal error while reading the image ({0}); the image may be corrupt")]
pub struct Contained(pub String);

thread_local! {
    static INSIDE: Cell<u32> = const { Cell::new(0) };
}

/// Whether the current thread is inside [`contain`] (its panics become errors, so a panic hook
/// should stay quiet).
pub fn is_contained() -> bool {
    INSIDE.with(|d| d.get() > 0)
}

/// Runs `f`, turning a panic into [`Contained`].
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, Contained> {
    INSIDE.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|d| d.set(d.get().saturating_sub(1)));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        Contained(message)
    })
}
