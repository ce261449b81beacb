//! An image file or card opened for pinode's work: partition table, boot partition, root
//! partition, and the overlay that collects changes.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::bootfs::{BootFs, BootFsError, FatKind};
use crate::disk::{self, DiskError, DiskKind, OverlayDisk, Partition, PartitionTable};
use crate::guard::{Contained, contain};
use crate::osinfo::{self, BootEvidence, OsInfo, RootEvidence};
use crate::rootfs::{OsRelease, RootFs};

/// Files whose presence marks the FAT partition the Raspberry Pi firmware boots from.
const BOOT_MARKERS: [&str; 2] = ["cmdline.txt", "config.txt"];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Disk { path: PathBuf, source: DiskError },
    #[error("{path}: no boot partition: {why}")]
    NoBootPartition { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    BootFs { path: PathBuf, source: BootFsError },
    #[error("{path}: {source}")]
    Contained { path: PathBuf, source: Contained },
    #[error("{path}: could not write the changes: {source}")]
    Commit {
        path: PathBuf,
        source: crate::disk::overlay::CommitError,
    },
}

/// An opened image or card.
pub struct Image {
    path: PathBuf,
    kind: DiskKind,
    disk: OverlayDisk,
    table: PartitionTable,
    boot: Partition,
    root: Option<Partition>,
}

impl Image {
    /// Opens `path` (read-only unless `writable`) and finds its boot partition.
    pub fn open(path: &Path, writable: bool) -> Result<Image, ImageError> {
        let disk_err = |source| ImageError::Disk {
            path: path.to_path_buf(),
            source,
        };
        let (file, len, kind) = disk::open(path, writable).map_err(disk_err)?;
        let mut disk = OverlayDisk::new(file, len);
        let table = contain(|| disk::read_partition_table(&mut disk, len))
            .map_err(|source| ImageError::Contained {
                path: path.to_path_buf(),
                source,
            })?
            .map_err(disk_err)?;
        let boot =
            find_boot_partition(&mut disk, &table).map_err(|why| ImageError::NoBootPartition {
                path: path.to_path_buf(),
                why,
            })?;
        let root = table
            .partitions
            .iter()
            .filter(|p| p.index != boot.index)
            .find(|p| p.kind.may_be_linux())
            .cloned();
        Ok(Image {
            path: path.to_path_buf(),
            kind,
            disk,
            table,
            boot,
            root,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> DiskKind {
        self.kind
    }

    pub fn len(&self) -> u64 {
        self.disk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.disk.is_empty()
    }

    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    pub fn boot_partition(&self) -> &Partition {
        &self.boot
    }

    pub(crate) fn disk(&self) -> &OverlayDisk {
        &self.disk
    }

    pub(crate) fn into_disk(self) -> OverlayDisk {
        self.disk
    }

    /// Runs `f` on the open boot file system and closes it cleanly afterwards. Panics inside
    /// the FAT driver are contained; on any error the overlay may hold partial changes, which
    /// the caller simply drops.
    pub fn with_boot_fs<T>(
        &mut self,
        f: impl FnOnce(&mut BootFs<'_>) -> Result<T, BootFsError>,
    ) -> Result<T, ImageError> {
        let path = self.path.clone();
        let boot = self.boot.clone();
        let disk = &mut self.disk;
        let result = contain(move || -> Result<T, BootFsError> {
            let mut fs = BootFs::open(disk, &boot)?;
            let value = f(&mut fs)?;
            fs.close()?;
            Ok(value)
        });
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(ImageError::BootFs { path, source }),
            Err(source) => Err(ImageError::Contained { path, source }),
        }
    }

    /// The root file system, read-only, if it is ext4.
    fn root_fs(&self) -> Option<RootFs> {
        self.root
            .as_ref()
            .and_then(|p| RootFs::open(self.disk.base(), p))
    }

    /// Decides OS family, generation and first-boot route.
    pub fn detect_os(
        &mut self,
        init_format: Option<&str>,
        forced: Option<osinfo::ForcedInit>,
    ) -> Result<OsInfo, ImageError> {
        let boot = self.with_boot_fs(|fs| {
            let issue_txt = fs
                .read("issue.txt")?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            Ok(BootEvidence {
                label: fs.label(),
                issue_txt,
                has_cloud_init_seed: fs.is_file("user-data")? && fs.is_file("meta-data")?,
            })
        })?;
        let root = self.root_fs().map(|fs| RootEvidence {
            os_release: fs
                .read_text("/etc/os-release")
                .or_else(|| fs.read_text("/usr/lib/os-release"))
                .map(|t| OsRelease::parse(&t)),
            has_cloud_init: fs.exists("/usr/bin/cloud-init"),
            has_snapd: fs.exists("/usr/lib/snapd/snapd") || fs.exists("/usr/bin/snap"),
            resolves_mdns: fs
                .read_text("/etc/nsswitch.conf")
                .map(|t| osinfo::nsswitch_resolves_mdns(&t)),
        });
        Ok(osinfo::detect(&boot, root.as_ref(), init_format, forced))
    }

    /// Writes the collected changes to the image or card in place. Returns the bytes written.
    pub fn commit(&mut self) -> Result<u64, ImageError> {
        self.disk.commit().map_err(|source| ImageError::Commit {
            path: self.path.clone(),
            source,
        })
    }

    /// The FAT variant of the boot partition.
    pub fn boot_fat_kind(&mut self) -> Result<FatKind, ImageError> {
        self.with_boot_fs(|fs| Ok(fs.fat_kind()))
    }

    /// The base file.
    pub(crate) fn base(&self) -> &File {
        self.disk.base()
    }
}

/// The first FAT partition that holds `cmdline.txt` or `config.txt`.
fn find_boot_partition(
    disk: &mut OverlayDisk,
    table: &PartitionTable,
) -> Result<Partition, String> {
    let mut notes = Vec::new();
    for partition in table.partitions.iter().filter(|p| p.kind.may_be_fat()) {
        let probe = contain(|| -> Result<bool, BootFsError> {
            let fs = BootFs::open(disk, partition)?;
            for marker in BOOT_MARKERS {
                if fs.is_file(marker)? {
                    return Ok(true);
                }
            }
            Ok(false)
        });
        match probe {
            Ok(Ok(true)) => return Ok(partition.clone()),
            Ok(Ok(false)) => notes.push(format!(
                "partition {} is FAT but holds neither cmdline.txt nor config.txt",
                partition.index
            )),
            Ok(Err(e)) => notes.push(e.to_string()),
            Err(e) => notes.push(format!("partition {}: {e}", partition.index)),
        }
    }
    if notes.is_empty() {
        let kinds: Vec<String> = table
            .partitions
            .iter()
            .map(|p| format!("{}: type {}", p.index, p.kind))
            .collect();
        notes.push(format!(
            "no FAT partition in the table ({})",
            kinds.join(", ")
        ));
    }
    Err(notes.join("; "))
}
