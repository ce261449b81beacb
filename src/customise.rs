//! Customising an image as one node of a profile: plan, render, apply.
//!
//! What applying does is [`crate::bootfs::apply`]; this is only the glue from a profile node
//! to an image (it moves into the node-image pipeline).

use crate::bootfs::apply::{ApplyReport, apply};
use crate::bootfs::content::BootContent;

/// Why a node could not be customised.
#[derive(Debug, thiserror::Error)]
pub enum CustomiseError {
    /// The node's plan (secrets, roles, tokens) could not be resolved.
    #[error(transparent)]
    Plan(#[from] crate::profile::FieldError),
    #[error("node {node}: {source}")]
    Render {
        node: String,
        source: crate::render::RenderError,
    },
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
}

/// Customises `image` (in its overlay) as `node` of `profile`: detects the OS, resolves the
/// node's secrets, renders and applies. Nothing reaches the image file until the caller
/// commits the overlay or streams it out. The notes are the plan's, for the user (e.g. that
/// the cluster token was generated and where it is kept): the caller prints them.
pub fn customise_image(
    image: &mut crate::image::Image,
    profile: &crate::profile::LoadedProfile,
    node: &crate::profile::NodeConfig,
    os: &crate::osinfo::OsInfo,
) -> Result<(BootContent, ApplyReport, Vec<String>), CustomiseError> {
    let plan = crate::plan::NodePlan::resolve(profile, node, crate::edge::settings())?;
    let custom = crate::render::render(&plan, os).map_err(|source| CustomiseError::Render {
        node: node.hostname.clone(),
        source,
    })?;
    let report = image.with_boot_fs(|fs| apply(fs, &custom))?;
    Ok((custom, report, plan.notes))
}
