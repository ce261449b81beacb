//! `pinode flash` writing several cards at once (root only: loop devices stand in for the
//! cards), from one compressed base image decompressed once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::loopdev::Loop;
use common::*;

const MIB: u64 = 1 << 20;
const HOSTS: [&str; 3] = ["cp-1", "worker-1", "worker-2"];

/// Three nodes of one cluster (a server, two agents).
fn profile(dir: &Path) -> PathBuf {
    write_profile(
        dir,
        "fleet.yaml",
        &profile_yaml(
            "",
            "",
            "nodes:\n  - hostname: cp-1\n    role: server\n  - hostname: worker-[1-2]\n    role: agent\n",
        ),
    )
}

/// The bookworm fixture compressed with zstd: the one download every card comes from.
fn compressed_base(dir: &Path) -> PathBuf {
    let out = dir.join("base.img.zst");
    run(Command::new("zstd")
        .args(["-q", "-3", "-f", "-o"])
        .arg(&out)
        .arg(fixture("bookworm")));
    out
}

fn image_len() -> u64 {
    std::fs::metadata(fixture("bookworm")).unwrap().len()
}

/// Three cards of 80 MiB full of random bytes (whatever is not written stays garbage).
fn cards(dir: &Path) -> Option<Vec<Loop>> {
    let cards: Vec<Loop> = HOSTS
        .iter()
        .filter_map(|h| Loop::random(dir, h, 80 * MIB))
        .collect();
    (cards.len() == 3).then_some(cards)
}

/// The same seeds, clock and state folder for `flash` and `prepare`, so that both make the
/// same bytes for a node.
fn pinode_in(dir: &Path) -> Command {
    let mut c = pinode();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .env("PINODE_TEST_SEED", "fleet")
        .env("PINODE_STATE_DIR", dir.join("state"))
        .env("TMPDIR", dir);
    c
}

fn flash(dir: &Path, image: &Path, cards: &[Loop], extra: &[&str]) -> Command {
    let mut c = pinode_in(dir);
    c.args([
        "flash",
        "--json",
        "--yes",
        "--allow-non-removable",
        "--profile",
    ])
    .arg(dir.join("fleet.yaml"))
    .arg("--image")
    .arg(image)
    .args(extra);
    for card in cards {
        c.arg("--device").arg(&card.dev);
    }
    c
}

fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(out)))
}

/// A read-only loop device over `len` bytes of `dev` from `offset` (a partition of a card:
/// the loop devices here have no partition nodes), detached when dropped.
struct Slice(String);

impl Slice {
    fn new(dev: &Path, (offset, len): (u64, u64)) -> Slice {
        let out = run(Command::new("losetup")
            .args(["-r", "-f", "--show", "-o"])
            .arg(offset.to_string())
            .arg("--sizelimit")
            .arg(len.to_string())
            .arg(dev));
        Slice(out.trim().to_string())
    }
}

impl Drop for Slice {
    fn drop(&mut self) {
        let _ = output(Command::new("losetup").arg("-d").arg(&self.0));
    }
}

/// Whether strace can follow pinode here (a container may forbid ptrace).
fn strace_works() -> bool {
    Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn three_cards_at_once_from_one_compressed_base_each_the_nodes_prepared_image() {
    if !root_or_skip("loop devices need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(cards) = cards(dir.path()) else {
        return;
    };
    profile(dir.path());
    let base = compressed_base(dir.path());
    // Traced (where ptrace is allowed) to show that the compressed download is read before
    // the first card is opened, and never again: one decompression for all cards.
    let trace = dir.path().join("trace");
    let traced = strace_works();
    let mut cmd = if traced {
        let mut c = Command::new("strace");
        c.args(["-f", "-e", "trace=openat", "-o"]).arg(&trace);
        let inner = flash(dir.path(), &base, &cards, &["--full", "--parallel", "3"]);
        c.arg(inner.get_program()).args(inner.get_args());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    } else {
        eprintln!("NOTE: strace cannot trace here: the one decompression is not traced");
        flash(dir.path(), &base, &cards, &["--full", "--parallel", "3"])
    };
    let out = output(&mut cmd);
    assert!(out.status.success(), "{}", both(&out));
    let v = summary(&out);

    // What `prepare` makes for each node, from the raw fixture, with the same seeds.
    run(pinode_in(dir.path())
        .args(["prepare", "--profile"])
        .arg(dir.path().join("fleet.yaml"))
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(dir.path().join("out")));
    let mut seen = Vec::new();
    for (i, (host, card)) in HOSTS.iter().zip(&cards).enumerate() {
        let node = &v["nodes"][i];
        assert_eq!(node["hostname"], *host);
        assert_eq!(node["outcome"], "written", "{node}");
        assert_eq!(node["device"], card.dev.display().to_string());
        assert_eq!(node["report"]["verified"], true);
        assert_eq!(node["report"]["bytes"], image_len());
        let prepared = std::fs::read(dir.path().join(format!("out/{host}.img"))).unwrap();
        let on_card = card.read(image_len());
        assert!(
            prepared == on_card,
            "{host}: the card differs from prepare's image"
        );
        seen.push(sha256(&on_card));
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "three nodes, three different cards");

    if traced {
        let trace = std::fs::read_to_string(&trace).unwrap();
        let lines: Vec<&str> = trace.lines().collect();
        let name = base.display().to_string();
        let last_compressed = lines.iter().rposition(|l| l.contains(&name)).unwrap();
        let first_card = lines
            .iter()
            .position(|l| {
                cards.iter().any(|c| {
                    l.contains(&format!("\"{}\"", c.dev.display())) && l.contains("O_RDWR")
                })
            })
            .unwrap_or_else(|| panic!("no card opened for writing in the trace:\n{trace}"));
        assert!(
            last_compressed < first_card,
            "the compressed base was opened after the first card: {}",
            lines[last_compressed]
        );
        // And its scratch copy is gone.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("pinode"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn three_cards_at_once_allocation_aware_each_fsck_clean() {
    if !root_or_skip("loop devices need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(cards) = cards(dir.path()) else {
        return;
    };
    profile(dir.path());
    let base = compressed_base(dir.path());
    let out = output(&mut flash(dir.path(), &base, &cards, &[]));
    assert!(out.status.success(), "{}", both(&out));
    let v = summary(&out);
    for (i, (host, card)) in HOSTS.iter().zip(&cards).enumerate() {
        let node = &v["nodes"][i];
        assert_eq!(node["outcome"], "written", "{node}");
        assert_eq!(node["report"]["allocation_aware"], true);
        assert_eq!(node["report"]["verified"], true);
        assert!(node["report"]["bytes"].as_u64().unwrap() < image_len());
        let boot = Slice::new(&card.dev, partition(&card.dev, 1));
        fsck_fat(Path::new(&boot.0)).unwrap_or_else(|e| panic!("{host}: {e}"));
        let root = Slice::new(&card.dev, partition(&card.dev, 2));
        e2fsck(Path::new(&root.0)).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(inspect_json(&card.dev)["boot"]["hostname"], *host);
    }
}

#[test]
fn a_card_pulled_out_mid_write_fails_alone_and_the_summary_says_how_to_redo_it() {
    if !root_or_skip("loop devices need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(cards) = cards(dir.path()) else {
        return;
    };
    profile(dir.path());
    let base = compressed_base(dir.path());
    // worker-1's card stops after 20 MiB; meanwhile it "leaves the reader": its loop device
    // shrinks to 8 MiB, so every write after the pause fails as on a card pulled out.
    let cmd = flash(dir.path(), &base, &cards, &["--full"]);
    let (child, pause) = start_paused(cmd, dir.path(), &format!("write:{}:worker-1", 20 * MIB));
    // The other two are written and read back while worker-1 waits: at once, not in a row.
    for (host, card) in [(HOSTS[0], &cards[0]), (HOSTS[2], &cards[2])] {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = output(pinode().args(["inspect", "--json"]).arg(&card.dev));
            if String::from_utf8_lossy(&v.stdout).contains(&format!("\"hostname\": \"{host}\"")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{host} not written while worker-1 waits"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let pulled = &cards[1];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pulled.backing)
        .unwrap()
        .set_len(8 * MIB)
        .unwrap();
    run(Command::new("losetup").arg("-c").arg(&pulled.dev));
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();

    assert!(!out.status.success(), "{}", both(&out));
    let err = stderr(&out);
    let v = summary(&out);
    for (i, host) in HOSTS.iter().enumerate() {
        let node = &v["nodes"][i];
        assert_eq!(node["hostname"], *host);
        if i == 1 {
            assert_eq!(node["outcome"], "failed", "{node}");
            let message = node["error"].as_str().unwrap();
            assert!(message.contains("write failed"), "{message}");
        } else {
            assert_eq!(node["outcome"], "written", "{node}");
            assert_eq!(node["report"]["verified"], true, "{node}");
            assert_eq!(inspect_json(&cards[i].dev)["boot"]["hostname"], *host);
        }
    }
    let redo = v["redo"].as_str().unwrap();
    assert!(
        redo.contains(&format!(
            "--node worker-1 --image {} --full --allow-non-removable --device {} --yes",
            base.display(),
            pulled.dev.display()
        )),
        "{redo}"
    );
    assert!(
        err.contains("error: worker-1: ")
            && err.contains(
                "2 of 3 cards written; failed: worker-1; to write them: sudo pinode flash"
            ),
        "{err}"
    );
    // The failed card holds no partition table: nothing mounts or boots a half card.
    assert!(pulled.read(MIB).iter().all(|b| *b == 0));
}

/// A card refused mid-batch (here: worker-2's card shrank below the image after the checks
/// up front, as a card swapped for a smaller one) stops the batch after the cards in flight,
/// and the summary still says what was written, the refusal as worker-2's error, and how to
/// write the rest; the exit status is the refusal's.
#[test]
fn a_card_refused_mid_batch_keeps_the_summary_of_the_cards_written() {
    if !root_or_skip("loop devices need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(cards) = cards(dir.path()) else {
        return;
    };
    profile(dir.path());
    let base = compressed_base(dir.path());
    // Two at once: worker-2's card is chosen (and checked again) once a slot is free, after
    // cp-1 (paused here) or worker-1 ends.
    let cmd = flash(dir.path(), &base, &cards, &["--parallel", "2"]);
    let (child, pause) = start_paused(cmd, dir.path(), &format!("write:{}:cp-1", 4 * MIB));
    let swapped = &cards[2];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&swapped.backing)
        .unwrap()
        .set_len(8 * MIB)
        .unwrap();
    run(Command::new("losetup").arg("-c").arg(&swapped.dev));
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();

    assert!(!out.status.success(), "{}", both(&out));
    let v = summary(&out);
    for (i, host) in HOSTS.iter().enumerate() {
        let node = &v["nodes"][i];
        assert_eq!(node["hostname"], *host);
        if i == 2 {
            assert_eq!(node["outcome"], "failed", "{node}");
            assert!(
                node["error"].as_str().is_some_and(|m| !m.is_empty()),
                "{node}"
            );
        } else {
            assert_eq!(node["outcome"], "written", "{node}");
            assert_eq!(inspect_json(&cards[i].dev)["boot"]["hostname"], *host);
        }
    }
    let redo = v["redo"].as_str().unwrap();
    assert!(redo.contains("--node worker-2 "), "{redo}");
    let err = stderr(&out);
    assert!(
        err.contains("2 of 3 cards written; failed: worker-2; to write them: sudo pinode flash"),
        "{err}"
    );
}
