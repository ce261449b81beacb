//! pinode: provision Raspberry Pi nodes for a Kubernetes cluster (K3s) with a CI runner
//! (GitLab) from one YAML profile.
//!
//! The library is the engine behind the `pinode` command: it reads profiles, edits the FAT
//! boot partition of Raspberry Pi OS images offline (no mounting, no root), renders the
//! first-boot program for the image's OS generation, and writes ready images and cards.
//!
//! # The flow
//!
//! ```text
//! profile (YAML) ──▶ LoadedProfile ──▶ NodePlan (one per node, secrets resolved)
//!                                          │
//! catalog/cache ──▶ BaseImage ──▶ Image + OsInfo ──▶ render ──▶ BootContent
//!                                                        │
//!                              pipeline: NodeImage ──▶ sink::file | sink::card
//! ```
//!
//! - [`profile`] parses and validates a profile (`LoadedProfile`); it reads `version` first.
//! - [`plan`] resolves it into one [`plan::NodePlan`] per node: roles, tokens, password
//!   hash, Wi-Fi key; nothing is rendered there.
//! - [`cache`], [`catalog`] and [`fetch`] obtain and verify the base image.
//! - [`image`] opens an image in a copy-on-write overlay; [`osinfo`] says which OS it is
//!   ([`osinfo::OsInfo`]); [`bootfs`] edits its FAT boot partition.
//! - [`engine`] (K3s) and [`ci`] (GitLab) hold each cluster stack's rules and own files.
//! - [`render`] turns a `NodePlan` and an `OsInfo` into boot content
//!   ([`bootfs::content::BootContent`]), which [`bootfs::apply`] applies.
//! - [`pipeline`] applies them and sends the node image to a [`sink`]: an image file, or
//!   a card found and vetted by [`device`].
//!
//! # Around the flow
//!
//! - [`edge`]: the only module that reads the environment ([`edge::Settings`]), including
//!   the test hooks behind `PINODE_TEST_HOOKS=1`.
//! - [`progress`]: long byte streams report events to a [`progress::Task`]; the binary
//!   draws them. The library never prints.
//! - Every module returns its own typed error; the `pinode` binary gathers them.
//!
//! `docs/architecture.md` has the module map by layer; `tests/architecture.rs` checks it.

pub mod bootfs;
pub mod cache;
pub mod catalog;
pub mod ci;
pub mod cleanup;
pub mod device;
pub mod digest;
pub mod disk;
pub mod edge;
pub mod engine;
pub mod entropy;
pub mod fetch;
pub mod guard;
pub mod image;
pub mod input;
pub mod invoker;
pub mod kubeconfig;
pub mod osinfo;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod remote;
pub mod render;
pub mod rootfs;
pub mod sink;
pub mod status;
pub mod ui;
pub mod wizard;
