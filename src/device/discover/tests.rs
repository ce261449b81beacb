//! Discovery against made-up machines: sysfs trees and mount tables written to a temp dir.

use std::fs;
use std::path::Path;

use super::*;

struct Machine {
    root: tempfile::TempDir,
}

impl Machine {
    fn new(mountinfo: &str, swaps: &str) -> Machine {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("sys/block")).unwrap();
        fs::create_dir_all(root.path().join("proc/self")).unwrap();
        fs::write(root.path().join("proc/self/mountinfo"), mountinfo).unwrap();
        fs::write(
            root.path().join("proc/swaps"),
            format!("Filename Type Size Used Priority\n{swaps}"),
        )
        .unwrap();
        Machine { root }
    }

    /// A disk under `devices/<bus_path>/block/<name>`, linked from `sys/block/<name>`.
    fn disk(&self, name: &str, bus_path: &str, devno: &str, gib: u64, removable: bool) -> &Self {
        let dir = self
            .root
            .path()
            .join("sys/devices")
            .join(bus_path)
            .join("block")
            .join(name);
        fs::create_dir_all(dir.join("device")).unwrap();
        fs::create_dir_all(dir.join("holders")).unwrap();
        fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
        fs::write(dir.join("size"), format!("{}\n", gib << 21)).unwrap();
        fs::write(dir.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
        fs::write(dir.join("ro"), "0\n").unwrap();
        std::os::unix::fs::symlink(&dir, self.root.path().join("sys/block").join(name)).unwrap();
        self
    }

    fn attr(&self, disk: &str, name: &str, value: &str) -> &Self {
        let dir = self.root.path().join("sys/block").join(disk);
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, value).unwrap();
        self
    }

    fn partition(&self, disk: &str, name: &str, devno: &str) -> &Self {
        let dir = self.root.path().join("sys/block").join(disk).join(name);
        fs::create_dir_all(dir.join("holders")).unwrap();
        fs::write(dir.join("dev"), devno).unwrap();
        fs::write(dir.join("partition"), "1").unwrap();
        fs::write(dir.join("size"), "2048").unwrap();
        self
    }

    fn link(&self, from: &str, to: &str) -> &Self {
        let path = self.root.path().join("sys/block").join(from);
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join(to), "").unwrap();
        self
    }

    fn scan(&self) -> Vec<BlockDevice> {
        SystemView::rooted(self.root.path()).scan().unwrap()
    }
}

fn by_name<'a>(devices: &'a [BlockDevice], name: &str) -> &'a BlockDevice {
    devices.iter().find(|d| d.name == name).unwrap()
}

#[test]
fn a_laptop_with_an_sd_card_and_a_usb_reader() {
    let m = Machine::new(
        "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n\
         23 22 259:1 / /boot/efi rw - vfat /dev/nvme0n1p1 rw\n\
         40 22 8:17 / /media/bob/bootfs rw - vfat /dev/sdb1 rw\n",
        "",
    );
    m.disk(
        "nvme0n1",
        "pci0000:00/0000:00:1d.0/nvme/nvme0",
        "259:0",
        512,
        false,
    )
    .partition("nvme0n1", "nvme0n1p1", "259:1")
    .partition("nvme0n1", "nvme0n1p2", "259:2")
    .attr("nvme0n1", "device/model", "Samsung SSD 970\n")
    .disk(
        "sdb",
        "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0",
        "8:16",
        32,
        false,
    )
    .partition("sdb", "sdb1", "8:17")
    .partition("sdb", "sdb2", "8:18")
    .attr("sdb", "device/vendor", "SanDisk \n")
    .attr("sdb", "device/model", "Ultra\n")
    .disk(
        "mmcblk0",
        "platform/soc/mmc_host/mmc0/mmc0:aaaa",
        "179:0",
        16,
        false,
    )
    .attr("mmcblk0", "device/type", "SD\n")
    .attr("mmcblk0", "device/name", "SD16G\n")
    .disk(
        "mmcblk0boot0",
        "platform/x/mmc_host/mmc1/mmc1:0001",
        "179:8",
        0,
        false,
    )
    .disk("loop0", "virtual", "7:0", 0, false)
    .disk("zram0", "virtual", "252:0", 4, false);
    let devices = m.scan();
    let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["mmcblk0", "nvme0n1", "sdb"]);

    let nvme = by_name(&devices, "nvme0n1");
    assert_eq!(nvme.transport, Transport::Nvme);
    assert!(!nvme.hotplug);
    assert_eq!(nvme.system_mounts, ["/", "/boot/efi"]);

    let usb = by_name(&devices, "sdb");
    assert_eq!(usb.transport, Transport::Usb);
    assert!(
        usb.hotplug,
        "a USB disk is hot-pluggable even without the removable flag"
    );
    assert!(usb.system_mounts.is_empty());
    assert_eq!(usb.all_mount_points(), ["/media/bob/bootfs"]);
    assert_eq!(usb.description(), "SanDisk Ultra");
    assert_eq!(usb.size_bytes, 32 << 30);

    let sd = by_name(&devices, "mmcblk0");
    assert_eq!(sd.transport, Transport::Mmc);
    assert!(sd.hotplug);
    assert_eq!(sd.model.as_deref(), Some("SD16G"));
}

#[test]
fn root_on_lvm_on_luks_marks_the_disk_under_it() {
    let m = Machine::new(
        "22 1 253:1 / / rw - ext4 /dev/mapper/vg-root rw\n",
        "/dev/dm-2 partition 1000 0 -2\n",
    );
    m.disk(
        "sda",
        "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0",
        "8:0",
        256,
        false,
    )
    .partition("sda", "sda1", "8:1")
    .partition("sda", "sda2", "8:2")
    .link("sda/sda2/holders", "dm-0")
    .disk(
        "sdc",
        "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host7/t/7:0:0:0",
        "8:32",
        64,
        true,
    )
    .partition("sdc", "sdc1", "8:33")
    .disk("dm-0", "virtual", "253:0", 255, false)
    .link("dm-0/slaves", "sda2")
    .disk("dm-1", "virtual", "253:1", 200, false)
    .link("dm-1/slaves", "dm-0")
    .disk("dm-2", "virtual", "253:2", 8, false)
    .link("dm-2/slaves", "dm-0");
    let devices = m.scan();
    let sda = by_name(&devices, "sda");
    assert_eq!(sda.transport, Transport::Sata);
    assert_eq!(sda.system_mounts, ["/"]);
    assert_eq!(sda.partitions[1].mount_points, ["/"]);
    assert!(sda.partitions[1].swap, "swap on dm-2 lives on sda2");
    assert_eq!(sda.partitions[1].holders, ["dm-0"]);
    let sdc = by_name(&devices, "sdc");
    assert!(sdc.removable && sdc.hotplug && sdc.system_mounts.is_empty());
    assert!(devices.iter().all(|d| !d.name.starts_with("dm-")));
}

#[test]
fn btrfs_mounts_are_matched_by_source() {
    let m = Machine::new("22 1 0:31 /@ / rw - btrfs /dev/vda2 rw\n", "");
    m.disk("vda", "pci0000:00/0000:00:04.0/virtio2", "254:0", 20, false)
        .partition("vda", "vda1", "254:1")
        .partition("vda", "vda2", "254:2");
    let devices = m.scan();
    assert_eq!(devices[0].transport, Transport::Virtio);
    assert_eq!(devices[0].system_mounts, ["/"]);
}

#[test]
fn an_empty_machine_is_an_error_that_names_sysfs() {
    let root = tempfile::tempdir().unwrap();
    let err = SystemView::rooted(root.path()).scan().unwrap_err();
    assert!(err.to_string().contains("sys/block"), "{err}");
    let _ = Path::new("/");
}
