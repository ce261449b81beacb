//! What a disk is, in the words a user recognises on the desk: "SD card reader", "USB SSD",
//! "NVMe via USB", "internal NVMe".
//!
//! Many clusters boot from USB SSDs (or NVMe drives in USB enclosures) to spare SD cards, so
//! those are first-class targets next to card readers. The kind is only shown (`pinode
//! devices`, flash's confirmation): what may be written is still decided by the bus alone
//! (`super::BlockDevice::hotplug`, see `crate::device::safety`), so that a disk on the PCIe
//! or SATA bus inside the machine stays refused however it names itself.

use serde::Serialize;

use super::Transport;

/// USB-to-NVMe bridge chips (`idVendor:idProduct`), as named in the USB ID repository
/// (linux-usb.org `usb.ids`; JMS583 also in Linux's `drivers/usb/storage/unusual_uas.h`):
/// JMicron JMS583, Realtek RTL9210 and ASMedia ASM2362. The SCSI model these bridges report
/// is often the bridge's own, so the bus id is the reliable sign.
const NVME_BRIDGES: [(&str, &str); 3] = [("152d", "0583"), ("0bda", "9210"), ("174c", "2362")];

/// The kind of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskKind {
    /// A card in a slot of the machine (the MMC bus, not soldered eMMC).
    SdCard,
    /// Soldered eMMC: internal, like a system disk.
    Emmc,
    /// A USB device with removable media: a card reader (USB sticks say the same).
    CardReader,
    /// An NVMe drive in a USB enclosure (a known bridge chip, or "NVMe" in its name).
    UsbNvme,
    /// A USB disk that says it is not rotational.
    UsbSsd,
    /// A USB disk that says it is rotational (many SSD bridges say so too: "disk", no more).
    UsbDisk,
    /// An NVMe drive on the machine's PCIe bus.
    InternalNvme,
    /// A SATA disk inside the machine.
    InternalSata,
    /// A virtual machine's disk.
    Virtual,
    /// A loop device (an image file).
    Loop,
    /// Anything else.
    Other,
}

/// What the kind is decided from: read from sysfs by `super::sysfs`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindSigns {
    /// The kernel's removable-media flag.
    pub(crate) removable: bool,
    /// `queue/rotational`; `None` when absent.
    pub(crate) rotational: Option<bool>,
    /// The MMC card's `device/type` (`SD`, `MMC`).
    pub(crate) mmc_type: Option<String>,
    /// The USB device's `idVendor` and `idProduct`, for a disk on USB.
    pub(crate) usb_id: Option<(String, String)>,
    /// Vendor and model strings, lower-cased.
    pub(crate) names: String,
}

impl DiskKind {
    /// The kind of a disk on `transport` with `signs`.
    pub(crate) fn of(transport: Transport, signs: &KindSigns) -> DiskKind {
        match transport {
            Transport::Usb => {
                let bridge = signs.usb_id.as_ref().is_some_and(|(v, p)| {
                    NVME_BRIDGES
                        .iter()
                        .any(|(bv, bp)| v.eq_ignore_ascii_case(bv) && p.eq_ignore_ascii_case(bp))
                });
                if bridge || signs.names.contains("nvme") {
                    DiskKind::UsbNvme
                } else if signs.removable {
                    DiskKind::CardReader
                } else if signs.rotational == Some(false) {
                    DiskKind::UsbSsd
                } else {
                    DiskKind::UsbDisk
                }
            }
            Transport::Mmc if signs.mmc_type.as_deref() == Some("MMC") => DiskKind::Emmc,
            Transport::Mmc => DiskKind::SdCard,
            Transport::Nvme => DiskKind::InternalNvme,
            Transport::Sata => DiskKind::InternalSata,
            Transport::Virtio => DiskKind::Virtual,
            Transport::Loop => DiskKind::Loop,
            Transport::Other => DiskKind::Other,
        }
    }

    /// The kind in a few words.
    pub fn label(self) -> &'static str {
        match self {
            DiskKind::SdCard => "SD card",
            DiskKind::Emmc => "eMMC",
            DiskKind::CardReader => "SD card reader",
            DiskKind::UsbNvme => "NVMe via USB",
            DiskKind::UsbSsd => "USB SSD",
            DiskKind::UsbDisk => "USB disk",
            DiskKind::InternalNvme => "internal NVMe",
            DiskKind::InternalSata => "internal SATA disk",
            DiskKind::Virtual => "virtual disk",
            DiskKind::Loop => "loop device",
            DiskKind::Other => "disk",
        }
    }
}
