//! Read-only look into the ext4 root partition: which OS this really is.
//!
//! The boot partition says little about the OS generation; `/etc/os-release` on the root file
//! system says it exactly. `ext4-view` reads it without mounting and cannot write.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::disk::Partition;

/// Files pinode reads from the root partition (os-release and the like) are small text files;
/// anything bigger is refused, as on the boot partition (the same bound as
/// `bootfs::MAX_TEXT_FILE`, kept here so the root file system needs nothing of the boot one).
const MAX_TEXT_FILE: u64 = 1 << 20;

/// The root file system of an image, opened read-only.
pub(crate) struct RootFs {
    fs: ext4_view::Ext4,
}

/// Reads a partition of the base file directly: the root partition is never modified, so the
/// overlay has nothing to say about it.
struct PartitionReader {
    file: File,
    start: u64,
    len: u64,
}

impl ext4_view::Ext4Read for PartitionReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let end = start_byte
            .checked_add(dst.len() as u64)
            .filter(|end| *end <= self.len);
        if end.is_none() {
            return Err("read past the end of the partition".into());
        }
        self.file.read_exact_at(dst, self.start + start_byte)?;
        Ok(())
    }
}

impl RootFs {
    /// Opens the ext4 file system on `partition`; `None` if it is not ext4 (or unreadable).
    pub(crate) fn open(base: &File, partition: &Partition) -> Option<RootFs> {
        let reader = PartitionReader {
            file: base.try_clone().ok()?,
            start: partition.start,
            len: partition.size,
        };
        let fs = crate::guard::contain(|| ext4_view::Ext4::load(Box::new(reader)))
            .ok()?
            .ok()?;
        Some(RootFs { fs })
    }

    /// Reads a small text file (symlinks followed); `None` if absent or unreadable.
    pub(crate) fn read_text(&self, path: &str) -> Option<String> {
        let fs = &self.fs;
        let meta = crate::guard::contain(|| fs.metadata(path)).ok()?.ok()?;
        if meta.len() > MAX_TEXT_FILE {
            return None;
        }
        crate::guard::contain(|| fs.read_to_string(path)).ok()?.ok()
    }

    /// Whether `path` exists (symlinks followed).
    pub(crate) fn exists(&self, path: &str) -> bool {
        let fs = &self.fs;
        matches!(crate::guard::contain(|| fs.exists(path)), Ok(Ok(true)))
    }
}

/// The fields of `os-release(5)` that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OsRelease {
    /// `ID`: `debian`, `raspbian`, `ubuntu`. Read first: an Ubuntu `VERSION_ID` ("24.04")
    /// read as a Debian release would make Ubuntu 24.04 a "Trixie".
    pub id: Option<String>,
    /// `ID_LIKE`, space-separated (`debian`; Ubuntu flavours name `ubuntu` here).
    pub id_like: Option<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses `KEY=value` lines, with optional single or double quotes.
    pub fn parse(text: &str) -> OsRelease {
        let mut out = OsRelease::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value)
                .to_string();
            match key.trim() {
                "ID" => out.id = Some(value),
                "ID_LIKE" => out.id_like = Some(value),
                "VERSION_ID" => out.version_id = Some(value),
                "VERSION_CODENAME" => out.version_codename = Some(value),
                "PRETTY_NAME" => out.pretty_name = Some(value),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_fields() {
        let r = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID='12'\nVERSION_CODENAME=bookworm\nID=debian\n#x\n",
        );
        assert_eq!(r.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(r.version_id.as_deref(), Some("12"));
        assert_eq!(
            r.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(r.id.as_deref(), Some("debian"));
        assert_eq!(r.id_like, None);
    }

    #[test]
    fn parses_ubuntu() {
        let r = OsRelease::parse(include_str!("../fixtures/stock/os-release/ubuntu-24.04"));
        assert_eq!(r.id.as_deref(), Some("ubuntu"));
        assert_eq!(r.id_like.as_deref(), Some("debian"));
        assert_eq!(r.version_id.as_deref(), Some("24.04"));
        assert_eq!(r.version_codename.as_deref(), Some("noble"));
    }
}
