// Harness for the `allocation` fuzz target, shared with tests/fuzz_regressions.rs through
// include!().
//
// Input: the start of a file system (ext2/3/4 or FAT: superblock or boot sector, group
// descriptors or FATs, bitmaps, directories). The harness puts it at byte 4096 of a 64 MiB
// partition in an in-memory disk (whatever the input does not cover reads as zeros), with
// 4 KiB of unpartitioned space after it, and reads the allocation maps as `flash` does
// before writing a card: `allocation` (what to write) and `file_system_blocks` (the old
// card's files to overwrite).
//
// Checked: no panic; the map is sorted, disjoint, 4 KiB-aligned and inside the disk; what
// lies outside the partition is always written; the file systems' blocks are all in the map;
// the same input gives the same map.

use std::io;

use pinode::disk::usage::{MAP_BLOCK, ReadAt, allocation, file_system_blocks};
use pinode::disk::{Partition, PartitionTable, PartitionType, TableKind};

pub const PART_START: u64 = 4096;
pub const PART_SIZE: u64 = 64 << 20;
pub const DISK_LEN: u64 = PART_START + PART_SIZE + 4096;

/// The disk: `data` at the partition's start, zeros elsewhere.
struct Disk<'a> {
    data: &'a [u8],
}

impl ReadAt for Disk<'_> {
    fn read_bytes_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= DISK_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the disk"))?;
        buf.fill(0);
        let data_start = PART_START;
        let data_end = PART_START + self.data.len() as u64;
        let from = offset.max(data_start);
        let to = end.min(data_end);
        if from < to {
            buf[(from - offset) as usize..(to - offset) as usize].copy_from_slice(
                &self.data[(from - data_start) as usize..(to - data_start) as usize],
            );
        }
        Ok(())
    }
}

pub fn run(data: &[u8]) {
    let data = &data[..data.len().min(PART_SIZE as usize)];
    let disk = Disk { data };
    let table = PartitionTable {
        kind: TableKind::Mbr,
        disk_id: "0000f022".into(),
        partitions: vec![Partition {
            index: 1,
            start: PART_START,
            size: PART_SIZE,
            kind: PartitionType::Mbr(0x83),
        }],
    };
    let Ok(alloc) = allocation(&disk, DISK_LEN, &table) else {
        return;
    };
    let ranges: Vec<_> = alloc.map.iter().cloned().collect();
    for pair in ranges.windows(2) {
        assert!(
            pair[0].end < pair[1].start,
            "ranges overlap or touch: {ranges:?}"
        );
    }
    for r in &ranges {
        assert!(
            r.start < r.end && r.end <= DISK_LEN,
            "range {r:?} outside the disk"
        );
        assert_eq!(r.start % MAP_BLOCK, 0, "unaligned range {r:?}");
        assert!(
            r.end % MAP_BLOCK == 0 || r.end == DISK_LEN,
            "unaligned range {r:?}"
        );
    }
    assert!(
        alloc.map.contains(0),
        "the space before the partition is not written"
    );
    assert!(
        alloc.map.contains(DISK_LEN - 1),
        "the space after the partition is not written"
    );
    assert_eq!(alloc.partitions.len(), 1);
    assert!(alloc.partitions[0].mapped <= PART_SIZE);
    if let Ok(blocks) = file_system_blocks(&disk, DISK_LEN, &table) {
        for r in blocks.iter() {
            assert!(
                alloc.map.contains(r.start) && alloc.map.contains(r.end - 1),
                "file-system blocks {r:?} missing from the map"
            );
        }
    }
    let again = allocation(&disk, DISK_LEN, &table).map(|a| a.map);
    assert_eq!(again.ok(), Some(alloc.map), "a second reading differs");
}
