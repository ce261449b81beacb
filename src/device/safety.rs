//! Which disks pinode will write, and why not the others.
//!
//! A dangerous target is refused, not warned about. Two refusals can be lifted, and only by
//! naming the device: a mounted card (`--unmount`, pinode unmounts it first) and a disk that
//! is not removable (`--allow-non-removable`; loop devices and USB-SATA bridges that hide the
//! flag). The system disk, a disk in use by device-mapper/RAID/swap, a read-only or empty
//! reader and a disk too small for the image are refused whatever the flags.

use serde::Serialize;

use super::discover::BlockDevice;
use crate::ui::size;

/// Why a disk is not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Refusal {
    /// The running system lives on it.
    SystemDisk {
        mounts: Vec<String>,
    },
    /// Partitions of it are mounted.
    Mounted {
        mounts: Vec<String>,
    },
    /// Swap, device-mapper (LUKS, LVM) or RAID uses it.
    InUse {
        by: Vec<String>,
    },
    /// Not removable media and not on a hot-pluggable bus.
    NotRemovable,
    /// The kernel says read-only (an SD card's lock switch, for one).
    ReadOnly,
    /// A reader without a card.
    NoMedia,
    TooSmall {
        need: u64,
        have: u64,
    },
}

/// The user's explicit permissions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `--unmount`: unmount the card's partitions first.
    pub unmount: bool,
    /// `--allow-non-removable`: accept a fixed disk (requires `--device`).
    pub allow_non_removable: bool,
    /// The device was named with `--device` (overrides apply only then).
    pub named: bool,
}

impl Refusal {
    /// One line, without the device's name.
    pub fn message(&self) -> String {
        match self {
            Refusal::SystemDisk { mounts } => {
                format!("system disk (holds {})", mounts.join(", "))
            }
            Refusal::Mounted { mounts } => format!("mounted at {}", mounts.join(", ")),
            Refusal::InUse { by } => format!("in use by {}", by.join(", ")),
            Refusal::NotRemovable => "not removable (not a card or USB disk)".into(),
            Refusal::ReadOnly => "read-only (is the card's lock switch on?)".into(),
            Refusal::NoMedia => "no card in the reader".into(),
            Refusal::TooSmall { need, have } => format!(
                "too small: the image needs {}, the disk holds {}",
                size::binary(*need),
                size::binary(*have)
            ),
        }
    }

    /// The flag that lifts this refusal, if any.
    pub fn override_flag(&self) -> Option<&'static str> {
        match self {
            Refusal::Mounted { .. } => Some("--unmount"),
            Refusal::NotRemovable => Some("--allow-non-removable"),
            _ => None,
        }
    }

    fn lifted_by(&self, o: &Overrides) -> bool {
        o.named
            && match self {
                Refusal::Mounted { .. } => o.unmount,
                Refusal::NotRemovable => o.allow_non_removable,
                _ => false,
            }
    }
}

/// Everything that speaks against writing `image_len` bytes to `disk`.
pub fn assess(disk: &BlockDevice, image_len: Option<u64>) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if !disk.system_mounts.is_empty() {
        refusals.push(Refusal::SystemDisk {
            mounts: disk.system_mounts.clone(),
        });
    }
    let mounts = disk.all_mount_points();
    if !mounts.is_empty() && disk.system_mounts.is_empty() {
        refusals.push(Refusal::Mounted { mounts });
    }
    let mut by: Vec<String> = disk.holders.clone();
    for p in &disk.partitions {
        by.extend(p.holders.iter().map(|h| format!("{h} (on {})", p.name)));
        if p.swap {
            by.push(format!("swap ({})", p.name));
        }
    }
    if disk.swap {
        by.push("swap".into());
    }
    if !by.is_empty() {
        refusals.push(Refusal::InUse { by });
    }
    if !disk.hotplug {
        refusals.push(Refusal::NotRemovable);
    }
    if disk.read_only {
        refusals.push(Refusal::ReadOnly);
    }
    if disk.size_bytes == 0 {
        refusals.push(Refusal::NoMedia);
    } else if let Some(need) = image_len
        && need > disk.size_bytes
    {
        refusals.push(Refusal::TooSmall {
            need,
            have: disk.size_bytes,
        });
    }
    refusals
}

/// The refusals the user's flags do not lift.
pub fn blocking<'a>(refusals: &'a [Refusal], overrides: &Overrides) -> Vec<&'a Refusal> {
    refusals
        .iter()
        .filter(|r| !r.lifted_by(overrides))
        .collect()
}

/// The refusals' messages, in one line.
pub fn reasons<'a>(refusals: impl IntoIterator<Item = &'a Refusal>) -> String {
    let messages: Vec<String> = refusals.into_iter().map(Refusal::message).collect();
    messages.join("; ")
}

/// A disk's verdict as `pinode devices` and the wizard's picker show it.
pub fn verdict(refusals: &[Refusal]) -> String {
    if refusals.is_empty() {
        "usable".to_string()
    } else {
        format!("refused: {}", reasons(refusals))
    }
}

/// A disk in one line: path, size, kind and model.
pub fn one_line(d: &BlockDevice) -> String {
    format!(
        "{}  {}  {}  {}",
        d.path.display(),
        size::card(d.size_bytes),
        // A loop device's description already says so ("loop device of FILE").
        match d.kind {
            crate::device::discover::DiskKind::Loop => d.transport.as_str(),
            kind => kind.label(),
        },
        d.description()
    )
}

/// One line that says why `disk` is refused and, where a flag would help, which.
pub fn explain(disk: &BlockDevice, refusals: &[&Refusal], overrides: &Overrides) -> String {
    let mut line = format!(
        "refusing to write {} ({}): {}",
        disk.path.display(),
        disk.description(),
        reasons(refusals.iter().copied())
    );
    let flags: Vec<&str> = refusals.iter().filter_map(|r| r.override_flag()).collect();
    if !flags.is_empty() && refusals.iter().all(|r| r.override_flag().is_some()) {
        if overrides.named {
            line.push_str(&format!(
                " (if this really is the card, add {})",
                flags.join(" ")
            ));
        } else {
            line.push_str(&format!(
                " (if this really is the card, name it with --device {} and add {})",
                disk.path.display(),
                flags.join(" ")
            ));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::discover::{DiskKind, PartitionUse, Transport};
    use std::path::PathBuf;

    fn card() -> BlockDevice {
        BlockDevice {
            name: "sdb".into(),
            path: PathBuf::from("/dev/sdb"),
            devno: (8, 16),
            size_bytes: 32_000_000_000,
            transport: Transport::Usb,
            kind: DiskKind::CardReader,
            removable: true,
            hotplug: true,
            read_only: false,
            vendor: None,
            model: Some("Ultra".into()),
            backing_file: None,
            partitions: vec![PartitionUse {
                name: "sdb1".into(),
                path: PathBuf::from("/dev/sdb1"),
                devno: (8, 17),
                size_bytes: 1 << 29,
                mount_points: vec![],
                swap: false,
                holders: vec![],
            }],
            mount_points: vec![],
            swap: false,
            holders: vec![],
            system_mounts: vec![],
        }
    }

    #[test]
    fn a_plain_card_is_usable() {
        assert!(assess(&card(), Some(3_000_000_000)).is_empty());
    }

    #[test]
    fn mounted_and_fixed_disks_need_the_flag_and_the_name() {
        let mut disk = card();
        disk.hotplug = false;
        disk.partitions[0].mount_points = vec!["/media/bob/bootfs".into()];
        let refusals = assess(&disk, None);
        assert_eq!(refusals.len(), 2);
        let flags = Overrides {
            unmount: true,
            allow_non_removable: true,
            named: false,
        };
        assert_eq!(
            blocking(&refusals, &flags).len(),
            2,
            "not named: no override"
        );
        let named = Overrides {
            named: true,
            ..flags
        };
        assert!(blocking(&refusals, &named).is_empty());
        let line = explain(
            &disk,
            &blocking(&refusals, &Overrides::default()),
            &Overrides::default(),
        );
        assert!(
            line.contains("--device /dev/sdb") && line.contains("--unmount"),
            "{line}"
        );
    }

    #[test]
    fn the_system_disk_is_never_written() {
        let mut disk = card();
        disk.system_mounts = vec!["/".into()];
        disk.partitions[0].mount_points = vec!["/".into()];
        let refusals = assess(&disk, None);
        assert_eq!(
            refusals,
            vec![Refusal::SystemDisk {
                mounts: vec!["/".into()]
            }]
        );
        let all = Overrides {
            unmount: true,
            allow_non_removable: true,
            named: true,
        };
        assert_eq!(blocking(&refusals, &all).len(), 1);
        let line = explain(&disk, &blocking(&refusals, &all), &all);
        assert!(!line.contains("add --"), "no flag helps: {line}");
    }

    #[test]
    fn too_small_read_only_empty_and_busy() {
        let mut disk = card();
        assert_eq!(
            assess(&disk, Some(64_000_000_000)),
            vec![Refusal::TooSmall {
                need: 64_000_000_000,
                have: 32_000_000_000
            }]
        );
        disk.read_only = true;
        disk.partitions[0].holders = vec!["dm-3".into()];
        let codes: Vec<String> = assess(&disk, None).iter().map(|r| r.message()).collect();
        assert_eq!(codes[0], "in use by dm-3 (on sdb1)");
        assert!(codes[1].starts_with("read-only"));
        disk.size_bytes = 0;
        assert!(assess(&disk, Some(1)).contains(&Refusal::NoMedia));
    }
}
