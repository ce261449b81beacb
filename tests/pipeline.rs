//! The node-image pipeline through the library: one base, the OS detected once, each node's
//! image written through the one composition of base and overlay.

mod common;

use common::*;
use pinode::pipeline::file::{FileNote, FileOptions, write_files};
use pinode::pipeline::{BaseImage, NodeImage};
use pinode::profile::LoadedProfile;
use pinode::progress::Silent;
use pinode::sink::file::Compression;
use sha2::{Digest, Sha256};

#[test]
fn one_base_gives_each_node_its_files_through_one_composition() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(
        dir.path(),
        "cluster.yaml",
        &profile_yaml(
            "",
            &format!("    password_hash: \"{HASH}\"\n"),
            "nodes:\n  - hostname: alpha\n    role: server\n  - hostname: beta\n    role: agent\n",
        ),
    );
    let profile = LoadedProfile::load(&profile).unwrap();
    let base = BaseImage::open(&fixture("bookworm"), dir.path(), &Silent, None).unwrap();
    assert!(base.os().is_none(), "the OS is detected by the first node");
    let before = sha256_file(&base.path);
    let options = FileOptions {
        out_dir: dir.path().join("out"),
        compression: Compression::None,
        bmap: true,
    };
    std::fs::create_dir_all(&options.out_dir).unwrap();
    for node in &profile.nodes {
        let image = NodeImage::new(&base, &profile, node).unwrap();
        let detected = base.os().expect("detected once, kept for the next nodes");
        assert_eq!(detected.generation, image.os.generation);
        assert_eq!(image.custom.hostname, node.hostname);
        assert!(image.changed_bytes() > 0);

        let mut said = Vec::new();
        let files = write_files(&image, &options, &Silent, &mut |note| {
            said.push(match note {
                FileNote::Image(f) => f.path.clone(),
                FileNote::Bmap(b) => b.path.clone(),
                FileNote::Removed(p) => p.to_path_buf(),
            })
        })
        .unwrap();
        let bmap = files.bmap.as_ref().expect("asked for a bmap");
        assert_eq!(said, [files.image.path.clone(), bmap.path.clone()]);
        assert_eq!(
            files.image.path,
            options.out_dir.join(format!("{}.img", node.hostname))
        );
        assert_eq!(sha256_file(&files.image.path), files.image.sha256);

        // The bytes read at offsets (cards, bmaps) are the bytes streamed (image files).
        let composed = image.composed();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 3 << 20];
        let mut at = 0;
        while at < image.len() {
            let n = (image.len() - at).min(buf.len() as u64) as usize;
            composed.read_at(at, &mut buf[..n]).unwrap();
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        assert_eq!(hex::encode(hasher.finalize()), files.image.sha256);
    }
    assert_eq!(sha256_file(&base.path), before, "the base is never written");
}
