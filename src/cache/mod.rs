//! Getting a raw base image: decompression of local `.img.xz` / `.img.gz` / `.img.zst` files.

pub mod decompress;
pub mod source;
