//! `pinode prepare`, the CI image-preparation path, end to end through the binary.

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::*;

fn profile(dir: &Path) -> std::path::PathBuf {
    write_profile(
        dir,
        "cluster.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n    password_hash: \"{HASH}\"\n\
             \x20 wifi:\n    ssid: Home\n    psk_env: PINODE_TEST_PSK\n    country: GB\n\
             nodes:\n  - hostname: matrix\n    role: server\n  - hostname: worker-[1-2]\n    role: agent\n"
        ),
    )
}

fn prepare(dir: &Path, image: &Path, extra: &[&str]) -> String {
    run(pinode()
        .env("PINODE_TEST_PSK", "correct horse battery")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["prepare", "--profile"])
        .arg(profile(dir))
        .arg("--image")
        .arg(image)
        .arg("--out-dir")
        .arg(dir.join("out"))
        .args(extra))
}

/// Compares two files outside `skip` (a byte range), 1 MiB at a time.
fn equal_outside(a: &Path, b: &Path, skip: (u64, u64)) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let na = fa.read(&mut ba).unwrap();
        let nb = fb.read(&mut bb[..na.max(1)]).unwrap_or(0);
        if na == 0 {
            return nb == 0;
        }
        assert_eq!(na, nb, "short read");
        for i in 0..na {
            let at = offset + i as u64;
            if (at < skip.0 || at >= skip.1) && ba[i] != bb[i] {
                eprintln!("differs at byte {at}");
                return false;
            }
        }
        offset += na as u64;
    }
}

#[test]
fn three_nodes_from_one_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = copy_fixture("bookworm", dir.path());
    let base_hash = sha256_file(&base);
    let json = prepare(dir.path(), &base, &["--json"]);
    assert_eq!(
        sha256_file(&base),
        base_hash,
        "the base image must not change"
    );

    let doc: serde_json::Value =
        serde_json::from_str(&json).expect("--json prints one JSON document");
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let boot = partition(&base, 1);
    let out = dir.path().join("out");
    for (node, name) in nodes.iter().zip(["matrix", "worker-1", "worker-2"]) {
        assert_eq!(node["hostname"], name);
        let image = out.join(format!("{name}.img"));
        assert_eq!(node["image"].as_str().unwrap(), image.to_str().unwrap());
        // The .sha256 file is in sha256sum format and matches.
        run(Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{name}.img.sha256"))
            .current_dir(&out));
        assert_eq!(node["sha256"].as_str().unwrap(), sha256_file(&image));
        // Outside the boot partition every byte equals the base.
        assert_eq!(
            std::fs::metadata(&image).unwrap().len(),
            std::fs::metadata(&base).unwrap().len()
        );
        assert!(
            equal_outside(&image, &base, (boot.0, boot.0 + boot.1)),
            "{name} differs outside p1"
        );
        // Sparse like the base.
        let meta = std::fs::metadata(&image).unwrap();
        assert!(
            meta.blocks() * 512 < meta.len() / 2,
            "{name}.img is not sparse"
        );
        let fat = extract_boot(&image, dir.path());
        fsck_fat(&fat).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&mread(&fat, "pinode/node.json").unwrap()).unwrap();
        assert_eq!(manifest["hostname"], name);
    }
    // No temporary files left behind.
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn compressed_outputs_decompress_to_the_hashed_image() {
    let dir = tempfile::tempdir().unwrap();
    let base = copy_fixture("bookworm", dir.path());
    let out = dir.path().join("out");
    for (flag, tool) in [("xz", "xz"), ("zst", "zstd")] {
        let doc: serde_json::Value = serde_json::from_str(&prepare(
            dir.path(),
            &base,
            &["--node", "matrix", "--compress", flag, "--json"],
        ))
        .unwrap();
        let file = format!("matrix.img.{flag}");
        run(Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{file}.sha256"))
            .current_dir(&out));
        // The image's own SHA-256 is in the document (no matrix.img.sha256 names a file
        // that is not there).
        assert!(!out.join("matrix.img.sha256").exists());
        let expected = doc["nodes"][0]["sha256"].as_str().unwrap().to_string();
        let decompressed = dir.path().join(format!("matrix-{flag}.img"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{tool} -dc '{}' > '{}'",
                out.join(&file).display(),
                decompressed.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(sha256_file(&decompressed), expected, "{flag}");
        fsck_fat(&extract_boot(&decompressed, dir.path())).unwrap();
    }
}

#[test]
fn compressed_inputs_give_the_same_image_as_raw() {
    let dir = tempfile::tempdir().unwrap();
    let base = copy_fixture("bookworm", dir.path());
    prepare(dir.path(), &base, &["--node", "matrix"]);
    let out = dir.path().join("out");
    let reference = sha256_file(&out.join("matrix.img"));
    for (tool, args, ext) in [
        ("xz", "-T2 -k -c", "xz"),
        ("gzip", "-k -c", "gz"),
        ("zstd", "-q -k -c", "zst"),
    ] {
        let packed = dir.path().join(format!("bookworm.img.{ext}"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{tool} {args} '{}' > '{}'",
                base.display(),
                packed.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        prepare(dir.path(), &packed, &["--node", "matrix"]);
        assert_eq!(
            sha256_file(&out.join("matrix.img")),
            reference,
            "from .{ext}"
        );
    }
}
