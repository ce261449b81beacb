//! `pinode write IMAGE --device D`: an image `prepare` made (compressed, as CI keeps it)
//! written to a loop device standing in for a card (root only; skipped otherwise), and the
//! refusals `flash` makes, each leaving the card and the image untouched.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::loopdev::Loop;
use common::*;

const MIB: u64 = 1 << 20;

/// `prepare` of one node into `dir/out`, compressed with xz, with its `.bmap`: returns
/// `out/card-1.img.xz`.
fn prepared_xz(dir: &Path) -> PathBuf {
    let profile = write_profile(
        dir,
        "cards.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             nodes:\n  - hostname: card-1\n    role: server\n"
        ),
    );
    run(pinode()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["prepare", "--profile"])
        .arg(&profile)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(dir.join("out"))
        .args(["--compress", "xz", "--bmap"]));
    let image = dir.join("out/card-1.img.xz");
    assert!(image.exists());
    image
}

/// The raw image inside `xz`, decompressed by xz itself into `dir/NAME`.
fn unxz(xz: &Path, dir: &Path, name: &str) -> PathBuf {
    let raw = dir.join(name);
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("xz -dc '{}' > '{}'", xz.display(), raw.display()))
        .status()
        .unwrap();
    assert!(status.success());
    raw
}

fn write(image: &Path, card: &Path, extra: &[&str]) -> Command {
    let mut c = pinode();
    c.arg("write")
        .arg(image)
        .arg("--device")
        .arg(card)
        .args(extra);
    c
}

/// SHA-256 of every file in `dir` (the outputs of `prepare`): name → digest.
fn digests(dir: &Path) -> Vec<(PathBuf, String)> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let sum = sha256_file(&p);
            (p, sum)
        })
        .collect()
}

/// The byte ranges a bmap maps (block size 4096, as `prepare` writes it).
fn bmap_ranges(bmap: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(bmap).unwrap();
    assert!(text.contains("<BlockSize> 4096 </BlockSize>"));
    text.lines()
        .filter(|l| l.trim_start().starts_with("<Range"))
        .map(|l| {
            let v = l
                .split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .trim();
            let (a, b) = v.split_once('-').unwrap_or((v, v));
            let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
            (a * 4096, (b + 1) * 4096)
        })
        .collect()
}

#[test]
fn writes_a_prepared_xz_image_onto_a_card_of_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let xz = prepared_xz(dir.path());
    let out_dir = dir.path().join("out");
    let before = digests(&out_dir);
    let raw = unxz(&xz, dir.path(), "raw.img");
    let len = std::fs::metadata(&raw).unwrap().len();
    assert!(len < 100 * MIB, "the card must be larger than the image");
    let card_tail_before = sha256(&read_range(&card.dev, len, 99 * MIB - len));

    let json = run(&mut write(
        &xz,
        &card.dev,
        &["--yes", "--allow-non-removable", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["outcome"], "written", "{v}");
    assert_eq!(v["report"]["verified"], true, "{v}");
    assert_eq!(v["report"]["allocation_aware"], true, "{v}");
    assert_eq!(v["report"]["image_bytes"], len);
    assert!(
        v["bmap"].as_str().unwrap().ends_with("card-1.img.bmap"),
        "{v}"
    );
    // prepare --compress xz writes the checksum of the file it wrote: card-1.img.xz.sha256.
    let checked = v["sha256_checked_by"].to_string();
    assert!(checked.contains("card-1.img.xz.sha256"), "{v}");

    // The image and everything beside it: not a byte changed.
    assert_eq!(digests(&out_dir), before);

    let card_bytes = assert_card_holds(&card, &raw, dir.path());
    // Every range the bmap maps is byte-equal.
    let image_bytes = std::fs::read(&raw).unwrap();
    let ranges = bmap_ranges(&dir.path().join("out/card-1.img.bmap"));
    assert!(!ranges.is_empty());
    for (start, end) in ranges {
        let end = end.min(len) as usize;
        assert!(
            card_bytes[start as usize..end] == image_bytes[start as usize..end],
            "card differs from the image in {start}..{end}"
        );
    }
    // Past the image, the card keeps what it held (but its last MiB, where a stale backup
    // GPT would be, which the writer zeroes).
    assert_eq!(
        sha256(&read_range(&card.dev, len, 99 * MIB - len)),
        card_tail_before
    );
}

/// The card holds the image: the boot partition fsck-clean and file-by-file equal, the root
/// file system clean, every 4 KiB block where the image has data byte-equal. Returns the
/// card's first bytes (the image's length).
fn assert_card_holds(card: &Loop, raw: &Path, dir: &Path) -> Vec<u8> {
    let len = std::fs::metadata(raw).unwrap().len();
    let copy = dir.join("card-copy.img");
    std::fs::write(&copy, card.read(len)).unwrap();
    let card_boot = extract_boot(&copy, dir);
    fsck_fat(&card_boot).unwrap();
    let image_boot = extract_boot(raw, dir);
    let listing_card = listing(&card_boot);
    assert!(listing_card.contains_key("pinode/node.json"));
    assert_eq!(listing_card, listing(&image_boot));
    e2fsck(&extract_partition(&copy, 2, dir, "ext4")).unwrap();
    let (card_bytes, image_bytes) = (std::fs::read(&copy).unwrap(), std::fs::read(raw).unwrap());
    let mut compared = 0;
    for (at, block) in image_bytes.chunks(4096).enumerate() {
        if block.iter().any(|b| *b != 0) {
            let start = at * 4096;
            assert!(
                card_bytes[start..start + block.len()] == *block,
                "the card differs from the image in the block at byte {start}"
            );
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared} blocks with data");
    card_bytes
}

#[test]
fn without_a_bmap_the_file_systems_decide_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let xz = prepared_xz(dir.path());
    std::fs::remove_file(dir.path().join("out/card-1.img.bmap")).unwrap();
    let raw = unxz(&xz, dir.path(), "raw.img");
    let json = run(&mut write(
        &xz,
        &card.dev,
        &["--yes", "--allow-non-removable", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["report"]["verified"], true, "{v}");
    assert_eq!(v["report"]["allocation_aware"], true, "{v}");
    assert!(v["bmap"].is_null(), "{v}");
    assert!(v["report"]["bytes"].as_u64().unwrap() < v["report"]["image_bytes"].as_u64().unwrap());
    assert_card_holds(&card, &raw, dir.path());
}

fn read_range(dev: &Path, start: u64, len: u64) -> Vec<u8> {
    let f = std::fs::File::open(dev).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, start).unwrap();
    buf
}

/// Asserts one error line holding `needles`, and that the card did not change.
fn refused(out: &Output, card: &Loop, card_sum: &str, needles: &[&str]) {
    one_error_line(out, needles);
    let len = std::fs::metadata(&card.backing).unwrap().len();
    assert_eq!(sha256(&card.read(len)), card_sum, "the card changed");
}

#[test]
fn refuses_as_flash_does_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let xz = prepared_xz(dir.path());
    let out_dir = dir.path().join("out");
    let before = digests(&out_dir);
    let card_sum = sha256(&card.read(100 * MIB));
    let flags = ["--yes", "--allow-non-removable"];

    // A wrong .sha256 beside the image: refused before the first byte is written.
    let elsewhere = dir.path().join("tampered");
    std::fs::create_dir(&elsewhere).unwrap();
    for name in ["card-1.img.xz", "card-1.img.bmap", "card-1.img.xz.sha256"] {
        std::fs::copy(out_dir.join(name), elsewhere.join(name)).unwrap();
    }
    std::fs::write(
        elsewhere.join("card-1.img.sha256"),
        format!("{}  card-1.img\n", "0".repeat(64)),
    )
    .unwrap();
    let out = output(&mut write(
        &elsewhere.join("card-1.img.xz"),
        &card.dev,
        &flags,
    ));
    refused(
        &out,
        &card,
        &card_sum,
        &["SHA-256 mismatch", "card-1.img.sha256"],
    );
    // …and so is a compressed file whose own sum is wrong.
    std::fs::remove_file(elsewhere.join("card-1.img.sha256")).unwrap();
    std::fs::write(
        elsewhere.join("card-1.img.xz.sha256"),
        format!("{}  card-1.img.xz\n", "1".repeat(64)),
    )
    .unwrap();
    let out = output(&mut write(
        &elsewhere.join("card-1.img.xz"),
        &card.dev,
        &flags,
    ));
    refused(
        &out,
        &card,
        &card_sum,
        &["SHA-256 mismatch", "card-1.img.xz.sha256"],
    );

    // A card that is not removable, without --allow-non-removable.
    let out = output(&mut write(&xz, &card.dev, &["--yes"]));
    refused(&out, &card, &card_sum, &["--allow-non-removable"]);

    // The image's own loop device as the target.
    let raw = unxz(&xz, dir.path(), "card-1.img");
    let raw_sum = sha256_file(&raw);
    let own = run(Command::new("losetup").args(["-f", "--show"]).arg(&raw))
        .trim()
        .to_string();
    let out = output(&mut write(&raw, Path::new(&own), &flags));
    let _ = Command::new("losetup").arg("-d").arg(&own).status();
    one_error_line(&out, &["the base image", "itself"]);
    assert_eq!(sha256_file(&raw), raw_sum, "the image changed");

    // A mounted card, without --unmount.
    // Without lazy initialisation and mounted read-only, the kernel writes nothing to the
    // card while it is mounted: ext4's background inode-table initialisation and journal
    // commits would otherwise change it under the test on a busy machine.
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
        .arg(&card.dev));
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run(Command::new("mount")
        .args(["-o", "ro"])
        .arg(&card.dev)
        .arg(&mnt));
    let mounted = Unmount(mnt.clone());
    let mounted_sum = sha256(&card.read(100 * MIB));
    let out = output(&mut write(&xz, &card.dev, &flags));
    refused(&out, &card, &mounted_sum, &["mounted at", "--unmount"]);
    // Unmounted here with its status checked (a failed unmount would leave the card live).
    run(Command::new("umount").arg(&mnt));
    std::mem::forget(mounted);
    let card_sum = sha256(&card.read(100 * MIB));

    // A card too small for the image.
    let small = Loop::random(dir.path(), "small", 8 * MIB).unwrap();
    let small_sum = sha256(&small.read(8 * MIB));
    let out = output(&mut write(&xz, &small.dev, &flags));
    refused(
        &out,
        &small,
        &small_sum,
        &[&small.dev.display().to_string()],
    );

    // No answer without --yes: nothing written.
    let out = output(write(&xz, &card.dev, &["--allow-non-removable"]).stdin(Stdio::null()));
    refused(&out, &card, &card_sum, &["--yes"]);
    assert_eq!(out.status.code(), Some(2));

    assert_eq!(digests(&out_dir), before, "the image changed");
}

/// Unmounts its folder when dropped (also when an assertion fails first).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_card_that_changes_under_the_read_back_fails_the_verify() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let xz = prepared_xz(dir.path());
    let (child, pause) = start_paused(
        write(&xz, &card.dev, &["--yes", "--allow-non-removable"]),
        dir.path(),
        "verify",
    );
    // Inside the boot partition's first sectors, which are always written.
    let backing = std::fs::OpenOptions::new()
        .write(true)
        .open(&card.backing)
        .unwrap();
    backing.write_all_at(b"\xff\x00\xff", 4 * MIB + 20).unwrap();
    backing.sync_all().unwrap();
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    one_error_line(&out, &["verify failed", &card.dev.display().to_string()]);
}

#[test]
fn the_bmap_beside_the_image_decides_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::new(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let xz = prepared_xz(dir.path());
    let raw = unxz(&xz, dir.path(), "raw.img");
    let len = std::fs::metadata(&raw).unwrap().len();
    let bmap = dir.path().join("out/card-1.img.bmap");
    let one_block = |size: u64| {
        format!(
            "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n    <ImageSize> {size} </ImageSize>\n    \
             <BlockSize> 4096 </BlockSize>\n    <BlockMap>\n        \
             <Range chksum=\"x\"> 2000 </Range>\n    </BlockMap>\n</bmap>\n"
        )
    };
    // A map of one block: the head (always written, last) and that block, nothing else.
    std::fs::write(&bmap, one_block(len)).unwrap();
    let json = run(&mut write(
        &xz,
        &card.dev,
        &["--yes", "--allow-non-removable", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["report"]["bytes"], MIB + 4096, "{v}");
    assert_eq!(v["report"]["verified"], true, "{v}");
    let card_bytes = card.read(len);
    let image_bytes = std::fs::read(&raw).unwrap();
    let block = 2000 * 4096;
    assert_eq!(
        card_bytes[block..block + 4096],
        image_bytes[block..block + 4096]
    );

    // A map made for another image: refused, the card unchanged.
    std::fs::write(&bmap, one_block(len + 4096)).unwrap();
    let card_sum = sha256(&card.read(100 * MIB));
    let out = output(&mut write(
        &xz,
        &card.dev,
        &["--yes", "--allow-non-removable"],
    ));
    refused(
        &out,
        &card,
        &card_sum,
        &["card-1.img.bmap", "another image"],
    );
}
