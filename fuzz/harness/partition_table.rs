// Harness for the `partition_table` fuzz target, shared with tests/fuzz_regressions.rs through
// include!(): the input is a whole disk, read from memory.

use std::io::Cursor;

use pinode::disk::table::{SECTOR_SIZE, TableKind, read_partition_table};

/// Short inputs are padded with zeros to this many bytes, so that a GPT's header (LBA 1) and
/// entry array (LBA 2..34) are there to be found and the fuzzer need not grow the input first.
pub const MIN_DISK: usize = 64 * 1024;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Makes the GPT header at byte `at` (and its entry array) carry correct CRC32s, if it is
/// one and lies inside `disk`. Returns the header's backup LBA.
fn fix_gpt_crcs(disk: &mut [u8], at: usize) -> Option<u64> {
    let header = disk.get(at..at + 92)?;
    if &header[..8] != b"EFI PART" {
        return None;
    }
    let le32 = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let le64 = |b: &[u8], i: usize| u64::from(le32(b, i)) | (u64::from(le32(b, i + 4)) << 32);
    let size = le32(header, 12) as usize;
    let backup = le64(header, 32);
    let entries = usize::try_from(le64(header, 72)).ok()?.checked_mul(512);
    let len = (le32(header, 80) as usize).checked_mul(le32(header, 84) as usize);
    if let Some(range) = entries
        .zip(len)
        .and_then(|(s, l)| Some(s..s.checked_add(l)?))
        && range.end <= disk.len()
    {
        let crc = crc32(&disk[range]);
        disk[at + 88..at + 92].copy_from_slice(&crc.to_le_bytes());
    }
    if (92..=512).contains(&size) && at + size <= disk.len() {
        disk[at + 16..at + 20].fill(0);
        let crc = crc32(&disk[at..at + size]);
        disk[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
    Some(backup)
}

pub fn run(data: &[u8]) {
    let mut disk = data.to_vec();
    if disk.len() < MIN_DISK {
        disk.resize(MIN_DISK, 0);
    }
    // CRCs are what a mutation breaks first; for inputs of even length the harness puts
    // them right, so that the fuzzer reaches what the gpt crate does with the fields.
    if data.len().is_multiple_of(2)
        && let Some(backup) = fix_gpt_crcs(&mut disk, 512)
        && let Some(at) = usize::try_from(backup)
            .ok()
            .and_then(|b| b.checked_mul(512))
        && at != 512
    {
        fix_gpt_crcs(&mut disk, at);
    }
    let len = disk.len() as u64;
    let original = disk.clone();
    let mut cursor = Cursor::new(disk);
    let result = read_partition_table(&mut cursor, len);
    // Reading never writes, whatever the outcome.
    assert!(
        cursor.get_ref() == &original,
        "reading the table changed the disk"
    );
    let Ok(table) = result else {
        return;
    };
    // What read_partition_table promises: at least one partition, each non-empty and inside
    // the disk, and a usable disk id.
    assert!(!table.partitions.is_empty());
    for p in &table.partitions {
        assert!(p.size > 0, "{p:?}");
        assert!(
            p.start.checked_add(p.size).is_some_and(|end| end <= len),
            "{p:?}"
        );
        assert_eq!(p.end(), p.start + p.size);
        assert!(p.index >= 1, "{p:?}");
        if table.kind == TableKind::Mbr {
            assert_eq!(p.start % SECTOR_SIZE, 0);
            assert_eq!(p.size % SECTOR_SIZE, 0);
        }
        // What `inspect` and the boot-partition search do with an entry.
        let _ = (
            p.kind.may_be_fat(),
            p.kind.may_be_linux(),
            p.kind.to_string(),
        );
    }
    match table.kind {
        TableKind::Mbr => assert_eq!(table.disk_id.len(), 8, "{}", table.disk_id),
        TableKind::Gpt => assert_eq!(table.disk_id.len(), 36, "{}", table.disk_id),
    }
    let mut indices: Vec<u32> = table.partitions.iter().map(|p| p.index).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(
        indices.len(),
        table.partitions.len(),
        "duplicate partition numbers"
    );
}
