//! Reading `/sys/block`: the block devices the kernel knows, their partitions, sizes, flags,
//! how they are attached and what sits on top of them.

use std::fs;
use std::path::{Path, PathBuf};

/// One entry of `/sys/block`: a whole disk, or a virtual device (dm, md, loop…).
#[derive(Debug, Clone)]
pub(crate) struct SysDisk {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) devno: (u32, u32),
    /// Bytes (the `size` attribute counts 512-byte sectors whatever the block size).
    pub(crate) size: u64,
    pub(crate) removable: bool,
    pub(crate) read_only: bool,
    /// `/sys/devices/…` path the entry links to (says how the disk is attached).
    pub(crate) device_path: String,
    pub(crate) partitions: Vec<SysPartition>,
    /// Devices built on this one (dm, md, bcache): `holders/`.
    pub(crate) holders: Vec<String>,
    /// Devices this one is built on (for dm and md): `slaves/`.
    pub(crate) slaves: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct SysPartition {
    pub(crate) name: String,
    pub(crate) devno: (u32, u32),
    pub(crate) size: u64,
    pub(crate) holders: Vec<String>,
}

/// Every entry of `sys/block`, sorted by name. A missing directory is an empty system (not
/// Linux, or a container without sysfs), which the caller reports.
pub(crate) fn read_block_dir(sys: &Path) -> std::io::Result<Vec<SysDisk>> {
    let block = sys.join("block");
    let mut disks = Vec::new();
    for entry in fs::read_dir(&block)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(disk) = read_disk(&block.join(&name), &name) {
            disks.push(disk);
        }
    }
    disks.sort_by_key(|d| natural_key(&d.name));
    Ok(disks)
}

fn read_disk(dir: &Path, name: &str) -> Option<SysDisk> {
    let devno = parse_devno(&attr(dir, "dev")?)?;
    let device_path = fs::canonicalize(dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut partitions = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let part_dir = entry.path();
            if !part_dir.join("partition").is_file() {
                continue;
            }
            let Some(devno) = attr(&part_dir, "dev").and_then(|d| parse_devno(&d)) else {
                continue;
            };
            partitions.push(SysPartition {
                name: entry.file_name().to_string_lossy().into_owned(),
                devno,
                size: sectors(&part_dir),
                holders: list(&part_dir.join("holders")),
            });
        }
    }
    partitions.sort_by_key(|p| natural_key(&p.name));
    Some(SysDisk {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        devno,
        size: sectors(dir),
        removable: attr(dir, "removable").as_deref() == Some("1"),
        read_only: attr(dir, "ro").as_deref() == Some("1"),
        device_path,
        partitions,
        holders: list(&dir.join("holders")),
        slaves: list(&dir.join("slaves")),
    })
}

/// The `idVendor` and `idProduct` of the USB device a disk hangs off: the nearest ancestor
/// of its `/sys/devices/…` path that has them (a few levels up: interface, then device).
/// Bounded: at most 16 levels, and never above `devices/`.
pub(crate) fn usb_id(device_path: &str) -> Option<(String, String)> {
    let path = Path::new(device_path);
    for dir in path.ancestors().take(16) {
        if dir.file_name().is_none_or(|n| n == "devices") {
            return None;
        }
        if let (Some(v), Some(p)) = (attr(dir, "idVendor"), attr(dir, "idProduct")) {
            return Some((v, p));
        }
    }
    None
}

/// A sysfs attribute, trimmed; `None` when absent or unreadable.
pub(crate) fn attr(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn sectors(dir: &Path) -> u64 {
    attr(dir, "size")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |n| n.saturating_mul(512))
}

fn parse_devno(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Sort key that puts `sdb2` before `sdb10` and `loop2` before `loop10`.
fn natural_key(name: &str) -> (String, u64, String) {
    let digits_at = name
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()
        .map(|(i, _)| i);
    match digits_at {
        Some(i) => (
            name[..i].to_string(),
            name[i..].parse().unwrap_or(u64::MAX),
            String::new(),
        ),
        None => (name.to_string(), 0, String::new()),
    }
}
