//! An image prepared earlier (`pinode prepare`, a CI artifact) written to a card as it is:
//! `pinode write`. No profile, no overlay of changes: the composed view is the file itself
//! with an empty overlay, so the one card writer of [`super::card`] writes it, with the same
//! order, exclusive open and read-back as `flash`.
//!
//! The file is only ever opened read-only. A compressed one (`.xz`, `.zst`, `.gz`) is
//! decompressed into a private temporary file in the scratch folder, as `flash` does for a
//! compressed base ([`BaseImage`]): the card writer reads at offsets (the head goes last),
//! which a stream cannot give.
//!
//! What `prepare` writes beside the image is used when present: its `.sha256` files are
//! checked before the first byte reaches the card (a mismatch writes nothing), and its
//! `.bmap` names the blocks to write. Without a `.bmap`, the image's file systems tell
//! ([`crate::disk::usage`]), as for `flash`.

use std::path::{Path, PathBuf};

use crate::cache::decompress::{Format, hash_file};
use crate::device::discover::BlockDevice;
use crate::disk::usage::Allocation;
use crate::disk::{Composed, OverlayDisk, PartitionTable};
use crate::image::Image;
use crate::progress::Progress;
use crate::sink::card::{CardReport, TestHooks};

use super::base::Expected;
use super::card::{CardNote, CardOptions, CardSource, write_source};
use super::{BaseImage, PipelineError};

/// A `.sha256` file is a few lines; a `.bmap` a few thousand ranges at most.
const MAX_SUM_FILE: u64 = 64 << 10;
const MAX_BMAP_FILE: u64 = 16 << 20;

/// A prepared image, opened read-only and checked, ready to be written to cards.
pub struct PreparedImage {
    /// The file the user named.
    pub path: PathBuf,
    /// The `.sha256` files that were checked (empty: nothing vouched for the image).
    pub checked_by: Vec<PathBuf>,
    /// The `.bmap` whose ranges are written, when one was found.
    pub bmap: Option<PathBuf>,
    /// Names the progress tasks: the file name without `.img` and compression suffix.
    pub label: String,
    base: BaseImage,
    map: Option<Allocation>,
    table: PartitionTable,
    len: u64,
    disk: OverlayDisk,
}

/// What the `.sha256` files beside an image say it must hash to.
#[derive(Default)]
struct Sums {
    /// SHA-256 of the raw image, and the file that says so.
    raw: Option<(String, PathBuf)>,
    /// SHA-256 of the compressed file itself, and the file that says so.
    file: Option<(String, PathBuf)>,
}

impl PreparedImage {
    /// Opens `path` (raw or compressed), checks it against its `.sha256` files, decompresses
    /// it into `scratch_dir` when needed and reads its partition table and `.bmap`.
    pub fn open(
        path: &Path,
        scratch_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<PreparedImage, PipelineError> {
        crate::input::open_image(path)?;
        let format = Format::sniff(path).map_err(|e| PipelineError::path(path, e))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let raw_name = match format {
            Some(_) => strip_compression(&file_name),
            None => file_name.clone(),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let sums = read_sums(dir, &file_name, &raw_name, format.is_some())?;
        let mut checked_by = Vec::new();
        // The compressed file's own sum is checked before it is decompressed.
        if let Some((expected, sum_file)) = &sums.file {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let bar = progress.task("checking", len);
            let actual = hash_file(path, &bar).map_err(|e| PipelineError::path(path, e))?;
            bar.finish();
            if actual.sha256 != *expected {
                return Err(PipelineError::path(
                    path,
                    format!(
                        "SHA-256 mismatch: {} says {expected}, the file has {}; nothing written",
                        sum_file.display(),
                        actual.sha256
                    ),
                ));
            }
            checked_by.push(sum_file.clone());
        }
        let named_by = sums.raw.as_ref().map(|(_, f)| f.display().to_string());
        let expected = sums
            .raw
            .as_ref()
            .zip(named_by.as_deref())
            .map(|((sha256, _), named_by)| Expected { sha256, named_by });
        let base = BaseImage::open_expecting(path, scratch_dir, progress, expected)?;
        if let Some((_, f)) = sums.raw {
            checked_by.push(f);
        }
        let image = Image::open(&base.path, false)?;
        let len = image.len();
        let table = image.table().clone();
        let bmap_path = dir.join(format!("{raw_name}.bmap"));
        let map = read_bmap(&bmap_path, len)?;
        let label = raw_name
            .strip_suffix(".img")
            .unwrap_or(&raw_name)
            .to_string();
        Ok(PreparedImage {
            path: path.to_path_buf(),
            checked_by,
            bmap: map.as_ref().map(|_| bmap_path),
            label,
            base,
            map,
            table,
            len,
            disk: image.into_disk(),
        })
    }

    /// The raw file read (the image itself, or its decompressed copy): a card that is this
    /// file must be refused.
    pub fn raw_path(&self) -> &Path {
        &self.base.path
    }

    /// Size of the raw image.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the image to `disk` (already judged safe by the caller): the blocks the
    /// `.bmap` names, or those its file systems use, or all with `full`; head last; read
    /// back unless `options.verify` is false.
    pub fn write_to_card(
        &self,
        disk: &BlockDevice,
        options: CardOptions,
        hooks: &TestHooks,
        progress: &dyn Progress,
        note: &mut dyn FnMut(CardNote<'_>),
    ) -> Result<CardReport, PipelineError> {
        let source = CardSource {
            label: &self.label,
            path: &self.path,
            composed: Composed::new(self.disk.base(), self.len, self.disk.overlay()),
            table: &self.table,
            map: self.map.clone(),
        };
        write_source(&source, disk, options, hooks, progress, note)
    }
}

/// `HOST.img.xz` → `HOST.img` (the name `prepare` gives the raw image).
fn strip_compression(name: &str) -> String {
    for suffix in [".xz", ".zst", ".gz"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return stem.to_string();
        }
    }
    name.to_string()
}

/// Reads `FILE.sha256` (and, for a compressed file, `RAW.sha256`) in `dir`: `sha256sum`
/// lines naming the raw image or the compressed file. A `.sha256` of one line beside the
/// file applies to that file whatever name it gives (an artifact renamed after it was
/// summed). A sum file that cannot be read or parsed is an error: it was meant to be used.
fn read_sums(
    dir: &Path,
    file_name: &str,
    raw_name: &str,
    compressed: bool,
) -> Result<Sums, PipelineError> {
    let mut sums = Sums::default();
    let mut candidates = vec![dir.join(format!("{file_name}.sha256"))];
    if compressed {
        candidates.push(dir.join(format!("{raw_name}.sha256")));
    }
    for sum_file in candidates {
        if !sum_file.exists() {
            continue;
        }
        let text = crate::input::read_text(&sum_file, MAX_SUM_FILE, "a .sha256 file")?;
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let single = lines.len() == 1 && sum_file.ends_with(format!("{file_name}.sha256"));
        for (i, line) in lines {
            let bad = || {
                PipelineError::path(
                    &sum_file,
                    format!("line {}: not a sha256sum line (HASH  NAME)", i + 1),
                )
            };
            let (hash, name) = line
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(bad)?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let hash = hash.to_ascii_lowercase();
            let name = name.trim_start().trim_start_matches('*');
            let name = name.rsplit('/').next().unwrap_or(name);
            let entry = Some((hash, sum_file.clone()));
            if compressed && (name == file_name || (single && name != raw_name)) {
                sums.file = sums.file.take().or(entry);
            } else if name == raw_name || single {
                sums.raw = sums.raw.take().or(entry);
            }
        }
    }
    Ok(sums)
}

/// The blocks `bmap` maps, when it exists; it must be one made for an image of `len` bytes.
fn read_bmap(bmap: &Path, len: u64) -> Result<Option<Allocation>, PipelineError> {
    if !bmap.exists() {
        return Ok(None);
    }
    let text = crate::input::read_text(bmap, MAX_BMAP_FILE, "a .bmap file")?;
    let read = crate::sink::bmap::parse(&text).map_err(|e| PipelineError::path(bmap, e))?;
    if read.image_size != len {
        return Err(PipelineError::path(
            bmap,
            format!(
                "made for an image of {} bytes, the image has {len}: a .bmap of another image",
                read.image_size
            ),
        ));
    }
    Ok(Some(Allocation {
        map: read.map,
        partitions: Vec::new(),
        whole_because: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn sums_of_what_prepare_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n1.img.sha256"), format!("{A}  n1.img\n")).unwrap();
        std::fs::write(
            dir.path().join("n1.img.xz.sha256"),
            format!("{B}  n1.img.xz\n"),
        )
        .unwrap();
        let sums = read_sums(dir.path(), "n1.img.xz", "n1.img", true).unwrap();
        assert_eq!(sums.raw.unwrap().0, A);
        assert_eq!(sums.file.unwrap().0, B);
        let sums = read_sums(dir.path(), "n1.img", "n1.img", false).unwrap();
        assert_eq!(sums.raw.unwrap().0, A);
        assert!(sums.file.is_none());
    }

    #[test]
    fn a_bad_sum_line_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n1.img.sha256"), "\nnot a sum\n").unwrap();
        let e = read_sums(dir.path(), "n1.img", "n1.img", false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("n1.img.sha256: line 2"), "{e}");
    }

    #[test]
    fn compression_suffixes() {
        assert_eq!(strip_compression("a.img.zst"), "a.img");
        assert_eq!(strip_compression("a.img"), "a.img");
    }
}
