//! The node-image pipeline: the one path every command that makes a node's image follows.
//!
//! ```text
//! BaseImage ──customise(profile, node)──▶ NodeImage ──▶ file::write_files  (prepare)
//!  (located/obtained once,                 (base + the    ──▶ card::write_to_card (flash)
//!   OS detected once)                       node's overlay)
//! patch::PatchedImage: the same customisation applied to an image or card in place.
//! prepared::PreparedImage: an image prepared earlier, written by the same card writer (write).
//! ```
//!
//! `prepare`, `flash`, `patch` and the wizard call these functions and only print what they
//! return; nothing here prints or reads the environment. Progress goes out as events
//! ([`crate::progress`]); what a caller may want to tell its user while a card is written goes
//! out as [`card::CardNote`]s.

pub(crate) mod base;
pub mod card;
pub mod file;
pub mod memory;
pub mod node;
pub mod patch;
pub mod prepared;

use std::path::PathBuf;

pub use base::{AirgapPayload, BaseImage, ImageFileKind, charts_for_profile, check_image_file};
pub use node::NodeImage;

/// Why the pipeline stopped. The messages are those of the modules that failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Field(#[from] crate::profile::FieldError),
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error(transparent)]
    Resolve(#[from] crate::cache::resolve::ResolveError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("node {node}: {source}")]
    Render {
        node: String,
        source: crate::render::RenderError,
    },
    #[error(transparent)]
    Sink(#[from] crate::sink::file::SinkError),
    #[error(transparent)]
    Open(#[from] crate::sink::blockdev::OpenError),
    #[error(transparent)]
    Card(#[from] crate::sink::card::CardError),
    #[error("{path}: {message}", path = .path.display())]
    Path { path: PathBuf, message: String },
    #[error("cluster.airgap: {0}")]
    Airgap(#[from] crate::engine::airgap::AirgapError),
    #[error(transparent)]
    Charts(#[from] crate::ci::chart_source::ChartError),
}

impl PipelineError {
    pub(crate) fn path(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> PipelineError {
        PipelineError::Path {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
