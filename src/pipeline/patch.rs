//! Customising an image file or a card in place (`patch`): the node's changes are collected
//! in the overlay first and written only by [`PatchedImage::commit`], so that a refused patch
//! leaves the target exactly as it was.

use std::fs::File;
use std::path::Path;

use crate::bootfs::apply::ApplyReport;
use crate::bootfs::content::BootContent;
use crate::image::Image;
use crate::osinfo::OsInfo;
use crate::profile::{LoadedProfile, NodeConfig};

use super::PipelineError;
use super::node::customise_with;

/// An image or card opened read-write, customised as one node, not yet written.
pub struct PatchedImage {
    pub custom: BootContent,
    pub report: ApplyReport,
    /// The plan's notes for the user, for the command to print.
    pub notes: Vec<String>,
    pub os: OsInfo,
    image: Image,
}

impl PatchedImage {
    /// Opens `target` (exclusively, for a block device: that fails while any of its
    /// partitions is mounted) and customises it as `node` of `profile`, in memory.
    pub fn new(
        target: &Path,
        profile: &LoadedProfile,
        node: &NodeConfig,
        charts: &crate::ci::chart_source::Charts,
    ) -> Result<PatchedImage, PipelineError> {
        let mut image = Image::open(target, true)?;
        let os = image.detect_os(None, profile.init_override())?;
        let (custom, report, notes) = customise_with(&mut image, profile, node, &os, charts)?;
        Ok(PatchedImage {
            custom,
            report,
            notes,
            os,
            image,
        })
    }

    /// Blocks the changes touch.
    pub fn changed_blocks(&self) -> usize {
        self.image.disk().overlay().len()
    }

    /// The open target (to make an image file private before secrets are written to it).
    pub fn file(&self) -> &File {
        self.image.base()
    }

    /// Writes the changes; returns the bytes written.
    pub fn commit(&mut self) -> Result<u64, PipelineError> {
        Ok(self.image.commit()?)
    }
}
