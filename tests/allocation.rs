//! Allocation-aware writing, proved on real cards (loop devices, as root in CI): every
//! fixture is flashed onto a card full of random bytes, so that any block pinode wrongly
//! skips holds garbage. The card must then pass `e2fsck -fn` and `fsck.fat -n`, and its file
//! systems must hold exactly what the prepared image of the same node holds: every path, its
//! metadata and its contents, dumped with debugfs and mtools (tests/tools/fsmanifest.py).
//! The bytes written must not exceed what the file systems themselves count as used, plus
//! what lies outside them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::loopdev::Loop;
use common::*;

const MIB: u64 = 1 << 20;

fn node_profile(dir: &Path) -> PathBuf {
    write_profile(
        dir,
        "alloc.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             nodes:\n  - hostname: alloc-1\n    role: server\n"
        ),
    )
}

/// The file system's paths, metadata and content hashes. The cloud-init instance-id is
/// fresh on every run by design (a re-flashed node must run cloud-init again), so it is
/// masked: the card and the reference come from two runs.
fn manifest(kind: &str, fs: &Path) -> String {
    let tool = repo_file("tests/tools/fsmanifest.py");
    run(Command::new("python3")
        .arg(tool)
        .arg(kind)
        .arg(fs)
        .arg("pinode-alloc-1-[0-9a-f]{12}"))
}

/// Used bytes of an ext4 file system, as dumpe2fs reports them (block count − free blocks).
fn ext4_used(fs: &Path) -> u64 {
    let text = run(Command::new("dumpe2fs").arg("-h").arg(fs));
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("Block count:") - field("Free blocks:")) * field("Block size:")
}

/// Used bytes of a FAT file system, as fsck.fat reports them (everything before the data
/// area, plus the clusters in use, plus the partition past the last cluster).
fn fat_used(fs: &Path) -> u64 {
    let text = run(Command::new("fsck.fat").args(["-n", "-v"]).arg(fs));
    let number_before = |marker: &str| -> u64 {
        let line = text.lines().find(|l| l.contains(marker)).unwrap();
        line.split_whitespace().next().unwrap().parse().unwrap()
    };
    let data_start: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Data area starts at byte "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let cluster = number_before("bytes per cluster");
    let total_clusters = number_before("data clusters");
    let used_clusters: u64 = text
        .lines()
        .last()
        .and_then(|l| l.rsplit(", ").next())
        .and_then(|l| l.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let fs_len = std::fs::metadata(fs).unwrap().len();
    data_start + used_clusters * cluster + (fs_len - data_start - total_clusters * cluster)
}

#[test]
fn every_fixture_written_allocation_aware_onto_random_bytes_holds_the_same_files() {
    let fixtures = ["bullseye", "bookworm", "trixie", "gpt", "dirty", "fullroot"];
    for name in fixtures {
        let dir = tempfile::tempdir().unwrap();
        let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
            return;
        };
        let image = fixture(name);
        let image_len = std::fs::metadata(&image).unwrap().len();
        let profile = node_profile(dir.path());
        let out = run(pinode()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["flash", "--yes", "--allow-non-removable", "--json"])
            .arg("--profile")
            .arg(&profile)
            .arg("--image")
            .arg(&image)
            .arg("--device")
            .arg(&card.dev));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let report = &v["nodes"][0]["report"];
        assert_eq!(report["verified"], true, "{name}: {v}");
        assert_eq!(report["allocation_aware"], true, "{name}");
        assert_eq!(report["image_bytes"], image_len, "{name}");
        let written = report["bytes"].as_u64().unwrap();
        let ranges = report["ranges"].as_u64().unwrap();

        // The prepared image of the same node is the reference.
        run(pinode()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["prepare", "--profile"])
            .arg(&profile)
            .arg("--image")
            .arg(&image)
            .arg("--out-dir")
            .arg(dir.path().join("out")));
        let prepared = dir.path().join("out/alloc-1.img");
        let on_card = dir.path().join("card.img");
        std::fs::write(&on_card, card.read(image_len)).unwrap();

        let card_boot = extract_partition(&on_card, 1, dir.path(), "fat");
        let card_root = extract_partition(&on_card, 2, dir.path(), "ext4");
        let ref_boot = extract_partition(&prepared, 1, dir.path(), "fat");
        let ref_root = extract_partition(&prepared, 2, dir.path(), "ext4");
        fsck_fat(&card_boot).unwrap_or_else(|e| panic!("{name}: fsck.fat: {e}"));
        e2fsck(&card_root).unwrap_or_else(|e| panic!("{name}: e2fsck: {e}"));
        assert_eq!(
            manifest("fat", &card_boot),
            manifest("fat", &ref_boot),
            "{name}: boot partition"
        );
        assert_eq!(
            manifest("ext4", &card_root),
            manifest("ext4", &ref_root),
            "{name}: root file system"
        );
        // The card's table and boot files are what inspect expects of the node.
        let v = inspect_json(&card.dev);
        assert_eq!(v["boot"]["hostname"], "alloc-1", "{name}");

        // At most what the file systems count as used, plus what lies outside them, plus
        // rounding each written range out to 4 KiB (FAT clusters here are 512 bytes).
        let (_, p1) = partition(&prepared, 1);
        let (_, p2) = partition(&prepared, 2);
        let outside = image_len - p1 - p2;
        let used = fat_used(&ref_boot) + ext4_used(&ref_root) + outside;
        assert!(
            written <= used + ranges * 8192,
            "{name}: wrote {written} bytes, the file systems use {used} ({ranges} ranges)"
        );
        assert!(
            written < image_len / 2,
            "{name}: wrote {written} of {image_len}"
        );
        eprintln!("{name}: wrote {written} of {image_len} bytes; used {used}; {ranges} ranges");
    }
}

#[test]
fn full_writes_every_byte_and_a_prepared_bmap_works_with_bmaptool() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let image = fixture("bookworm");
    let image_len = std::fs::metadata(&image).unwrap().len();
    let profile = node_profile(dir.path());

    // --full: the card's first image_len bytes are the prepared image, byte for byte.
    let out = run(pinode()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "flash",
            "--full",
            "--yes",
            "--allow-non-removable",
            "--json",
        ])
        .arg("--profile")
        .arg(&profile)
        .arg("--image")
        .arg(&image)
        .arg("--device")
        .arg(&card.dev));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nodes"][0]["report"]["allocation_aware"], false);
    assert_eq!(v["nodes"][0]["report"]["bytes"], image_len);
    let out = run(pinode()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["prepare", "--bmap", "--json", "--profile"])
        .arg(&profile)
        .arg("--image")
        .arg(&image)
        .arg("--out-dir")
        .arg(dir.path().join("out")));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prepared = dir.path().join("out/alloc-1.img");
    assert_eq!(
        std::fs::read(&prepared).unwrap(),
        card.read(image_len),
        "--full wrote something else than the image"
    );

    // bmaptool (Debian's bmap-tools) checks the bmap's own checksum and every range's, and
    // writes only the mapped blocks, onto a second random card.
    let mapped = v["nodes"][0]["bmap"]["mapped_bytes"].as_u64().unwrap();
    assert!(mapped < image_len / 2, "{v}");
    let Some(second) = Loop::random(dir.path(), "second", 100 * MIB) else {
        return;
    };
    let out = output(
        Command::new("bmaptool")
            .arg("copy")
            .arg(&prepared)
            .arg(&second.dev),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("alloc-1.img.bmap"),
        "bmaptool did not use the bmap: {err}"
    );
    let copy = dir.path().join("bmap-card.img");
    std::fs::write(&copy, second.read(image_len)).unwrap();
    let boot = extract_partition(&copy, 1, dir.path(), "fat");
    let root = extract_partition(&copy, 2, dir.path(), "ext4");
    fsck_fat(&boot).unwrap();
    e2fsck(&root).unwrap();
    assert_eq!(
        manifest("ext4", &root),
        manifest("ext4", &extract_partition(&prepared, 2, dir.path(), "ext4"))
    );
    assert_eq!(
        manifest("fat", &boot),
        manifest("fat", &extract_partition(&prepared, 1, dir.path(), "fat"))
    );
}

/// Builds an MBR image with FAT16, a 4 KiB-block ext4 of many groups (most of them
/// `BLOCK_UNINIT`, flex_bg, 64bit, metadata_csum) and a 1 KiB-block ext4 with sparse_super2,
/// filled from a directory of random files, plus unpartitioned space at the end.
fn multi_group_image(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    std::fs::create_dir_all(src.join("small")).unwrap();
    use std::io::Read;
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    for i in 1..=6u64 {
        let mut data = vec![0u8; (i * 3 * MIB) as usize];
        urandom.read_exact(&mut data).unwrap();
        std::fs::write(src.join(format!("big/f{i}")), data).unwrap();
    }
    for i in 1..=200 {
        std::fs::write(src.join(format!("small/s{i}")), format!("file {i}\n")).unwrap();
    }
    std::os::unix::fs::symlink("big/f1", src.join("link")).unwrap();
    let img = dir.join("multi.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(400 * MIB)
        .unwrap();
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: dos\nstart=2048,size=65536,type=c\nstart=67584,size=409600,type=83\n\
              start=477184,size=204800,type=83\n",
        )
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    run(Command::new("mkfs.vfat")
        .args(["--offset", "2048", "-F", "16"])
        .arg(&img)
        .arg("32768"));
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-i"])
        .arg(format!("{}@@1048576", img.display()))
        .arg(src.join("small"))
        .arg("::/"));
    run(Command::new("mke2fs")
        .args([
            "-q", "-F", "-t", "ext4", "-b", "4096", "-g", "4096", "-O", "64bit",
        ])
        .arg("-d")
        .arg(&src)
        .arg("-E")
        .arg(format!("offset={}", 67584 * 512))
        .arg(&img)
        .arg("51200")
        .env("MKE2FS_CONFIG", repo_file("fixtures/stock/mke2fs.conf")));
    run(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "1024",
            "-O",
            "sparse_super2",
        ])
        .arg("-d")
        .arg(src.join("small"))
        .arg("-E")
        .arg(format!("offset={}", 477184 * 512))
        .arg(&img)
        .arg("102400")
        .env("MKE2FS_CONFIG", repo_file("fixtures/stock/mke2fs.conf")));
    img
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn multi_group_ext4_and_fat16_copied_by_their_maps_alone_are_intact() {
    use pinode::disk::usage::allocation;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let img = multi_group_image(dir.path());
    let len = std::fs::metadata(&img).unwrap().len();
    let mut file = std::fs::File::open(&img).unwrap();
    let table = pinode::disk::read_partition_table(&mut file, len).unwrap();
    let alloc = allocation(&file, len, &table).unwrap();
    let kinds: Vec<_> = alloc.partitions.iter().map(|p| p.filesystem).collect();
    assert_eq!(kinds, ["fat", "ext4", "ext4"]);
    assert!(
        alloc.partitions.iter().all(|p| p.whole_because.is_none()),
        "{:?}",
        alloc.partitions
    );
    let uninit = run(Command::new("dumpe2fs").arg(extract_partition(&img, 2, dir.path(), "p")))
        .matches("BLOCK_UNINIT")
        .count();
    assert!(uninit >= 5, "expected BLOCK_UNINIT groups, found {uninit}");

    // Copy only the mapped ranges onto random bytes.
    let copy = dir.path().join("copy.img");
    let mut noise = vec![0u8; len as usize];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut noise)
        .unwrap();
    std::fs::write(&copy, &noise).unwrap();
    drop(noise);
    let out = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    for piece in alloc.map.pieces(0, MIB) {
        let n = (piece.end - piece.start) as usize;
        file.read_exact_at(&mut buf[..n], piece.start).unwrap();
        out.write_all_at(&buf[..n], piece.start).unwrap();
    }
    drop(out);
    // p2 holds 63 MiB of files in 200 MiB.
    assert!(
        alloc.partitions[1].mapped < 100 * MIB,
        "{:?}",
        alloc.partitions
    );

    let fat = extract_partition(&copy, 1, dir.path(), "fat");
    fsck_fat(&fat).unwrap();
    assert_eq!(
        manifest("fat", &fat),
        manifest("fat", &extract_partition(&img, 1, dir.path(), "fat"))
    );
    for index in [2, 3] {
        let fs = extract_partition(&copy, index, dir.path(), "ext4");
        e2fsck(&fs).unwrap_or_else(|e| panic!("partition {index}: {e}"));
        let reference = extract_partition(&img, index, dir.path(), "ext4");
        assert_eq!(manifest("ext4", &fs), manifest("ext4", &reference));
        // Used blocks, plus rounding each range out to 4 KiB (p3 has 1 KiB blocks).
        let (start, size) = partition(&img, index);
        let ranges = alloc
            .map
            .iter()
            .filter(|r| r.end > start && r.start < start + size)
            .count() as u64;
        let mapped = alloc.partitions[index - 1].mapped;
        let used = ext4_used(&reference);
        assert!(
            mapped <= used + ranges * 8192,
            "partition {index}: mapped {mapped}, used {used}, {ranges} ranges"
        );
    }
}

#[test]
fn reflashing_leaves_none_of_the_old_nodes_files_on_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let image = fixture("bookworm");
    let image_len = std::fs::metadata(&image).unwrap().len();
    let flash = |profile: &Path| {
        run(pinode()
            .env("OLD_TOKEN", "alpha-old-cluster-token-0123456789")
            .args(["flash", "--yes", "--allow-non-removable", "--profile"])
            .arg(profile)
            .arg("--image")
            .arg(&image)
            .arg("--device")
            .arg(&card.dev))
    };
    let contains = |needle: &[u8]| {
        card.read(image_len)
            .windows(needle.len())
            .any(|w| w == needle)
    };
    // Node A's cluster token is in plaintext on the FAT until its first boot; node B belongs
    // to another cluster and has fewer files (no Wi-Fi, one key).
    let token = "alpha-old-cluster-token-0123456789";
    let keys: Vec<String> = (0..40).map(|_| format!("\"{KEY_1}\"")).collect();
    let a = write_profile(
        dir.path(),
        "a.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [{}]\n\
             \x20 wifi: {{ssid: \"Old Net\", psk: \"old passphrase\", country: DE}}\n\
             cluster:\n  name: old\n  token_env: OLD_TOKEN\n\
             nodes:\n  - hostname: node-a\n    role: server\n",
            keys.join(", ")
        ),
    );
    flash(&a);
    assert!(
        contains(token.as_bytes()),
        "node A's token should be on its card"
    );
    flash(&node_profile(dir.path()));
    assert!(
        !contains(token.as_bytes()),
        "node A's cluster token survived the allocation-aware write of node B"
    );
    assert!(!contains(b"node-a"), "node A's files survived");
    let on_card = dir.path().join("card.img");
    std::fs::write(&on_card, card.read(image_len)).unwrap();
    fsck_fat(&extract_partition(&on_card, 1, dir.path(), "fat")).unwrap();
}
