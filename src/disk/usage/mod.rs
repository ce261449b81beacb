//! Which bytes of an image hold something: allocation-aware writing.
//!
//! Most of a Raspberry Pi OS image is free space inside its file systems. Copying it costs
//! as much as copying files, and a card does not need it: free blocks are never read before
//! they are written. This module reads the allocation maps (ext2/3/4 block-group bitmaps,
//! FAT tables) and returns the byte ranges that must reach the card: the used blocks with all
//! file-system metadata, the partition table, and everything that is not inside a file system
//! pinode understands (gaps, unknown partitions, a GPT's backup at the end).
//!
//! The rule is "when in doubt, copy": a partition whose file system is not recognised, or
//! whose numbers do not add up, is copied whole, and so is the whole image when partitions
//! overlap.

pub(crate) mod ext4;
pub(crate) mod fat;
pub(crate) mod ranges;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) use ranges::RangeSet;

use super::table::PartitionTable;

/// Maps are kept in 4 KiB units: the overlay's block, the page size, and an alignment every
/// card accepts for direct I/O.
pub const MAP_BLOCK: u64 = 4096;

/// Random-access reads of an image (a file, or a base with a node's overlay applied).
pub trait ReadAt {
    fn read_bytes_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_bytes_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

/// What a file-system reader made of a partition.
#[derive(Debug)]
pub(crate) enum Understood {
    /// The ranges in use, and the used bytes the file system itself reports.
    Yes {
        used: RangeSet,
        #[allow(
            dead_code,
            reason = "what the file system says it uses: kept for debugging"
        )]
        reported_used: u64,
    },
    /// Not understood (why): the partition is copied whole.
    No(String),
}

/// How one partition is written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionUsage {
    pub index: u32,
    /// "ext4", "fat" or "other".
    pub filesystem: &'static str,
    pub size: u64,
    /// Bytes of the partition that are written.
    pub mapped: u64,
    /// Why the partition is written whole, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole_because: Option<String>,
}

/// The bytes of an image that have to be written.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// Aligned to [`MAP_BLOCK`], within the image.
    pub map: RangeSet,
    pub partitions: Vec<PartitionUsage>,
    /// Why the whole image is written, when it is.
    pub whole_because: Option<String>,
}

impl Allocation {
    /// The whole image, for `--full` and for images without a usable table.
    pub(crate) fn whole(len: u64, because: impl Into<String>) -> Allocation {
        Allocation {
            map: RangeSet::whole(0..len),
            partitions: Vec::new(),
            whole_because: Some(because.into()),
        }
    }
}

/// The blocks that the ext4 and FAT file systems in `table` use, and nothing else (no gaps,
/// no partition of another kind). Used on the card *before* it is written: those blocks
/// hold its old files (a node's secrets among them, on a card that never booted), and
/// adding them to what is written leaves none of them behind inside the image's extent, as a
/// full write would not either. Partitions that are not understood are skipped: a card
/// fresh from the shop (exFAT) holds nothing to erase, and guessing would cost a full write.
pub fn file_system_blocks(
    image: &dyn ReadAt,
    len: u64,
    table: &PartitionTable,
) -> io::Result<RangeSet> {
    let mut blocks = RangeSet::default();
    for part in &table.partitions {
        if part.end() > len {
            continue;
        }
        let understood = if ext4::detect(image, part.start, part.size)? {
            ext4::used(image, part.start, part.size)?
        } else if fat::detect(image, part.start, part.size)? {
            fat::used(image, part.start, part.size)?
        } else {
            continue;
        };
        if let Understood::Yes { used, .. } = understood {
            blocks.extend(&used);
        }
    }
    Ok(blocks.aligned(MAP_BLOCK, len))
}

/// Reads the allocation maps of every partition in `table` of the `len`-byte `image`.
pub fn allocation(image: &dyn ReadAt, len: u64, table: &PartitionTable) -> io::Result<Allocation> {
    let mut parts: Vec<_> = table.partitions.iter().collect();
    parts.sort_by_key(|p| p.start);
    if parts.windows(2).any(|w| w[0].end() > w[1].start) {
        return Ok(Allocation::whole(len, "partitions overlap"));
    }
    if parts.iter().any(|p| p.end() > len) {
        return Ok(Allocation::whole(len, "a partition ends past the image"));
    }
    let mut map = RangeSet::default();
    let mut usage = Vec::new();
    let mut cursor = 0;
    for part in parts {
        // Whatever lies between partitions (the table, the gap before the first one).
        map.insert(cursor..part.start);
        cursor = part.end();
        let (filesystem, understood) = if ext4::detect(image, part.start, part.size)? {
            ("ext4", ext4::used(image, part.start, part.size)?)
        } else if fat::detect(image, part.start, part.size)? {
            ("fat", fat::used(image, part.start, part.size)?)
        } else {
            ("other", Understood::No("no ext4 or FAT file system".into()))
        };
        let (used, whole_because) = match understood {
            Understood::Yes { used, .. } => (used, None),
            Understood::No(why) => (RangeSet::whole(part.start..part.end()), Some(why)),
        };
        let used = used.aligned(MAP_BLOCK, part.end().div_ceil(MAP_BLOCK) * MAP_BLOCK);
        usage.push(PartitionUsage {
            index: part.index,
            filesystem,
            size: part.size,
            mapped: used.bytes(),
            whole_because,
        });
        map.extend(&used);
    }
    map.insert(cursor..len);
    Ok(Allocation {
        map: map.aligned(MAP_BLOCK, len),
        partitions: usage,
        whole_because: None,
    })
}
