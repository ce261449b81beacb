//! The error type the command line reports: one readable line per problem.

use std::path::PathBuf;

use crate::cache::resolve::ResolveError;
use crate::cache::store::CacheError;
use crate::catalog::CatalogError;
use crate::device::discover::DiscoverError;
use crate::fetch::FetchError;
use crate::image::ImageError;
use crate::profile::{FieldError, ProfileError};
use crate::render::RenderError;
use crate::sink::blockdev::OpenError;
use crate::sink::card::CardError;
use crate::sink::file::SinkError;
use crate::wizard::save::SaveError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Card(#[from] CardError),
    #[error(transparent)]
    Save(#[from] SaveError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("node {node}: {source}")]
    Render { node: String, source: RenderError },
    #[error("{path}: {message}", path = .path.display())]
    Path { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
}

impl From<CacheError> for Error {
    fn from(e: CacheError) -> Self {
        Error::Resolve(ResolveError::Cache(e))
    }
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Self {
        Error::Resolve(ResolveError::Catalog(e))
    }
}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Self {
        Error::Resolve(ResolveError::Fetch(e))
    }
}

impl Error {
    pub fn path(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Error {
        Error::Path {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
