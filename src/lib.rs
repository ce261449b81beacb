//! pinode: provision Raspberry Pi nodes for a K3s cluster from one YAML profile.
//!
//! The library is the engine behind the `pinode` command: it reads profiles, edits the FAT
//! boot partition of Raspberry Pi OS images offline (no mounting, no root), renders the
//! first-boot program for the image's OS generation, and writes ready images.

pub mod bootfs;
pub mod cache;
pub mod catalog;
pub mod cleanup;
pub mod customise;
pub mod device;
pub mod digest;
pub mod disk;
pub mod edge;
pub mod entropy;
pub mod error;
pub mod fetch;
pub mod guard;
pub mod image;
pub mod input;
pub mod invoker;
pub mod osinfo;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod render;
pub mod rootfs;
pub mod sink;
pub mod ui;
pub mod wizard;
pub use error::Error;
