//! The blocks an ext2/3/4 file system uses, from its block-group bitmaps.
//!
//! Used means: every block the group bitmaps mark (file data, directories, extent trees, the
//! journal, and the metadata that mke2fs marks there), plus, for every group, the metadata
//! the kernel counts as used even where the bitmap was never written (`BLOCK_UNINIT`): the
//! superblock and group-descriptor copies with their reserved GDT blocks, the block and
//! inode bitmaps, and the whole inode table. Inode tables are always copied in full: a
//! group's unused inodes must read as zeros to the kernel's lazy-init logic, and the cost is
//! small (about 1.6 % of a default ext4).
//!
//! Anything this reader does not understand (a bad superblock, `meta_bg`, `bigalloc`,
//! numbers that do not add up) makes it give up on the file system; the caller then copies
//! the whole partition, which is always correct.

use std::io;

use super::ranges::RangeSet;
use super::{ReadAt, Understood};

const SUPERBLOCK_OFFSET: u64 = 1024;
const MAGIC: u16 = 0xEF53;

const COMPAT_SPARSE_SUPER2: u32 = 0x200;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

const BG_BLOCK_UNINIT: u16 = 0x2;

/// More groups than this is not an image pinode writes to an SD card (it would be a 1 PiB
/// file system with 4 KiB blocks); refusing keeps hostile numbers from costing memory.
const MAX_GROUPS: u64 = 1 << 23;
/// The descriptors are read in one piece; a 4 TiB file system needs 2 MiB of them.
const MAX_GDT_BYTES: u64 = 32 << 20;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Whether the bytes at the partition start carry an ext2/3/4 superblock.
pub(crate) fn detect(image: &dyn ReadAt, start: u64, size: u64) -> io::Result<bool> {
    if size < SUPERBLOCK_OFFSET + 1024 {
        return Ok(false);
    }
    let mut magic = [0u8; 2];
    image.read_bytes_at(&mut magic, start + SUPERBLOCK_OFFSET + 0x38)?;
    Ok(u16::from_le_bytes(magic) == MAGIC)
}

/// The superblock fields that decide where things are.
struct Geometry {
    block_size: u64,
    blocks: u64,
    free_blocks: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    groups: u64,
    inode_table_blocks: u64,
    desc_size: u64,
    reserved_gdt_blocks: u64,
    sparse_super: bool,
    sparse_super2: Option<[u32; 2]>,
    csum: bool,
}

impl Geometry {
    fn parse(sb: &[u8], size: u64) -> Result<Geometry, String> {
        if u16_at(sb, 0x38) != MAGIC {
            return Err("no ext4 superblock".into());
        }
        let log_block = u32_at(sb, 0x18);
        if log_block > 6 {
            return Err(format!("block size 1024 << {log_block} is out of range"));
        }
        let block_size = 1024u64 << log_block;
        let compat = u32_at(sb, 0x5C);
        let incompat = u32_at(sb, 0x60);
        let ro_compat = u32_at(sb, 0x64);
        if incompat & INCOMPAT_META_BG != 0 {
            return Err("meta_bg layout (not read by pinode)".into());
        }
        if ro_compat & RO_COMPAT_BIGALLOC != 0 {
            return Err("bigalloc clusters (not read by pinode)".into());
        }
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let blocks = u64::from(u32_at(sb, 0x04))
            | if is64 {
                u64::from(u32_at(sb, 0x150)) << 32
            } else {
                0
            };
        let free_blocks = u64::from(u32_at(sb, 0x0C))
            | if is64 {
                u64::from(u32_at(sb, 0x158)) << 32
            } else {
                0
            };
        let first_data_block = u64::from(u32_at(sb, 0x14));
        let blocks_per_group = u64::from(u32_at(sb, 0x20));
        let inodes_per_group = u64::from(u32_at(sb, 0x28));
        let rev = u32_at(sb, 0x4C);
        let inode_size = if rev == 0 {
            128
        } else {
            u64::from(u16_at(sb, 0x58))
        };
        let desc_size = if is64 {
            u64::from(u16_at(sb, 0xFE))
        } else {
            32
        };
        if blocks_per_group == 0 || blocks_per_group > 8 * block_size {
            return Err(format!("{blocks_per_group} blocks per group"));
        }
        if !(128..=block_size).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(format!("inode size {inode_size}"));
        }
        if !(32..=block_size).contains(&desc_size) || !desc_size.is_power_of_two() {
            return Err(format!("group descriptor size {desc_size}"));
        }
        if first_data_block >= blocks || first_data_block > 1 {
            return Err(format!("first data block {first_data_block}"));
        }
        if blocks.checked_mul(block_size).is_none_or(|b| b > size) {
            return Err(format!(
                "{blocks} blocks of {block_size} bytes do not fit the {size}-byte partition"
            ));
        }
        let groups = (blocks - first_data_block).div_ceil(blocks_per_group);
        if groups == 0 || groups > MAX_GROUPS {
            return Err(format!("{groups} block groups"));
        }
        if inodes_per_group == 0 || inodes_per_group > 8 * block_size {
            return Err(format!("{inodes_per_group} inodes per group"));
        }
        Ok(Geometry {
            block_size,
            blocks,
            free_blocks,
            first_data_block,
            blocks_per_group,
            groups,
            inode_table_blocks: (inodes_per_group * inode_size).div_ceil(block_size),
            desc_size,
            reserved_gdt_blocks: u64::from(u16_at(sb, 0xCE)),
            sparse_super: ro_compat & RO_COMPAT_SPARSE_SUPER != 0,
            sparse_super2: (compat & COMPAT_SPARSE_SUPER2 != 0)
                .then(|| [u32_at(sb, 0x24C), u32_at(sb, 0x250)]),
            csum: ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0,
        })
    }

    fn group_start(&self, group: u64) -> u64 {
        self.first_data_block + group * self.blocks_per_group
    }

    fn group_blocks(&self, group: u64) -> u64 {
        (self.blocks - self.group_start(group)).min(self.blocks_per_group)
    }

    fn gdt_blocks(&self) -> u64 {
        (self.groups * self.desc_size).div_ceil(self.block_size)
    }

    /// Whether `group` holds a superblock copy (and so the descriptors and reserved GDT).
    fn has_super(&self, group: u64) -> bool {
        if group == 0 {
            return true;
        }
        if let Some(backups) = self.sparse_super2 {
            return backups.iter().any(|&g| g != 0 && u64::from(g) == group);
        }
        if !self.sparse_super || group == 1 {
            return true;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut power = base;
            while power < group {
                power *= base;
            }
            power == group
        })
    }
}

/// One group descriptor's locations and flags.
struct Descriptor {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
    flags: u16,
}

impl Descriptor {
    fn parse(d: &[u8]) -> Descriptor {
        let hi = |at: usize| {
            if d.len() >= 64 {
                u64::from(u32_at(d, at)) << 32
            } else {
                0
            }
        };
        Descriptor {
            block_bitmap: u64::from(u32_at(d, 0x00)) | hi(0x20),
            inode_bitmap: u64::from(u32_at(d, 0x04)) | hi(0x24),
            inode_table: u64::from(u32_at(d, 0x08)) | hi(0x28),
            flags: u16_at(d, 0x12),
        }
    }
}

/// The used byte ranges of the ext4 file system in the partition at `start` (`size` bytes),
/// relative to the image. `Err(reason)` inside the `Ok` means "not understood".
pub(crate) fn used(image: &dyn ReadAt, start: u64, size: u64) -> io::Result<Understood> {
    let mut sb = vec![0u8; 1024];
    image.read_bytes_at(&mut sb, start + SUPERBLOCK_OFFSET)?;
    let geo = match Geometry::parse(&sb, size) {
        Ok(geo) => geo,
        Err(reason) => return Ok(Understood::No(reason)),
    };
    let bs = geo.block_size;
    let mut used = RangeSet::default();
    // Blocks as byte ranges relative to the image; `end` is exclusive.
    let mut blocks = Vec::new();
    let mut mark = |first: u64, count: u64| {
        let first = first.min(geo.blocks);
        let end = first.saturating_add(count).min(geo.blocks);
        if first < end {
            blocks.push(start + first * bs..start + end * bs);
        }
    };

    // Whatever precedes the first group (the boot block of 1 KiB-block file systems) and
    // the superblock itself.
    mark(0, geo.first_data_block + 1);

    // The descriptors, read from their primary copy after the superblock.
    let gdt_len = geo.gdt_blocks() * bs;
    if gdt_len > MAX_GDT_BYTES {
        return Ok(Understood::No(format!(
            "{gdt_len} bytes of group descriptors"
        )));
    }
    let mut gdt = vec![0u8; gdt_len as usize];
    image.read_bytes_at(&mut gdt, start + (geo.first_data_block + 1) * bs)?;

    let mut bitmap = vec![0u8; bs as usize];
    for group in 0..geo.groups {
        let first = geo.group_start(group);
        if geo.has_super(group) {
            mark(first, 1 + geo.gdt_blocks() + geo.reserved_gdt_blocks);
        }
        let at = (group * geo.desc_size) as usize;
        let desc = Descriptor::parse(&gdt[at..at + geo.desc_size as usize]);
        for (what, block, count) in [
            ("block bitmap", desc.block_bitmap, 1),
            ("inode bitmap", desc.inode_bitmap, 1),
            ("inode table", desc.inode_table, geo.inode_table_blocks),
        ] {
            if block == 0 || block.saturating_add(count) > geo.blocks {
                return Ok(Understood::No(format!(
                    "group {group}'s {what} lies outside the file system"
                )));
            }
            mark(block, count);
        }
        if geo.csum && desc.flags & BG_BLOCK_UNINIT != 0 {
            // Never written: the kernel derives it from the metadata marked above.
            continue;
        }
        image.read_bytes_at(&mut bitmap, start + desc.block_bitmap * bs)?;
        for (bit_start, bit_end) in set_bit_runs(&bitmap, geo.group_blocks(group)) {
            mark(first + bit_start, bit_end - bit_start);
        }
    }
    for range in blocks {
        used.insert(range);
    }
    // Past the file system's end, inside the partition: not ours to judge, so copied.
    used.insert(start + geo.blocks * bs..start + size);
    Ok(Understood::Yes {
        used,
        reported_used: (geo.blocks - geo.free_blocks.min(geo.blocks)) * bs,
    })
}

/// Runs of set bits among the first `bits` bits of a little-endian bitmap, as `start..end`.
fn set_bit_runs(bitmap: &[u8], bits: u64) -> Vec<(u64, u64)> {
    let bits = bits.min(bitmap.len() as u64 * 8);
    let mut runs = Vec::new();
    let mut run_start = None;
    let mut i = 0u64;
    while i < bits {
        let byte = bitmap[(i / 8) as usize];
        // Whole bytes at once where possible: most of a bitmap is 0x00 or 0xFF.
        if i.is_multiple_of(8) && i + 8 <= bits && (byte == 0 || byte == 0xFF) {
            match (byte, run_start) {
                (0xFF, None) => run_start = Some(i),
                (0, Some(s)) => {
                    runs.push((s, i));
                    run_start = None;
                }
                _ => {}
            }
            i += 8;
            continue;
        }
        let set = byte & (1 << (i % 8)) != 0;
        match (set, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                run_start = None;
            }
            _ => {}
        }
        i += 1;
    }
    if let Some(s) = run_start {
        runs.push((s, bits));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_runs() {
        assert_eq!(
            set_bit_runs(&[0b0000_0110, 0xFF, 0x01], 24),
            vec![(1, 3), (8, 17)]
        );
        assert_eq!(set_bit_runs(&[0xFF, 0xFF], 12), vec![(0, 12)]);
        assert_eq!(set_bit_runs(&[0, 0], 16), vec![]);
        assert_eq!(set_bit_runs(&[0x80], 8), vec![(7, 8)]);
    }

    #[test]
    fn backup_groups_follow_sparse_super() {
        let geo = Geometry {
            block_size: 4096,
            blocks: 1 << 30,
            free_blocks: 0,
            first_data_block: 0,
            blocks_per_group: 32768,
            groups: 32768,
            inode_table_blocks: 512,
            desc_size: 64,
            reserved_gdt_blocks: 0,
            sparse_super: true,
            sparse_super2: None,
            csum: true,
        };
        let with: Vec<u64> = (0..400).filter(|&g| geo.has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]);
        let two = Geometry {
            sparse_super2: Some([1, 300]),
            ..geo
        };
        let with: Vec<u64> = (0..400).filter(|&g| two.has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 300]);
    }
}
