//! Bad input: a clear one-line error, a non-zero exit, no panic, and nothing changed.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn profile(dir: &Path) -> PathBuf {
    write_profile(
        dir,
        "p.yaml",
        &format!(
            "version: 1\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\nnodes:\n  - hostname: matrix\n"
        ),
    )
}

/// Runs `args`, expecting failure with exactly one `error:` line that contains `needle`.
fn fails_with(args: &[&std::ffi::OsStr], needle: &str) -> String {
    let out = output(pinode().args(args));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    stderr
}

/// `patch` and `prepare` both refuse `image` with `needle`, and leave it untouched.
fn refused(image: &Path, needle: &str) {
    let dir = image.parent().unwrap();
    let p = profile(dir);
    let before = sha256_file(image);
    fails_with(
        &[
            "patch".as_ref(),
            image.as_os_str(),
            "--profile".as_ref(),
            p.as_os_str(),
        ],
        needle,
    );
    let out = dir.join("out");
    fails_with(
        &[
            "prepare".as_ref(),
            "--profile".as_ref(),
            p.as_os_str(),
            "--image".as_ref(),
            image.as_os_str(),
            "--out-dir".as_ref(),
            out.as_os_str(),
        ],
        needle,
    );
    fails_with(&["inspect".as_ref(), image.as_os_str()], needle);
    assert_eq!(sha256_file(image), before, "the image changed");
    let produced: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(produced.is_empty(), "prepare left {produced:?}");
}

fn poke(image: &Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(image).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn truncated_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    std::fs::File::options()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(30 << 20)
        .unwrap();
    refused(&image, "truncated image?");
    std::fs::File::options()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(100)
        .unwrap();
    refused(&image, "too short to hold a partition table");
}

#[test]
fn not_a_disk_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("noise.img");
    std::fs::write(
        &image,
        (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    refused(&image, "no partition table");
}

#[test]
fn compressed_image_given_to_patch() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    run(Command::new("xz").arg("-0").arg("-k").arg(&image));
    let packed = dir.path().join("bookworm.img.xz");
    let p = profile(dir.path());
    fails_with(
        &[
            "patch".as_ref(),
            packed.as_os_str(),
            "--profile".as_ref(),
            p.as_os_str(),
        ],
        "xz-compressed",
    );
}

#[test]
fn no_fat_partition() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    run(Command::new("sfdisk")
        .args(["--quiet", "--part-type"])
        .arg(&image)
        .args(["1", "83"]));
    refused(&image, "no FAT partition");
}

#[test]
fn fat_partition_without_boot_files() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let (start, _) = partition(&image, 1);
    for f in ["cmdline.txt", "config.txt"] {
        run(Command::new("mdel")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(format!("{}@@{start}", image.display()))
            .arg(format!("::/{f}")));
    }
    refused(&image, "holds neither cmdline.txt nor config.txt");
}

#[test]
fn partition_past_the_end_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    // Partition 2's sector count (MBR entry 2, offset 12) made enormous.
    poke(&image, 446 + 16 + 12, &0x00ff_ffffu32.to_le_bytes());
    refused(&image, "partition 2 spans");
}

#[test]
fn corrupt_fat_boot_sector() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let (start, _) = partition(&image, 1);
    // Bytes per sector = 0.
    poke(&image, start + 11, &[0, 0]);
    refused(&image, "not a readable FAT file system");
}

#[test]
fn unknown_profile_key_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let before = sha256_file(&image);
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n  colour: blue\nnodes:\n  - hostname: matrix\n"
        ),
    );
    let err = fails_with(
        &[
            "patch".as_ref(),
            image.as_os_str(),
            "--profile".as_ref(),
            p.as_os_str(),
        ],
        "p.yaml:6:3: defaults.colour: unknown field `colour`",
    );
    assert!(err.contains("expected one of"), "{err}");
    assert_eq!(sha256_file(&image), before);
}

#[test]
fn missing_secret_variable_names_the_variable_not_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let before = sha256_file(&image);
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n  wifi:\n    ssid: Home\n    psk_env: PINODE_TEST_UNSET_PSK\n    country: GB\nnodes:\n  - hostname: matrix\n"
        ),
    );
    fails_with(
        &[
            "patch".as_ref(),
            image.as_os_str(),
            "--profile".as_ref(),
            p.as_os_str(),
        ],
        "p.yaml:8:14: defaults.wifi.psk_env: environment variable PINODE_TEST_UNSET_PSK is not set",
    );
    assert_eq!(sha256_file(&image), before);
    let out = dir.path().join("out");
    fails_with(
        &[
            "prepare".as_ref(),
            "--profile".as_ref(),
            p.as_os_str(),
            "--image".as_ref(),
            image.as_os_str(),
            "--out-dir".as_ref(),
            out.as_os_str(),
        ],
        "PINODE_TEST_UNSET_PSK is not set",
    );
    // Nothing written, and the folder prepare made for it removed again.
    assert!(!out.exists(), "{} left behind", out.display());
}

#[test]
fn forcing_cloud_init_on_an_image_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let before = sha256_file(&image);
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\nos: {{init: cloud-init}}\ndefaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\nnodes:\n  - hostname: matrix\n"
        ),
    );
    fails_with(
        &[
            "patch".as_ref(),
            image.as_os_str(),
            "--profile".as_ref(),
            p.as_os_str(),
        ],
        "the image has no cloud-init",
    );
    assert_eq!(sha256_file(&image), before);
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path());
    let missing = dir.path().join("nope.img");
    fails_with(
        &["inspect".as_ref(), missing.as_os_str()],
        "nope.img: No such file or directory",
    );
    fails_with(
        &[
            "profile".as_ref(),
            "check".as_ref(),
            dir.path().join("nope.yaml").as_os_str(),
        ],
        "nope.yaml: No such file or directory",
    );
    fails_with(
        &[
            "patch".as_ref(),
            missing.as_os_str(),
            "--profile".as_ref(),
            p.as_os_str(),
        ],
        "nope.img",
    );
}

#[test]
fn looping_cluster_chain_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    // A full root directory has no end-of-directory marker, so a reader follows its chain.
    let image = copy_fixture("fullroot", dir.path());
    let (start, _) = partition(&image, 1);
    let boot = std::fs::read(&image).unwrap()[start as usize..start as usize + 512].to_vec();
    let u16_at = |o: usize| u16::from_le_bytes([boot[o], boot[o + 1]]) as u64;
    let u32_at =
        |o: usize| u32::from_le_bytes([boot[o], boot[o + 1], boot[o + 2], boot[o + 3]]) as u64;
    let (bytes_per_sector, reserved, fats, fat_sectors, root) = (
        u16_at(11),
        u16_at(14),
        boot[16] as u64,
        u32_at(36),
        u32_at(44),
    );
    for fat in 0..fats {
        // The root directory's last cluster points back to itself.
        let entry = start + (reserved + fat * fat_sectors) * bytes_per_sector + root * 4;
        poke(&image, entry, &(root as u32).to_le_bytes());
    }
    refused(&image, "cluster chain loops back on itself");
}

/// Deterministic pseudo-random numbers for the corruption test (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Damage the FAT metadata (boot sector, FSInfo, FATs, root directory) at random, many times:
/// pinode may succeed or refuse, but must never panic or hang.
#[test]
fn randomly_damaged_fat_never_panics_or_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = copy_fixture("bookworm", dir.path());
    let (start, _) = partition(&pristine, 1);
    let p = profile(dir.path());
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let image = dir.path().join("damaged.img");
    // Boot sector through the root directory of the fixture (reserved sectors, 2 FATs of
    // ~630 KiB, first data clusters).
    let metadata_len = 1_400_000u64;
    for round in 0..150 {
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&pristine)
            .arg(&image));
        for _ in 0..(1 + rng.next() % 8) {
            let at = start + rng.next() % metadata_len;
            poke(&image, at, &[rng.next() as u8]);
        }
        for args in [
            vec!["inspect".as_ref(), image.as_os_str()],
            vec![
                "patch".as_ref(),
                image.as_os_str(),
                "--profile".as_ref(),
                p.as_os_str(),
            ],
        ] {
            let mut child = pinode()
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if std::time::Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("round {round}: {args:?} hangs");
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            assert!(
                matches!(status.code(), Some(0) | Some(1)),
                "round {round}: {args:?} exited {status}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "round {round}: {stderr}");
        }
    }
}

/// A card stand-in: a loop device over a fixture copy. `patch` works on the device; while
/// something holds it (a mount does), the exclusive open fails and nothing is written.
#[test]
fn block_devices_are_patched_only_when_not_in_use() {
    assert!(
        is_root(),
        "this test uses loop devices and needs root (as CI has)"
    );
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let device = run(Command::new("losetup")
        .args(["--find", "--show", "--partscan"])
        .arg(&image))
    .trim()
    .to_string();
    let detach = scopeguard(&device);
    let p = profile(dir.path());
    let doc = inspect_json(&device);
    assert_eq!(doc["os"]["generation"], "bookworm");

    // Claim the device the way a mount does (an exclusive open), then try to patch it.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _claim = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(0o200 /* O_EXCL */)
            .open(&device)
            .unwrap();
        let before = sha256_file(&image);
        fails_with(
            &[
                "patch".as_ref(),
                device.as_ref(),
                "--profile".as_ref(),
                p.as_os_str(),
            ],
            "the device is in use",
        );
        assert_eq!(sha256_file(&image), before);
    }

    run(pinode().args(["patch", &device, "--profile"]).arg(&p));
    drop(detach);
    let fat = extract_boot(&image, dir.path());
    fsck_fat(&fat).unwrap();
    assert!(mread(&fat, "firstrun.sh").is_some());
}

/// Detaches a loop device when dropped.
struct Detach(String);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn scopeguard(device: &str) -> Detach {
    Detach(device.to_string())
}
