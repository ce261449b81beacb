//! The sectors a FAT12/16/32 file system uses, from its allocation tables.
//!
//! Used means: the reserved area (boot sector, FSInfo, the backup boot sector), every FAT
//! copy, the FAT12/16 root directory, and every data cluster that any FAT copy marks as
//! allocated (files, directories, the FAT32 root directory; bad-cluster marks too, which
//! costs nothing and keeps the rule simple). Free clusters are not copied: nothing reads
//! them before writing them.

use std::io;

use super::ranges::RangeSet;
use super::{ReadAt, Understood};

/// FAT32 allows 2^28 clusters; the tables of one are at most 1 GiB. Read a copy in pieces.
const TABLE_PIECE: u64 = 1 << 20;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Fat12,
    Fat16,
    Fat32,
}

/// Boot-sector numbers, in bytes where that is what they are used as.
struct Layout {
    width: Width,
    fats: u64,
    /// Start of the first FAT copy and the length of one copy.
    fat_start: u64,
    fat_len: u64,
    /// Start of cluster 2.
    data_start: u64,
    cluster: u64,
    clusters: u64,
}

impl Layout {
    fn parse(bs: &[u8], size: u64) -> Result<Layout, String> {
        if bs[510] != 0x55 || bs[511] != 0xAA {
            return Err("no boot-sector signature".into());
        }
        let sector = u64::from(u16_at(bs, 0x0B));
        if !matches!(sector, 512 | 1024 | 2048 | 4096) {
            return Err(format!("{sector}-byte sectors"));
        }
        let per_cluster = u64::from(bs[0x0D]);
        if per_cluster == 0 || !per_cluster.is_power_of_two() {
            return Err(format!("{per_cluster} sectors per cluster"));
        }
        let reserved = u64::from(u16_at(bs, 0x0E));
        let fats = u64::from(bs[0x10]);
        let root_entries = u64::from(u16_at(bs, 0x11));
        let total = match u16_at(bs, 0x13) {
            0 => u64::from(u32_at(bs, 0x20)),
            n => u64::from(n),
        };
        let fat_sectors = match u16_at(bs, 0x16) {
            0 => u64::from(u32_at(bs, 0x24)),
            n => u64::from(n),
        };
        if reserved == 0 || fats == 0 || fat_sectors == 0 || total == 0 {
            return Err("a zero count in the boot sector".into());
        }
        let root_sectors = (root_entries * 32).div_ceil(sector);
        let data_sector = reserved + fats * fat_sectors + root_sectors;
        if total * sector > size || data_sector >= total {
            return Err(format!(
                "{total} sectors of {sector} bytes do not fit the {size}-byte partition"
            ));
        }
        let clusters = (total - data_sector) / per_cluster;
        let width = if clusters < 4085 {
            Width::Fat12
        } else if clusters < 65525 {
            Width::Fat16
        } else {
            Width::Fat32
        };
        let entry_bits = match width {
            Width::Fat12 => 12,
            Width::Fat16 => 16,
            Width::Fat32 => 32,
        };
        if (clusters + 2) * entry_bits > fat_sectors * sector * 8 {
            return Err(format!("a FAT too small for {clusters} clusters"));
        }
        Ok(Layout {
            width,
            fats,
            fat_start: reserved * sector,
            fat_len: fat_sectors * sector,
            data_start: data_sector * sector,
            cluster: per_cluster * sector,
            clusters,
        })
    }
}

/// Whether the partition starts with a FAT boot sector (signature, a FAT type string or a
/// jump instruction, and sane numbers).
pub(crate) fn detect(image: &dyn ReadAt, start: u64, size: u64) -> io::Result<bool> {
    if size < 512 {
        return Ok(false);
    }
    let mut bs = [0u8; 512];
    image.read_bytes_at(&mut bs, start)?;
    let jump = bs[0] == 0xEB || bs[0] == 0xE9;
    Ok(jump && Layout::parse(&bs, size).is_ok())
}

/// The used byte ranges of the FAT file system in the partition at `start` (`size` bytes),
/// relative to the image.
pub(crate) fn used(image: &dyn ReadAt, start: u64, size: u64) -> io::Result<Understood> {
    let mut bs = [0u8; 512];
    image.read_bytes_at(&mut bs, start)?;
    let layout = match Layout::parse(&bs, size) {
        Ok(layout) => layout,
        Err(reason) => return Ok(Understood::No(reason)),
    };
    // Cluster n (from 2) is allocated when any FAT copy has a non-zero entry for it.
    let mut allocated = vec![false; layout.clusters as usize];
    let mut piece = vec![0u8; TABLE_PIECE as usize];
    for copy in 0..layout.fats {
        let table = start + layout.fat_start + copy * layout.fat_len;
        let needed = match layout.width {
            Width::Fat12 => ((layout.clusters + 2) * 3).div_ceil(2),
            Width::Fat16 => (layout.clusters + 2) * 2,
            Width::Fat32 => (layout.clusters + 2) * 4,
        };
        let mut offset = 0;
        while offset < needed {
            let n = (needed - offset).min(TABLE_PIECE) as usize;
            let buf = &mut piece[..n];
            image.read_bytes_at(buf, table + offset)?;
            mark_allocated(layout.width, buf, offset, &mut allocated);
            offset += n as u64;
        }
    }
    let mut used = RangeSet::default();
    used.insert(start..start + layout.data_start);
    let mut cluster = 0;
    while cluster < allocated.len() {
        if !allocated[cluster] {
            cluster += 1;
            continue;
        }
        let first = cluster;
        while cluster < allocated.len() && allocated[cluster] {
            cluster += 1;
        }
        let from = start + layout.data_start + first as u64 * layout.cluster;
        used.insert(from..from + (cluster - first) as u64 * layout.cluster);
    }
    let clusters_end = layout.data_start + layout.clusters * layout.cluster;
    // The slack after the last whole cluster, and the partition past the file system.
    used.insert(start + clusters_end..start + size);
    let in_use = allocated.iter().filter(|a| **a).count() as u64;
    Ok(Understood::Yes {
        used,
        reported_used: layout.data_start + in_use * layout.cluster,
    })
}

/// Marks the clusters whose entries (in `buf`, which starts `offset` bytes into a FAT copy)
/// are non-zero. A FAT12 table (at most 6 KiB) always comes as one piece.
fn mark_allocated(width: Width, buf: &[u8], offset: u64, allocated: &mut [bool]) {
    let entries = allocated.len() as u64 + 2;
    let mut set = |entry: u64| {
        if entry >= 2
            && let Some(slot) = allocated.get_mut((entry - 2) as usize)
        {
            *slot = true;
        }
    };
    match width {
        Width::Fat32 => {
            for (i, e) in buf.chunks_exact(4).enumerate() {
                if u32_at(e, 0) & 0x0FFF_FFFF != 0 {
                    set(offset / 4 + i as u64);
                }
            }
        }
        Width::Fat16 => {
            for (i, e) in buf.chunks_exact(2).enumerate() {
                if u16_at(e, 0) != 0 {
                    set(offset / 2 + i as u64);
                }
            }
        }
        Width::Fat12 => {
            // Entry n spans bytes 3n/2 and 3n/2 + 1: the low 12 bits for even n, the high
            // 12 bits for odd n.
            for n in 2..entries {
                let at = (n * 3 / 2) as usize;
                if at + 1 >= buf.len() {
                    break;
                }
                let pair = u16_at(buf, at);
                let entry = if n % 2 == 0 { pair & 0x0FFF } else { pair >> 4 };
                if entry != 0 {
                    set(n);
                }
            }
        }
    }
}
