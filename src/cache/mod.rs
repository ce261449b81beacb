//! Getting a raw base image: from the OS catalog through the image cache (download, verify,
//! decompress once), or from a local `.img` / `.img.xz` / `.img.gz` / `.img.zst` file.

pub(crate) mod decompress;
pub(crate) mod lock;
pub mod resolve;
pub mod store;
