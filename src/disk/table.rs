//! Partition tables: MBR through `mbrman`, GPT through `gpt`.

use std::io::{Read, Seek, SeekFrom, Write};

use super::DiskError;

/// Raspberry Pi images and SD cards use 512-byte logical sectors.
pub const SECTOR_SIZE: u64 = 512;

/// MBR partition type of a GPT protective entry.
const MBR_GPT_PROTECTIVE: u8 = 0xee;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Mbr,
    Gpt,
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
        })
    }
}

/// What a partition entry says about its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionType {
    /// MBR system id byte.
    Mbr(u8),
    /// GPT partition type GUID, upper case.
    Gpt(String),
}

impl PartitionType {
    /// Whether the entry claims a FAT file system (or a GPT type that usually holds one).
    pub fn may_be_fat(&self) -> bool {
        match self {
            // FAT12, FAT16 (<32M), FAT16, FAT32 CHS, FAT32 LBA, FAT16 LBA, EFI system.
            PartitionType::Mbr(id) => matches!(id, 0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e | 0xef),
            PartitionType::Gpt(guid) => matches!(
                guid.as_str(),
                "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" | "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
            ),
        }
    }

    /// Whether the entry claims a Linux file system.
    pub fn may_be_linux(&self) -> bool {
        match self {
            PartitionType::Mbr(id) => *id == 0x83,
            PartitionType::Gpt(guid) => matches!(
                guid.as_str(),
                "0FC63DAF-8483-4772-8E79-3D69D8477DE4" | "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
            ),
        }
    }
}

impl std::fmt::Display for PartitionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionType::Mbr(id) => write!(f, "0x{id:02x}"),
            PartitionType::Gpt(guid) => f.write_str(guid),
        }
    }
}

/// One partition, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based number as Linux names it (`/dev/sdX1`, `…-01` in a PARTUUID).
    pub index: u32,
    pub start: u64,
    pub size: u64,
    pub kind: PartitionType,
}

impl Partition {
    /// The first byte after the partition (saturating: a hostile table cannot wrap it).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// The partition table of a disk or image.
#[derive(Debug, Clone)]
pub struct PartitionTable {
    pub kind: TableKind,
    /// MBR disk signature as 8 hex digits (the `xxxxxxxx` of `PARTUUID=xxxxxxxx-02`), or the
    /// GPT disk GUID.
    pub disk_id: String,
    pub partitions: Vec<Partition>,
}

/// Reads the partition table of a disk of `len` bytes and checks that every partition lies
/// inside it.
pub fn read_partition_table<D>(disk: &mut D, len: u64) -> Result<PartitionTable, DiskError>
where
    D: Read + Write + Seek + std::fmt::Debug,
{
    if len < SECTOR_SIZE {
        return Err(DiskError::TooSmall { len });
    }
    let mut sector = [0u8; SECTOR_SIZE as usize];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut sector)?;
    if sector[510..512] != [0x55, 0xaa] {
        return Err(DiskError::NoPartitionTable);
    }
    let protective = (0..4).any(|i| sector[446 + i * 16 + 4] == MBR_GPT_PROTECTIVE);
    let table = if protective {
        check_gpt(disk)?;
        read_gpt(disk)?
    } else {
        read_mbr(disk)?
    };
    if table.partitions.is_empty() {
        return Err(DiskError::NoPartitions);
    }
    for p in &table.partitions {
        if p.size == 0 || p.end() > len {
            return Err(DiskError::PartitionOutOfBounds {
                index: p.index,
                start: p.start,
                end: p.end(),
                len,
            });
        }
    }
    Ok(table)
}

/// The type, first sector and length of entry `i` of the table in an MBR or EBR sector.
fn mbr_entry(sector: &[u8; SECTOR_SIZE as usize], i: usize) -> (u8, u32, u32) {
    let e = &sector[446 + i * 16..446 + (i + 1) * 16];
    let le32 = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
    (e[4], le32(8), le32(12))
}

/// Refuses what mbrman 0.6.1 would panic on (both found by fuzzing, fuzz/ target
/// `partition_table`): its alignment guess `unwrap`s an empty range when every used entry
/// starts at sector 0, and it follows the chain of extended boot records adding 32-bit sector
/// numbers unchecked (a panic in a debug build, a wrapped, wrong start in a release build).
/// So: no used entry may start at sector 0 (that is the MBR itself), and the chain is walked
/// here first, as mbrman walks it, with checked arithmetic. Where mbrman would stop with an
/// error of its own (unreadable or unsigned EBR, a link that does not go forward), so does
/// this walk, and mbrman reports it.
fn check_mbr<D: Read + Seek>(
    disk: &mut D,
    mbr: &[u8; SECTOR_SIZE as usize],
) -> Result<(), DiskError> {
    let entries: Vec<(u8, u32, u32)> = (0..4).map(|i| mbr_entry(mbr, i)).collect();
    for (i, (kind, start, _)) in entries.iter().enumerate() {
        if *kind != 0 && *start == 0 {
            return Err(DiskError::BadTable(format!(
                "MBR: partition {} starts at sector 0, on the partition table itself",
                i + 1
            )));
        }
    }
    // mbrman follows the first extended entry (types 0x05, 0x0f, 0x85, 0xc5).
    let Some(&(_, extended, _)) = entries
        .iter()
        .find(|(kind, ..)| matches!(kind, 0x05 | 0x0f | 0x85 | 0xc5))
    else {
        return Ok(());
    };
    let too_far = || {
        DiskError::BadTable(
            "MBR: a logical partition lies beyond the 2 TiB that an MBR can address".into(),
        )
    };
    let mut relative: u32 = 0;
    loop {
        let ebr_lba = extended.checked_add(relative).ok_or_else(too_far)?;
        let mut ebr = [0u8; SECTOR_SIZE as usize];
        if disk
            .seek(SeekFrom::Start(u64::from(ebr_lba) * SECTOR_SIZE))
            .and_then(|_| disk.read_exact(&mut ebr))
            .is_err()
            || ebr[510..512] != [0x55, 0xaa]
        {
            return Ok(());
        }
        let (_, start, _) = mbr_entry(&ebr, 0);
        start.checked_add(ebr_lba).ok_or_else(too_far)?;
        let (_, next, _) = mbr_entry(&ebr, 1);
        if next == 0 || next <= relative {
            return Ok(());
        }
        relative = next;
    }
}

fn read_mbr<D: Read + Seek>(disk: &mut D) -> Result<PartitionTable, DiskError> {
    let mut sector = [0u8; SECTOR_SIZE as usize];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut sector)?;
    check_mbr(disk, &sector)?;
    disk.seek(SeekFrom::Start(0))?;
    let mbr = mbrman::MBR::read_from(disk, SECTOR_SIZE as u32)
        .map_err(|e| DiskError::BadTable(format!("MBR: {e}")))?;
    let mut partitions: Vec<Partition> = mbr
        .iter()
        .filter(|(_, p)| p.is_used() && !p.is_extended())
        .map(|(index, p)| Partition {
            index: index as u32,
            start: u64::from(p.starting_lba) * SECTOR_SIZE,
            size: u64::from(p.sectors) * SECTOR_SIZE,
            kind: PartitionType::Mbr(p.sys),
        })
        .collect();
    partitions.sort_by_key(|p| p.index);
    Ok(PartitionTable {
        kind: TableKind::Mbr,
        disk_id: hex::encode(u32::from_le_bytes(mbr.header.disk_signature).to_be_bytes()),
        partitions,
    })
}

/// Refuses what gpt 4.1.0 would panic on (found by fuzzing, fuzz/ target `partition_table`):
/// it `assert_eq!`s that partition entries are 128 bytes long, in release builds too, when it
/// reads the entries of a header that gives another size. It uses the primary header (LBA 1)
/// or, if that one is invalid, the backup header in the disk's last LBA; both are checked.
fn check_gpt<D: Read + Seek>(disk: &mut D) -> Result<(), DiskError> {
    let len = disk.seek(SeekFrom::End(0))?;
    let last = (len / SECTOR_SIZE).saturating_sub(1) * SECTOR_SIZE;
    for (name, at) in [("primary", SECTOR_SIZE), ("backup", last)] {
        let mut header = [0u8; 92];
        if disk
            .seek(SeekFrom::Start(at))
            .and_then(|_| disk.read_exact(&mut header))
            .is_err()
            || &header[..8] != b"EFI PART"
        {
            continue;
        }
        let size = u32::from_le_bytes([header[84], header[85], header[86], header[87]]);
        if size != 128 {
            return Err(DiskError::BadTable(format!(
                "GPT: the {name} header gives partition entries of {size} bytes; \
                 only 128-byte entries are supported"
            )));
        }
    }
    Ok(())
}

fn read_gpt<D>(disk: &mut D) -> Result<PartitionTable, DiskError>
where
    D: Read + Write + Seek + std::fmt::Debug,
{
    let gpt = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open_from_device(disk)
        .map_err(|e| DiskError::BadTable(format!("GPT: {e}")))?;
    let partitions = gpt
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(id, p)| {
            let sectors = p
                .last_lba
                .checked_sub(p.first_lba)
                .and_then(|n| n.checked_add(1))
                .unwrap_or(0);
            Partition {
                index: *id,
                start: p.first_lba.saturating_mul(SECTOR_SIZE),
                size: sectors.saturating_mul(SECTOR_SIZE),
                kind: PartitionType::Gpt(p.part_type_guid.guid.to_string().to_uppercase()),
            }
        })
        .collect();
    Ok(PartitionTable {
        kind: TableKind::Gpt,
        disk_id: gpt.guid().to_string(),
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A 64 KiB disk whose sector 0 holds `entries` as `(type, start, sectors)`.
    fn mbr_disk(entries: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut disk = vec![0u8; 64 * 1024];
        for (i, (kind, start, sectors)) in entries.iter().enumerate() {
            let e = &mut disk[446 + i * 16..446 + (i + 1) * 16];
            e[4] = *kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&sectors.to_le_bytes());
        }
        disk[510] = 0x55;
        disk[511] = 0xaa;
        disk
    }

    fn read(disk: Vec<u8>) -> Result<PartitionTable, DiskError> {
        let len = disk.len() as u64;
        read_partition_table(&mut Cursor::new(disk), len)
    }

    #[test]
    fn an_entry_at_sector_zero_is_refused() {
        // Found by fuzzing: mbrman 0.6.1 panicked (an unwrap in its alignment guess).
        let err = read(mbr_disk(&[(0x0c, 0, 22)])).unwrap_err();
        assert!(err.to_string().contains("starts at sector 0"), "{err}");
    }

    #[test]
    fn logical_partitions_past_2_tib_are_refused() {
        // An EBR whose entry or link would overflow mbrman's unchecked u32 sums.
        for (start, next) in [(u32::MAX, 0), (1, u32::MAX)] {
            let mut disk = mbr_disk(&[(0x0c, 8, 8), (0x05, 16, 100)]);
            let ebr = 16 * 512;
            disk[ebr + 446 + 4] = 0x83;
            disk[ebr + 446 + 8..ebr + 446 + 12].copy_from_slice(&start.to_le_bytes());
            disk[ebr + 446 + 12..ebr + 446 + 16].copy_from_slice(&1u32.to_le_bytes());
            disk[ebr + 462 + 4] = 0x05;
            disk[ebr + 462 + 8..ebr + 462 + 12].copy_from_slice(&next.to_le_bytes());
            disk[ebr + 510] = 0x55;
            disk[ebr + 511] = 0xaa;
            let err = read(disk).unwrap_err();
            assert!(err.to_string().contains("2 TiB"), "{err}");
        }
    }

    #[test]
    fn a_plain_mbr_reads() {
        let table = read(mbr_disk(&[(0x0c, 8, 32), (0x83, 40, 88)])).unwrap();
        assert_eq!(table.kind, TableKind::Mbr);
        assert_eq!(table.partitions.len(), 2);
        assert_eq!(table.partitions[1].start, 40 * 512);
    }
}
