//! Issue 13, values from outside pinode: terminal escapes in everything a card, an image, a
//! catalog or sysfs says (item 4), cluster tokens and K3s flags K3s would refuse or ignore
//! (items 5 and 6), profiles that expand without bound or slowly (item 14), and the
//! `prepare --json` document when a node fails (item 16). Each runs the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::loopdev::{FakeSystem, Loop, card_in_tempdir};
use common::*;

const MIB: u64 = 1 << 20;

/// What a hostile source would print: clear the screen, home the cursor, fake a prompt,
/// and a carriage return to overwrite the line.
const EVIL: &str = "\x1b[2J\x1b[H\x1b]0;owned\x07Erase /dev/sda? [y/N] \rok";

/// No raw ESC or CR (or other C0 control but line feed and tab) anywhere in the output.
fn assert_no_raw_controls(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let bad: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f)
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: raw control bytes {bad:?} on {stream}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// `pinode profile check PROFILE`.
fn profile_check(profile: &Path) -> Command {
    let mut c = pinode();
    c.args(["profile", "check"]).arg(profile);
    c
}

fn base_profile(dir: &Path, name: &str, rest: &str) -> PathBuf {
    write_profile(dir, name, &profile_yaml("", "", rest))
}

// ---------------------------------------------------------------------------------------
// Item 4: terminal escapes
// ---------------------------------------------------------------------------------------

/// A copy of the bookworm fixture whose boot FAT holds a hostile `pinode-status.txt` and
/// whose root file system's os-release has a hostile PRETTY_NAME.
fn hostile_image(dir: &Path) -> PathBuf {
    let image = copy_fixture("bookworm", dir);
    let status = dir.join("status.txt");
    std::fs::write(&status, format!("first boot: {EVIL}\nk3s: {EVIL}\n")).unwrap();
    let (boot, _) = partition(&image, 1);
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-o")
        .arg("-i")
        .arg(format!("{}@@{boot}", image.display()))
        .arg(&status)
        .arg("::/pinode-status.txt"));
    let root = extract_partition(&image, 2, dir, "ext4");
    let release = dir.join("os-release");
    std::fs::write(
        &release,
        format!("PRETTY_NAME=\"Debian {EVIL}\"\nID=debian\nVERSION_CODENAME=bookworm\nVERSION_ID=\"12\"\n"),
    )
    .unwrap();
    for request in [
        "rm /usr/lib/os-release".to_string(),
        format!("write {} /usr/lib/os-release", release.display()),
    ] {
        run(Command::new("debugfs")
            .args(["-w", "-R", &request])
            .arg(&root));
    }
    let (start, _) = partition(&image, 2);
    run(Command::new("dd")
        .arg(format!("if={}", root.display()))
        .arg(format!("of={}", image.display()))
        .arg("bs=512")
        .arg(format!("seek={}", start / 512))
        .arg("conv=notrunc")
        .arg("status=none"));
    image
}

#[test]
fn inspect_escapes_what_the_image_says() {
    let dir = tempfile::tempdir().unwrap();
    let image = hostile_image(dir.path());
    // The fixture really carries the hostile text (JSON escapes it, as it should).
    let v = inspect_json(&image);
    assert!(v["os"]["pretty_name"].as_str().unwrap().contains('\x1b'));
    assert!(v["boot"]["status"].as_str().unwrap().contains('\x1b'));

    let out = output(pinode().args(["inspect", "-v"]).arg(&image));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_raw_controls("inspect", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    assert!(text.contains("first-boot report"), "{text}");
}

fn hostile_catalog(dir: &Path) -> PathBuf {
    let path = dir.join("catalog.json");
    let doc = serde_json::json!({
        "os_list": [
            { "name": format!("Raspberry Pi OS Lite (64-bit) {EVIL}"),
              "description": EVIL,
              "url": "https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2025-05-13/2025-05-13-raspios-bookworm-arm64-lite.img.xz",
              "extract_size": 1000,
              "extract_sha256": "0".repeat(64),
              "image_download_size": 100,
              "release_date": format!("2025{EVIL}"),
              "devices": ["pi5-64bit"] },
            { "name": format!("Other {EVIL}"),
              "description": EVIL,
              "url": "https://example.com/other.img.xz",
              "extract_size": 1000,
              "extract_sha256": "1".repeat(64),
              "image_download_size": 100,
              "release_date": "2024-01-01" }
        ]
    });
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}

#[test]
fn os_list_escapes_catalog_text() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = hostile_catalog(dir.path());
    let out = output(pinode().arg("--catalog").arg(&catalog).args(["os", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_raw_controls("os list", &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Other \\u{1b}[2J"), "{text}");
    // JSON stays exact (serde_json escapes it).
    let json = run(pinode()
        .arg("--catalog")
        .arg(&catalog)
        .args(["os", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"].as_str().unwrap().contains(EVIL))
    );
}

/// A fake sysfs that shows `card` with a hostile vendor and model.
fn hostile_sysfs(dir: &Path, card: &Loop) -> FakeSystem {
    let fake = FakeSystem::new(dir, "");
    fake.disk(&card.name(), &card.devno(), 100 * MIB, &[]);
    let device = fake.root.join("sys/block").join(card.name()).join("device");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(device.join("vendor"), format!("Evil{EVIL}\n")).unwrap();
    std::fs::write(device.join("model"), format!("Card\r{EVIL}\n")).unwrap();
    fake
}

#[test]
fn devices_and_the_flash_prompt_escape_what_the_card_says() {
    let Some((dir, card)) = card_in_tempdir() else {
        eprintln!("skipped: needs root for a loop device");
        return;
    };
    // The card holds the hostile image, so "holds now" (PRETTY_NAME) is hostile too.
    let image = hostile_image(dir.path());
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", card.dev.display()))
        .args(["bs=1M", "conv=notrunc,fsync", "status=none"]));
    let fake = hostile_sysfs(dir.path(), &card);

    let out = output(
        pinode()
            .args(["devices", "--all"])
            .env("PINODE_SYSTEM_ROOT", &fake.root),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_raw_controls("devices", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Evil\\u{1b}[2J"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let profile = base_profile(
        dir.path(),
        "cards.yaml",
        "nodes:\n  - hostname: card-1\n    role: server\n",
    );
    let before = sha256(&card.read(MIB));
    let mut child = pinode()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("PINODE_SYSTEM_ROOT", &fake.root)
        .args(["flash", "--profile"])
        .arg(&profile)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--allow-non-removable")
        .arg("--device")
        .arg(&card.dev)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"n\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("Erase it and write card-1?"), "{err}");
    assert!(
        err.contains("Evil\\u{1b}[2J"),
        "the prompt names the card: {err}"
    );
    assert!(
        err.contains("Debian \\u{1b}[2J"),
        "and what it holds: {err}"
    );
    assert_no_raw_controls("flash prompt", &out);
    assert_eq!(
        sha256(&card.read(MIB)),
        before,
        "answered no: card untouched"
    );
}

// ---------------------------------------------------------------------------------------
// Item 5: the cluster token
// ---------------------------------------------------------------------------------------

fn cluster_profile(dir: &Path, k3s: &str, nodes: &str) -> PathBuf {
    base_profile(
        dir,
        "cluster.yaml",
        &format!(
            "cluster:\n  name: lab\n  token_env: LAB_TOKEN\n  k3s:\n{k3s}\
             nodes:\n{nodes}"
        ),
    )
}

#[test]
fn a_k10_token_with_a_short_ca_hash_is_refused_at_profile_check() {
    let dir = tempfile::tempdir().unwrap();
    let profile = cluster_profile(
        dir.path(),
        "    channel: stable\n",
        "  - hostname: s1\n    role: server\n",
    );
    let check = |token: &str| output(profile_check(&profile).env("LAB_TOKEN", token));
    let bad = check("K10cafe::server:x-long-enough-password");
    let err = only_error_line(
        &bad,
        &[
            &format!("{}:", profile.display()),
            "cluster.token_env",
            "CA hash has 4 characters",
        ],
    );
    assert!(err.contains(":8:"), "names the line of token_env: {err}");
    assert!(!err.contains("cafe"), "never quotes the token: {err}");

    let hash = "0123456789abcdef".repeat(4);
    let good = check(&format!("K10{hash}::server:secret"));
    assert!(good.status.success(), "{}", stderr(&good));
    let plain = check("a-plain-token-without-prefix");
    assert!(plain.status.success(), "{}", stderr(&plain));
    // No token in the environment yet: not an error at check time.
    let unset = output(profile_check(&profile).env_remove("LAB_TOKEN"));
    assert!(unset.status.success(), "{}", stderr(&unset));
}

// ---------------------------------------------------------------------------------------
// Item 6: K3s flags
// ---------------------------------------------------------------------------------------

#[test]
fn k3s_args_must_be_flags_of_their_command() {
    let dir = tempfile::tempdir().unwrap();
    let profile = cluster_profile(
        dir.path(),
        "    channel: stable\n    server_args:\n      - --disable=servicelb\n      - --disabel=traefik\n      - --node-label zone=a\n      - --write-kubeconfig-mod=0600\n    agent_args:\n      - --node-label=zone=b\n      - --cluster-reset\n      - --kubelet-arg\n      - max-pods=50\n      - --not-a-k3s-flag-at-all\n",
        "  - hostname: s1\n    role: server\n  - hostname: a1\n",
    );
    let out = output(&mut profile_check(&profile));
    assert!(!out.status.success());
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    let line_of = |field: &str| {
        errors
            .iter()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("no error for {field}:\n{err}"))
            .to_string()
    };
    let typo = line_of("cluster.k3s.server_args[1]");
    assert!(
        typo.contains(":13:") && typo.contains("did you mean --disable?"),
        "{typo}"
    );
    assert!(
        line_of("cluster.k3s.server_args[3]").contains("did you mean --write-kubeconfig-mode?")
    );
    let role = line_of("cluster.k3s.agent_args[1]");
    assert!(
        role.contains("server-only") && role.contains(":18:"),
        "{role}"
    );
    assert!(line_of("cluster.k3s.agent_args[4]").contains("not a K3s agent flag"));
    // All problems in one run, and nothing about the good ones.
    assert_eq!(errors.len(), 4, "{err}");
    assert!(!err.contains("server_args[0]") && !err.contains("server_args[2]"));
    assert!(!err.contains("agent_args[0]") && !err.contains("agent_args[2]"));
}

#[test]
fn good_k3s_args_render_into_config_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let profile = cluster_profile(
        dir.path(),
        "    channel: stable\n    server_args: [\"--disable=traefik\", \"--disable servicelb\", \"-o\", \"/etc/k.yaml\"]\n    agent_args: [\"--node-label\", \"zone=b\"]\n",
        "  - hostname: s1\n    role: server\n  - hostname: a1\n",
    );
    let token = "a-plain-token-without-prefix";
    let render = |node: &str| {
        let out = dir.path().join(format!("render-{node}"));
        run(pinode()
            .env("LAB_TOKEN", token)
            .args(["render", "--profile"])
            .arg(&profile)
            .args(["--node", node, "--generation", "bookworm", "--out-dir"])
            .arg(&out));
        serde_yaml_value(&std::fs::read_to_string(out.join("boot/pinode/k3s/config.yaml")).unwrap())
    };
    let server = render("s1");
    assert_eq!(
        server["disable"],
        serde_json::json!(["traefik", "servicelb"])
    );
    assert_eq!(server["write-kubeconfig"], "/etc/k.yaml");
    let agent = render("a1");
    assert_eq!(agent["node-label"], "zone=b");
}

/// config.yaml is JSON (JSON is YAML).
fn serde_yaml_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

// ---------------------------------------------------------------------------------------
// Item 14: node expansion
// ---------------------------------------------------------------------------------------

#[test]
fn a_profile_that_expands_to_too_many_nodes_is_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 entries of 1,000 hosts: 20 million nodes from a profile under 1 MiB.
    let mut nodes = String::new();
    for i in 0..20_000 {
        nodes.push_str(&format!("  - hostname: n{i}-[1-1000]\n"));
    }
    let profile = base_profile(dir.path(), "bomb.yaml", &format!("nodes:\n{nodes}"));
    assert!(std::fs::metadata(&profile).unwrap().len() < 1 << 20);
    let started = Instant::now();
    let out = output(&mut profile_check(&profile));
    let took = started.elapsed();
    only_error_line(&out, &["20000000 hosts", "at most 10000 nodes"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn role_lookup_is_not_quadratic() {
    let dir = tempfile::tempdir().unwrap();
    // 200 server ranges of 50: 10,000 servers, the most a profile may have.
    let mut nodes = String::new();
    for i in 0..200 {
        nodes.push_str(&format!("  - hostname: s{i}-[1-50]\n    role: server\n"));
    }
    let profile = cluster_profile(dir.path(), "    channel: stable\n", &nodes);
    let started = Instant::now();
    let out = output(&mut profile_check(&profile));
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("valid, 10000 node(s)"), "{text}");
    assert!(text.contains("10000 server(s)"), "{text}");
    eprintln!("profile check of 10,000 servers in 200 ranges: {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// ---------------------------------------------------------------------------------------
// Item 16: prepare --json when a later node fails
// ---------------------------------------------------------------------------------------

#[test]
fn prepare_json_lists_the_nodes_done_and_the_one_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let profile = base_profile(
        dir.path(),
        "two.yaml",
        "nodes:\n  - hostname: good\n  - hostname: bad\n  - hostname: later\n",
    );
    let out_dir = dir.path().join("out");
    // A problem the profile cannot show (those are all found before the first node: see
    // tests/every_error.rs): bad's image cannot take its place, a folder with a file in it.
    std::fs::create_dir_all(out_dir.join("bad.img").join("x")).unwrap();
    let out = output(
        prepare_json_cmd(&profile, &fixture("bookworm"), &out_dir, &[])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    assert!(!out.status.success(), "the run fails");
    let err = stderr(&out);
    assert!(err.contains("bad.img: Is a directory"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    // prepare writes a node per core at once: `later` may have started (and then finished)
    // beside `bad` before bad failed; no node starts after a failure. Every node is either
    // listed with its outcome or named as not attempted.
    let nodes = doc["nodes"].as_array().unwrap();
    let node = |name: &str| nodes.iter().find(|n| n["hostname"] == name);
    let good = node("good").unwrap_or_else(|| panic!("good listed: {doc:#}"));
    assert_eq!(good["status"], "done");
    assert!(Path::new(good["image"].as_str().unwrap()).exists());
    let bad = node("bad").unwrap_or_else(|| panic!("bad listed: {doc:#}"));
    assert_eq!(bad["status"], "failed");
    assert!(bad["error"].as_str().unwrap().contains("bad.img"));
    let not_attempted = doc["not_attempted"].as_array().cloned().unwrap_or_default();
    match node("later") {
        Some(later) => {
            assert_eq!(later["status"], "done", "{doc:#}");
            assert!(not_attempted.is_empty(), "{doc:#}");
        }
        None => assert_eq!(not_attempted, vec![serde_json::json!("later")], "{doc:#}"),
    }
    assert_eq!(nodes.len() + not_attempted.len(), 3, "{doc:#}");
}

#[test]
fn args_for_another_k3s_line_get_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let profile = cluster_profile(
        dir.path(),
        "    version: v1.30.2+k3s1\n    server_args: [\"--disable=traefik\"]\n",
        "  - hostname: s1\n    role: server\n",
    );
    let out = output(&mut profile_check(&profile));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cluster.k3s.version") && err.contains("K3s v1.33") && err.contains("v1.30"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Follow-up: with --json, stdout is one JSON document even when the run fails early
// ---------------------------------------------------------------------------------------

/// A failed `--json` run: non-zero exit, the `error:` line on stderr, and stdout one JSON
/// document carrying the error. Returns the document.
fn failed_json_run(what: &str, out: &Output) -> serde_json::Value {
    assert!(!out.status.success(), "{what}: the run fails");
    let err = stderr(out);
    assert!(
        err.contains("error: "),
        "{what}: no error line on stderr:\n{err}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let message = doc["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: no error in {doc:#}");
    doc
}

fn prepare_json(profile: &Path, image: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    output(&mut prepare_json_cmd(profile, image, out_dir, extra))
}

/// `pinode prepare --json --compress none` of `profile` from `image` into `out_dir`.
fn prepare_json_cmd(profile: &Path, image: &Path, out_dir: &Path, extra: &[&str]) -> Command {
    let mut c = pinode();
    c.args(["prepare", "--json", "--compress", "none", "--profile"])
        .arg(profile)
        .arg("--image")
        .arg(image)
        .arg("--out-dir")
        .arg(out_dir)
        .args(extra);
    c
}

#[test]
fn prepare_json_prints_its_document_when_it_fails_before_the_first_node() {
    let dir = tempfile::tempdir().unwrap();
    let good = base_profile(
        dir.path(),
        "two.yaml",
        "nodes:\n  - hostname: one\n  - hostname: two\n",
    );
    let out_dir = dir.path().join("out");
    let bookworm = fixture("bookworm");

    // The profile cannot be read: nothing is known but the nodes asked for.
    let broken = write_profile(dir.path(), "broken.yaml", "version: 1\nnodes: [\n");
    let doc = failed_json_run(
        "broken profile",
        &prepare_json(&broken, &bookworm, &out_dir, &["--node", "one"]),
    );
    assert!(
        doc["error"].as_str().unwrap().contains("broken.yaml"),
        "{doc:#}"
    );
    assert_eq!(doc["nodes"], serde_json::json!([]));
    assert_eq!(doc["not_attempted"], serde_json::json!(["one"]));

    // No such --node.
    let doc = failed_json_run(
        "unknown node",
        &prepare_json(&good, &bookworm, &out_dir, &["--node", "three"]),
    );
    assert!(doc["error"].as_str().unwrap().contains("three"), "{doc:#}");
    assert_eq!(doc["not_attempted"], serde_json::json!(["three"]));

    // The base image is missing: every selected node was not attempted.
    let doc = failed_json_run(
        "missing base",
        &prepare_json(&good, &dir.path().join("gone.img"), &out_dir, &[]),
    );
    assert!(
        doc["error"].as_str().unwrap().contains("gone.img"),
        "{doc:#}"
    );
    assert_eq!(doc["nodes"], serde_json::json!([]));
    assert_eq!(doc["not_attempted"], serde_json::json!(["one", "two"]));

    // The base image is not a disk image: the first node fails, the second is not tried.
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0x5a; 64 * 1024]).unwrap();
    let doc = failed_json_run("corrupt base", &prepare_json(&good, &junk, &out_dir, &[]));
    let attempted = doc["nodes"].as_array().map_or(0, Vec::len);
    let skipped = doc["not_attempted"].as_array().map_or(0, Vec::len);
    assert_eq!(attempted + skipped, 2, "{doc:#}");
}

#[test]
fn every_json_command_prints_one_document_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a disk image\n".repeat(100)).unwrap();
    let profile = base_profile(dir.path(), "one.yaml", "nodes:\n  - hostname: one\n");
    let cache = dir.path().join("cache");

    let inspect = output(pinode().args(["inspect", "--json"]).arg(&junk));
    failed_json_run("inspect --json on a text file", &inspect);

    let patch = output(
        pinode()
            .args(["patch", "--json", "--profile"])
            .arg(&profile)
            .arg(&junk),
    );
    failed_json_run("patch --json on a text file", &patch);
    assert_eq!(
        std::fs::read_to_string(&junk).unwrap(),
        "not a disk image\n".repeat(100),
        "patch changed the file it refused"
    );

    let download = output(
        pinode()
            .args(["--offline", "--cache-dir"])
            .arg(&cache)
            .args(["download", "--json", "--os", "raspios-lite-arm64"]),
    );
    failed_json_run("download --json offline without a catalog", &download);

    let os_list = output(
        pinode()
            .arg("--catalog")
            .arg(dir.path().join("no-catalog.json"))
            .args(["--cache-dir"])
            .arg(&cache)
            .args(["os", "list", "--json"]),
    );
    failed_json_run("os list --json with a missing catalog file", &os_list);

    let missing = dir.path().join("missing.yaml");
    let flash = output(
        pinode()
            .args(["flash", "--json", "--yes", "--profile"])
            .arg(&missing)
            .arg("--device")
            .arg(&junk),
    );
    failed_json_run("flash --json with a missing profile", &flash);

    // A command line that does not parse, --json among its words.
    let usage = output(
        pinode()
            .args(["prepare", "--json", "--profile"])
            .arg(&profile),
    );
    let doc = failed_json_run("prepare --json without --out-dir", &usage);
    assert!(
        doc["error"].as_str().unwrap().contains("--out-dir"),
        "{doc:#}"
    );
    assert_eq!(usage.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------
// Follow-up: a SHA-256 from outside is parsed once; nothing slices a short one
// ---------------------------------------------------------------------------------------

/// A cache entry (as a damaged or hand-edited `entry.json` would be) that claims an alias,
/// is marked verified for the image next to it, and whose `sha256` is `sha256`.
fn forged_cache_entry(cache: &Path, dir_name: &str, sha256: &str) {
    use std::os::unix::fs::MetadataExt;
    let dir = cache.join("images").join(dir_name);
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("image.img");
    std::fs::write(&image, vec![0u8; 4096]).unwrap();
    let meta = std::fs::metadata(&image).unwrap();
    let entry = serde_json::json!({
        "sha256": sha256,
        "name": "raspios",
        "url": "https://127.0.0.1/raspios.img.xz",
        "aliases": ["raspios-lite-arm64"],
        "release_date": "2025-10-01",
        "download": null,
        "image_verified": {
            "size": meta.len(),
            "mtime_ns": meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        },
        "added": "2025-10-01T00:00:00Z",
        "last_used": "2025-10-01T00:00:00Z",
    });
    std::fs::write(dir.join("entry.json"), entry.to_string()).unwrap();
}

#[test]
fn a_cache_entry_with_a_short_or_multibyte_sha256_is_not_used() {
    for (dir_name, sha) in [("ab", "ab"), ("e", "ééééééééé"), ("up", "../up")] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        forged_cache_entry(&cache, dir_name, sha);
        // The default catalog, offline and never fetched: the alias is looked up among the
        // cache's entries.
        let out = output(
            pinode()
                .env_remove("PINODE_CATALOG")
                .args(["--offline", "--cache-dir"])
                .arg(&cache)
                .args(["download", "--json", "--os", "raspios-lite-arm64"]),
        );
        let err = stderr(&out);
        assert!(!err.contains("internal error"), "{sha:?}: {err}");
        assert_eq!(out.status.code(), Some(1), "{sha:?}: {err}");
        let doc = failed_json_run(&format!("download with sha256 {sha:?}"), &out);
        assert!(doc.get("path").is_none(), "{doc:#}");
    }
}

// ---------------------------------------------------------------------------------------
// Follow-up: one escaping style for outside text, in errors and in listings
// ---------------------------------------------------------------------------------------

/// Invisible characters that make two values look alike: a zero-width space, a line
/// separator, a byte order mark, a soft hyphen and a right-to-left mark.
const INVISIBLE: &str = "pi\u{200b}os\u{2028}x\u{feff}y\u{ad}z\u{200f}";
const INVISIBLE_SHOWN: &str = "pi\\u{200b}os\\u{2028}x\\u{feff}y\\u{ad}z\\u{200f}";

fn assert_shows_invisible(what: &str, text: &str) {
    assert!(text.contains(INVISIBLE_SHOWN), "{what}: {text}");
    for c in ['\u{200b}', '\u{2028}', '\u{feff}', '\u{ad}', '\u{200f}'] {
        assert!(!text.contains(c), "{what}: raw {c:?} in {text}");
    }
}

#[test]
fn outside_text_is_escaped_alike_in_errors_and_listings() {
    let dir = tempfile::tempdir().unwrap();
    // In a listing: a catalog entry's name.
    let catalog = dir.path().join("catalog.json");
    let doc = serde_json::json!({ "os_list": [{
        "name": INVISIBLE,
        "url": "https://example.com/other.img.xz",
        "extract_size": 1000,
        "extract_sha256": "1".repeat(64),
        "release_date": "2024-01-01",
    }]});
    std::fs::write(&catalog, doc.to_string()).unwrap();
    let out = output(pinode().arg("--catalog").arg(&catalog).args(["os", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_shows_invisible("os list", &String::from_utf8_lossy(&out.stdout));

    // In an error: a profile value, and a --node name.
    let profile = base_profile(
        dir.path(),
        "p.yaml",
        &format!("nodes:\n  - hostname: \"{INVISIBLE}\"\n"),
    );
    let out = output(&mut profile_check(&profile));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("\"{INVISIBLE_SHOWN}\"")), "{err}");
    assert_shows_invisible("profile check", &err);

    let good = base_profile(dir.path(), "good.yaml", "nodes:\n  - hostname: one\n");
    let out = output(
        pinode()
            .args(["prepare", "--profile"])
            .arg(&good)
            .arg("--out-dir")
            .arg(dir.path().join("out"))
            .args(["--node", INVISIBLE]),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no node \"{INVISIBLE_SHOWN}\"")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Follow-up: the wizard's questions and re-asks escape outside text
// ---------------------------------------------------------------------------------------

/// A home directory whose name sets the terminal's title and returns the cursor: it shows
/// up in the wizard wherever a `~/` path is expanded.
const EVIL_DIR: &str = "home\x1b]0;owned\x07\rFAKE";

#[test]
fn the_wizard_escapes_outside_text_in_what_it_asks() {
    use common::pty::{CLUSTER_DEFAULTS, answer_all, spawn, wizard_command};
    use expectrl::Expect;

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(EVIL_DIR);
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = wizard_command(dir.path(), &home);
    cmd.env("PINODE_STATE_DIR", dir.path().join("state"));
    let mut s = spawn(cmd);
    // The cluster questions come first (defaults; no agents), then the OS. The catalog is
    // unavailable in tests: the second choice is a local image file.
    answer_all(&mut s, &CLUSTER_DEFAULTS);
    s.expect("Operating system").unwrap();
    s.send("\x1b[B\r").unwrap();
    s.expect("Image file").unwrap();
    // The re-ask names the expanded path, home directory included (the image check's
    // reason: pipeline::check_image_file).
    s.send("~/missing.img\r").unwrap();
    let shown = s.expect("No such file").unwrap();
    let text = String::from_utf8_lossy(shown.before()).into_owned();
    let _ = s.send("\x03");
    let _ = s
        .get_process_mut()
        .kill(expectrl::process::unix::Signal::SIGKILL);
    assert!(
        !text.contains("\x1b]0;owned") && !text.contains("\rFAKE"),
        "raw escape from the home directory's name: {text:?}"
    );
    assert!(
        text.contains("home\\u{1b}]0;owned\\u{7}\\rFAKE/missing.img"),
        "{text:?}"
    );
}

#[test]
fn cache_clean_leaves_a_foreign_multibyte_entry_alone_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Eleven ASCII letters, then a two-byte character across byte 12; and an escape.
    let name = "aaaaaaaaaaaé\x1b[2Jzzz";
    std::fs::create_dir_all(cache.join("images").join(name)).unwrap();
    // A tagged cache (an untagged one holding such a name is refused whole: see
    // tests/trust_writes.rs), so that clean walks its entries.
    std::fs::write(
        cache.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    let lock = std::fs::File::create(cache.join("images").join(format!("{name}.lock"))).unwrap();
    lock.try_lock().unwrap();
    let out = output(
        pinode()
            .arg("--cache-dir")
            .arg(&cache)
            .args(["cache", "clean"]),
    );
    drop(lock);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_no_raw_controls("cache clean", &out);
    // Not a name pinode writes (entries are SHA-256 digests): never deleted.
    assert!(
        cache.join("images").join(name).exists(),
        "a foreign entry stays"
    );
}
