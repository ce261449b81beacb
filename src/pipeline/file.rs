//! The file sink of the pipeline (`prepare`): a node's image as `HOST.img[.xz|.zst]` with
//! its `.sha256`, optionally a `.bmap`, and the outputs of an earlier run that this one did
//! not rewrite taken away.

use std::path::{Path, PathBuf};

use crate::disk::Composed;
use crate::disk::usage::allocation;
use crate::progress::Progress;
use crate::sink::bmap;
use crate::sink::file::{
    Compression, WrittenImage, remove_stale_outputs, write_atomic, write_image,
};

use super::{NodeImage, PipelineError};

/// What to write for each node.
#[derive(Debug, Clone)]
pub struct FileOptions {
    pub out_dir: PathBuf,
    pub compression: Compression,
    /// Also write `HOST.img.bmap`.
    pub bmap: bool,
}

/// A written `.bmap`.
#[derive(Debug, Clone)]
pub struct WrittenBmap {
    pub path: PathBuf,
    /// Bytes of the image it maps.
    pub mapped_bytes: u64,
}

/// What was written for one node.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    pub image: WrittenImage,
    pub bmap: Option<WrittenBmap>,
    /// Outputs of an earlier run for this node, removed.
    pub removed: Vec<PathBuf>,
}

/// Each file as soon as it is in place (a later step may still fail).
#[derive(Debug)]
pub enum FileNote<'a> {
    Image(&'a WrittenImage),
    Bmap(&'a WrittenBmap),
    /// An output of an earlier run, removed.
    Removed(&'a Path),
}

/// Writes `node`'s image (named after its hostname) and, when asked, its bmap to
/// `options.out_dir`, then removes what an earlier run left that this one did not rewrite.
/// The image's bytes are reported to a task of `progress` labelled with the hostname; each
/// file to `note` once it is in place.
pub fn write_files(
    node: &NodeImage,
    options: &FileOptions,
    progress: &dyn Progress,
    note: &mut dyn FnMut(FileNote<'_>),
) -> Result<NodeFiles, PipelineError> {
    let host = &node.custom.hostname;
    let dir = &options.out_dir;
    let task = progress.task(host, node.len());
    let image = write_image(node.composed(), dir, host, options.compression, &task)?;
    note(FileNote::Image(&image));
    let bmap = if options.bmap {
        let bmap = write_bmap(node.composed(), node, dir, host)?;
        note(FileNote::Bmap(&bmap));
        Some(bmap)
    } else {
        None
    };
    let mut produced = vec![image.path.clone(), image.sha256_file.clone()];
    if let Some(b) = &bmap {
        produced.push(b.path.clone());
    }
    let removed = remove_stale_outputs(dir, host, &produced)?;
    for path in &removed {
        note(FileNote::Removed(path));
    }
    Ok(NodeFiles {
        image,
        bmap,
        removed,
    })
}

/// Writes `HOST.img.bmap` (found by `bmaptool copy` next to `HOST.img` and `HOST.img.xz`).
fn write_bmap(
    image: Composed<'_>,
    node: &NodeImage,
    dir: &Path,
    host: &str,
) -> Result<WrittenBmap, PipelineError> {
    let path = dir.join(format!("{host}.img.bmap"));
    let failed = |e: std::io::Error| PipelineError::path(&path, e);
    let allocation = allocation(&image, node.len(), node.table()).map_err(failed)?;
    let text = bmap::render(&image, node.len(), &allocation.map).map_err(failed)?;
    write_atomic(&path, text.as_bytes()).map_err(failed)?;
    Ok(WrittenBmap {
        mapped_bytes: allocation.map.bytes(),
        path,
    })
}
