//! Storage (issue 20, item 5): USB SSDs and NVMe enclosures as first-class targets, the
//! SD-card warning for HA clusters, and the first boot's measured write speed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// A made-up machine (for `PINODE_SYSTEM_ROOT`): disks under `sys/devices/<bus>/block/<name>`
/// linked from `sys/block`, as the kernel lays them out, with the USB device's ids on the
/// ancestor directory that has them.
struct Machine {
    root: PathBuf,
}

impl Machine {
    fn new(dir: &Path, mountinfo: &str) -> Machine {
        let root = dir.join("machine");
        fs::create_dir_all(root.join("sys/block")).unwrap();
        fs::create_dir_all(root.join("proc/self")).unwrap();
        fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
        fs::write(
            root.join("proc/swaps"),
            "Filename Type Size Used Priority\n",
        )
        .unwrap();
        Machine { root }
    }

    #[allow(clippy::too_many_arguments)]
    fn disk(
        &self,
        name: &str,
        bus: &str,
        devno: &str,
        removable: bool,
        rotational: bool,
        model: &str,
    ) -> PathBuf {
        let dir = self
            .root
            .join("sys/devices")
            .join(bus)
            .join("block")
            .join(name);
        fs::create_dir_all(dir.join("device")).unwrap();
        fs::create_dir_all(dir.join("queue")).unwrap();
        fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
        fs::write(dir.join("size"), format!("{}\n", 64u64 << 21)).unwrap();
        fs::write(dir.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
        fs::write(dir.join("ro"), "0\n").unwrap();
        let rot = if rotational { "1\n" } else { "0\n" };
        fs::write(dir.join("queue/rotational"), rot).unwrap();
        fs::write(dir.join("device/model"), format!("{model}\n")).unwrap();
        std::os::unix::fs::symlink(&dir, self.root.join("sys/block").join(name)).unwrap();
        dir
    }

    fn partition(&self, disk: &Path, name: &str, devno: &str) {
        let p = disk.join(name);
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("dev"), format!("{devno}\n")).unwrap();
        fs::write(p.join("partition"), "1\n").unwrap();
        fs::write(p.join("size"), "2048\n").unwrap();
    }

    fn usb_ids(&self, usb_device: &str, vendor: &str, product: &str) {
        let dir = self.root.join("sys/devices").join(usb_device);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("idVendor"), format!("{vendor}\n")).unwrap();
        fs::write(dir.join("idProduct"), format!("{product}\n")).unwrap();
    }
}

const USB1: &str = "pci0000:00/0000:00:14.0/usb2/2-1";
const USB2: &str = "pci0000:00/0000:00:14.0/usb2/2-2";
const USB3: &str = "pci0000:00/0000:00:14.0/usb1/1-3";

/// A laptop: NVMe system disk, a second internal SATA disk, and on USB an SSD, an NVMe
/// drive in a JMicron JMS583 enclosure and a card reader; plus the built-in SD slot.
fn laptop(dir: &Path) -> Machine {
    let m = Machine::new(dir, "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n");
    let nvme = m.disk(
        "nvme0n1",
        "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0",
        "259:0",
        false,
        false,
        "Samsung SSD 970 EVO",
    );
    m.partition(&nvme, "nvme0n1p2", "259:2");
    m.disk(
        "sda",
        "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0",
        "8:0",
        false,
        false,
        "CT500MX500SSD1",
    );
    m.disk(
        "sdb",
        &format!("{USB1}/2-1:1.0/host6/target6:0:0/6:0:0:0"),
        "8:16",
        false,
        false,
        "Extreme Pro",
    );
    m.usb_ids(USB1, "0781", "5583");
    m.disk(
        "sdc",
        &format!("{USB2}/2-2:1.0/host7/target7:0:0/7:0:0:0"),
        "8:32",
        false,
        true,
        "Generic",
    );
    m.usb_ids(USB2, "152d", "0583");
    m.disk(
        "sdd",
        &format!("{USB3}/1-3:1.0/host8/target8:0:0/8:0:0:0"),
        "8:48",
        true,
        true,
        "SD/MMC",
    );
    m.usb_ids(USB3, "05e3", "0749");
    let sd = m.disk(
        "mmcblk0",
        "platform/soc/mmc_host/mmc0/mmc0:aaaa",
        "179:0",
        false,
        false,
        "SD64G",
    );
    fs::write(sd.join("device/type"), "SD\n").unwrap();
    m
}

fn devices(m: &Machine, json: bool) -> String {
    let mut cmd = pinode();
    cmd.arg("devices").env("PINODE_SYSTEM_ROOT", &m.root);
    if json {
        cmd.arg("--json");
    }
    run(&mut cmd)
}

/// USB disks are candidates with their kind shown; internal disks are refused as before.
#[test]
fn usb_ssds_and_nvme_enclosures_are_targets_internal_disks_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let m = laptop(dir.path());
    let v: serde_json::Value = serde_json::from_str(&devices(&m, true)).unwrap();
    let by = |name: &str| -> serde_json::Value {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == format!("/dev/{name}"))
            .unwrap_or_else(|| panic!("{name} not listed: {v}"))
            .clone()
    };
    let codes = |d: &serde_json::Value| -> Vec<String> {
        d["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_string())
            .collect()
    };
    for (name, kind, label) in [
        ("sdb", "usb-ssd", "USB SSD"),
        ("sdc", "usb-nvme", "NVMe via USB"),
        ("sdd", "card-reader", "SD card reader"),
        ("mmcblk0", "sd-card", "SD card"),
    ] {
        let d = by(name);
        assert_eq!(d["kind"], kind, "{d}");
        assert_eq!(d["kind_label"], label, "{d}");
        assert_eq!(d["usable"], true, "{name} must be a target: {d}");
    }
    let nvme = by("nvme0n1");
    assert_eq!(nvme["kind"], "internal-nvme");
    assert_eq!(codes(&nvme), ["system-disk", "not-removable"]);
    let sata = by("sda");
    assert_eq!(sata["kind"], "internal-sata");
    assert_eq!(
        codes(&sata),
        ["not-removable"],
        "an internal disk stays refused"
    );

    let table = devices(&m, false);
    let line = |dev: &str| -> String {
        table
            .lines()
            .find(|l| l.starts_with(dev))
            .unwrap_or_else(|| panic!("{dev} missing:\n{table}"))
            .to_string()
    };
    assert!(table.lines().next().unwrap().contains("KIND"), "{table}");
    assert!(line("/dev/sdc ").contains("NVMe via USB") && line("/dev/sdc ").contains("usable"));
    assert!(line("/dev/sdb ").contains("USB SSD"), "{table}");
    assert!(
        line("/dev/sda ").contains("internal SATA disk") && line("/dev/sda ").contains("refused")
    );
}

/// `profile check` on `yaml` (written to a fresh directory): its exit status and stderr.
fn profile_check(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(dir.path(), "p.yaml", yaml);
    let out = output(
        pinode()
            .args(["profile", "check"])
            .arg(&path)
            .env("PINODE_STATE_DIR", dir.path().join("state")),
    );
    (out.status.success(), stderr(&out))
}

fn cluster(distribution: &str, nodes: &str) -> String {
    format!("cluster:\n  name: c\n  distribution: {distribution}\nnodes:\n{nodes}")
}

/// The warning lines of a run (`warning: FILE:LINE: …`).
fn sd_warnings(err: &str) -> Vec<String> {
    err.lines()
        .filter(|l| l.contains("on an SD card"))
        .map(str::to_string)
        .collect()
}

/// Three K3s servers on SD cards: one warning per entry at its hostname's line, saying
/// why (etcd, fsync, the K3s docs) and what to do; it is a warning, not an error.
#[test]
fn ha_servers_on_sd_cards_are_warned_about_at_their_lines() {
    let yaml = profile_yaml(
        "os:\n  image: raspios-lite-arm64\n",
        "",
        &cluster(
            "k3s",
            "  - hostname: s-1\n    role: server\n  - hostname: s-[2-3]\n    role: server\n  - hostname: a-1\n    role: agent\n",
        ),
    );
    let (ok, err) = profile_check(&yaml);
    assert!(ok, "a warning, not an error: {err}");
    let warnings = sd_warnings(&err);
    assert_eq!(
        warnings.len(),
        2,
        "one per entry, none for the agent: {err}"
    );
    let line_of =
        |needle: &str| -> usize { yaml.lines().position(|l| l.contains(needle)).unwrap() + 1 };
    assert!(
        warnings[0].contains(&format!("p.yaml:{}", line_of("hostname: s-1"))),
        "{err}"
    );
    assert!(
        warnings[1].contains(&format!("p.yaml:{}", line_of("hostname: s-[2-3]"))),
        "{err}"
    );
    assert!(warnings[0].contains("server s-1 "), "{err}");
    assert!(warnings[1].contains("servers s-2, s-3 "), "{err}");
    for w in &warnings {
        assert!(w.starts_with("warning:"), "{w}");
        for why in [
            "embedded etcd",
            "fsync",
            "leader",
            "K3s docs",
            "storage: usb-ssd",
        ] {
            assert!(w.contains(why), "{why} missing: {w}");
        }
    }
}

/// `storage` in `defaults` covers every node; a server that sets sd-card itself is warned
/// about at that key; one server (SQLite, no etcd) and agents on SD cards are not.
#[test]
fn storage_from_defaults_and_nodes_decides_the_warning() {
    let nodes = "  - hostname: s-1\n    role: server\n  - hostname: s-2\n    role: server\n    storage: sd-card\n  - hostname: s-3\n    role: server\n  - hostname: a-[1-5]\n    role: agent\n    storage: sd-card\n";
    let yaml = profile_yaml(
        "os:\n  image: raspios-lite-arm64\n",
        "  storage: usb-ssd\n",
        &cluster("k3s", nodes),
    );
    let (ok, err) = profile_check(&yaml);
    assert!(ok, "{err}");
    let warnings = sd_warnings(&err);
    let line = yaml
        .lines()
        .position(|l| l.contains("storage: sd-card"))
        .unwrap()
        + 1;
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains(&format!("p.yaml:{line}")) && warnings[0].contains("s-2"),
        "{err}"
    );

    let single = profile_yaml(
        "os:\n  image: raspios-lite-arm64\n",
        "",
        &cluster(
            "k3s",
            "  - hostname: s-1\n    role: server\n  - hostname: a-[1-3]\n    role: agent\n",
        ),
    );
    let (ok, err) = profile_check(&single);
    assert!(
        ok && sd_warnings(&err).is_empty(),
        "one server has no etcd: {err}"
    );

    let bad = profile_yaml(
        "os:\n  image: raspios-lite-arm64\n",
        "  storage: floppy\n",
        "",
    );
    let (ok, err) = profile_check(&bad);
    assert!(!ok && err.contains("storage"), "{err}");
}

/// kubeadm's stacked etcd from two control-plane nodes, MicroK8s' dqlite from three.
#[test]
fn kubeadm_and_microk8s_ha_are_warned_about_too() {
    let two = "  - hostname: s-[1-2]\n    role: server\n";
    let three = "  - hostname: s-[1-3]\n    role: server\n";
    let os = "os:\n  image: raspios-lite-arm64\n";
    let count = |distribution: &str, nodes: &str| -> (usize, String) {
        let (_, err) = profile_check(&profile_yaml(os, "", &cluster(distribution, nodes)));
        (sd_warnings(&err).len(), err)
    };
    let (n, err) = count("kubeadm", two);
    assert!(
        n == 1 && err.contains("servers s-1, s-2") && err.contains("stacked etcd"),
        "{err}"
    );
    let (n, err) = count("microk8s", two);
    assert_eq!(n, 0, "two MicroK8s servers do not replicate dqlite: {err}");
    let (n, err) = count("microk8s", three);
    assert!(
        n == 1 && err.contains("s-3") && err.contains("dqlite"),
        "{err}"
    );
}

/// STAND-IN for the K3s install script (the agent's install): records that it ran.
const K3S_INSTALLER_STAND_IN: &str = "#!/bin/sh\n# STAND-IN for https://get.k3s.io\nmkdir -p /var/lib/pinode-test && echo ran >>/var/lib/pinode-test/install.log\n";

/// An agent of the repository's cluster profile through its whole first boot in a scratch
/// root (root only), with `dd` replaced by `dd_stand_in` when given; returns the root.
fn agent_first_boot(dd_stand_in: Option<&str>) -> Option<scratch::ScratchRoot> {
    if !root_or_skip("the first-boot scripts run in a mount namespace (root only)") {
        return None;
    }
    let env = user_env::UserEnv::new();
    let profile =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles")).join("cluster.yaml");
    let (root, _) = user_env::first_stage_in_scratch(
        &env,
        &profile,
        "worker-2",
        K3S_INSTALLER_STAND_IN,
        |root| {
            if let Some(body) = dd_stand_in {
                root.stub("dd", body);
            }
        },
    );
    let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
    assert!(out.status.success(), "{}", stderr(&out));
    Some(root)
}

fn first_boot_status(root: &scratch::ScratchRoot) -> pinode::status::FirstBootStatus {
    let text = fs::read_to_string(root.path("varlib/pinode/status.json")).unwrap();
    pinode::status::FirstBootStatus::parse(text.as_bytes()).unwrap()
}

/// The second stage measures the root file system's write speed with the real dd (64 MiB,
/// O_DIRECT or, where the file system refuses it, fsync alone), keeps it, puts it in
/// status.json and the FAT's status file, and leaves no probe file; a later run reuses it.
#[test]
fn the_first_boot_records_the_root_write_speed() {
    let Some(root) = agent_first_boot(None) else {
        return;
    };
    let status = first_boot_status(&root);
    let speed = status
        .root_write_bytes_per_second
        .expect("status.json has the speed");
    assert!(speed > 1_000_000, "64 MiB on this machine: {speed} B/s");
    let kept = fs::read_to_string(root.path("varlib/pinode/root-write-bps")).unwrap();
    assert_eq!(kept.trim(), speed.to_string());
    let names: Vec<String> = fs::read_dir(root.path("varlib/pinode"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("write-speed.")),
        "{names:?}"
    );
    let text = fs::read_to_string(root.boot().join("pinode-status.txt")).unwrap();
    let shown = pinode::status::FirstBootStatus {
        root_write_bytes_per_second: Some(speed),
        ..status.clone()
    }
    .root_write()
    .unwrap()
    .text();
    assert!(
        text.contains(&format!("root file system write speed: {shown}\n")),
        "the shell's MiB/s and pinode's agree: {text}"
    );
    let log = fs::read_to_string(root.path("varlog/pinode-firstboot.log")).unwrap();
    assert!(log.contains("ok: root write speed"), "{log}");
}

/// A slow device (a dd STAND-IN that takes 4 s for 64 MiB: 16 MiB/s, under the 20 MiB/s
/// threshold) is flagged as a warning on the FAT; the stage still succeeds.
#[test]
fn a_slow_root_device_is_flagged_on_the_boot_partition() {
    let slow = "of=''; for a in \"$@\"; do case $a in of=*) of=${a#of=} ;; esac; done\nsleep 4\nhead -c 67108864 /dev/zero >\"$of\"";
    let Some(root) = agent_first_boot(Some(slow)) else {
        return;
    };
    let speed = first_boot_status(&root).root_write().unwrap();
    assert!(speed.is_slow(), "{}", speed.text());
    assert!(
        speed.bytes_per_second > 14_000_000 && speed.bytes_per_second < 17_000_000,
        "{}",
        speed.text()
    );
    assert!(
        root.stub_log().contains("dd if=/dev/zero"),
        "{}",
        root.stub_log()
    );
    assert!(
        root.stub_log().contains("oflag=direct conv=fsync"),
        "{}",
        root.stub_log()
    );
    let text = fs::read_to_string(root.boot().join("pinode-status.txt")).unwrap();
    assert!(
        text.contains(&format!(
            "warning: the root file system writes at {}, ",
            speed.text()
        )) && text.contains("under 20 MiB/s: too slow for a cluster node"),
        "{text}"
    );
    assert!(
        speed.line().contains("SLOW, under 20.0 MiB/s"),
        "{}",
        speed.line()
    );
}

/// pinode with the values that differ by design on every run fixed (as tests/reproducible.rs
/// does), so that two runs can be compared byte for byte.
fn fixed_prepare(dir: &Path, profile: &Path, nodes: &[&str], out: &str) -> serde_json::Value {
    let mut cmd = pinode();
    cmd.env("CI", "false")
        .env("HOME", dir)
        .env("PINODE_STATE_DIR", dir.join("state"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("PINODE_TEST_SEED", "storage")
        .args(["prepare", "--json", "--profile"])
        .arg(profile)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(dir.join(out));
    for node in nodes {
        cmd.args(["--node", node]);
    }
    serde_json::from_str(&run(&mut cmd)).unwrap()
}

/// Several nodes prepared at once (one per core) give each node the same bytes as preparing
/// it alone, and `--json` lists them in the profile's order.
#[test]
fn nodes_prepared_side_by_side_equal_nodes_prepared_alone() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(
        dir.path(),
        "fleet.yaml",
        &profile_yaml(
            "",
            "",
            "cluster:\n  name: fleet\nnodes:\n  - hostname: s-1\n    role: server\n  - hostname: w-[1-4]\n    role: agent\n",
        ),
    );
    let together = fixed_prepare(dir.path(), &profile, &[], "together");
    let hosts: Vec<&str> = together["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["s-1", "w-1", "w-2", "w-3", "w-4"], "{together}");
    for (i, host) in hosts.iter().enumerate() {
        let alone = fixed_prepare(dir.path(), &profile, &[host], &format!("alone-{host}"));
        let (a, b) = (&together["nodes"][i], &alone["nodes"][0]);
        assert_eq!(a["status"], "done");
        assert_eq!(a["sha256"], b["sha256"], "{host}: {a} vs {b}");
        assert_eq!(
            sha256_file(&dir.path().join(format!("together/{host}.img"))),
            a["sha256"].as_str().unwrap(),
            "{host}: the file is the image reported"
        );
    }
}
