//! The error the command line reports: every library error, plus the failures of the
//! commands themselves, each shown as one readable line. It lives in the binary: library
//! modules return their own typed errors, and only the command line needs one type for all
//! of them (and an exit status for each: 2 for a usage error, 1 for a failure).

use std::path::PathBuf;

use pinode::cache::resolve::ResolveError;
use pinode::cache::store::CacheError;
use pinode::catalog::CatalogError;
use pinode::device::discover::DiscoverError;
use pinode::fetch::FetchError;
use pinode::image::ImageError;
use pinode::pipeline::PipelineError;
use pinode::profile::{FieldError, ProfileError};
use pinode::render::RenderError;
use pinode::sink::blockdev::OpenError;
use pinode::sink::card::CardError;
use pinode::sink::file::SinkError;
use pinode::wizard::save::SaveError;

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
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Input(#[from] pinode::input::InputError),
    #[error(transparent)]
    Remote(#[from] pinode::remote::RemoteError),
    #[error(transparent)]
    Kubeconfig(#[from] pinode::kubeconfig::KubeconfigError),
    #[error("node {node}: {source}")]
    Render { node: String, source: RenderError },
    #[error("{path}: {message}", path = .path.display())]
    Path { path: PathBuf, message: String },
    /// The command line asks for something that cannot be done as asked (flags that do not
    /// go together, a missing `--node`): exit status 2, as for the errors clap reports.
    #[error("{0}")]
    Usage(String),
    /// A card pinode will not write (a partition, a refused disk, the base image itself).
    #[error("{0}")]
    Refused(String),
    /// Some cards of a batch were not written.
    #[error("{0}")]
    Incomplete(String),
    /// `pinode status`: a node's first boot failed (exit status 1).
    #[error("{0}")]
    NodeFailed(String),
    /// `pinode status`: not every node is Ready (yet), or `--watch` timed out: exit status 3.
    #[error("{0}")]
    NotReady(String),
    /// A JSON document that could not be made (`--json`).
    #[error("cannot write the JSON document: {0}")]
    Json(#[from] serde_json::Error),
    /// The wizard cannot run or was stopped.
    #[error("{0}")]
    Wizard(String),
    /// A bug in pinode (a thread that panicked), said instead of taking down the others.
    #[error("internal error: {0}")]
    Internal(String),
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

    /// The exit status: 2 for a usage error, 3 for nodes not ready (`pinode status`), 1 for
    /// any failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::NotReady(_) => 3,
            _ => 1,
        }
    }
}
