//! The card sink of the pipeline (`flash`): a node's image written to a card, in this order:
//! work out which blocks to write (those the image's file systems use, and those the card's
//! old file systems use, so that no old file survives inside the image's extent), unmount
//! what `--unmount` allowed (deepest first), open the card exclusively, write it head last
//! and read it back ([`crate::sink::card`]), and ask the kernel for the new partitions.

use std::fs::File;
use std::path::Path;

use crate::device::discover::BlockDevice;
use crate::disk::usage::{Allocation, RangeSet, allocation, file_system_blocks};
use crate::disk::{Composed, PartitionTable, read_partition_table};
use crate::progress::Progress;
use crate::sink::blockdev::{Card, reread_partition_table, unmount};
use crate::sink::card::{CardReport, Extent, Passes, TestHooks, write_card};

use super::{NodeImage, PipelineError};

/// How to write a card.
#[derive(Debug, Clone, Copy)]
pub struct CardOptions {
    /// Read the card back and compare.
    pub verify: bool,
    /// Write every byte of the image, not only the blocks in use.
    pub full: bool,
}

/// What happens along the way that a user may want to hear about (cards are named by path).
#[derive(Debug)]
pub enum CardNote<'a> {
    /// Which blocks will be written (not with `full`).
    Allocation {
        allocation: &'a Allocation,
        len: u64,
    },
    /// A mount point of the card was taken down.
    Unmounted(&'a str),
    /// The blocks the card's old file systems use are overwritten too.
    OldFiles { card: &'a Path, bytes: u64 },
    /// The driver does not allow direct I/O.
    NoDirectIo(&'a Path),
    /// The kernel did not re-read the partition table.
    NoReread {
        card: &'a Path,
        error: std::io::Error,
    },
}

/// Writes `node` to the card `disk` (already judged safe by its caller), telling `note` what
/// happens; the write and verify passes report to tasks of `progress` labelled
/// `HOST write` and `HOST verify`.
pub fn write_to_card(
    node: &NodeImage,
    disk: &BlockDevice,
    options: CardOptions,
    hooks: &TestHooks,
    progress: &dyn Progress,
    note: &mut dyn FnMut(CardNote<'_>),
) -> Result<CardReport, PipelineError> {
    let source = CardSource {
        label: &node.custom.hostname,
        path: &node.base_path,
        composed: node.composed(),
        table: node.table(),
        map: None,
    };
    write_source(&source, disk, options, hooks, progress, note)
}

/// What goes to a card: a node's image, or an image prepared earlier (`pinode write`), both
/// as one composed view so that one writer serves both.
pub(super) struct CardSource<'a> {
    /// Names the progress tasks (`LABEL write`, `LABEL verify`).
    pub(super) label: &'a str,
    /// The image file, named in messages about reading it.
    pub(super) path: &'a Path,
    pub(super) composed: Composed<'a>,
    pub(super) table: &'a PartitionTable,
    /// The blocks to write when known beforehand (a `.bmap`); otherwise, unless `full`, the
    /// image's file systems tell.
    pub(super) map: Option<Allocation>,
}

/// The one card writer: which blocks, unmount, exclusive open, head last, read back.
pub(super) fn write_source(
    source: &CardSource<'_>,
    disk: &BlockDevice,
    options: CardOptions,
    hooks: &TestHooks,
    progress: &dyn Progress,
    note: &mut dyn FnMut(CardNote<'_>),
) -> Result<CardReport, PipelineError> {
    let composed = source.composed;
    let len = composed.len;
    // Read after customising: the node's files changed the boot partition's FAT.
    let allocation = if options.full {
        None
    } else {
        let allocation = match &source.map {
            Some(map) => map.clone(),
            None => allocation(&composed, len, source.table).map_err(|e| {
                PipelineError::path(source.path, format!("reading the image failed: {e}"))
            })?,
        };
        note(CardNote::Allocation {
            allocation: &allocation,
            len,
        });
        Some(allocation)
    };

    for mount in unmount_order(disk) {
        unmount(&mount)
            .map_err(|e| PipelineError::path(&mount, format!("could not unmount: {e}")))?;
        note(CardNote::Unmounted(&mount));
    }
    let card = Card::open(&disk.path)?;
    let map = allocation.map(|a| {
        let mut map = a.map;
        let old = old_files(&card, len);
        if old.bytes() > 0 {
            note(CardNote::OldFiles {
                card: &card.path,
                bytes: old.bytes(),
            });
        }
        map.extend(&old);
        map
    });
    let extent = match &map {
        Some(map) => Extent::Mapped(map),
        None => Extent::Full,
    };
    let to_write = map.as_ref().map_or(len, |m| m.bytes());
    if !card.direct {
        note(CardNote::NoDirectIo(&card.path));
    }
    let host = source.label;
    let hooks = hooks.for_card(host);
    let write = progress.task(&format!("{host} write"), to_write);
    let verify = progress.task(&format!("{host} verify"), to_write);
    let report = write_card(
        &card,
        composed,
        extent,
        options.verify,
        Passes {
            write: &write,
            verify: &verify,
        },
        hooks,
    )?;
    // The kernel still has the old partitions; tell it about the new ones.
    if let Err(error) = reread_partition_table(&card.file) {
        note(CardNote::NoReread {
            card: &card.path,
            error,
        });
    }
    Ok(report)
}

/// The blocks the card's current ext4 and FAT file systems use, within the image's first
/// `len` bytes (empty when the card holds none, or cannot be read: the write then fails on
/// its own, with a better message).
fn old_files(card: &Card, len: u64) -> RangeSet {
    let Ok(mut file) = File::open(&card.path) else {
        return RangeSet::default();
    };
    let Ok(table) = read_partition_table(&mut file, card.len) else {
        return RangeSet::default();
    };
    let blocks = file_system_blocks(&file, card.len, &table).unwrap_or_default();
    // Read through the page cache: forget it, so that the read-back sees the medium.
    crate::disk::drop_cached_pages(&file);
    RangeSet::from_unsorted(
        blocks
            .iter()
            .filter(|r| r.start < len)
            .map(|r| r.start..r.end.min(len))
            .collect(),
    )
}

/// Mount points to take down for `--unmount`, deepest first. Empty unless the user allowed it
/// (otherwise the card was refused before this point).
fn unmount_order(disk: &BlockDevice) -> Vec<String> {
    let mut mounts = disk.all_mount_points();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts
}
