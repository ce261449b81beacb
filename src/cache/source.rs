//! The base image for `prepare` and `render`: a local raw image used as is, or a compressed
//! one decompressed once into a temporary sparse file next to the output.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::profile::LoadedProfile;
use crate::ui::progress::ProgressPolicy;

use super::decompress::{Format, decompress};

/// A raw image on disk, possibly temporary.
pub struct SourceImage {
    pub path: PathBuf,
    /// The original file, when it had to be decompressed.
    pub original: PathBuf,
    _temp: Option<tempfile::TempPath>,
}

impl SourceImage {
    /// `explicit` (from `--image`) or the profile's `os.image` when that is a local path.
    pub fn locate(
        profile: &LoadedProfile,
        explicit: Option<&Path>,
    ) -> Result<Option<PathBuf>, Error> {
        if let Some(path) = explicit {
            return Ok(Some(path.to_path_buf()));
        }
        let image = &profile.profile.os.image;
        if image.starts_with("https://") || image.starts_with("http://") {
            return Ok(None);
        }
        let looks_like_path = image.contains('/') || image.contains(".img");
        if !looks_like_path {
            return Ok(None);
        }
        let path = crate::profile::secrets::expand_path(image, &profile.base_dir());
        if !path.exists() {
            return Err(Error::Field(profile.error_at(
                "os.image",
                format!("{} does not exist", path.display()),
            )));
        }
        Ok(Some(path))
    }

    /// Opens `path`, decompressing it into `scratch_dir` when it is compressed.
    pub fn open(
        path: &Path,
        scratch_dir: &Path,
        progress: ProgressPolicy,
    ) -> Result<SourceImage, Error> {
        let format = Format::sniff(path).map_err(|e| Error::path(path, e))?;
        let Some(format) = format else {
            return Ok(SourceImage {
                path: path.to_path_buf(),
                original: path.to_path_buf(),
                _temp: None,
            });
        };
        let temp = tempfile::Builder::new()
            .prefix(".pinode-base.")
            .suffix(".img")
            .tempfile_in(scratch_dir)
            .map_err(|e| Error::path(scratch_dir, e))?;
        let compressed = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = progress.bytes(compressed, "decompressing");
        decompress(path, format, temp.as_file(), &bar).map_err(|e| Error::path(path, e))?;
        bar.finish_and_clear();
        let temp = temp.into_temp_path();
        Ok(SourceImage {
            path: temp.to_path_buf(),
            original: path.to_path_buf(),
            _temp: Some(temp),
        })
    }
}
