//! The image engine against real tools: every boot partition pinode writes must pass
//! `fsck.fat -n`, mtools must read back exactly the bytes pinode meant, and everything else on
//! the partition must stay byte-identical (contents and directory entries).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;
use pinode::bootfs::apply::ApplyReport;
use pinode::bootfs::content::BootContent;
use pinode::bootfs::manifest::Manifest;
use pinode::image::Image;
use pinode::pipeline::node::customise;
use pinode::profile::LoadedProfile;
use serde_json::json;

/// A profile for one node, built as data so that any value is quoted correctly.
#[derive(Clone)]
struct Node {
    hostname: String,
    init: &'static str,
    wifi: Option<(String, &'static str)>,
    ssh: bool,
    cmdline_extra: Vec<String>,
    config_extra: Vec<String>,
}

impl Node {
    fn new(hostname: &str) -> Node {
        Node {
            hostname: hostname.into(),
            init: "auto",
            wifi: Some(("Home Net".into(), "DE")),
            ssh: true,
            cmdline_extra: vec![],
            config_extra: vec![],
        }
    }

    fn profile(&self) -> String {
        let wifi = match &self.wifi {
            Some((ssid, country)) => {
                json!({"ssid": ssid, "psk": "correct horse battery", "country": country})
            }
            None => serde_json::Value::Null,
        };
        let doc = json!({
            "version": 1,
            "os": {"image": "unused.img", "init": self.init},
            "defaults": {
                "user": {"name": "alice", "ssh_authorized_keys": [KEY_1], "password_hash": HASH},
                "ssh": {"enabled": self.ssh},
                "wifi": wifi,
                "timezone": "Europe/Berlin",
                "boot": {"cmdline_extra": self.cmdline_extra, "config_extra": self.config_extra},
            },
            "nodes": [{"hostname": self.hostname, "role": "server"}],
        });
        serde_yaml::to_string(&doc).unwrap()
    }
}

/// Patches `image` in place through the library, returning what pinode meant to write.
fn patch(image: &Path, node: &Node, dir: &Path) -> (BootContent, ApplyReport, u64) {
    let path = write_profile(dir, "profile.yaml", &node.profile());
    let profile = LoadedProfile::load(&path).unwrap();
    let mut img = Image::open(image, true).unwrap();
    let os = img.detect_os(None, profile.init_override()).unwrap();
    let (custom, report, _notes) = customise(&mut img, &profile, &profile.nodes[0], &os).unwrap();
    let written = img.commit().unwrap();
    (custom, report, written)
}

struct Stock {
    listing: BTreeMap<String, Entry>,
    cmdline: String,
    config: String,
}

fn stock(name: &str, dir: &Path) -> Stock {
    let fat = extract_boot(&fixture(name), dir);
    fsck_fat(&fat).unwrap_or_else(|e| panic!("the {name} fixture itself is not clean: {e}"));
    Stock {
        listing: listing(&fat),
        cmdline: String::from_utf8(mread(&fat, "cmdline.txt").unwrap()).unwrap(),
        config: String::from_utf8(mread(&fat, "config.txt").unwrap()).unwrap(),
    }
}

/// Checks the boot partition of `image` after `custom` was applied to `stock`.
fn verify(image: &Path, stock: &Stock, custom: &BootContent, node: &Node, dir: &Path) {
    let fat = extract_boot(image, dir);
    if let Err(e) = fsck_fat(&fat) {
        panic!(
            "fsck.fat -n failed after patching as {}: {e}",
            node.hostname
        );
    }
    let bare = run(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&fat)
        .args(["-/", "-b", "-a", "::/"]));
    let mut seen = BTreeSet::new();
    for line in bare.lines() {
        assert!(
            seen.insert(line.to_ascii_lowercase()),
            "duplicate directory entry {line}"
        );
    }
    let after = listing(&fat);

    // Exactly the expected entries: the stock ones, pinode's files, its manifest, and the
    // stock files it replaced, kept aside.
    let written: BTreeSet<String> = custom.files.iter().map(|f| f.path.clone()).collect();
    let replaced: Vec<&String> = written
        .iter()
        .filter(|p| stock.listing.contains_key(*p))
        .collect();
    let mut expected: BTreeSet<String> = stock.listing.keys().cloned().collect();
    expected.extend(written.iter().cloned());
    expected.extend(["pinode/".to_string(), "pinode/node.json".to_string()]);
    if !replaced.is_empty() {
        expected.insert("pinode/original/".into());
        expected.extend(replaced.iter().map(|p| format!("pinode/original/{p}")));
    }
    let actual: BTreeSet<String> = after.keys().cloned().collect();
    assert_eq!(
        actual, expected,
        "entries on the boot partition after patching as {}",
        node.hostname
    );

    // What pinode meant, byte for byte.
    for file in &custom.files {
        assert_eq!(
            mread(&fat, &file.path).unwrap(),
            file.contents,
            "{} as read back by mtools",
            file.path
        );
    }
    for path in &replaced {
        assert_eq!(
            after[&format!("pinode/original/{path}")].sha256,
            stock.listing[*path].sha256
        );
    }
    let tokens: Vec<String> = custom.cmdline.iter().map(|e| e.token()).collect();
    let cmdline = String::from_utf8(mread(&fat, "cmdline.txt").unwrap()).unwrap();
    assert_eq!(
        cmdline,
        format!(
            "{} {}\n",
            stock.cmdline.trim_end_matches('\n'),
            tokens.join(" ")
        )
    );
    let mut all: Vec<&str> = cmdline.split_whitespace().collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "every cmdline token exactly once: {cmdline}");

    let mut block: Vec<String> = vec![];
    if custom.arm_64bit && !stock.config.contains("\narm_64bit=1\n") {
        block.push("arm_64bit=1".into());
    }
    block.extend(node.config_extra.iter().cloned());
    let config = String::from_utf8(mread(&fat, "config.txt").unwrap()).unwrap();
    if block.is_empty() {
        assert_eq!(config, stock.config);
    } else {
        let expected = format!(
            "{}# BEGIN pinode: managed block, rewritten on every patch\n[all]\n{}\n# END pinode\n",
            stock.config,
            block.join("\n")
        );
        assert_eq!(config, expected);
    }

    // Everything else untouched: contents and directory entries.
    for (path, entry) in &stock.listing {
        if path == "cmdline.txt" || path == "config.txt" || written.contains(path) {
            continue;
        }
        assert_eq!(&after[path], entry, "{path} must be untouched");
    }

    let manifest: Manifest =
        serde_json::from_slice(&mread(&fat, "pinode/node.json").unwrap()).unwrap();
    assert_eq!(manifest.hostname, node.hostname);
    assert_eq!(manifest.cmdline_added, tokens);
}

#[test]
fn every_fixture_is_patched_exactly() {
    for name in ALL_FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        let stock = stock(name, dir.path());
        let image = copy_fixture(name, dir.path());
        let node = Node {
            config_extra: vec!["dtparam=spi=on".into()],
            ..Node::new("matrix")
        };
        let (custom, _, _) = patch(&image, &node, dir.path());
        let expected_init = if name == "trixie" {
            "cloud-init"
        } else {
            "firstrun"
        };
        assert_eq!(custom.init.as_str(), expected_init, "{name}");
        verify(&image, &stock, &custom, &node, dir.path());
    }
}

#[test]
fn patching_again_with_the_same_values_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let node = Node::new("matrix");
    let (_, _, first) = patch(&image, &node, dir.path());
    assert!(first > 0);
    let before = sha256_file(&image);
    let (_, report, second) = patch(&image, &node, dir.path());
    assert_eq!(
        second, 0,
        "second identical patch wrote {second} bytes: {report:?}"
    );
    assert_eq!(sha256_file(&image), before);
}

/// A card patched again must not keep the previous node's secrets anywhere on it: FAT frees
/// the clusters of a rewritten or deleted file without clearing them.
#[test]
fn repatching_leaves_no_old_secret_on_the_card() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["bookworm", "trixie"] {
        let image = copy_fixture(name, dir.path());
        let profile = |psk: &str, hash: &str, wifi: bool| {
            let wifi = if wifi {
                json!({"ssid": "Home", "psk": psk, "country": "GB"})
            } else {
                serde_json::Value::Null
            };
            let doc = json!({
                "version": 1,
                "defaults": {"user": {"name": "alice", "ssh_authorized_keys": [KEY_1], "password_hash": hash}, "wifi": wifi},
                "nodes": [{"hostname": "matrix"}],
            });
            write_profile(dir.path(), "p.yaml", &serde_yaml::to_string(&doc).unwrap())
        };
        let hash_2 = HASH.replace("ZU8t", "AAAA");
        let psk = |p: &str| pinode::plan::wifi::psk_hex("Home", p);
        let contains = |needle: &str| {
            let bytes = std::fs::read(&image).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        };
        use secrecy::ExposeSecret;
        run(pinode()
            .arg("patch")
            .arg(&image)
            .arg("--profile")
            .arg(profile("first passphrase", HASH, true)));
        assert!(
            contains(psk("first passphrase").expose_secret()) && contains(HASH),
            "{name}: the first patch is there"
        );
        run(pinode()
            .arg("patch")
            .arg(&image)
            .arg("--profile")
            .arg(profile("second passphrase", &hash_2, true)));
        assert!(
            !contains(psk("first passphrase").expose_secret()),
            "{name}: the first Wi-Fi key is left on the card"
        );
        assert!(
            !contains(HASH),
            "{name}: the first password hash is left on the card"
        );
        assert!(contains(psk("second passphrase").expose_secret()));
        run(pinode()
            .arg("patch")
            .arg(&image)
            .arg("--profile")
            .arg(profile("unused", &hash_2, false)));
        assert!(
            !contains(psk("second passphrase").expose_secret()),
            "{name}: a removed Wi-Fi key is left on the card"
        );
        fsck_fat(&extract_boot(&image, dir.path())).unwrap();
    }
}

/// A stock `key=value` token that pinode changes is put back when a later patch no longer sets it.
#[test]
fn a_replaced_stock_token_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    let (start, _) = partition(&image, 1);
    let stock = String::from_utf8(mread(&extract_boot(&image, dir.path()), "cmdline.txt").unwrap())
        .unwrap();
    let with_regdom = stock.replace(" rootwait", " cfg80211.ieee80211_regdom=GB rootwait");
    let file = dir.path().join("cmdline.txt");
    std::fs::write(&file, &with_regdom).unwrap();
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-o", "-i"])
        .arg(format!("{}@@{start}", image.display()))
        .arg(&file)
        .arg("::/cmdline.txt"));
    let node = Node {
        wifi: Some(("Home".into(), "DE")),
        ..Node::new("matrix")
    };
    patch(&image, &node, dir.path());
    let cmdline =
        String::from_utf8(mread(&extract_boot(&image, dir.path()), "cmdline.txt").unwrap())
            .unwrap();
    assert!(
        cmdline.contains(" cfg80211.ieee80211_regdom=DE rootwait") && !cmdline.contains("=GB"),
        "{cmdline}"
    );
    patch(&image, &Node { wifi: None, ..node }, dir.path());
    let cmdline =
        String::from_utf8(mread(&extract_boot(&image, dir.path()), "cmdline.txt").unwrap())
            .unwrap();
    assert_eq!(
        cmdline.matches("cfg80211.ieee80211_regdom=").count(),
        1,
        "{cmdline}"
    );
    assert!(
        cmdline.contains("cfg80211.ieee80211_regdom=GB"),
        "{cmdline}"
    );
}

/// Twenty patches with changing values on one image: hostnames, Wi-Fi on and off, countries,
/// extra tokens and lines, SSH on and off, and (on Trixie) switching between the cloud-init
/// and firstrun routes. After each, the partition must be clean and hold exactly the current node.
fn torture(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let stock = stock(name, dir.path());
    let image = copy_fixture(name, dir.path());
    for i in 0..20 {
        let node = Node {
            hostname: format!("node-{i}"),
            // Switching routes needs an image that has cloud-init (pinode refuses to seed one
            // that does not); the others alternate between detection and forcing firstrun.
            init: match ((i / 5) % 3, name == "trixie") {
                (0, _) => "auto",
                (1, true) => "firstrun",
                (1, false) => "auto",
                _ => "firstrun",
            },
            wifi: match i % 4 {
                3 => None,
                k => Some((format!("net {i} ✓"), ["DE", "GB", "US"][k])),
            },
            ssh: i % 3 != 2,
            cmdline_extra: (0..i % 3).map(|k| format!("pinode.test{k}={i}")).collect(),
            config_extra: (0..(i % 4))
                .map(|k| format!("dtparam=test{k}={i}"))
                .collect(),
        };
        let (custom, _, _) = patch(&image, &node, dir.path());
        verify(&image, &stock, &custom, &node, dir.path());
    }
}

#[test]
fn torture_bookworm() {
    torture("bookworm");
}

#[test]
fn torture_dirty_fat() {
    torture("dirty");
}

#[test]
fn torture_full_root_directory() {
    torture("fullroot");
}

#[test]
fn torture_gpt() {
    torture("gpt");
}

#[test]
fn torture_trixie() {
    torture("trixie");
}
