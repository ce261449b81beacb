//! Issue 13, writes: `patch` all or nothing on a full disk, `flash` refusing a card that is
//! the base image or named twice, interrupted runs leaving no temporaries, and `cache clean`
//! deleting only a pinode cache. Everything through the real binary; root-only parts (tmpfs,
//! loop devices) skip with a note when not root.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::loopdev::Loop;
use common::*;

const MIB: u64 = 1 << 20;

fn node_profile(dir: &Path, nodes: &str) -> PathBuf {
    write_profile(
        dir,
        "nodes.yaml",
        &profile_yaml(
            "",
            &format!("    password_hash: \"{HASH}\"\n"),
            &format!("nodes:\n{nodes}"),
        ),
    )
}

/// `pinode patch` of node `n1` of `profile` onto `target` (an image file or a card).
fn patch_n1(profile: &Path, target: &Path) -> Command {
    let mut c = pinode();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["patch", "--profile"])
        .arg(profile)
        .arg("--node")
        .arg("n1")
        .arg(target);
    c
}

fn one_node(dir: &Path) -> PathBuf {
    node_profile(dir, "  - hostname: n1\n    role: server\n")
}

/// A tmpfs of `size` bytes mounted at `dir/name`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(dir: &Path, name: &str, size: u64) -> Tmpfs {
        let at = dir.join(name);
        std::fs::create_dir_all(&at).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size}"))
            .arg("tmpfs")
            .arg(&at));
        Tmpfs(at)
    }

    /// Fills the file system up to the last page.
    fn fill(&self) {
        for (name, bs) in [("filler", "1M"), ("filler-small", "4k")] {
            let _ = Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", self.0.join(name).display()))
                .arg(format!("bs={bs}"))
                .arg("status=none")
                .output();
        }
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
        let _ = std::fs::remove_file(self.0.join("filler-small"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

// ---------------------------------------------------------------------------------------
// 7. patch is all or nothing

#[test]
fn patch_on_a_full_disk_leaves_the_image_exactly_as_it_was() {
    if !root_or_skip("a tmpfs needs root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let fs = Tmpfs::new(dir.path(), "full", 96 * MIB);
    // Sparse: the patch's new files land in holes that need blocks the disk no longer has.
    let image = copy_fixture("bookworm", &fs.0);
    fs.fill();
    let before = sha256_file(&image);

    let out = output(&mut patch_n1(&p, &image));
    let line = one_error_line(&out, &["nothing was changed"]);
    assert!(line.contains(&image.display().to_string()), "{line}");
    assert_eq!(sha256_file(&image), before, "the image changed: {line}");
    let check = dir.path().join("check");
    std::fs::create_dir_all(&check).unwrap();
    fsck_fat(&extract_boot(&image, &check)).unwrap();

    // With space, the same patch goes through (the refusal was the disk, not the image).
    fs.free();
    run(&mut patch_n1(&p, &image));
    let boot = extract_boot(&image, &check);
    fsck_fat(&boot).unwrap();
    assert!(mread(&boot, "ssh").is_some());
    assert!(mread(&boot, "firstrun.sh").is_some());
}

/// The I/O-error variant: a card (a loop device) whose medium loses writes. The backing file
/// sits on a full tmpfs, so the writes into its holes are lost at writeback, with no error
/// reported to `fdatasync` (the kernel here logs nothing either). Before the fix the patch
/// said "customised" and left `ssh`, `userconf.txt` and `cmdline.txt` without `firstrun.sh`.
#[test]
fn patch_on_a_card_that_loses_writes_puts_everything_back() {
    if !root_or_skip("a tmpfs and loop devices need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let fs = Tmpfs::new(dir.path(), "full", 96 * MIB);
    let image = copy_fixture("bookworm", &fs.0);
    let before = sha256_file(&image);
    let card = Bound::new(&image);
    fs.fill();
    let out = output(&mut patch_n1(&p, &card.0));
    one_error_line(
        &out,
        &[&card.0.display().to_string(), "nothing was changed"],
    );
    drop(card);
    assert_eq!(sha256_file(&image), before, "the card changed");
    let check = dir.path().join("check");
    std::fs::create_dir_all(&check).unwrap();
    let boot = extract_boot(&image, &check);
    fsck_fat(&boot).unwrap();
    assert!(
        mread(&boot, "ssh").is_none(),
        "ssh was enabled by a failed patch"
    );
}

// ---------------------------------------------------------------------------------------
// 8. flash refusals

/// A loop device bound to `file` (detached when dropped).
struct Bound(PathBuf);

impl Bound {
    fn new(file: &Path) -> Bound {
        let dev = run(Command::new("losetup").args(["-f", "--show"]).arg(file));
        Bound(PathBuf::from(dev.trim()))
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

fn flash(profile: &Path, image: &Path, devices: &[&Path]) -> Output {
    output(&mut flash_cmd(profile, image, devices))
}

fn flash_cmd(profile: &Path, image: &Path, devices: &[&Path]) -> Command {
    let mut c = pinode();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["flash", "--yes", "--allow-non-removable", "--profile"])
        .arg(profile)
        .arg("--image")
        .arg(image);
    for d in devices {
        c.arg("--device").arg(d);
    }
    c
}

#[test]
fn flash_refuses_the_base_image_as_its_own_target() {
    if !root_or_skip("loop devices need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let image = copy_fixture("bookworm", dir.path());
    let before = sha256_file(&image);
    let card = Bound::new(&image);

    // The loop device whose backing file is the image…
    let out = flash(&p, &image, &[&card.0]);
    one_error_line(&out, &["is the base image", &card.0.display().to_string()]);
    // …through a symlink to the image…
    let link = dir.path().join("base-link.img");
    std::os::unix::fs::symlink(&image, &link).unwrap();
    one_error_line(&flash(&p, &link, &[&card.0]), &["is the base image"]);
    // …and the device itself as the image, through a symlink to the device.
    let dev_link = dir.path().join("card-link");
    std::os::unix::fs::symlink(&card.0, &dev_link).unwrap();
    one_error_line(&flash(&p, &card.0, &[&dev_link]), &["is the base image"]);

    drop(card);
    assert_eq!(sha256_file(&image), before, "the base image was written");
}

#[test]
fn a_batch_naming_one_card_twice_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    let p = node_profile(
        dir.path(),
        "  - hostname: n1\n    role: server\n  - hostname: n2\n    role: agent\n",
    );
    let before = sha256(&card.read(100 * MIB));
    // A symlink of the user's to the same device.
    let alias = dir.path().join("my-card");
    std::os::unix::fs::symlink(&card.dev, &alias).unwrap();
    let out = flash(&p, &fixture("bookworm"), &[&card.dev, &alias]);
    one_error_line(&out, &["same card", &alias.display().to_string()]);
    // A second loop device of the same file is the same card too.
    let twin = Bound::new(&card.backing);
    let out = flash(&p, &fixture("bookworm"), &[&card.dev, &twin.0]);
    one_error_line(&out, &["same card"]);
    drop(twin);
    assert_eq!(
        sha256(&card.read(100 * MIB)),
        before,
        "the card was written"
    );
}

#[test]
fn a_loop_device_whose_file_is_mounted_through_another_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(card) = Loop::random(dir.path(), "card", 100 * MIB) else {
        return;
    };
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&card.backing));
    let twin = Bound::new(&card.backing);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .arg(&twin.0)
        .arg(&mnt)
        .output()
        .unwrap();
    if !mounted.status.success() {
        eprintln!("skipped: cannot mount ext4 here: {}", stderr(&mounted));
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let unmount = Unmount(mnt.clone());
    let before = sha256(&card.read(100 * MIB));
    let out = flash(&one_node(dir.path()), &fixture("bookworm"), &[&card.dev]);
    one_error_line(
        &out,
        &[
            "in use by",
            &twin.0.file_name().unwrap().to_string_lossy(),
            "same file",
        ],
    );
    // --unmount cannot lift it: the mount is not this device's.
    let out = output(
        flash_cmd(&one_node(dir.path()), &fixture("bookworm"), &[&card.dev]).arg("--unmount"),
    );
    one_error_line(&out, &["in use by"]);
    assert_eq!(
        sha256(&card.read(100 * MIB)),
        before,
        "the card was written"
    );
    drop(unmount);
    drop(twin);
}

// ---------------------------------------------------------------------------------------
// 9. interrupted runs

/// The fixture with `extra` random bytes appended: compressing it with xz takes seconds,
/// long enough to interrupt.
fn slow_image(dir: &Path, extra: u64) -> PathBuf {
    let image = copy_fixture("bookworm", dir);
    let mut junk = vec![0u8; extra as usize];
    use std::io::{Read, Write};
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut junk)
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&image)
        .unwrap()
        .write_all(&junk)
        .unwrap();
    image
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".pinode-tmp."))
                .collect()
        })
        .unwrap_or_default()
}

fn prepare_cmd(profile: &Path, image: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = pinode();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["prepare", "--profile"])
        .arg(profile)
        .arg("--image")
        .arg(image)
        .arg("--out-dir")
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits until a pinode temporary appears in `dir` (the run is mid-way).
fn wait_for_temporary(child: &mut Child, dir: &Path) {
    let start = Instant::now();
    while temporaries(dir).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pinode ended ({status}) before writing a temporary");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no temporary");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: &str) {
    run(Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string()));
}

#[test]
fn sigint_and_sigterm_during_prepare_remove_its_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let image = slow_image(dir.path(), 24 * MIB);
    for (sig, number) in [("INT", 2), ("TERM", 15)] {
        let out = dir.path().join(format!("out-{sig}"));
        let mut child = prepare_cmd(&p, &image, &out, &["--compress", "xz"])
            .spawn()
            .unwrap();
        wait_for_temporary(&mut child, &out);
        signal(&child, sig);
        let status = child.wait().unwrap();
        // Death by the signal, as the shell reports it: 130 / 143.
        assert_eq!(status.signal(), Some(number), "{status}");
        assert_eq!(
            temporaries(&out),
            Vec::<String>::new(),
            "SIG{sig} left temporaries"
        );
        assert!(!out.join("n1.img.xz").exists());
    }
}

#[test]
fn sigterm_during_decompression_removes_the_decompressed_base() {
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let image = slow_image(dir.path(), 24 * MIB);
    run(Command::new("xz").args(["-0", "-T2"]).arg(&image));
    let compressed = image.with_extension("img.xz");
    let out = dir.path().join("out");
    let mut child = prepare_cmd(&p, &compressed, &out, &["--compress", "xz"])
        .spawn()
        .unwrap();
    // The first temporary is the base image being decompressed next to the outputs.
    wait_for_temporary(&mut child, &out);
    assert!(temporaries(&out).iter().any(|t| t.contains(".base.")));
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(15), "{status}");
    assert_eq!(temporaries(&out), Vec::<String>::new());
}

#[test]
fn a_killed_prepare_is_cleaned_up_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let image = slow_image(dir.path(), 24 * MIB);
    let out = dir.path().join("out");
    let mut child = prepare_cmd(&p, &image, &out, &["--compress", "xz"])
        .spawn()
        .unwrap();
    wait_for_temporary(&mut child, &out);
    signal(&child, "KILL");
    child.wait().unwrap();
    let left = temporaries(&out);
    assert!(
        !left.is_empty(),
        "SIGKILL cannot clean up; the test needs its leftover"
    );
    // A user's file that merely looks similar is never touched.
    std::fs::write(out.join(".pinode-tmp.notes"), b"mine").unwrap();

    run(&mut prepare_cmd(&p, &fixture("bookworm"), &out, &[]));
    assert_eq!(temporaries(&out), vec![".pinode-tmp.notes".to_string()]);
    assert!(out.join("n1.img").exists());
}

#[test]
fn two_runs_for_the_same_node_never_mix_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let image = slow_image(dir.path(), 24 * MIB);
    let out = dir.path().join("out");
    let mut first = prepare_cmd(&p, &image, &out, &["--compress", "xz"])
        .spawn()
        .unwrap();
    wait_for_temporary(&mut first, &out);
    let second = output(&mut prepare_cmd(&p, &fixture("bookworm"), &out, &[]));
    let status = first.wait().unwrap();
    assert!(status.success(), "{status}");
    one_error_line(&second, &["another pinode run is writing n1"]);
    assert!(out.join("n1.img.xz").exists());
    assert!(
        !out.join("n1.img").exists(),
        "the second run wrote into the first's folder"
    );
}

#[test]
fn prepare_removes_its_own_stale_outputs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let out = dir.path().join("out");
    run(&mut prepare_cmd(
        &p,
        &fixture("bookworm"),
        &out,
        &["--compress", "xz", "--bmap"],
    ));
    for f in ["n1.img.xz", "n1.img.xz.sha256", "n1.img.bmap"] {
        assert!(out.join(f).exists(), "{f}");
    }
    std::fs::write(out.join("n1.img.notes"), b"mine").unwrap();
    std::fs::write(out.join("other.img"), b"mine").unwrap();

    run(&mut prepare_cmd(&p, &fixture("bookworm"), &out, &[]));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["n1.img", "n1.img.notes", "n1.img.sha256", "other.img"]
    );
}

#[test]
fn render_removes_what_it_rendered_for_another_node_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let p = node_profile(
        dir.path(),
        "  - hostname: n1\n    role: server\n  - hostname: n2\n    role: agent\n",
    );
    let out = dir.path().join("render");
    let render = |node: &str, generation: &str| {
        run(pinode()
            .args(["render", "--profile"])
            .arg(&p)
            .args(["--node", node, "--generation", generation, "--out-dir"])
            .arg(&out));
    };
    // bookworm: firstrun.sh (holding n1's secrets); trixie: cloud-init files instead.
    render("n1", "bookworm");
    assert!(out.join("boot/firstrun.sh").exists());
    std::fs::write(out.join("boot/my-notes.txt"), b"mine").unwrap();
    render("n2", "trixie");
    assert!(
        !out.join("boot/firstrun.sh").exists(),
        "n1's first-boot script was left"
    );
    assert!(out.join("boot/user-data").exists());
    assert!(
        out.join("boot/my-notes.txt").exists(),
        "a user's file was removed"
    );
    assert_eq!(temporaries(&out.join("boot")), Vec::<String>::new());
}

/// A FIFO planted where render keeps its record of what it wrote (`.pinode-render.json`,
/// in a folder others may write to) is not read: render finishes instead of waiting
/// forever for a writer.
#[test]
fn render_does_not_wait_on_a_fifo_planted_as_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = one_node(dir.path());
    let out = dir.path().join("render");
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("mkfifo").arg(out.join(".pinode-render.json")));
    let (rendered, _) = run_within(
        pinode()
            .args(["render", "--generation", "bookworm", "--profile"])
            .arg(&p)
            .arg("--out-dir")
            .arg(&out),
        Duration::from_secs(20),
        "render with a FIFO as its record",
    );
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    assert!(out.join("boot/firstrun.sh").exists());
}

// ---------------------------------------------------------------------------------------
// 11. cache clean

fn cache_clean(cache: &Path) -> Output {
    output(
        pinode()
            .env("PINODE_CACHE_DIR", cache)
            .args(["cache", "clean"]),
    )
}

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A cache as pinode wrote it before the tag: one entry, its lock, a catalog copy.
fn legacy_cache(root: &Path) {
    let entry = root.join("images").join(SHA);
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("entry.json"), b"{}").unwrap();
    std::fs::write(entry.join("image.img"), vec![1u8; 4096]).unwrap();
    std::fs::write(root.join("images").join(format!("{SHA}.lock")), b"").unwrap();
    std::fs::create_dir_all(root.join("catalogs")).unwrap();
    std::fs::write(root.join("catalogs/0123456789abcdef.json"), b"{}").unwrap();
}

#[test]
fn cache_clean_refuses_a_directory_that_is_not_a_pinode_cache() {
    let dir = tempfile::tempdir().unwrap();
    // A home directory given as --cache-dir: it even has images/ and catalogs/ folders.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("images/holiday")).unwrap();
    std::fs::write(home.join("images/holiday/beach.jpg"), b"jpeg").unwrap();
    std::fs::create_dir_all(home.join("catalogs")).unwrap();
    std::fs::write(home.join("catalogs/stamps.json"), b"{}").unwrap();
    std::fs::write(home.join("notes.txt"), b"mine").unwrap();
    let out = cache_clean(&home);
    one_error_line(&out, &["not a pinode cache", "nothing was deleted"]);
    assert!(home.join("images/holiday/beach.jpg").exists());
    assert!(home.join("catalogs/stamps.json").exists());
    assert!(home.join("notes.txt").exists());

    // A pinode cache's layout plus a user's file is not recognisably a cache either.
    let mixed = dir.path().join("mixed");
    legacy_cache(&mixed);
    std::fs::write(mixed.join("thesis.tex"), b"mine").unwrap();
    one_error_line(&cache_clean(&mixed), &["thesis.tex"]);
    assert!(mixed.join("images").join(SHA).join("image.img").exists());
}

#[test]
fn cache_clean_empties_a_real_cache_old_or_tagged() {
    let dir = tempfile::tempdir().unwrap();
    // From before the tag: recognised by its layout.
    let old = dir.path().join("old");
    legacy_cache(&old);
    let out = cache_clean(&old);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!old.join("images").join(SHA).exists());
    assert!(!old.join("catalogs").exists());

    // Tagged: cleaned, yet only the layout's entries go.
    let tagged = dir.path().join("tagged");
    legacy_cache(&tagged);
    std::fs::write(
        tagged.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    std::fs::write(tagged.join("keep.txt"), b"mine").unwrap();
    std::fs::create_dir_all(tagged.join("images/not-an-entry")).unwrap();
    let out = cache_clean(&tagged);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!tagged.join("images").join(SHA).exists());
    assert!(tagged.join("keep.txt").exists());
    assert!(tagged.join("images/not-an-entry").exists());
}

/// A FIFO named like the cache's tag is no tag: `cache clean` goes on at once rather than
/// waiting for a writer.
#[test]
fn a_fifo_named_like_the_cache_tag_is_no_tag_and_no_hang() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    legacy_cache(&cache);
    run(Command::new("mkfifo").arg(cache.join("CACHEDIR.TAG")));
    let (out, _) = run_within(
        pinode()
            .env("PINODE_CACHE_DIR", &cache)
            .args(["cache", "clean"]),
        Duration::from_secs(20),
        "cache clean with a FIFO as its tag",
    );
    // No tag, so the cache is known by its layout (which has a CACHEDIR.TAG name) and
    // cleaned as an untagged one.
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cache.join("images").join(SHA).exists());
}

#[test]
fn a_new_cache_is_tagged_and_a_foreign_directory_is_not() {
    use common::http::{Behaviour, Server};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    server.serve(
        "/catalog.json",
        br#"{"os_list": []}"#.to_vec(),
        Behaviour::Normal,
    );
    let list = |cache: &Path| {
        output(
            pinode()
                .env("PINODE_CATALOG", server.url("/catalog.json"))
                .env("PINODE_CACHE_DIR", cache)
                .args(["os", "list"]),
        )
    };
    let fresh = dir.path().join("fresh");
    list(&fresh);
    let tag = std::fs::read_to_string(fresh.join("CACHEDIR.TAG")).unwrap();
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("notes.txt"), b"mine").unwrap();
    list(&home);
    assert!(
        !home.join("CACHEDIR.TAG").exists(),
        "a user's folder was tagged as a cache"
    );
}
