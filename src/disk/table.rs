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

fn read_mbr<D: Read + Seek>(disk: &mut D) -> Result<PartitionTable, DiskError> {
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
                .map(|n| n + 1)
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
