//! The OS catalog, downloads and the image cache, against a real HTTP server on 127.0.0.1
//! (tests/common/http.rs) serving a fixture catalog and fixture images built from the
//! committed fixtures/bookworm-lite.img.xz with the real xz, gzip and zstd.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::http::{Behaviour, CATALOG, CatalogWorld, Server};
use common::*;
use serde_json::{Value, json};

const IMAGE_PATH: &str = "/raspios_lite_arm64/images/raspios_lite_arm64-2025-05-13/2025-05-13-raspios-bookworm-arm64-lite.img.xz";
const ALIAS: &str = "raspios-lite-arm64";

/// The raw image and its compressed forms, made once per test process.
struct Images {
    raw: Vec<u8>,
    xz_single: Vec<u8>,
    xz_multi: Vec<u8>,
    gz: Vec<u8>,
    zst: Vec<u8>,
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read(repo.join("fixtures/bookworm-lite.img.xz")).unwrap();
        let raw = filter(&["xz", "-dc"], &committed);
        Images {
            xz_single: filter(&["xz", "-c", "-1", "-T1"], &raw),
            xz_multi: filter(&["xz", "-c", "-1", "-T2", "--block-size=4MiB"], &raw),
            gz: filter(&["gzip", "-c", "-1"], &raw),
            zst: filter(&["zstd", "-c", "-1", "-q"], &raw),
            raw,
        }
    })
}

/// Runs `argv` with `input` on stdin; returns stdout.
fn filter(argv: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{argv:?}");
    out.stdout
}

/// A catalog with one Raspberry Pi OS entry for `image_path` (nested, as the real one is),
/// and a remote sub-list.
fn catalog_json(server: &Server, image_path: &str, download: &[u8]) -> Vec<u8> {
    let raw = &images().raw;
    serde_json::to_vec_pretty(&json!({
        "imager": { "latest_version": "1.9.6" },
        "os_list": [
            { "name": "Raspberry Pi OS (other)", "subitems": [
                { "name": "Raspberry Pi OS Lite (64-bit)",
                  "description": "A port of Debian Bookworm with no desktop environment",
                  "url": server.url(image_path),
                  "extract_size": raw.len(),
                  "extract_sha256": sha256(raw),
                  "image_download_size": download.len(),
                  "release_date": "2025-05-13",
                  "init_format": "systemd",
                  "devices": ["pi5-64bit", "pi4-64bit"] },
                { "name": "Erase", "description": "no url, no hash: skipped" }
            ]},
            { "name": "Other general-purpose OS", "subitems_url": server.url("/sub.json") }
        ]
    }))
    .unwrap()
}

/// A test's world: a server, a cache directory, a catalog (with an empty remote sub-list).
struct World(CatalogWorld);

impl std::ops::Deref for World {
    type Target = CatalogWorld;
    fn deref(&self) -> &CatalogWorld {
        &self.0
    }
}

impl World {
    fn new(image: Vec<u8>, behaviour: Behaviour) -> World {
        let world = CatalogWorld::new(IMAGE_PATH, image, behaviour, |server, image| {
            catalog_json(server, IMAGE_PATH, image)
        });
        world.server.serve(
            "/sub.json",
            serde_json::to_vec(&json!({ "os_list": [] })).unwrap(),
            Behaviour::Normal,
        );
        World(world)
    }

    fn download(&self, extra: &[&str]) -> Output {
        output(self.pinode().args(["download", "--json"]).args(extra))
    }

    /// Files under the cache's images/ directory (names only, sorted).
    fn cache_files(&self) -> Vec<String> {
        let mut names: Vec<String> = walk_dir(&self.cache().join("images"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn walk_dir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk_dir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "pinode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// One error line that names `needle`, and a non-zero exit.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    assert!(!out.status.success(), "expected failure");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A one-node profile whose `os:` section is `os_lines` (indented YAML lines).
fn node_profile(dir: &Path, name: &str, os_lines: &str) -> PathBuf {
    write_profile(
        dir,
        name,
        &format!(
            "version: 1\nos:\n{os_lines}defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\nnodes:\n  - hostname: node-1\n"
        ),
    )
}

#[test]
fn alias_to_verified_base_image_and_a_second_run_downloads_nothing() {
    let world = World::new(images().xz_multi.clone(), Behaviour::Normal);
    let first = json_of(&world.download(&[]));
    assert_eq!(first["image"], ALIAS);
    assert_eq!(first["downloaded_bytes"], images().xz_multi.len() as u64);
    assert_eq!(first["decompressed"], true);
    assert_eq!(first["init_format"], "systemd");
    let path = PathBuf::from(first["path"].as_str().unwrap());
    assert_eq!(sha256_file(&path), sha256(&images().raw));
    assert_eq!(first["sha256"], sha256(&images().raw));
    // Content-addressed by the image's SHA-256; the download is kept as served.
    assert!(path.starts_with(world.cache().join("images").join(sha256(&images().raw))));
    assert!(
        world
            .cache_files()
            .contains(&"2025-05-13-raspios-bookworm-arm64-lite.img.xz".to_string())
    );
    // The base image is sparse: far fewer blocks than bytes.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.blocks() * 512 < meta.len() / 4, "not sparse");

    let second = json_of(&world.download(&[]));
    assert_eq!(second["downloaded_bytes"], 0);
    assert_eq!(second["decompressed"], false);
    assert_eq!(world.server.requests(IMAGE_PATH).len(), 1, "one download");

    // Offline, from the cache and the kept copy of the catalog: no request at all.
    let before = world.server.requests(CATALOG).len();
    let offline = json_of(&world.download(&["--offline", "--os", "raspios-bookworm-lite-arm64"]));
    assert_eq!(offline["path"], first["path"]);
    assert_eq!(world.server.requests(CATALOG).len(), before);

    // A pinned release the catalog lists.
    let pinned = json_of(&world.download(&["--os", "raspios-lite-arm64@2025-05-13"]));
    assert_eq!(pinned["path"], first["path"]);

    // `cache list` shows it; `cache clean` empties the cache.
    let list: Value =
        serde_json::from_str(&run(world.pinode().args(["cache", "list", "--json"]))).unwrap();
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["complete"], true);
    assert_eq!(entries[0]["aliases"][0], ALIAS);
    run(world.pinode().args(["cache", "clean"]));
    let left: Vec<String> = world
        .cache_files()
        .into_iter()
        .filter(|f| !f.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let offline = world.download(&["--offline"]);
    fails_with(&offline, &["--offline"]);
}

#[test]
fn os_list_shows_aliases_in_both_forms() {
    let world = World::new(images().xz_single.clone(), Behaviour::Normal);
    let text = run(world.pinode().args(["os", "list"]));
    assert!(
        text.contains(ALIAS) && text.contains("raspios-bookworm-lite-arm64"),
        "{text}"
    );
    assert!(text.contains("2025-05-13"), "{text}");
    let doc: Value =
        serde_json::from_str(&run(world.pinode().args(["os", "list", "--json", "--all"]))).unwrap();
    let images_ = doc["images"].as_array().unwrap();
    assert_eq!(
        images_.len(),
        1,
        "the entry without url/hash is skipped: {doc}"
    );
    assert_eq!(
        images_[0]["aliases"],
        json!([ALIAS, "raspios-bookworm-lite-arm64"])
    );
    assert_eq!(images_[0]["category"], json!(["Raspberry Pi OS (other)"]));
    assert_eq!(images_[0]["extract_sha256"], sha256(&images().raw));
    assert_eq!(
        world.server.requests("/sub.json").len(),
        1,
        "--all follows subitems_url"
    );
}

#[test]
fn a_dropped_connection_resumes_with_range() {
    let image = images().xz_multi.clone();
    let half = image.len() / 2;
    let world = World::new(
        image.clone(),
        Behaviour::DropAfter {
            bytes: half,
            times: 1,
        },
    );
    let doc = json_of(&world.download(&[]));
    assert_eq!(
        sha256_file(Path::new(doc["path"].as_str().unwrap())),
        sha256(&images().raw)
    );
    let requests = world.server.requests(IMAGE_PATH);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
}

#[test]
fn an_interrupted_run_is_resumed_by_the_next_one() {
    let image = images().xz_multi.clone();
    let part = image.len() / 3;
    let world = World::new(
        image.clone(),
        Behaviour::DropAfter {
            bytes: part,
            times: 1,
        },
    );
    // No retries: the first run fails and keeps what it has.
    let out = output(
        world
            .pinode()
            .env("PINODE_HTTP_RETRIES", "0")
            .args(["download"]),
    );
    fails_with(&out, &[&world.server.url(IMAGE_PATH), "connection"]);
    assert!(
        world.cache_files().iter().any(|f| f.ends_with(".part")),
        "{:?}",
        world.cache_files()
    );
    let doc = json_of(&world.download(&[]));
    assert_eq!(doc["resumed_from"], part as u64);
    assert_eq!(doc["downloaded_bytes"], (image.len() - part) as u64);
    assert_eq!(
        sha256_file(Path::new(doc["path"].as_str().unwrap())),
        sha256(&images().raw)
    );
    let requests = world.server.requests(IMAGE_PATH);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={part}-").as_str())
    );
    assert!(
        !world
            .cache_files()
            .iter()
            .any(|f| f.ends_with(".part") || f.ends_with(".meta"))
    );
}

#[test]
fn a_server_that_ignores_range_gets_a_clean_restart() {
    let image = images().xz_single.clone();
    let world = World::new(
        image.clone(),
        Behaviour::DropThenIgnoreRange {
            bytes: image.len() / 2,
        },
    );
    let doc = json_of(&world.download(&[]));
    let requests = world.server.requests(IMAGE_PATH);
    assert_eq!(requests.len(), 2);
    assert!(requests[1].range.is_some(), "asked to resume");
    assert_eq!(
        sha256_file(Path::new(doc["path"].as_str().unwrap())),
        sha256(&images().raw)
    );
    // The second answer was the whole file, written from the start, not appended.
    let download = walk_dir(&world.cache().join("images"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".img.xz"))
        .unwrap();
    assert_eq!(std::fs::read(download).unwrap(), image);
}

#[test]
fn one_flipped_byte_is_caught_and_the_download_deleted() {
    // In the compressed data (xz's own check or the image hash catches it) …
    let mut xz = images().xz_single.clone();
    let middle = xz.len() / 2;
    xz[middle] ^= 0x40;
    let world = World::new(xz, Behaviour::Normal);
    let out = world.download(&[]);
    let stderr = fails_with(&out, &[&world.server.url(IMAGE_PATH), "deleted"]);
    assert!(
        stderr.contains("corrupt") || stderr.contains("SHA-256 mismatch"),
        "{stderr}"
    );
    let left = world.cache_files();
    assert!(
        !left
            .iter()
            .any(|f| f.ends_with(".img.xz") || f == "image.img" || f.ends_with(".part")),
        "{left:?}"
    );

    // … and in a raw image, where only the SHA-256 can tell.
    let mut raw = images().raw.clone();
    raw[1_000_000] ^= 1;
    let world = World::new(Vec::new(), Behaviour::Normal);
    world.server.serve("/bad.img", raw, Behaviour::Normal);
    let url = world.server.url("/bad.img");
    let out = world.download(&["--os", &url, "--sha256", &sha256(&images().raw)]);
    fails_with(
        &out,
        &[
            "SHA-256 mismatch",
            &sha256(&images().raw),
            "/bad.img",
            "deleted",
        ],
    );
    assert!(
        !world.cache_files().iter().any(|f| f.ends_with(".img")),
        "{:?}",
        world.cache_files()
    );
    // The next run downloads again (and fails again, the file being bad).
    let out = world.download(&["--os", &url, "--sha256", &sha256(&images().raw)]);
    fails_with(&out, &["SHA-256 mismatch"]);
    assert_eq!(world.server.requests("/bad.img").len(), 2);
}

#[test]
fn http_failures_are_one_clear_error_naming_the_url() {
    let world = World::new(Vec::new(), Behaviour::Status(404));
    let out = world.download(&[]);
    fails_with(&out, &[&world.server.url(IMAGE_PATH), "404"]);
    assert_eq!(
        world.server.requests(IMAGE_PATH).len(),
        1,
        "a 404 is not retried"
    );

    let world = World::new(Vec::new(), Behaviour::Status(500));
    let out = output(
        world
            .pinode()
            .env("PINODE_HTTP_RETRIES", "2")
            .args(["download"]),
    );
    fails_with(&out, &[&world.server.url(IMAGE_PATH), "500", "3 attempt"]);
    assert_eq!(
        world.server.requests(IMAGE_PATH).len(),
        3,
        "a 500 is retried"
    );

    let world = World::new(images().xz_single.clone(), Behaviour::Stall);
    let started = std::time::Instant::now();
    let out = output(
        world
            .pinode()
            .env("PINODE_HTTP_TIMEOUT", "1")
            .env("PINODE_HTTP_RETRIES", "1")
            .args(["download"]),
    );
    fails_with(&out, &[&world.server.url(IMAGE_PATH), "timed out"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/os_list.json");
    let out = output(
        world
            .pinode()
            .env("PINODE_CATALOG", &url)
            .env("PINODE_HTTP_RETRIES", "0")
            .args(["os", "list"]),
    );
    fails_with(&out, &[&url, "connect"]);
}

#[test]
fn bad_catalogs_are_one_clear_error_naming_the_url() {
    let world = World::new(images().xz_single.clone(), Behaviour::Normal);
    world.server.serve(
        "/html.json",
        b"<html>login page</html>".to_vec(),
        Behaviour::Normal,
    );
    world.server.serve(
        "/wrong.json",
        b"{\"imager\": {}}".to_vec(),
        Behaviour::Normal,
    );
    let url = world.server.url("/html.json");
    let out = output(
        world
            .pinode()
            .env("PINODE_CATALOG", &url)
            .args(["download"]),
    );
    fails_with(&out, &[&url, "not a JSON document"]);
    let url = world.server.url("/wrong.json");
    let out = output(
        world
            .pinode()
            .env("PINODE_CATALOG", &url)
            .args(["os", "list"]),
    );
    fails_with(&out, &[&url, "os_list"]);
    let out = world.download(&["--os", "raspios-lite-armhf"]);
    fails_with(
        &out,
        &[
            &world.server.url(CATALOG),
            "raspios-lite-armhf",
            "it has: raspios-bookworm-lite-arm64, raspios-lite-arm64",
        ],
    );
    let out = world.download(&["--os", "raspios-lite-arm64@2024-01-01"]);
    fails_with(&out, &["only as released 2025-05-13"]);
    let out = world.download(&["--os", "https://example.invalid/x.img.xz"]);
    fails_with(&out, &["--sha256"]);
}

#[test]
fn two_processes_wanting_the_same_image_download_it_once() {
    let image = images().xz_multi.clone();
    let world = World::new(
        image,
        Behaviour::Slow {
            chunk: 32 << 10,
            pause: Duration::from_millis(40),
        },
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            world
                .pinode()
                .args(["download", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let docs: Vec<Value> = outs.iter().map(json_of).collect();
    assert_eq!(docs[0]["path"], docs[1]["path"]);
    assert_eq!(world.server.requests(IMAGE_PATH).len(), 1, "one download");
    let downloaded: u64 = docs
        .iter()
        .map(|d| d["downloaded_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(downloaded, images().xz_multi.len() as u64);
    let waited = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for another pinode"))
        .count();
    assert_eq!(waited, 1);
    assert_eq!(
        sha256_file(Path::new(docs[0]["path"].as_str().unwrap())),
        sha256(&images().raw)
    );
}

#[test]
fn every_compression_decompresses_to_the_raw_bytes() {
    let raw_sha = sha256(&images().raw);
    let multi = &images().xz_multi;
    // The multi-block fixture really has several blocks (what `xz -T0` writes).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.xz"), multi).unwrap();
    std::fs::write(dir.path().join("s.xz"), &images().xz_single).unwrap();
    let blocks = |name: &str| {
        let out = run(Command::new("xz")
            .args(["--robot", "-lv"])
            .arg(dir.path().join(name)));
        out.lines().filter(|l| l.starts_with("block\t")).count()
    };
    assert!(blocks("m.xz") > 1, "multi-block fixture");
    assert_eq!(blocks("s.xz"), 1, "single-block fixture");

    let world = World::new(Vec::new(), Behaviour::Normal);
    let cases: [(&str, &Vec<u8>); 5] = [
        ("/a.img.xz", multi),
        ("/b.img.xz", &images().xz_single),
        ("/c.img.gz", &images().gz),
        // Named .img, but zstd inside: the magic bytes decide.
        ("/d.img", &images().zst),
        ("/e.img", &images().raw),
    ];
    for (i, (path, body)) in cases.iter().enumerate() {
        world.server.serve(path, body.to_vec(), Behaviour::Normal);
        let cache = world.dir.path().join(format!("cache-{i}"));
        let out = output(world.pinode().env("PINODE_CACHE_DIR", &cache).args([
            "download",
            "--json",
            "--os",
            &world.server.url(path),
            "--sha256",
            &raw_sha,
        ]));
        let doc = json_of(&out);
        assert_eq!(
            sha256_file(Path::new(doc["path"].as_str().unwrap())),
            raw_sha,
            "{path}"
        );
    }
}

#[test]
fn prepare_takes_the_base_image_from_the_catalog() {
    let world = World::new(images().xz_multi.clone(), Behaviour::Normal);
    let profile = node_profile(world.dir.path(), "p.yaml", &format!("  image: {ALIAS}\n"));
    let out_dir = world.dir.path().join("out");
    let doc = json_of(&output(
        world
            .pinode()
            .args(["prepare", "--json", "--profile"])
            .arg(&profile)
            .arg("--out-dir")
            .arg(&out_dir),
    ));
    let evidence = doc["base"]["os"]["evidence"].to_string();
    assert!(evidence.contains("init_format systemd"), "{evidence}");
    assert!(out_dir.join("node-1.img").exists());
    // No stray decompressed copy next to the output: the cached base image was used in place.
    let names: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // A wrong os.sha256 for the alias: the profile's line and field.
    let profile = node_profile(
        world.dir.path(),
        "q.yaml",
        &format!("  image: {ALIAS}\n  sha256: {}\n", "ab".repeat(32)),
    );
    let out = output(
        world
            .pinode()
            .args(["prepare", "--profile"])
            .arg(&profile)
            .arg("--out-dir")
            .arg(&out_dir),
    );
    fails_with(&out, &["q.yaml:3", "os.image", "the catalog gives"]);
}

#[test]
fn the_standard_proxy_variables_are_honoured() {
    // The test server plays the proxy: it receives the absolute URL of a host that does not
    // exist, which only a proxied request can reach.
    let world = World::new(images().xz_single.clone(), Behaviour::Normal);
    let url = "http://catalog.invalid/os_list.json";
    let catalog = catalog_json(&world.server, IMAGE_PATH, &images().xz_single);
    world.server.serve(url, catalog, Behaviour::Normal);
    let text = run(world
        .pinode()
        .env("PINODE_CATALOG", url)
        .env("HTTP_PROXY", world.server.url(""))
        .env("NO_PROXY", "127.0.0.1")
        .args(["os", "list"]));
    assert!(text.contains(ALIAS), "{text}");
    assert_eq!(world.server.requests(url).len(), 1);
    // Without the proxy the name does not resolve: the copy kept by the run above stands in,
    // and a warning says so.
    let out = output(
        world
            .pinode()
            .env("PINODE_CATALOG", url)
            .env("PINODE_HTTP_RETRIES", "0")
            .args(["os", "list"]),
    );
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        stderr(&out).contains("warning: catalog unreachable ("),
        "{}",
        both(&out)
    );
    // With no copy kept either: one clear error.
    let out = output(
        world
            .pinode()
            .env("PINODE_CATALOG", url)
            .env("PINODE_CACHE_DIR", world.dir.path().join("another-cache"))
            .env("PINODE_HTTP_RETRIES", "0")
            .args(["os", "list"]),
    );
    fails_with(&out, &[url]);
}

#[test]
fn a_cached_base_image_that_changed_is_rebuilt_from_the_kept_download() {
    let world = World::new(images().xz_multi.clone(), Behaviour::Normal);
    let doc = json_of(&world.download(&[]));
    let image = PathBuf::from(doc["path"].as_str().unwrap());
    // Damage one byte of the cached base image (its mtime changes with it).
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[5_000_000] ^= 0xff;
    std::fs::write(&image, &bytes).unwrap();
    let out = world.download(&[]);
    let again = json_of(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: cache:") && stderr.contains("no longer matched its SHA-256"),
        "{stderr}"
    );
    assert_eq!(again["decompressed"], true);
    assert_eq!(
        again["downloaded_bytes"], 0,
        "rebuilt from the kept download"
    );
    assert_eq!(sha256_file(&image), sha256(&images().raw));
    assert_eq!(world.server.requests(IMAGE_PATH).len(), 1);
}

#[test]
fn a_local_os_image_is_checked_against_os_sha256() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.img.gz"), &images().gz).unwrap();
    let profile = |sha: &str| {
        node_profile(
            dir.path(),
            "p.yaml",
            &format!("  image: ./base.img.gz\n  sha256: {sha}\n"),
        )
    };
    let out_dir = dir.path().join("out");
    let wrong = profile(&"0".repeat(64));
    let out = output(
        pinode()
            .args(["prepare", "--profile"])
            .arg(&wrong)
            .arg("--out-dir")
            .arg(&out_dir),
    );
    fails_with(
        &out,
        &[
            "p.yaml:4",
            "os.sha256",
            "SHA-256 mismatch",
            &sha256(&images().raw),
        ],
    );
    assert!(!out_dir.join("node-1.img").exists());
    // The user's file is never deleted.
    assert!(dir.path().join("base.img.gz").exists());
    let right = profile(&sha256(&images().raw).to_uppercase());
    run(pinode()
        .args(["prepare", "--profile"])
        .arg(&right)
        .arg("--out-dir")
        .arg(&out_dir));
    assert!(out_dir.join("node-1.img").exists());
}

#[test]
fn render_reads_the_os_generation_from_the_cached_image() {
    let world = World::new(images().xz_single.clone(), Behaviour::Normal);
    let profile = node_profile(world.dir.path(), "p.yaml", &format!("  image: {ALIAS}\n"));
    let render = |dir: &str| {
        output(
            world
                .pinode()
                .args(["render", "--profile"])
                .arg(&profile)
                .arg("--out-dir")
                .arg(world.dir.path().join(dir)),
        )
    };
    // Not cached yet: render does not download, and says what to do.
    fails_with(&render("r1"), &["--generation", "pinode download"]);
    assert_eq!(world.server.requests(IMAGE_PATH).len(), 0);
    run(world.pinode().args(["download", "--profile"]).arg(&profile));
    let out = render("r2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("bookworm (firstrun)"));
    let cmdline = std::fs::read_to_string(world.dir.path().join("r2/boot/cmdline.txt")).unwrap();
    assert!(cmdline.contains("cgroup_enable=memory"), "{cmdline}");
    assert_eq!(world.server.requests(IMAGE_PATH).len(), 1);
}
