//! Hostile inputs around the network and the files pinode reads (issue 13, items 12, 13, 14
//! (catalog de-duplication), 15 and 17), each against the real binary: FIFOs, `/dev/zero`
//! and huge sparse files where a profile, key, secret, catalog or image is expected; remote
//! catalogs pointing at local files; endless downloads, xz bombs, servers that restart every
//! resume; a 110k-entry catalog; absurd `PINODE_HTTP_*` values; and no network at all.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::http::{Behaviour, CATALOG, CatalogWorld, Server};
use common::*;
use serde_json::json;

const IMAGE_PATH: &str = "/raspios_lite_arm64/images/raspios_lite_arm64-2025-05-13/2025-05-13-raspios-bookworm-arm64-lite.img.xz";
const ALIAS: &str = "raspios-lite-arm64";

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn profile_text(extra_user: &str, extra_defaults: &str) -> String {
    profile_yaml(
        "",
        &format!("{extra_user}{extra_defaults}"),
        "nodes:\n  - hostname: matrix\n",
    )
}

/// A profile that is a FIFO, `/dev/zero` or a 2 GB sparse file: refused at once (a FIFO
/// used to hang, `/dev/zero` grew to 4 GB), with the path and the reason.
#[test]
fn a_profile_that_is_not_a_small_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    mkfifo(&fifo);
    let sparse = dir.path().join("sparse.yaml");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    for (path, needle) in [
        (fifo.as_path(), "FIFO"),
        (Path::new("/dev/zero"), "character device"),
        (sparse.as_path(), "too large for a profile"),
    ] {
        let (out, took) = run_within(
            pinode().args(["profile", "check"]).arg(path),
            Duration::from_secs(10),
            &format!("profile check {}", path.display()),
        );
        one_error_line(&out, &[&path.display().to_string(), needle]);
        assert!(took < Duration::from_secs(2), "{path:?} took {took:?}");
    }
}

/// Key files and secret files go through the same reader: a FIFO as
/// `ssh_authorized_keys_file` or as a Wi-Fi `psk_file` is refused at once.
#[test]
fn key_and_secret_files_that_are_fifos_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("keys.pub");
    mkfifo(&fifo);
    let cases = [
        profile_text(
            &format!("    ssh_authorized_keys_file: {}\n", fifo.display()),
            "",
        ),
        profile_text(
            "",
            &format!(
                "  wifi:\n    ssid: Home\n    psk_file: {}\n    country: GB\n",
                fifo.display()
            ),
        ),
    ];
    for (i, text) in cases.iter().enumerate() {
        let p = write_profile(dir.path(), &format!("p{i}.yaml"), text);
        let out_dir = dir.path().join(format!("out{i}"));
        let (out, took) = run_within(
            pinode()
                .args(["render", "--generation", "trixie", "--profile"])
                .arg(&p)
                .arg("--out-dir")
                .arg(&out_dir),
            Duration::from_secs(10),
            &format!("render with a FIFO (case {i})"),
        );
        one_error_line(&out, &[&fifo.display().to_string(), "FIFO"]);
        assert!(took < Duration::from_secs(2), "case {i} took {took:?}");
    }
}

/// A local catalog that is a FIFO or `/dev/zero`, and an image that is a FIFO or a
/// character device: refused at once.
#[test]
fn a_catalog_or_image_that_is_a_fifo_or_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let (out, took) = run_within(
            pinode().arg("--catalog").arg(path).args(["os", "list"]),
            Duration::from_secs(10),
            "os list with a FIFO catalog",
        );
        one_error_line(&out, &[&path.display().to_string(), "not a regular file"]);
        assert!(took < Duration::from_secs(2), "{path:?} took {took:?}");
    }
    let p = write_profile(dir.path(), "p.yaml", &profile_text("", ""));
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        for args in [
            vec!["prepare".as_ref(), "--profile".as_ref(), p.as_os_str()],
            vec![
                "patch".as_ref(),
                path.as_os_str(),
                "--profile".as_ref(),
                p.as_os_str(),
            ],
            vec!["inspect".as_ref(), path.as_os_str()],
        ] {
            let mut cmd = pinode();
            cmd.args(&args);
            if args[0] == "prepare" {
                cmd.arg("--image")
                    .arg(path)
                    .arg("--out-dir")
                    .arg(dir.path().join("out"));
            }
            let (out, took) = run_within(&mut cmd, Duration::from_secs(10), "an image FIFO");
            one_error_line(&out, &[&path.display().to_string()]);
            let err = stderr(&out);
            assert!(
                err.contains("not a regular file") || err.contains("not an image file"),
                "{args:?}: {err}"
            );
            assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
        }
    }
}

/// A catalog fetched over HTTP whose sub-lists point at local files (`file:///etc/passwd`,
/// `/dev/zero`, a FIFO): each is skipped with a warning, never read.
#[test]
fn a_remote_catalog_may_not_name_local_sub_lists() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let server = Server::start();
    let catalog = json!({ "os_list": [
        { "name": "Passwd", "subitems_url": "file:///etc/passwd" },
        { "name": "Zero", "subitems_url": "/dev/zero" },
        { "name": "Fifo", "subitems_url": fifo.display().to_string() },
    ]});
    server.serve(
        CATALOG,
        serde_json::to_vec(&catalog).unwrap(),
        Behaviour::Normal,
    );
    let (out, took) = run_within(
        pinode()
            .env("PINODE_CATALOG", server.url(CATALOG))
            .env("PINODE_CACHE_DIR", dir.path().join("cache"))
            .args(["os", "list", "--all"]),
        Duration::from_secs(20),
        "os list --all with local sub-lists",
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    for name in ["Passwd", "Zero", "Fifo"] {
        let line = err
            .lines()
            .find(|l| l.contains("sub-list skipped") && l.contains(name))
            .unwrap_or_else(|| panic!("no warning for {name}: {err}"));
        assert!(line.contains("may only name http"), "{line}");
    }
    assert!(!err.contains("root:"), "{err}");
    // A local catalog is the user's own: its local sub-lists are read.
    let sub = dir.path().join("sub.json");
    std::fs::write(&sub, br#"{ "os_list": [] }"#).unwrap();
    let local = dir.path().join("local.json");
    std::fs::write(
        &local,
        serde_json::to_vec(&json!({ "os_list": [
            { "name": "Local", "subitems_url": sub.display().to_string() },
        ]}))
        .unwrap(),
    )
    .unwrap();
    let out = output(
        pinode()
            .arg("--catalog")
            .arg(&local)
            .args(["os", "list", "--all"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("skipped"), "{}", stderr(&out));
}

/// The download world: a loopback server with a catalog naming one image.
struct World(CatalogWorld);

impl std::ops::Deref for World {
    type Target = CatalogWorld;
    fn deref(&self) -> &CatalogWorld {
        &self.0
    }
}

impl World {
    /// The catalog says the download has `download_size` bytes and the image
    /// `extract_size` bytes with SHA-256 `sha`.
    fn new(body: Vec<u8>, behaviour: Behaviour, download_size: u64, extract_size: u64) -> World {
        World(CatalogWorld::new(
            IMAGE_PATH,
            body,
            behaviour,
            |server, _| {
                let catalog = json!({ "os_list": [
                    { "name": "Raspberry Pi OS Lite (64-bit)",
                      "url": server.url(IMAGE_PATH),
                      "extract_size": extract_size,
                      "extract_sha256": "ab".repeat(32),
                      "image_download_size": download_size,
                      "release_date": "2025-05-13" },
                ]});
                serde_json::to_vec(&catalog).unwrap()
            },
        ))
    }

    /// [`CatalogWorld::pinode`], with 3 retries.
    fn pinode(&self) -> Command {
        let mut c = self.0.pinode();
        c.env("PINODE_HTTP_RETRIES", "3");
        c
    }

    /// `pinode download` of the catalog's image, killed (and the test failed) after `limit`.
    fn download(&self, limit: Duration, what: &str) -> (Output, Duration) {
        run_within(self.pinode().args(["download", "--os", ALIAS]), limit, what)
    }

    /// No `.part` is left in the cache.
    fn assert_no_part(&self) {
        let left = self.files();
        assert!(
            left.iter().all(|(name, _)| !name.ends_with(".part")),
            "{left:?}"
        );
    }

    /// Less than 1 MiB is left in the cache.
    fn assert_under_a_mib_left(&self) {
        let left = self.files();
        assert!(
            left.iter().map(|(_, len)| len).sum::<u64>() < 1 << 20,
            "{left:?}"
        );
    }

    /// Every file left in the cache's image entries, with its size.
    fn files(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let images = self.cache().join("images");
        for entry in std::fs::read_dir(images).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                for f in std::fs::read_dir(entry.path()).unwrap().flatten() {
                    let len = f.metadata().unwrap().len();
                    out.push((f.file_name().to_string_lossy().into_owned(), len));
                }
            }
        }
        out
    }
}

/// An endless body: the download stops just past the catalog's `image_download_size`, and
/// what arrived is deleted (it used to fill the disk and keep the `.part`).
#[test]
fn a_download_stops_at_the_catalogs_size_and_deletes_the_part() {
    let w = World::new(vec![7u8; 65536], Behaviour::Endless, 1 << 20, 4 << 20);
    let (out, took) = w.download(Duration::from_secs(30), "download of an endless body");
    one_error_line(
        &out,
        &[
            "1048576 bytes",
            "image_download_size",
            "partial download was deleted",
        ],
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    w.assert_no_part();
    w.assert_under_a_mib_left();
}

/// A server that announces more than the catalog's size is refused before the body.
#[test]
fn a_download_announced_larger_than_the_catalogs_size_is_refused_at_once() {
    let w = World::new(vec![5u8; 3 << 20], Behaviour::Normal, 1 << 20, 4 << 20);
    let (out, _) = w.download(
        Duration::from_secs(30),
        "download announced larger than the catalog says",
    );
    one_error_line(&out, &["1048576 bytes", "image_download_size"]);
    w.assert_no_part();
    w.assert_under_a_mib_left();
}

/// An xz bomb (256 MiB of one byte in 40 KB): decompression stops just past the catalog's
/// `extract_size` and the download is deleted.
#[test]
fn decompression_stops_at_the_catalogs_extract_size() {
    let mut xz = Command::new("sh")
        .args(["-c", "head -c 256M /dev/zero | tr '\\0' a | xz -1 -T1 -c"])
        .output()
        .unwrap();
    assert!(xz.status.success());
    let bomb = std::mem::take(&mut xz.stdout);
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    let size = bomb.len() as u64;
    let w = World::new(bomb, Behaviour::Normal, size, 1 << 20);
    let (out, took) = w.download(Duration::from_secs(60), "download of an xz bomb");
    one_error_line(
        &out,
        &["1048576 bytes", "extract_size", "download was deleted"],
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    w.assert_under_a_mib_left();
}

/// A server that answers every resume with the whole file from byte 0 and then drops the
/// connection at the same place makes no progress: the download gives up after the retries
/// (it used to go on forever: 8,000 requests in two minutes).
#[test]
fn a_server_restarting_every_resume_counts_as_failing() {
    let body = vec![3u8; 200_000];
    let size = body.len() as u64;
    let w = World::new(
        body,
        Behaviour::AlwaysFullThenDrop { bytes: 50_000 },
        size,
        1 << 20,
    );
    let (out, took) = w.download(
        Duration::from_secs(30),
        "download from a server that restarts every resume",
    );
    one_error_line(&out, &["attempt"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let requests = w.server.requests(IMAGE_PATH).len();
    // PINODE_HTTP_RETRIES=3: the first attempt and 3 more.
    assert_eq!(requests, 4, "{requests} requests");
}

/// 110,000 entries: de-duplication is a hash set, not a scan per entry (138 s before).
#[test]
fn a_catalog_of_110k_entries_lists_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<_> = (0..110_000)
        .map(|i| {
            json!({
                "name": format!("OS {i}"),
                "url": format!("https://example.com/os/{i}/2025-05-13-raspios-bookworm-arm64-lite.img.xz"),
                "extract_size": 1000,
                "extract_sha256": "ab".repeat(32),
                "release_date": "2025-05-13",
            })
        })
        .collect();
    let catalog = dir.path().join("big.json");
    std::fs::write(
        &catalog,
        serde_json::to_vec(&json!({ "os_list": items })).unwrap(),
    )
    .unwrap();
    let (out, took) = run_within(
        pinode().arg("--catalog").arg(&catalog).args(["os", "list"]),
        Duration::from_secs(120),
        "os list of 110k entries",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("raspios-bookworm-lite-arm64"))
        .count();
    assert_eq!(listed, 110_000);
    eprintln!("os list of 110,000 entries: {took:?}");
    // 1.3 s of CPU alone, up to 13 s beside parallel builds and tests; the quadratic
    // de-duplication ran for over 120 s, so 30 s tells the two apart without flaking.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// Out-of-range `PINODE_HTTP_*` values are ignored (the defaults apply), never a panic
/// (`Duration::from_secs_f64(1e30)` panics).
#[test]
fn out_of_range_http_settings_are_ignored() {
    let server = Server::start();
    server.serve(
        CATALOG,
        serde_json::to_vec(&json!({ "os_list": [] })).unwrap(),
        Behaviour::Normal,
    );
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("PINODE_HTTP_TIMEOUT", "1e30"),
        ("PINODE_HTTP_TIMEOUT", "-1"),
        ("PINODE_HTTP_TIMEOUT", "NaN"),
        ("PINODE_HTTP_TIMEOUT", "inf"),
        ("PINODE_HTTP_TIMEOUT", "1e-300"),
        ("PINODE_HTTP_TIMEOUT", "1e15"),
        ("PINODE_HTTP_RETRIES", "1e20"),
        ("PINODE_HTTP_RETRIES", "-3"),
        ("PINODE_HTTP_BACKOFF_MS", "1e300"),
        ("PINODE_HTTP_BACKOFF_MS", "1e18"),
        ("PINODE_HTTP_BACKOFF_MS", "inf"),
    ];
    for (name, value) in cases {
        let (out, _) = run_within(
            pinode()
                .env("PINODE_CATALOG", server.url(CATALOG))
                .env("PINODE_CACHE_DIR", dir.path().join("cache"))
                .env(name, value)
                .args(["os", "list"]),
            Duration::from_secs(20),
            &format!("{name}={value}"),
        );
        let err = stderr(&out);
        assert!(out.status.success(), "{name}={value}: {err}");
        assert!(!err.contains("panicked"), "{name}={value}: {err}");
    }
    server.serve("/unavailable", Vec::new(), Behaviour::Status(503));
    // A large backoff is ignored too: a failing request is retried after the default pause,
    // not after 1e18 ms (and without overflowing the doubling).
    let (out, took) = run_within(
        pinode()
            .env("PINODE_CATALOG", server.url("/unavailable"))
            .env("PINODE_CACHE_DIR", dir.path().join("cache"))
            .env("PINODE_HTTP_BACKOFF_MS", "1e18")
            .env("PINODE_HTTP_RETRIES", "1")
            .args(["os", "list"]),
        Duration::from_secs(20),
        "a 503 with PINODE_HTTP_BACKOFF_MS=1e18",
    );
    one_error_line(&out, &["503"]);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Offline: a name that does not resolve, or a refused connection, is reported within a
/// second with the default retries (six attempts of a DNS failure took 25 s before).
#[test]
fn offline_os_list_and_download_say_so_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let unresolvable = "https://catalog.invalid/os.json".to_string();
    let refused = format!("http://127.0.0.1:{}/os.json", closed_port());
    for catalog in [&unresolvable, &refused] {
        for args in [vec!["os", "list"], vec!["download", "--os", ALIAS]] {
            let (out, took) = run_within(
                pinode()
                    .env("PINODE_CATALOG", catalog)
                    .env("PINODE_CACHE_DIR", dir.path().join("cache"))
                    .args(&args),
                Duration::from_secs(60),
                &format!("{args:?} with {catalog}"),
            );
            let host = if catalog == &unresolvable {
                "catalog.invalid"
            } else {
                "127.0.0.1"
            };
            one_error_line(&out, &[host, "cannot be reached"]);
            eprintln!("{args:?} with {catalog}: failed after {took:?}");
            assert!(
                took < Duration::from_secs(1),
                "{args:?} with {catalog} took {took:?}"
            );
        }
    }
}

/// The wizard asks its first question within a second with no network, whether the
/// catalog's name does not resolve or its port is closed; the OS question later says the
/// catalog is not available and still offers the default and a local file.
#[test]
fn the_wizards_first_question_comes_at_once_offline() {
    use common::pty::{CLUSTER_DEFAULTS, answer_all, spawn, wizard_command};
    use expectrl::Expect;
    let refused = format!("http://127.0.0.1:{}/os.json", closed_port());
    for catalog in ["https://catalog.invalid/os.json", refused.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let mut cmd = wizard_command(dir.path(), &home);
        cmd.env("PINODE_CATALOG", catalog)
            .env("PINODE_CACHE_DIR", dir.path().join("cache"))
            .env("PINODE_STATE_DIR", dir.path().join("state"));
        let started = Instant::now();
        let mut s = spawn(cmd);
        s.set_expect_timeout(Some(Duration::from_secs(30)));
        s.expect("Cluster name").unwrap();
        let took = started.elapsed();
        eprintln!("{catalog}: first question after {took:?}");
        assert!(took < Duration::from_secs(1), "{catalog}: {took:?}");
        // The first question is answered here, the others once each appears.
        s.send(CLUSTER_DEFAULTS[0].1).unwrap();
        answer_all(&mut s, &CLUSTER_DEFAULTS[1..]);
        s.expect("the OS catalog is not available").unwrap();
        s.expect("cannot be reached").unwrap();
        s.expect("Operating system").unwrap();
        s.expect("A local image file").unwrap();
        s.send("\x03").unwrap();
        let _ = s.get_process_mut().wait();
    }
}
