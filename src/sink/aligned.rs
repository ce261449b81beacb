//! Page-aligned buffers, recycled through a pool.
//!
//! Direct I/O (`O_DIRECT`) needs buffers aligned to the device's logical block size; 4 KiB
//! covers every card. The pool keeps a fixed number of large buffers in circulation, so a
//! write of any size allocates the same few megabytes once, and a buffer shared by the writer
//! and the hasher goes back to the pool when the last of them lets go.

use std::ops::{Deref, DerefMut};
use std::sync::mpsc::{Receiver, Sender, channel};

/// Alignment of every buffer: a multiple of any logical block size a card reports.
const ALIGN: usize = 4096;

/// A zeroed buffer of `len` bytes whose first byte sits on an [`ALIGN`] boundary. (An
/// over-allocated `Vec` and an offset into it: no unsafe allocation code needed.)
pub(crate) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize) -> AlignedBuf {
        let storage = vec![0u8; len + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            storage,
            start,
            len,
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// A fixed set of buffers handed out by [`Pool::take`] and returned on drop.
pub(crate) struct Pool {
    free: Receiver<AlignedBuf>,
    home: Sender<AlignedBuf>,
}

impl Pool {
    pub(crate) fn new(count: usize, size: usize) -> Pool {
        let (home, free) = channel();
        for _ in 0..count {
            // The receiver is alive: sending cannot fail here.
            let _ = home.send(AlignedBuf::zeroed(size));
        }
        Pool { free, home }
    }

    /// The next free buffer, waiting until one comes back. `None` only if every holder has
    /// gone away without returning theirs (a thread died).
    pub(crate) fn take(&self) -> Option<Pooled> {
        let buf = self.free.recv().ok()?;
        Some(Pooled {
            buf: Some(buf),
            home: self.home.clone(),
            filled: 0,
            offset: 0,
        })
    }
}

/// A buffer on loan from a [`Pool`], with the image offset and the length it holds.
pub(crate) struct Pooled {
    buf: Option<AlignedBuf>,
    home: Sender<AlignedBuf>,
    /// Bytes of the buffer that are valid (the I/O length, a multiple of the block size).
    pub(crate) filled: usize,
    /// Where in the image the bytes belong.
    pub(crate) offset: u64,
}

impl Pooled {
    /// The valid bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.buf {
            Some(b) => &b[..self.filled],
            None => &[],
        }
    }

    /// The whole buffer, to fill.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        match &mut self.buf {
            Some(b) => &mut b[..],
            None => &mut [],
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            // The pool may be gone already (the operation ended): then the buffer is freed.
            let _ = self.home.send(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn buffers_are_aligned_and_come_back() {
        let pool = Pool::new(2, 8192);
        let mut a = pool.take().unwrap();
        assert_eq!(a.space().as_ptr() as usize % ALIGN, 0);
        assert_eq!(a.space().len(), 8192);
        a.space()[0] = 7;
        a.filled = 1;
        let shared = Arc::new(a);
        let other = Arc::clone(&shared);
        let _b = pool.take().unwrap();
        drop(shared);
        drop(other);
        // Both were out; the shared one is back once its last holder dropped it.
        let mut again = pool.take().unwrap();
        assert_eq!(again.space().len(), 8192);
    }
}
