//! One node's image: the base with the node's changes in an overlay, never written back to
//! the base. The node is planned (secrets, role, tokens), rendered for the base's OS and
//! applied to the boot partition here; sinks then read the composed bytes.

use std::path::PathBuf;

use super::AirgapPayload;
use crate::bootfs::apply::{ApplyReport, apply};
use crate::bootfs::content::BootContent;
use crate::disk::{Composed, OverlayDisk, PartitionTable};
use crate::image::Image;
use crate::osinfo::OsInfo;
use crate::plan::NodePlan;
use crate::profile::{LoadedProfile, NodeConfig};

use super::{BaseImage, PipelineError};

/// The base image customised as one node, in memory.
pub struct NodeImage {
    pub custom: BootContent,
    pub report: ApplyReport,
    /// The plan's notes for the user (e.g. that the cluster token was generated and where it
    /// is kept), for the command to print.
    pub notes: Vec<String>,
    pub os: OsInfo,
    /// The base image file, named in messages about reading the image.
    pub(super) base_path: PathBuf,
    len: u64,
    table: PartitionTable,
    disk: OverlayDisk,
}

impl NodeImage {
    /// Customises `base` as `node` of `profile` (the base's OS is detected by the first node).
    pub fn new(
        base: &BaseImage,
        profile: &LoadedProfile,
        node: &NodeConfig,
    ) -> Result<NodeImage, PipelineError> {
        let (mut image, os) = base.open_for_node(profile.init_override())?;
        let (custom, report, notes) = customise_with(&mut image, profile, node, &os, &base.airgap)?;
        let len = image.len();
        let table = image.table().clone();
        Ok(NodeImage {
            custom,
            report,
            notes,
            os,
            base_path: base.path.clone(),
            len,
            table,
            disk: image.into_disk(),
        })
    }

    /// The image's bytes: the base with the node's changes.
    pub fn composed(&self) -> Composed<'_> {
        Composed::new(self.disk.base(), self.len, self.disk.overlay())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    /// Bytes the node's changes hold.
    pub fn changed_bytes(&self) -> u64 {
        self.disk.overlay().bytes()
    }
}

/// Customises `image` (in its overlay) as `node` of `profile`: resolves the node's plan,
/// renders it for `os` and applies it. Nothing reaches the image file until the caller
/// commits the overlay or streams it out. The notes are the plan's, for the user (e.g. that
/// the cluster token was generated): the caller prints them. A profile with
/// `cluster.airgap` needs [`customise_with`].
pub fn customise(
    image: &mut Image,
    profile: &LoadedProfile,
    node: &NodeConfig,
    os: &OsInfo,
) -> Result<(BootContent, ApplyReport, Vec<String>), PipelineError> {
    customise_with(image, profile, node, os, &AirgapPayload::default())
}

/// [`customise`] with what `cluster.airgap` adds: the K3s release files for the boot
/// partition and the runners' charts to embed (see `crate::ci::chart_source`).
pub fn customise_with(
    image: &mut Image,
    profile: &LoadedProfile,
    node: &NodeConfig,
    os: &OsInfo,
    airgap: &AirgapPayload,
) -> Result<(BootContent, ApplyReport, Vec<String>), PipelineError> {
    let mut plan = NodePlan::resolve(profile, node, crate::edge::settings())?;
    plan.embed_charts(&airgap.charts);
    let mut custom = crate::render::render(&plan, os).map_err(|source| PipelineError::Render {
        node: node.hostname.clone(),
        source,
    })?;
    if let Some(dir) = &custom.airgap_dir {
        let files = airgap.release.as_ref().ok_or_else(|| {
            PipelineError::Field(profile.error_at(
                "cluster.airgap",
                "the K3s release files were not obtained for this command; use prepare or \
                 flash, which download them into the cache",
            ))
        })?;
        custom.bulk = files.bulk(dir);
    }
    let report = image.with_boot_fs(|fs| apply(fs, &custom))?;
    Ok((custom, report, plan.notes))
}
