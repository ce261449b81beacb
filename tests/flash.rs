//! `pinode flash` and `pinode devices` on loop devices standing in for cards (CI runs as
//! root), with made-up `/sys` trees for the refusals a test host cannot stage.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::loopdev::{FakeSystem, Loop, card_in_tempdir};
use common::*;

const MIB: u64 = 1 << 20;

fn profile(dir: &Path, nodes: &str) -> PathBuf {
    write_profile(
        dir,
        "cards.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             nodes:\n{nodes}"
        ),
    )
}

fn one_node(dir: &Path) -> PathBuf {
    profile(dir, "  - hostname: card-1\n    role: server\n")
}

fn flash(profile: &Path, devices: &[&Loop], extra: &[&str]) -> Command {
    let mut c = pinode();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["flash", "--profile"])
        .arg(profile)
        .arg("--image")
        .arg(fixture("bookworm"))
        .args(extra);
    for d in devices {
        c.arg("--device").arg(&d.dev);
    }
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn image_len() -> u64 {
    std::fs::metadata(fixture("bookworm")).unwrap().len()
}

/// The boot partition of the card's first `len` bytes, as a file for fsck.fat and mtools.
fn boot_of(card: &Loop, dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(format!("{name}.img"));
    std::fs::write(&copy, card.read(image_len())).unwrap();
    extract_boot(&copy, dir)
}

#[test]
fn writes_and_verifies_one_card_that_holds_exactly_the_node() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let p = one_node(dir.path());
    // --full: every byte, so that the card can be compared with the prepared image whole
    // (tests/allocation.rs proves the default, allocation-aware writes).
    let out = run(&mut flash(
        &p,
        &[&card],
        &["--yes", "--allow-non-removable", "--json", "--full"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let node = &v["nodes"][0];
    assert_eq!(node["hostname"], "card-1");
    assert_eq!(node["outcome"], "written");
    assert_eq!(node["report"]["verified"], true);
    assert_eq!(node["report"]["bytes"], image_len());
    assert_eq!(node["report"]["allocation_aware"], false);

    // Byte for byte what `prepare` makes for the same node.
    run(pinode()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["prepare", "--profile"])
        .arg(&p)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(dir.path().join("out")));
    let prepared = std::fs::read(dir.path().join("out/card-1.img")).unwrap();
    let on_card = card.read(image_len());
    assert!(
        prepared == on_card,
        "the card differs from the prepared image"
    );
    assert_eq!(node["report"]["sha256"], sha256(&on_card));

    let boot = boot_of(&card, dir.path(), "card");
    fsck_fat(&boot).unwrap();
    let manifest = mread(&boot, "pinode/node.json").unwrap();
    assert!(String::from_utf8_lossy(&manifest).contains("\"hostname\": \"card-1\""));
    assert!(mread(&boot, "ssh").is_some());
    let cmdline = String::from_utf8(mread(&boot, "cmdline.txt").unwrap()).unwrap();
    assert!(cmdline.contains("cgroup_enable=memory"), "{cmdline}");

    // `inspect` reads the card itself and agrees.
    let v = inspect_json(&card.dev);
    assert_eq!(v["boot"]["hostname"], "card-1");
    assert_eq!(v["boot"]["firstboot"], true);
    assert_eq!(v["boot"]["ssh"], true);
    assert_eq!(v["boot"]["cgroups"], true);
    assert_eq!(v["os"]["generation"], "bookworm");
    assert_eq!(v["size_bytes"], 100 * MIB);
}

#[test]
fn a_byte_changed_on_the_card_before_the_read_back_fails_the_verify() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let cmd = flash(
        &one_node(dir.path()),
        &[&card],
        &["--yes", "--allow-non-removable"],
    );
    let (child, pause) = start_paused(cmd, dir.path(), "verify");
    // The card "loses" a byte of the boot partition's FAT (written, so read back): change
    // the loop device's backing file.
    let at = 4 * MIB + 12345;
    let backing = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&card.backing)
        .unwrap();
    let mut byte = [0u8; 1];
    backing.read_exact_at(&mut byte, at).unwrap();
    backing.write_all_at(&[!byte[0]], at).unwrap();
    backing.sync_all().unwrap();
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("verify failed"), "{err}");
    assert!(
        err.contains(&format!("first difference at byte {at}")),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        2,
        "{err}"
    );
}

#[test]
fn an_interrupted_write_leaves_no_partition_table_and_the_next_run_overwrites_it() {
    // Start from a complete card: the interrupted run must not leave it looking complete.
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let p = one_node(dir.path());
    run(&mut flash(
        &p,
        &[&card],
        &["--yes", "--allow-non-removable"],
    ));
    let cmd = flash(&p, &[&card], &["--yes", "--allow-non-removable"]);
    let (mut child, pause) = start_paused(cmd, dir.path(), &format!("write:{}", 20 * MIB));
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&pause).unwrap();

    let head = card.read(MIB);
    assert!(
        head.iter().all(|b| *b == 0),
        "the first MiB must still be zero"
    );
    let out = output(pinode().arg("inspect").arg(&card.dev));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no partition table"),
        "{}",
        stderr(&out)
    );

    let out = run(&mut flash(
        &p,
        &[&card],
        &["--yes", "--allow-non-removable", "--json"],
    ));
    assert!(out.contains("\"verified\": true"), "{out}");
    fsck_fat(&boot_of(&card, dir.path(), "again")).unwrap();
}

#[test]
fn three_nodes_onto_three_cards_unattended() {
    let dir = tempfile::tempdir().unwrap();
    let cards: Vec<Loop> = (1..=3)
        .filter_map(|i| Loop::new(dir.path(), &format!("card{i}"), 80 * MIB))
        .collect();
    if cards.len() < 3 {
        return;
    }
    let p = profile(
        dir.path(),
        "  - hostname: cp-1\n    role: server\n  - hostname: worker-[1-2]\n    role: agent\n",
    );
    let refs: Vec<&Loop> = cards.iter().collect();
    let stdout = run(&mut flash(&p, &refs, &["--yes", "--allow-non-removable"]));
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("NODE"))
        .collect();
    assert_eq!(table.len(), 4, "{stdout}");
    for (line, (host, card)) in table[1..]
        .iter()
        .zip(["cp-1", "worker-1", "worker-2"].iter().zip(&cards))
    {
        assert!(line.starts_with(host), "{line}");
        assert!(line.contains(&card.dev.display().to_string()), "{line}");
        assert!(line.contains(" ok ") && line.ends_with("written"), "{line}");
        let v = inspect_json(&card.dev);
        assert_eq!(v["boot"]["hostname"], *host);
    }
}

#[test]
fn asks_before_writing_and_names_the_node_already_on_the_card() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let p = profile(
        dir.path(),
        "  - hostname: old-node\n    role: server\n  - hostname: new-node\n    role: agent\n",
    );
    run(&mut flash(
        &p,
        &[&card],
        &["--yes", "--allow-non-removable", "--node", "old-node"],
    ));

    let answer = |text: &str| {
        let mut child = flash(
            &p,
            &[&card],
            &["--allow-non-removable", "--node", "new-node"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let hostname = || {
        let v = inspect_json(&card.dev);
        v["boot"]["hostname"].as_str().unwrap().to_string()
    };
    let no = answer("n\n");
    assert!(!no.status.success());
    let err = stderr(&no);
    assert!(err.contains("pinode node old-node"), "{err}");
    assert!(err.contains("another node than new-node"), "{err}");
    assert!(err.contains("[y/N]"), "{err}");
    assert_eq!(hostname(), "old-node", "a card is written only after a yes");
    let closed = answer("");
    assert!(!closed.status.success());
    assert_eq!(hostname(), "old-node");

    let yes = answer("y\n");
    assert!(yes.status.success(), "{}", stderr(&yes));
    assert_eq!(hostname(), "new-node");
}

#[test]
fn refuses_a_non_removable_disk_without_the_flag_and_a_card_too_small() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = Loop::new(dir.path(), "small", 32 * MIB) else {
        return;
    };
    let p = one_node(dir.path());
    let before = sha256(&small.read(32 * MIB));

    let out = output(&mut flash(&p, &[&small], &["--yes"]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not removable"), "{err}");
    assert!(err.contains("add --allow-non-removable"), "{err}");

    let out = output(&mut flash(
        &p,
        &[&small],
        &["--yes", "--allow-non-removable"],
    ));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("too small"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(sha256(&small.read(32 * MIB)), before, "nothing written");

    // The flag is only honoured for a device named on the command line.
    let out = output(
        pinode()
            .args(["flash", "--allow-non-removable", "--profile"])
            .arg(&p),
    );
    assert!(stderr(&out).contains("only to a device named with --device"));
}

#[test]
fn refuses_a_mounted_card_unless_asked_to_unmount_it() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    // A file system on the whole card, mounted (this kernel lists no partitions of loop
    // devices, so the whole disk carries it).
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&card.dev));
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run(Command::new("mount").arg(&card.dev).arg(&mnt));
    let p = one_node(dir.path());

    let out = output(&mut flash(
        &p,
        &[&card],
        &["--yes", "--allow-non-removable"],
    ));
    let still_mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&mnt.display().to_string());
    if !still_mounted {
        panic!("the refused run unmounted the card");
    }
    let _ = Command::new("umount").arg(&mnt).status();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("mounted at {}", mnt.display())),
        "{err}"
    );
    assert!(err.contains("--unmount"), "{err}");

    run(Command::new("mount").arg(&card.dev).arg(&mnt));
    let out = output(&mut flash(
        &p,
        &[&card],
        &["--yes", "--allow-non-removable", "--unmount"],
    ));
    let mounted_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&mnt.display().to_string());
    if mounted_after {
        let _ = Command::new("umount").arg(&mnt).status();
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!mounted_after);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("unmounted {}", mnt.display())));
}

#[test]
fn refuses_the_system_disk_whatever_the_flags() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    // A machine whose root file system is on partition 2 of this very device.
    let fake = FakeSystem::new(
        dir.path(),
        "22 1 259:77 / / rw,relatime shared:1 - ext4 /dev/fakeroot rw\n",
    );
    fake.disk(
        &card.name(),
        &card.devno(),
        100 * MIB,
        &[("rootp2", "259:77")],
    );
    let before = sha256(&card.read(MIB));

    let out = output(
        flash(
            &one_node(dir.path()),
            &[&card],
            &["--yes", "--allow-non-removable", "--unmount"],
        )
        .env("PINODE_SYSTEM_ROOT", &fake.root),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("system disk (holds /)"), "{err}");
    assert!(!err.contains("add --"), "no flag lifts it: {err}");
    assert_eq!(sha256(&card.read(MIB)), before);

    let v: serde_json::Value = serde_json::from_str(&run(pinode()
        .args(["devices", "--json", "--all"])
        .env("PINODE_SYSTEM_ROOT", &fake.root)))
    .unwrap();
    let disk = &v["devices"][0];
    assert_eq!(disk["path"], card.dev.display().to_string());
    assert_eq!(disk["usable"], false);
    assert_eq!(disk["refusals"][0]["code"], "system-disk");
    assert_eq!(disk["system_mounts"][0], "/");
}

#[test]
fn refuses_a_partition_and_names_its_disk() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    // A machine on which this device node is partition 1 of a card reader's disk.
    let fake = FakeSystem::new(dir.path(), "");
    fake.disk("sdz", "8:240", 100 * MIB, &[("sdz1", &card.devno())]);
    let out = output(
        flash(
            &one_node(dir.path()),
            &[&card],
            &["--yes", "--allow-non-removable"],
        )
        .env("PINODE_SYSTEM_ROOT", &fake.root),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("/dev/sdz1 is a partition of /dev/sdz") && err.contains("name the disk"),
        "{err}"
    );
}

#[test]
fn devices_lists_the_loop_card_with_its_verdict() {
    let Some((_dir, card)) = card_in_tempdir() else {
        return;
    };
    let v: serde_json::Value =
        serde_json::from_str(&run(pinode().args(["devices", "--json", "--all"]))).unwrap();
    let ours = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == card.dev.display().to_string())
        .unwrap();
    assert_eq!(ours["transport"], "loop");
    assert_eq!(ours["size_bytes"], 100 * MIB);
    assert_eq!(ours["backing_file"], card.backing.display().to_string());
    assert_eq!(ours["refusals"][0]["code"], "not-removable");
    assert_eq!(ours["refusals"][0]["override"], "--allow-non-removable");

    let human = run(pinode().args(["devices", "--all"]));
    let line = human
        .lines()
        .find(|l| l.starts_with(&card.dev.display().to_string()))
        .unwrap();
    assert!(line.contains("refused: not removable"), "{line}");
    let plain = run(pinode().arg("devices"));
    assert!(
        !plain.contains(&card.dev.display().to_string()),
        "loop devices only with --all"
    );
}

/// Collects a child's stderr as it comes, so a test can answer the questions it asks.
fn watch_stderr(child: &mut std::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::Read;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let sink = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

fn wait_for(seen: &std::sync::Mutex<String>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.lock().unwrap().contains(text) {
        assert!(
            Instant::now() < deadline,
            "never saw {text:?} in:\n{}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_a_device_it_waits_for_a_card_to_be_inserted_and_asks() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    // A machine with no card yet; the card "appears" while pinode waits.
    let fake = FakeSystem::new(dir.path(), "");
    let mut child = flash(&one_node(dir.path()), &[], &[])
        .env("PINODE_SYSTEM_ROOT", &fake.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = watch_stderr(&mut child);
    wait_for(&seen, "Insert the card for card-1");
    fake.disk(&card.name(), &card.devno(), 100 * MIB, &[]);
    wait_for(&seen, "[y/N]");
    assert!(
        seen.lock().unwrap().contains(&format!(
            "{}: loop disk, 100.0 MiB (104.9 MB as sold)",
            card.dev.display()
        )),
        "{}",
        seen.lock().unwrap()
    );
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", seen.lock().unwrap());
    let v = inspect_json(&card.dev);
    assert_eq!(v["boot"]["hostname"], "card-1");
}

#[test]
fn a_failed_card_can_be_retried() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let pause = dir.path().join("pause");
    let mut child = flash(&one_node(dir.path()), &[&card], &["--allow-non-removable"])
        .env("PINODE_TEST_PAUSE", format!("verify@{}", pause.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = watch_stderr(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    let wait_pause = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pause.exists() {
            assert!(Instant::now() < deadline, "{}", seen.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    wait_for(&seen, "[y/N]");
    stdin.write_all(b"y\n").unwrap();
    // First attempt: the card changes under the read-back.
    wait_pause();
    let backing = std::fs::OpenOptions::new()
        .write(true)
        .open(&card.backing)
        .unwrap();
    backing
        .write_all_at(b"\xff\x00\xff", 4 * MIB + 20_000)
        .unwrap();
    backing.sync_all().unwrap();
    std::fs::remove_file(&pause).unwrap();
    wait_for(&seen, "r: retry");
    assert!(seen.lock().unwrap().contains("verify failed"));
    stdin.write_all(b"r\n").unwrap();
    // Second attempt: asked again, written again, verified.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().matches("[y/N]").count() < 2 {
        assert!(Instant::now() < deadline, "{}", seen.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(b"y\n").unwrap();
    wait_pause();
    std::fs::remove_file(&pause).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", seen.lock().unwrap());
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified"));
    fsck_fat(&boot_of(&card, dir.path(), "retried")).unwrap();
}

#[test]
fn without_write_access_it_says_how_to_get_it() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    // The token state and the profile must be usable by the unprivileged user.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    for p in [dir.path(), state.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let p = one_node(dir.path());
    let flash = flash(&p, &[&card], &["--yes", "--allow-non-removable"]);
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(flash.get_program())
        .args(flash.get_args())
        .envs(flash.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("PINODE_STATE_DIR", &state)
        .env("HOME", dir.path());
    let before = sha256(&card.read(MIB));
    let out = output(&mut cmd);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("permission denied") && err.contains("sudo"),
        "{err}"
    );
    assert_eq!(sha256(&card.read(MIB)), before);
}

/// With standard input closed (`</dev/null`) nobody can choose, swap or confirm a card: flash
/// says which nodes lack a `--device` and shows the command line that asks nothing, before
/// any work, in one `error:` line with the usage status (2). No card is touched.
#[test]
fn with_stdin_closed_it_names_the_nodes_without_a_device_and_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(
        dir.path(),
        "  - hostname: cp-1\n    role: server\n  - hostname: worker-[1-2]\n    role: agent\n",
    );
    let closed = |devices: &[&Loop], extra: &[&str]| {
        let started = Instant::now();
        let out = output(flash(&p, devices, extra).stdin(Stdio::null()));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(out.stdout.is_empty(), "{err}");
        assert_eq!(err.lines().count(), 1, "one error line: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        err
    };
    // The run's global options stay in the command (sudo drops the environment they came
    // from here: common::pinode's PINODE_CATALOG and PINODE_CACHE_DIR).
    let head = format!(
        "sudo pinode flash {} --profile {} --image {}",
        test_globals(),
        p.display(),
        fixture("bookworm").display()
    );

    let err = closed(&[], &[]);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: standard input is closed, so nobody can choose the cards: name one card \
             per node with --device, in node order, and add --yes (no --device for cp-1, \
             worker-1, worker-2): {head} --device <card for cp-1> --device <card for \
             worker-1> --device <card for worker-2> --yes"
        )
    );
    // A subset of the nodes: only theirs.
    let err = closed(&[], &["--node", "worker-2"]);
    assert!(err.contains("(no --device for worker-2)"), "{err}");
    assert!(
        err.contains("--node worker-2 --image")
            && err.contains("--device <card for worker-2> --yes"),
        "{err}"
    );

    let Some(card) = Loop::new(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let before = sha256(&card.read(MIB));
    // One reader for three nodes: the cards would be swapped in it, which needs someone.
    let err = closed(&[&card], &["--yes", "--allow-non-removable"]);
    assert!(
        err.contains("nobody can swap the cards in the reader"),
        "{err}"
    );
    assert!(
        err.contains("(no --device for worker-1, worker-2)"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "--allow-non-removable --device {} --device <card for worker-1> --device <card \
             for worker-2> --yes",
            card.dev.display()
        )),
        "{err}"
    );
    // Every node has its card, but nobody can say yes.
    let err = closed(&[&card], &["--allow-non-removable", "--node", "cp-1"]);
    assert!(
        err.contains("nobody can confirm writing the named card(s): add --yes"),
        "{err}"
    );
    assert_eq!(sha256(&card.read(MIB)), before, "the card was touched");
}

/// Under a terminal, the progress bars (write, then read-back) are gone when the summary is
/// printed: the screen a person is left with shows the summary line whole, from its first
/// column, and no bar, whether the card is read back or not.
#[test]
fn no_progress_bar_is_left_on_the_screen_after_a_flash() {
    use common::screen::Screen;
    use expectrl::Expect;
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let p = one_node(dir.path());
    for extra in [&[][..], &["--no-verify"][..]] {
        let mut cmd = flash(&p, &[&card], &["--yes", "--allow-non-removable"]);
        cmd.args(extra).env("TERM", "xterm").env_remove("CI");
        let mut s = expectrl::session::OsSession::spawn(cmd).unwrap();
        s.get_process_mut().set_window_size(200, 40).unwrap();
        s.set_expect_timeout(Some(Duration::from_secs(60)));
        let all = s.expect(expectrl::Eof).unwrap();
        let raw = [all.before(), all.get(0).unwrap_or_default()].concat();
        assert!(
            String::from_utf8_lossy(&raw).contains("card-1 write ["),
            "no progress bar was drawn: {:?}",
            String::from_utf8_lossy(&raw)
        );
        let lines = Screen::of(&raw, 200).lines();
        let text = lines.join("\n");
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(" write [") || l.contains(" verify [")),
            "{extra:?}: a progress bar is left on the screen:\n{text}"
        );
        let last = lines.last().map(String::as_str).unwrap_or_default();
        assert!(
            last.starts_with("card-1: ") && last.contains(" written to "),
            "{extra:?}: the summary is not the last line, whole:\n{text}"
        );
    }
}

/// A cluster's summary ends with the command that follows its first boot (`pinode status`);
/// a profile without a cluster (every other test here) ends with the card's line.
#[test]
fn a_clusters_flash_ends_with_the_status_command() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let p = write_profile(
        dir.path(),
        "lab.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             cluster:\n  name: lab\n  token_env: K3S_TOKEN\n\
             nodes:\n  - hostname: card-1\n    role: server\n"
        ),
    );
    let out = output(
        flash(&p, &[&card], &["--yes", "--allow-non-removable"])
            .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
            .env("PINODE_STATE_DIR", dir.path().join("state")),
    );
    assert!(out.status.success(), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[lines.len() - 2].starts_with("card-1: "),
        "the card's line, then the next command:\n{text}"
    );
    assert_eq!(
        lines[lines.len() - 1],
        format!(
            "next: boot the nodes, then follow them until they are Ready with: pinode status \
             --profile {} --watch",
            p.display()
        )
    );
}

/// Standard input that closes in the middle of a batch (one reader, the cards swapped in
/// it): the card answered for is written, then the batch stops, naming the nodes without a
/// card of their own and the command line that asks nothing; the summary says what was done.
#[test]
fn stdin_closing_mid_batch_stops_and_names_what_is_missing() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    let p = profile(
        dir.path(),
        "  - hostname: node-1\n    role: server\n  - hostname: node-2\n    role: agent\n",
    );
    let mut child = flash(&p, &[&card], &["--allow-non-removable"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: no answer for node-2: standard input is closed, so nobody can swap the \
             cards in the reader: name one card per node with --device, in node order, and \
             add --yes (no --device for node-2): sudo pinode flash {} --profile {} --image {} \
             --allow-non-removable --device {} --device <card for node-2> --yes",
            test_globals(),
            p.display(),
            fixture("bookworm").display(),
            card.dev.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("1 of 2 cards written; not reached: node-2"),
        "{err}"
    );
    assert_eq!(inspect_json(&card.dev)["boot"]["hostname"], "node-1");
}

/// The global options common::pinode sets through the environment, as `flash` repeats them
/// in the command it suggests.
fn test_globals() -> String {
    format!(
        "--catalog /nonexistent/pinode-test-catalog.json --cache-dir {}",
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("no-cache-here")
            .display()
    )
}
