//! Offline-first: with no network (a network namespace without routes, a refused port, a
//! name that does not resolve) every command that needs the OS catalog says so at once and
//! goes on with the copy of the catalog kept at the last fetch, or with the image already in
//! the cache, saying which. When there is truly nothing, the error names the ways out. A
//! catalog copy never rewrites what a cache entry records.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::http::{Behaviour, Server};
use common::netns::without_network;
use common::*;
use serde_json::{Value, json};

const IMAGE_PATH: &str = "/raspios_lite_arm64/images/raspios_lite_arm64-2025-05-13/2025-05-13-raspios-bookworm-arm64-lite.img.xz";
const ALIAS: &str = "raspios-lite-arm64";

/// The committed fixture as served (xz) and its raw bytes' SHA-256 and size.
struct Fixture {
    xz: Vec<u8>,
    raw_sha256: String,
    raw_len: usize,
}

fn fixture_image() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/bookworm-lite.img.xz");
        let out = Command::new("xz").arg("-dc").arg(&path).output().unwrap();
        assert!(out.status.success());
        Fixture {
            xz: std::fs::read(&path).unwrap(),
            raw_sha256: sha256(&out.stdout),
            raw_len: out.stdout.len(),
        }
    })
}

/// A catalog naming the fixture image as `name`, released `date`, with `init`.
fn catalog(server: &Server, name: &str, date: &str, init: &str) -> Vec<u8> {
    let f = fixture_image();
    serde_json::to_vec(&json!({ "os_list": [
        { "name": "Raspberry Pi OS (other)", "subitems": [
            { "name": name,
              "url": server.url(IMAGE_PATH),
              "extract_size": f.raw_len,
              "extract_sha256": f.raw_sha256,
              "image_download_size": f.xz.len(),
              "release_date": date,
              "init_format": init }
        ]}
    ]}))
    .unwrap()
}

/// A server with the image and a catalog at `/os.json`, a cache, and a profile for `ALIAS`.
struct World {
    server: Server,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let server = Server::start();
        server.serve(IMAGE_PATH, fixture_image().xz.clone(), Behaviour::Normal);
        server.serve(
            "/os.json",
            catalog(
                &server,
                "Raspberry Pi OS Lite (64-bit)",
                "2025-05-13",
                "systemd",
            ),
            Behaviour::Normal,
        );
        let dir = tempfile::tempdir().unwrap();
        write_profile(
            dir.path(),
            "p.yaml",
            &format!(
                "version: 1\nos:\n  image: {ALIAS}\ndefaults:\n  user:\n    name: alice\n    \
                 ssh_authorized_keys: [\"{KEY_1}\"]\nnodes:\n  - hostname: node-1\n"
            ),
        );
        World { server, dir }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn catalog_url(&self) -> String {
        self.server.url("/os.json")
    }

    /// pinode with this world's cache and `catalog` (None: the default, Raspberry Pi's).
    fn pinode(&self, catalog: Option<&str>) -> Command {
        let mut c = pinode();
        match catalog {
            Some(url) => c.env("PINODE_CATALOG", url),
            None => c.env_remove("PINODE_CATALOG"),
        };
        c.env("PINODE_CACHE_DIR", self.cache());
        c
    }

    /// Fills the cache (the image and a copy of the catalog) online.
    fn download_online(&self) {
        run(self.pinode(Some(&self.catalog_url())).arg("download"));
    }

    fn prepare(&self, catalog: Option<&str>, out_dir: &Path) -> Command {
        let mut c = self.pinode(catalog);
        c.args(["prepare", "--profile"])
            .arg(self.dir.path().join("p.yaml"))
            .arg("--out-dir")
            .arg(out_dir);
        c
    }
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `prepare` succeeded, wrote node-1.img, and `sha256sum -c` passes in its folder.
fn prepared(out: &Output, out_dir: &Path, what: &str) {
    assert!(out.status.success(), "{what}: {}", both(out));
    assert!(out_dir.join("node-1.img").is_file(), "{what}");
    run(Command::new("sha256sum")
        .args(["-c", "node-1.img.sha256"])
        .current_dir(out_dir));
}

/// No progress drawing on a pipe: every line on stderr is a warning.
fn only_warnings(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        err.lines().all(|l| l.starts_with("warning: ")),
        "{what}: {err:?}"
    );
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "{what}: {err:?}"
    );
}

/// MUST SHOW: the image in the cache, no network at all, no --offline: prepare succeeds
/// within 2 s and says what stood in for the catalog. In a network namespace, with the kept
/// copy of the catalog and with the default catalog (never fetched: the cache entry itself).
#[test]
fn prepare_with_the_image_cached_and_no_network_succeeds_within_two_seconds() {
    let world = World::new();
    world.download_online();
    let url = world.catalog_url();
    let cases: [(&str, Option<&str>, &str); 2] = [
        (
            "the test catalog, its copy kept",
            Some(&url),
            "using the copy from ",
        ),
        (
            "the default catalog, no copy",
            None,
            "using the cached image ",
        ),
    ];
    for (i, (what, catalog, says)) in cases.into_iter().enumerate() {
        let out_dir = world.dir.path().join(format!("netns-{i}"));
        let Some(mut cmd) = without_network(&world.prepare(catalog, &out_dir)) else {
            return;
        };
        let (out, took) = run_within(&mut cmd, Duration::from_secs(60), what);
        eprintln!("no network, {what}: {took:?}");
        prepared(&out, &out_dir, what);
        let err = stderr(&out);
        assert!(
            err.contains("warning: catalog unreachable ("),
            "{what}: {err}"
        );
        assert!(err.contains(says), "{what}: {err}");
        only_warnings(&out, what);
        assert!(took < Duration::from_secs(2), "{what}: took {took:?}");
    }
}

/// The same outside a namespace: a refused port and a name that does not resolve (neither
/// has a kept copy, so the cache entry stands in).
#[test]
fn prepare_with_a_refused_or_unresolvable_catalog_uses_the_cache_within_two_seconds() {
    let world = World::new();
    world.download_online();
    let refused = format!("http://127.0.0.1:{}/os.json", closed_port());
    for (i, catalog) in [refused.as_str(), "https://catalog.invalid/os.json"]
        .into_iter()
        .enumerate()
    {
        let out_dir = world.dir.path().join(format!("out-{i}"));
        let (out, took) = run_within(
            &mut world.prepare(Some(catalog), &out_dir),
            Duration::from_secs(60),
            catalog,
        );
        eprintln!("{catalog}: {took:?}");
        prepared(&out, &out_dir, catalog);
        assert!(
            stderr(&out).contains("warning: catalog unreachable (cannot connect"),
            "{}",
            both(&out)
        );
        only_warnings(&out, catalog);
        assert!(took < Duration::from_secs(2), "{catalog}: took {took:?}");
    }
}

/// Nothing in the cache, no copy, no network: one error naming the profile's line and the
/// ways out, at once, and no output folder left behind.
#[test]
fn with_nothing_cached_the_error_names_the_ways_out() {
    let world = World::new();
    let out_dir = world.dir.path().join("out");
    let mut cases = vec![(
        "unresolvable",
        world.prepare(Some("https://catalog.invalid/os.json"), &out_dir),
    )];
    let mut offline = world.prepare(Some(&world.catalog_url()), &out_dir);
    offline.arg("--offline");
    cases.push(("--offline", offline));
    // No network at all: the name does not resolve, and 127.0.0.1 has no route (loopback
    // is down), which is not retried either.
    if let Some(cmd) = without_network(&world.prepare(None, &out_dir)) {
        cases.push(("no network, the default catalog", cmd));
    }
    if let Some(cmd) = without_network(&world.prepare(Some(&world.catalog_url()), &out_dir)) {
        cases.push(("no network, a catalog on 127.0.0.1", cmd));
    }
    for (what, mut cmd) in cases {
        let (out, took) = run_within(&mut cmd, Duration::from_secs(60), what);
        let line = one_error_line(
            &out,
            &[
                "p.yaml:3",
                "os.image",
                "--offline",
                "--image FILE",
                "--catalog FILE|URL",
            ],
        );
        eprintln!("{what} ({took:?}): {line}");
        assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
        assert!(!out_dir.exists(), "{what}: {} was left", out_dir.display());
    }
}

/// `os list` and `download` with no network fall back to the kept copy too, and say so.
#[test]
fn os_list_and_download_fall_back_to_the_copy_and_say_so() {
    let world = World::new();
    world.download_online();
    for args in [&["os", "list"][..], &["download"][..]] {
        let mut cmd = world.pinode(Some(&world.catalog_url()));
        cmd.args(args);
        let Some(mut cmd) = without_network(&cmd) else {
            return;
        };
        let (out, took) = run_within(&mut cmd, Duration::from_secs(60), "no network");
        assert!(out.status.success(), "{args:?}: {}", both(&out));
        assert!(
            stderr(&out).contains("warning: catalog unreachable (")
                && stderr(&out).contains("using the copy from "),
            "{args:?}: {}",
            both(&out)
        );
        assert!(took < Duration::from_secs(1), "{args:?}: took {took:?}");
    }
}

fn entry_json(world: &World) -> Value {
    let path = world
        .cache()
        .join("images")
        .join(&fixture_image().raw_sha256)
        .join("entry.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A cache entry's name, date and init format change only from a catalog fetched in the same
/// run: `download` with `--offline`, or after the catalog failed, takes them from an older
/// copy and must leave the entry as it is.
#[test]
fn download_never_rewrites_an_entry_from_a_catalog_it_did_not_contact() {
    let world = World::new();
    let (old, new) = (world.server.url("/old.json"), world.server.url("/new.json"));
    world.server.serve(
        "/old.json",
        catalog(&world.server, "Old name", "2025-05-01", "systemd"),
        Behaviour::Normal,
    );
    world.server.serve(
        "/new.json",
        catalog(&world.server, "New name", "2025-05-13", "cloudinit-rpi"),
        Behaviour::Normal,
    );
    let facts = |v: &Value| {
        (
            v["name"].as_str().unwrap_or_default().to_string(),
            v["release_date"].as_str().unwrap_or_default().to_string(),
            v["init_format"].as_str().unwrap_or_default().to_string(),
        )
    };
    let new_facts = || {
        (
            "New name".into(),
            "2025-05-13".into(),
            "cloudinit-rpi".into(),
        )
    };
    // Online, each catalog contacted: the newest facts are written (a copy of `old` is kept).
    run(world.pinode(Some(&old)).arg("download"));
    assert_eq!(facts(&entry_json(&world)).0, "Old name");
    run(world.pinode(Some(&new)).arg("download"));
    assert_eq!(facts(&entry_json(&world)), new_facts());

    // --offline: only the copy of `old`. The entry, and what download reports, stay new.
    let out = run(world
        .pinode(Some(&old))
        .args(["--offline", "download", "--json"]));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(facts(&entry_json(&world)), new_facts(), "--offline");
    assert_eq!(facts(&doc), new_facts(), "--offline: {doc}");

    // The catalog fails (a server error): the copy stands in, says so, and rewrites nothing.
    world
        .server
        .serve("/old.json", b"down".to_vec(), Behaviour::Status(503));
    let result = output(world.pinode(Some(&old)).args(["download"]));
    assert!(result.status.success(), "{}", both(&result));
    assert!(
        stderr(&result).contains("catalog unreachable (") && stderr(&result).contains("503"),
        "{}",
        both(&result)
    );
    assert_eq!(facts(&entry_json(&world)), new_facts(), "after a failure");
}

/// The wizard for `world`'s cache in a network namespace (None where none can be made):
/// `catalog` None is the default catalog. A home with one SSH key, the work folder `work`.
fn offline_wizard(world: &World, catalog: Option<&str>) -> Option<(Command, PathBuf)> {
    let home = world.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_1}\n")).unwrap();
    let work = world.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = common::pty::wizard_command(&work, &home);
    match catalog {
        Some(url) => cmd.env("PINODE_CATALOG", url),
        None => cmd.env_remove("PINODE_CATALOG"),
    };
    cmd.env("PINODE_CACHE_DIR", world.cache())
        .env("PINODE_STATE_DIR", world.dir.path().join("state"))
        .env("TZ", "Europe/Berlin")
        .env("LANG", "de_DE.UTF-8");
    Some((without_network(&cmd)?, work))
}

/// MUST SHOW: the wizard with no network at all. Its first question comes within 1 s; walked
/// with the defaults (each yes/no answered with Enter), it offers the cached image first and
/// its "Prepare image files" ends in verified images.
#[test]
fn the_wizard_offline_runs_to_prepared_images() {
    use common::pty::{answer, answer_all, spawn};
    use expectrl::Expect;
    use expectrl::process::unix::WaitStatus;
    let world = World::new();
    world.download_online();
    let Some((cmd, work)) = offline_wizard(&world, None) else {
        return;
    };
    let started = std::time::Instant::now();
    let mut s = spawn(cmd);
    s.expect("Cluster name").unwrap();
    let took = started.elapsed();
    eprintln!("no network: the first question after {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "first question after {took:?}"
    );
    s.send("\r").unwrap();
    answer_all(
        &mut s,
        &[
            ("How many servers", "\r"),
            ("Server hostnames", "\r"),
            ("How many agents", "\r"),
            ("Agent hostnames", "\r"),
            ("K3s channel or version", "\r"),
        ],
    );
    // Offered first, so that Enter takes it.
    s.expect("the OS catalog is not available").unwrap();
    answer(&mut s, "Operating system", "");
    answer(
        &mut s,
        "Raspberry Pi OS Lite (64-bit) (2025-05-13): raspios-lite-arm64, in the cache",
        "\r",
    );
    // Root has no default user name: typed, as in tests/wizard.rs.
    answer(&mut s, "User name", "alice\r");
    answer_all(
        &mut s,
        &[
            ("SSH public key", "\r"),
            ("Also set a password", "\r"),
            ("Connect to Wi-Fi", "\r"),
            ("Time zone", "\r"),
            ("Locale", "\r"),
            ("Keyboard layout", "\r"),
            ("Install a GitLab Runner", "\r"),
            ("Save the profile as", "\r"),
            ("What now?", "\x1b[B\r"),
            ("Write the images to", "\r"),
        ],
    );
    s.expect("pi-cluster-worker-2: ").unwrap();
    match s.get_process_mut().wait().unwrap() {
        WaitStatus::Exited(_, 0) => {}
        other => panic!("wizard ended with {other:?}"),
    }
    let images = work.join("images");
    let hosts = [
        "pi-cluster-server",
        "pi-cluster-worker-1",
        "pi-cluster-worker-2",
    ];
    for host in hosts {
        assert!(images.join(format!("{host}.img")).is_file(), "{host}");
    }
    run(Command::new("sha256sum")
        .arg("-c")
        .args(hosts.map(|h| format!("{h}.img.sha256")))
        .current_dir(&images));
    let profile = std::fs::read_to_string(work.join("pi-cluster.yaml")).unwrap();
    assert!(
        profile.contains(&format!("image: \"{ALIAS}\"")),
        "{profile}"
    );
}

/// With the catalog's copy kept and no network: the cached image first, then a local file;
/// a file picked that is not an image is refused with the reason (the rule `prepare` and
/// `inspect` apply) and asked for again.
#[test]
fn the_wizard_offline_offers_a_local_file_and_checks_it_is_an_image() {
    use common::pty::{CLUSTER_DEFAULTS, answer, answer_all, spawn};
    use expectrl::Expect;
    let world = World::new();
    world.download_online();
    let Some((cmd, _work)) = offline_wizard(&world, Some(&world.catalog_url())) else {
        return;
    };
    let text = world.dir.path().join("notes.img");
    std::fs::write(&text, "not a disk image\n".repeat(64)).unwrap();
    let mut s = spawn(cmd);
    answer_all(&mut s, &CLUSTER_DEFAULTS);
    s.expect("catalog unreachable (").unwrap();
    s.expect("using the copy from ").unwrap();
    s.expect("in the cache").unwrap();
    answer(&mut s, "A local image file", "\x1b[B\r");
    answer(&mut s, "Image file", &format!("{}\r", text.display()));
    answer(
        &mut s,
        "not a disk image",
        &format!("{}\r", world.dir.path().display()),
    );
    answer(
        &mut s,
        "is a directory, not an image file",
        "/nonexistent.img\r",
    );
    answer(
        &mut s,
        "No such file",
        &format!("{}\r", fixture("bookworm").display()),
    );
    s.expect("User name").unwrap();
    s.send("\x03").unwrap();
    let _ = s.get_process_mut().wait();
}

/// A port on 127.0.0.1 that never completes a connection: a listener with a backlog of 0
/// whose one queued connection is never accepted, so further connection attempts go
/// unanswered, as behind a firewall that drops packets. Kept open while the values live.
fn blackhole() -> (socket2::Socket, Vec<std::net::TcpStream>, u16) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    // Fill the queue until a connection attempt goes unanswered.
    while let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
        queued.push(s);
        assert!(queued.len() < 64, "the listener's queue never filled");
    }
    (listener, queued, addr.port())
}

/// A catalog that does not answer (connections dropped, or a server gone silent) is not
/// waited for when its kept copy can stand in: a short connect and idle timeout, no retries.
#[test]
fn a_silent_catalog_with_a_kept_copy_is_not_waited_for() {
    let world = World::new();
    world.download_online();

    // Connections dropped: the copy of this URL is put where pinode keeps it (the layout in
    // src/cache/store.rs), then prepare gives the catalog up after the 1 s connect timeout.
    let (_listener, _queued, port) = blackhole();
    let dropped = format!("http://127.0.0.1:{port}/os.json");
    let digest = sha256(dropped.as_bytes());
    std::fs::write(
        world
            .cache()
            .join("catalogs")
            .join(format!("{}.json", &digest[..16])),
        catalog(
            &world.server,
            "Raspberry Pi OS Lite (64-bit)",
            "2025-05-13",
            "systemd",
        ),
    )
    .unwrap();
    let out_dir = world.dir.path().join("dropped");
    let (out, took) = run_within(
        &mut world.prepare(Some(&dropped), &out_dir),
        Duration::from_secs(120),
        "dropped connections",
    );
    eprintln!("dropped connections: {took:?}");
    prepared(&out, &out_dir, "dropped connections");
    assert!(
        stderr(&out).contains("using the copy from "),
        "{}",
        both(&out)
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // Headers, then silence: given up after the 2 s idle timeout.
    world
        .server
        .serve("/os.json", b"{}".to_vec(), Behaviour::Stall);
    let out_dir = world.dir.path().join("stalled");
    let (out, took) = run_within(
        &mut world.prepare(Some(&world.catalog_url()), &out_dir),
        Duration::from_secs(120),
        "a silent server",
    );
    eprintln!("a silent server: {took:?}");
    prepared(&out, &out_dir, "a silent server");
    assert!(
        stderr(&out).contains("using the copy from "),
        "{}",
        both(&out)
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

/// While the catalog is fetched, a spinner says so on a terminal (and nothing is drawn on a
/// pipe: see `only_warnings` above); then the line saying what stands in for it.
#[test]
fn a_spinner_shows_while_the_catalog_is_fetched_on_a_terminal() {
    use expectrl::Expect;
    let world = World::new();
    world.download_online();
    world
        .server
        .serve("/os.json", b"{}".to_vec(), Behaviour::Stall);
    let mut cmd = world.pinode(Some(&world.catalog_url()));
    cmd.env_remove("CI")
        .env("TERM", "xterm")
        .args(["os", "list"]);
    let mut s = common::pty::spawn(cmd);
    s.expect("fetching the OS catalog").unwrap();
    s.expect("catalog unreachable (").unwrap();
    s.expect("raspios-lite-arm64").unwrap();
    let _ = s.get_process_mut().wait();
}

/// The kept copy may name a newer image than the one in the cache: without the catalog, the
/// cached one of the same alias is used (and the warning says so), not a download that
/// cannot happen.
#[test]
fn without_the_catalog_the_cached_image_wins_over_a_newer_one_only_the_copy_names() {
    let world = World::new();
    world.download_online();
    // The catalog now lists a newer release (not cached); `os list` keeps that as the copy.
    let f = fixture_image();
    let newer = "/raspios_lite_arm64/images/raspios_lite_arm64-2025-06-01/2025-06-01-raspios-bookworm-arm64-lite.img.xz";
    world.server.serve(
        "/os.json",
        serde_json::to_vec(&json!({ "os_list": [
            { "name": "Raspberry Pi OS Lite (64-bit)",
              "url": world.server.url(newer),
              "extract_size": f.raw_len,
              "extract_sha256": "ab".repeat(32),
              "image_download_size": f.xz.len(),
              "release_date": "2025-06-01",
              "init_format": "systemd" }
        ]}))
        .unwrap(),
        Behaviour::Normal,
    );
    let listed = run(world
        .pinode(Some(&world.catalog_url()))
        .args(["os", "list"]));
    assert!(listed.contains("2025-06-01"), "{listed}");
    // Then the catalog fails.
    world
        .server
        .serve("/os.json", b"down".to_vec(), Behaviour::Status(503));
    let out_dir = world.dir.path().join("out");
    let out = output(&mut world.prepare(Some(&world.catalog_url()), &out_dir));
    prepared(&out, &out_dir, "the copy names a newer image");
    let err = stderr(&out);
    assert!(
        err.contains(
            "is not in the cache, using the cached Raspberry Pi OS Lite (64-bit) (2025-05-13)"
        ),
        "{err}"
    );
    assert!(
        world.server.requests(newer).is_empty(),
        "a download was tried"
    );
}
