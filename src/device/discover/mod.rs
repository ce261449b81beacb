//! Finding the disks a card could be written to, and what the running system uses them for.
//!
//! Everything comes from `/sys/block`, `/proc/self/mountinfo` and `/proc/swaps`, read through
//! a [`SystemView`] whose root can be moved (`PINODE_SYSTEM_ROOT`), so that the refusals can be
//! tested against a made-up machine: a system disk cannot be staged for real on a test host.

mod kind;
pub(crate) mod mounts;
mod sysfs;

pub use kind::DiskKind;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ui::Untrusted;

use super::identity::{Identity, backing_identity};

use kind::KindSigns;
use mounts::{Mount, parse_mountinfo, parse_swaps};
use sysfs::{SysDisk, attr, read_block_dir, usb_id};

/// Mount points that make a disk the system disk: the running OS cannot let go of them.
const SYSTEM_MOUNTS: [&str; 8] = [
    "/",
    "/usr",
    "/var",
    "/etc",
    "/home",
    "/boot",
    "/boot/efi",
    "/boot/firmware",
];

/// Where the kernel's view of block devices and mounts is read from.
#[derive(Debug, Clone)]
pub struct SystemView {
    sys: PathBuf,
    mountinfo: PathBuf,
    swaps: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list block devices ({path}: {source}); card discovery needs Linux's /sys")]
    NoSysfs {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Target { path: String, message: String },
}

impl SystemView {
    /// The running system.
    pub(crate) fn live() -> Self {
        Self::rooted(Path::new("/"))
    }

    /// The running system, or the tree the test hook `PINODE_SYSTEM_ROOT` names
    /// (`sys/block/…`, `proc/self/mountinfo`, `proc/swaps`; see `crate::edge::TestHooks`),
    /// for refusals that cannot be staged.
    pub fn from_settings(settings: &crate::edge::Settings) -> Self {
        match &settings.test.system_root {
            Some(root) => Self::rooted(root),
            None => Self::live(),
        }
    }

    fn rooted(root: &Path) -> Self {
        SystemView {
            sys: root.join("sys"),
            mountinfo: root.join("proc/self/mountinfo"),
            swaps: root.join("proc/swaps"),
        }
    }

    /// Every whole disk that could hold a card's image, with what uses it.
    pub fn scan(&self) -> Result<Vec<BlockDevice>, DiscoverError> {
        let disks = read_block_dir(&self.sys).map_err(|source| DiscoverError::NoSysfs {
            path: self.sys.join("block").display().to_string(),
            source,
        })?;
        let mounts = parse_mountinfo(&std::fs::read_to_string(&self.mountinfo).unwrap_or_default());
        let swaps = parse_swaps(&std::fs::read_to_string(&self.swaps).unwrap_or_default());
        let usage = Usage::collect(&disks, &mounts, &swaps);
        let mut found: Vec<BlockDevice> = disks
            .iter()
            .filter(|d| is_candidate(d))
            .map(|d| BlockDevice::from_sys(d, &usage))
            .collect();
        mark_shared_backing_files(&mut found);
        Ok(found)
    }

    /// The disk at `path` (a block device node), or the disk a partition at `path` belongs to.
    pub fn locate(&self, path: &Path) -> Result<Located, DiscoverError> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let target_err = |message: String| DiscoverError::Target {
            path: path.display().to_string(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| target_err(e.to_string()))?;
        if !meta.file_type().is_block_device() {
            return Err(target_err(
                "not a block device (to write an image file, use `pinode prepare`; to change \
                 one in place, `pinode patch`)"
                    .into(),
            ));
        }
        let rdev = meta.rdev();
        let devno = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let disks = self.scan()?;
        if let Some(disk) = disks.iter().find(|d| d.devno == devno) {
            return Ok(Located::Disk(disk.clone()));
        }
        for disk in &disks {
            if let Some(p) = disk.partitions.iter().find(|p| p.devno == devno) {
                return Ok(Located::Partition {
                    partition: p.path.clone(),
                    disk: disk.clone(),
                });
            }
        }
        Err(target_err(format!(
            "device {}:{} is not a disk pinode can write (no matching entry in {}; a RAM \
             disk, device-mapper or RAID device?)",
            devno.0,
            devno.1,
            self.sys.join("block").display()
        )))
    }
}

/// What `--device PATH` names.
#[derive(Debug, Clone)]
pub enum Located {
    Disk(BlockDevice),
    Partition {
        partition: PathBuf,
        disk: BlockDevice,
    },
}

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Usb,
    Mmc,
    Nvme,
    Sata,
    Virtio,
    Loop,
    Other,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Usb => "usb",
            Transport::Mmc => "mmc",
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Virtio => "virtio",
            Transport::Loop => "loop",
            Transport::Other => "other",
        }
    }
}

/// A partition of a disk and what the system does with it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionUse {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    #[serde(skip)]
    pub(crate) devno: (u32, u32),
    pub(crate) size_bytes: u64,
    pub(crate) mount_points: Vec<String>,
    pub(crate) swap: bool,
    /// Device-mapper, RAID or bcache devices built on it (an open LUKS volume, active LVM).
    pub(crate) holders: Vec<String>,
}

/// A whole disk, as `pinode devices` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockDevice {
    pub(crate) name: String,
    pub path: PathBuf,
    #[serde(skip)]
    pub(crate) devno: (u32, u32),
    pub size_bytes: u64,
    pub transport: Transport,
    /// What the disk is ("SD card reader", "USB SSD", "NVMe via USB"): shown, never what
    /// decides whether it may be written (`hotplug` does).
    pub kind: DiskKind,
    /// The kernel's removable-media flag.
    pub(crate) removable: bool,
    /// Removable media, or a disk on a hot-pluggable bus (USB, SD slot): what a card is.
    pub(crate) hotplug: bool,
    pub(crate) read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    pub(crate) partitions: Vec<PartitionUse>,
    /// Mount points of the whole disk (a file system without a partition table).
    pub(crate) mount_points: Vec<String>,
    pub(crate) swap: bool,
    pub(crate) holders: Vec<String>,
    /// System mount points that live on this disk (directly or through dm/md): the system
    /// disk.
    pub(crate) system_mounts: Vec<String>,
}

impl BlockDevice {
    /// Everything writing this disk overwrites: the disk, its partitions and, for a loop
    /// device, its backing file.
    pub fn identities(&self) -> Vec<Identity> {
        let mut ids = vec![Identity::device(self.devno)];
        ids.extend(self.partitions.iter().map(|p| Identity::device(p.devno)));
        if let Some(id) = self.backing_file.as_deref().and_then(backing_identity) {
            ids.push(id);
        }
        ids
    }

    fn from_sys(d: &SysDisk, usage: &Usage) -> BlockDevice {
        let transport = transport_of(d);
        let mmc_kind = attr(&d.dir.join("device"), "type");
        let hotplug = d.removable
            || transport == Transport::Usb
            || (transport == Transport::Mmc && mmc_kind.as_deref() != Some("MMC"));
        let device = d.dir.join("device");
        // virtio and some bridges report PCI ids ("0x1af4") rather than names.
        let named = |name: &str| attr(&device, name).filter(|v| !v.starts_with("0x"));
        let model = named("model").or_else(|| named("name"));
        let vendor = named("vendor");
        let signs = KindSigns {
            removable: d.removable,
            rotational: attr(&d.dir, "queue/rotational").map(|r| r == "1"),
            mmc_type: mmc_kind.clone(),
            usb_id: (transport == Transport::Usb)
                .then(|| usb_id(&d.device_path))
                .flatten(),
            names: format!(
                "{} {}",
                vendor.as_deref().unwrap_or(""),
                model.as_deref().unwrap_or("")
            )
            .to_lowercase(),
        };
        let partitions = d
            .partitions
            .iter()
            .map(|p| PartitionUse {
                name: p.name.clone(),
                path: PathBuf::from("/dev").join(&p.name),
                devno: p.devno,
                size_bytes: p.size,
                mount_points: usage.mounts_of(&p.name),
                swap: usage.swaps.contains(&p.name),
                holders: p.holders.clone(),
            })
            .collect();
        BlockDevice {
            name: d.name.clone(),
            path: PathBuf::from("/dev").join(&d.name),
            devno: d.devno,
            size_bytes: d.size,
            transport,
            kind: DiskKind::of(transport, &signs),
            removable: d.removable,
            hotplug,
            read_only: d.read_only,
            vendor,
            model,
            backing_file: attr(&d.dir.join("loop"), "backing_file"),
            partitions,
            mount_points: usage.mounts_of(&d.name),
            swap: usage.swaps.contains(&d.name),
            holders: d.holders.clone(),
            system_mounts: usage.system_mounts_of(&d.name),
        }
    }

    /// Every mount point on the disk, partitions included.
    pub(crate) fn all_mount_points(&self) -> Vec<String> {
        let mut all = self.mount_points.clone();
        for p in &self.partitions {
            all.extend(p.mount_points.iter().cloned());
        }
        all
    }

    /// "USB SSD (usb)", "SD card reader (usb)", "internal NVMe (nvme)": what a confirmation
    /// shows next to the model.
    pub fn kind_and_bus(&self) -> String {
        format!("{} ({})", self.kind.label(), self.transport.as_str())
    }

    /// "SanDisk Ultra", "loop → /var/tmp/card.img", or the transport.
    pub fn description(&self) -> String {
        // Vendor and model come from the device (sysfs): shown escaped, never obeyed.
        let words: Vec<String> = [self.vendor.as_deref(), self.model.as_deref()]
            .into_iter()
            .flatten()
            .map(|w| Untrusted(w).to_string())
            .collect();
        if !words.is_empty() {
            words.join(" ")
        } else if let Some(file) = &self.backing_file {
            format!("loop device of {}", Untrusted(file))
        } else {
            format!("{} disk", self.transport.as_str())
        }
    }
}

/// Two loop devices bound to one file are one card: when the other is mounted, swap or held
/// by device-mapper, writing this one rewrites a file system in use behind the kernel's back.
/// Such a use is recorded as a holder of this disk, which refuses it whatever the flags
/// (`--unmount` would only unmount this device's own mounts).
fn mark_shared_backing_files(disks: &mut [BlockDevice]) {
    let backing: Vec<Option<Identity>> = disks
        .iter()
        .map(|d| d.backing_file.as_deref().and_then(backing_identity))
        .collect();
    let mut extra: Vec<(usize, String)> = Vec::new();
    for (i, id) in backing.iter().enumerate() {
        let Some(id) = id else { continue };
        for (j, other) in disks.iter().enumerate() {
            if i == j || backing[j].as_ref() != Some(id) {
                continue;
            }
            let mut uses = other.all_mount_points();
            if other.swap || other.partitions.iter().any(|p| p.swap) {
                uses.push("swap".into());
            }
            uses.extend(other.holders.iter().cloned());
            uses.extend(
                other
                    .partitions
                    .iter()
                    .flat_map(|p| p.holders.iter().cloned()),
            );
            if !uses.is_empty() {
                extra.push((
                    i,
                    format!(
                        "{} (bound to the same file, in use: {})",
                        other.name,
                        uses.join(", ")
                    ),
                ));
            }
        }
    }
    for (i, text) in extra {
        disks[i].holders.push(text);
    }
}

/// Disks that could be a card. RAM disks, device-mapper and RAID devices, optical drives and
/// eMMC boot areas are never written by pinode; an unbound loop device has no size.
fn is_candidate(d: &SysDisk) -> bool {
    const NEVER: [&str; 8] = ["ram", "zram", "dm-", "md", "sr", "fd", "nbd", "zd"];
    let never = NEVER.iter().any(|p| {
        d.name
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    if never {
        return false;
    }
    if d.name.starts_with("mmcblk") && (d.name.contains("boot") || d.name.contains("rpmb")) {
        return false;
    }
    !(d.name.starts_with("loop") && d.size == 0)
}

fn transport_of(d: &SysDisk) -> Transport {
    let path = &d.device_path;
    if d.name.starts_with("loop") {
        Transport::Loop
    } else if path.contains("/usb") {
        Transport::Usb
    } else if d.name.starts_with("mmcblk") || path.contains("/mmc_host/") {
        Transport::Mmc
    } else if d.name.starts_with("nvme") {
        Transport::Nvme
    } else if d.name.starts_with("vd") || path.contains("/virtio") {
        Transport::Virtio
    } else if path.contains("/ata") {
        Transport::Sata
    } else {
        Transport::Other
    }
}

/// Who uses which block device, resolved down to whole disks and their partitions.
struct Usage {
    /// (device name, mount point) for every mount, attributed to the disk or partition it
    /// ends up on (through dm/md as well).
    mounts: Vec<(String, String)>,
    swaps: BTreeSet<String>,
    /// name → disk name, for partitions and disks.
    disk_of: std::collections::BTreeMap<String, String>,
}

impl Usage {
    fn collect(disks: &[SysDisk], mounts: &[Mount], swaps: &[String]) -> Usage {
        let mut by_devno = std::collections::BTreeMap::new();
        let mut disk_of = std::collections::BTreeMap::new();
        for d in disks {
            by_devno.insert(d.devno, d.name.clone());
            disk_of.insert(d.name.clone(), d.name.clone());
            for p in &d.partitions {
                by_devno.insert(p.devno, p.name.clone());
                disk_of.insert(p.name.clone(), d.name.clone());
            }
        }
        let base_names = |name: &str| -> Vec<String> { underlying(disks, name, 0) };
        let mut attributed = Vec::new();
        for m in mounts {
            let name = by_devno.get(&m.devno).cloned().or_else(|| {
                // Btrfs and other anonymous device numbers: go by the source's name.
                m.source
                    .strip_prefix("/dev/")
                    .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
                    .filter(|n| disk_of.contains_key(n) || disks.iter().any(|d| &d.name == n))
            });
            if let Some(name) = name {
                for base in base_names(&name) {
                    attributed.push((base, m.mount_point.clone()));
                }
            }
        }
        let mut swap_set = BTreeSet::new();
        for s in swaps {
            if let Some(name) = s.strip_prefix("/dev/") {
                let name = name.rsplit('/').next().unwrap_or(name);
                swap_set.extend(base_names(name));
            }
        }
        Usage {
            mounts: attributed,
            swaps: swap_set,
            disk_of,
        }
    }

    fn mounts_of(&self, name: &str) -> Vec<String> {
        self.mounts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// System mount points on disk `disk` or any of its partitions.
    fn system_mounts_of(&self, disk: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .mounts
            .iter()
            .filter(|(n, m)| {
                self.disk_of.get(n).map(String::as_str) == Some(disk)
                    && SYSTEM_MOUNTS.contains(&m.as_str())
            })
            .map(|(_, m)| m.clone())
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

/// The disks and partitions a device is built on: itself for a plain partition, the
/// `slaves/` of dm and md devices followed down (LUKS on LVM on a partition, say).
fn underlying(disks: &[SysDisk], name: &str, depth: u32) -> Vec<String> {
    let Some(disk) = disks.iter().find(|d| d.name == name) else {
        return vec![name.to_string()];
    };
    if disk.slaves.is_empty() || depth > 8 {
        return vec![name.to_string()];
    }
    disk.slaves
        .iter()
        .flat_map(|s| underlying(disks, s, depth + 1))
        .collect()
}

#[cfg(test)]
mod tests;
