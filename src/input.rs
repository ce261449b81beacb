//! Reading the files pinode is handed (profiles, key and secret files, catalogs, images)
//! without trusting what the path names.
//!
//! A path may name a FIFO (a plain `open` waits for a writer forever), a character device
//! such as `/dev/zero` (endless), a terminal, or a sparse file of gigabytes. So every such
//! file is opened with `O_NONBLOCK | O_NOCTTY` (the open itself cannot hang or take a
//! terminal), the type is checked on the OPENED file (`fstat`, so a path swapped after a
//! check changes nothing), and the read stops one byte past the limit, whatever the size
//! said. `O_NONBLOCK` is cleared again after the check, so later reads behave as usual.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {kind}, not a regular file", path = .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} is {kind}, not an image file or a block device", path = .path.display())]
    NotImage { path: PathBuf, kind: &'static str },
    #[error("{path} is larger than {limit} bytes: too large for {what}", path = .path.display())]
    TooLarge {
        path: PathBuf,
        limit: u64,
        what: &'static str,
    },
    #[error("{path} is not UTF-8 text", path = .path.display())]
    NotText { path: PathBuf },
    #[error("{path} is readable by others; chmod 600 it", path = .path.display())]
    Exposed { path: PathBuf },
}

/// What kind of file a path named, for messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Opens `path` with `options` plus `O_NONBLOCK | O_NOCTTY`, so that the open cannot wait
/// for a FIFO's writer or take a terminal, then clears `O_NONBLOCK` so that reads and writes
/// behave as usual. The caller checks the type of the returned file.
pub(crate) fn open_no_wait(options: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    open_no_wait_with(options, path, OFlags::empty())
}

/// [`open_no_wait`] with more open flags (`O_NOFOLLOW`).
fn open_no_wait_with(
    options: &mut OpenOptions,
    path: &Path,
    extra: OFlags,
) -> std::io::Result<File> {
    let file = options
        .custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY | extra).bits() as i32)
        .open(path)?;
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok(file)
}

/// Opens `path` for reading (see [`open_no_wait`]) with its type, from the opened file.
fn open_checked(path: &Path) -> Result<(File, std::fs::Metadata), InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = open_no_wait(OpenOptions::new().read(true), path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    Ok((file, meta))
}

/// Opens the regular file at `path` for reading (see [`open_no_wait`]), with its metadata
/// from the opened file: for a caller that reads it its own way (a prefix, a bounded read
/// with its own verdict on what is too long) but must never hang on a FIFO or read a device.
pub(crate) fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata), InputError> {
    let (file, meta) = open_checked(path)?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok((file, meta))
}

/// The bytes of the regular file at `path`, at most `max_bytes` of them; `what` names the
/// file's role in the error ("a profile", "an OS catalog").
pub fn read_regular(
    path: &Path,
    max_bytes: u64,
    what: &'static str,
) -> Result<Vec<u8>, InputError> {
    let (file, meta) = open_regular(path)?;
    let too_large = || InputError::TooLarge {
        path: path.to_path_buf(),
        limit: max_bytes,
        what,
    };
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    // The size may change between fstat and read: the `take` is what bounds the read.
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The bytes of a file pinode keeps a secret in (a generated cluster token, a node's private
/// host key): a regular file, not a symbolic link (`O_NOFOLLOW`), that no one but its owner
/// may read or write. Type and mode are checked on the opened file, so nothing swapped in
/// between a check and the open is read. At most `max_bytes + 1` bytes are read: the caller
/// decides whether a longer file is an error (`TooLarge` is not returned here).
pub(crate) fn read_private(path: &Path, max_bytes: u64) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match open_no_wait_with(OpenOptions::new().read(true), path, OFlags::NOFOLLOW) {
        Ok(file) => file,
        // ELOOP: the last component is a symbolic link.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(InputError::NotRegular {
                path: path.to_path_buf(),
                kind: "a symbolic link",
            });
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(InputError::Exposed {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// [`read_regular`] for text: the contents must be UTF-8.
pub(crate) fn read_text(
    path: &Path,
    max_bytes: u64,
    what: &'static str,
) -> Result<String, InputError> {
    let bytes = read_regular(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|_| InputError::NotText {
        path: path.to_path_buf(),
    })
}

/// Opens an image to read: a regular file or a block device (a card read back), nothing
/// else (a FIFO or `/dev/zero` would never end).
pub(crate) fn open_image(path: &Path) -> Result<File, InputError> {
    let (file, meta) = open_checked(path)?;
    let file_type = meta.file_type();
    if file_type.is_file() || file_type.is_block_device() {
        Ok(file)
    } else {
        Err(InputError::NotImage {
            path: path.to_path_buf(),
            kind: kind_of(file_type),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_and_large_files_and_reads_small_ones() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "abc").unwrap();
        assert_eq!(read_regular(&small, 3, "a test").unwrap(), b"abc");
        assert!(matches!(
            read_regular(&small, 2, "a test"),
            Err(InputError::TooLarge { .. })
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 10, "a test"),
            Err(InputError::NotRegular { .. })
        ));
        assert!(matches!(
            read_regular(dir.path(), 10, "a test"),
            Err(InputError::NotRegular { .. })
        ));
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_regular(&fifo, 10, "a test"),
            Err(InputError::NotRegular { .. })
        ));
        assert!(matches!(
            open_image(&fifo),
            Err(InputError::NotImage { .. })
        ));
        assert!(open_image(&small).is_ok());
    }
}
