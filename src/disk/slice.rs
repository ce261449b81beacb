//! A byte-range view of a larger stream: a partition seen as a disk of its own.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::overlay::resolve_seek;

/// `len` bytes of `inner` starting at `start`, with positions relative to `start`.
///
/// Reads stop at the end of the range and writes past it fail, so a file-system driver that
/// misbehaves on a corrupt volume cannot touch the partition table or the next partition.
#[derive(Debug)]
pub(crate) struct Slice<T> {
    inner: T,
    start: u64,
    len: u64,
    pos: u64,
}

impl<T: Seek> Slice<T> {
    pub(crate) fn new(inner: T, start: u64, len: u64) -> Self {
        Slice {
            inner,
            start,
            len,
            pos: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    fn position_inner(&mut self) -> io::Result<()> {
        self.inner
            .seek(SeekFrom::Start(self.start + self.pos))
            .map(|_| ())
    }
}

impl<T: Read + Seek> Read for Slice<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.position_inner()?;
        let n = self.inner.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<T: Write + Seek> Write for Slice<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.len.saturating_sub(self.pos);
        if left < buf.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        self.position_inner()?;
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Seek> Seek for Slice<T> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = resolve_seek(pos, self.pos, self.len)?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn confines_reads_and_writes_to_the_range() {
        let mut slice = Slice::new(Cursor::new(vec![0u8; 100]), 10, 20);
        slice.write_all(&[1u8; 20]).unwrap();
        assert!(slice.write_all(&[1u8]).is_err());
        slice.seek(SeekFrom::Start(15)).unwrap();
        let mut rest = Vec::new();
        slice.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 5);
        let inner = slice.into_inner().into_inner();
        assert_eq!(inner.iter().filter(|b| **b == 1).count(), 20);
        assert_eq!(inner[9], 0);
        assert_eq!(inner[30], 0);
    }
}
