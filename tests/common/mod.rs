//! Helpers shared by the integration tests: fixture images built by the real script, the
//! pinode binary, and independent readers (sfdisk, fsck.fat, mtools) to check its work.
#![allow(dead_code)]

pub mod ci;
pub mod http;
pub mod loopdev;
pub mod netns;
pub mod pty;
pub mod scratch;
pub mod screen;
pub mod sshd;
pub mod user_env;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const KEY_1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK2xo1tXRvyxGZr8DF20naLheVrgCjshpGCpxd3inHUu alice@laptop";
/// The key material of `profiles/example.yaml`, which `profile check` flags as one nobody
/// can log in with: only for tests whose recorded bytes were made with it (reproducible.rs).
pub const EXAMPLE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E alice@laptop";
pub const KEY_2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXG6IZ3jSPmxJOq8ol1MHb0OI8XPEem3a1JdyW5eL+b bob@desk";
/// sha512-crypt of "pinode" (crypt(3), salt pinodesalt).
pub const HASH: &str = "$6$pinodesalt$ZU8tXiuiLl3v.QDIcku9Zu6nG5xxmDLRrN6L7M4O8o2LLDmkJTF0ExUBxp3TkOiD6Kh21B4pR8moDI..taezW1";

pub const ALL_FIXTURES: [&str; 7] = [
    "bullseye",
    "bookworm",
    "bookworm-armhf",
    "trixie",
    "gpt",
    "dirty",
    "fullroot",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture images, built once per change of the fixture script and shared by all tests
/// (nextest runs tests in separate processes, hence the file lock).
pub fn fixture(name: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(std::fs::read(repo().join("fixtures/make-images.sh")).unwrap());
    for entry in walk(&repo().join("fixtures/stock")) {
        hasher.update(entry.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&entry).unwrap());
    }
    let key = &hex::encode(hasher.finalize())[..16];
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fixtures-{key}"));
    std::fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    let image = dir.join(format!("{name}.img"));
    if !dir.join(".complete").exists() {
        let out = Command::new("bash")
            .arg(repo().join("fixtures/make-images.sh"))
            .arg(&dir)
            .output()
            .expect("run fixtures/make-images.sh");
        assert!(
            out.status.success(),
            "fixture build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        File::create(dir.join(".complete")).unwrap();
    }
    lock.unlock().unwrap();
    assert!(image.exists(), "no fixture {name}");
    image
}

/// Every file below `dir`, depth first, in name order.
/// Every file under `dir` whose name is `name` (in `walk`'s order).
pub fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == name))
        .collect()
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A private sparse copy of a fixture.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let dst = dir.join(format!("{name}.img"));
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(fixture(name))
        .arg(&dst));
    dst
}

pub fn pinode() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pinode"));
    c.env_remove("RUST_BACKTRACE").env("CI", "true");
    // The test hooks (PINODE_TEST_SEED, PINODE_TEST_PAUSE, PINODE_SYSTEM_ROOT) count only
    // behind this switch (src/edge.rs).
    c.env("PINODE_TEST_HOOKS", "1");
    // Never the real catalog, the user's cache or a proxy: tests that need a catalog or a
    // cache set their own.
    c.env("PINODE_CATALOG", "/nonexistent/pinode-test-catalog.json")
        .env(
            "PINODE_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-cache-here"),
        );
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c
}

/// `pinode inspect --json` of an image or device, which must succeed.
pub fn inspect_json(target: impl AsRef<std::ffi::OsStr>) -> serde_json::Value {
    serde_json::from_str(&run(pinode().args(["inspect", "--json"]).arg(target))).unwrap()
}

/// Parses YAML with PyYAML, the loader cloud-init itself uses: an independent reader of
/// what pinode writes.
pub fn pyyaml(path: &Path) -> serde_json::Value {
    let script = "import yaml,json,sys; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))";
    serde_json::from_str(&run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(path)))
    .unwrap()
}

/// Runs a command that must succeed; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Partition `index` (1-based) of an image, per sfdisk: (start bytes, size bytes).
pub fn partition(image: &Path, index: usize) -> (u64, u64) {
    let json = run(Command::new("sfdisk").arg("-J").arg(image));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &v["partitiontable"]["partitions"][index - 1];
    (
        p["start"].as_u64().unwrap() * 512,
        p["size"].as_u64().unwrap() * 512,
    )
}

/// Copies the boot partition (p1) of `image` into a file of its own, for fsck and mtools.
pub fn extract_boot(image: &Path, dir: &Path) -> PathBuf {
    extract_partition(image, 1, dir, "fat")
}

/// Copies partition `index` of `image` (a file or a device the size of the image's table)
/// into `dir/NAME.pINDEX.SUFFIX`.
pub fn extract_partition(image: &Path, index: usize, dir: &Path, suffix: &str) -> PathBuf {
    let (start, size) = partition(image, index);
    let out = dir.join(format!(
        "{}.p{index}.{suffix}",
        image.file_name().unwrap().to_string_lossy()
    ));
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", out.display()))
        .arg("bs=512")
        .arg(format!("skip={}", start / 512))
        .arg(format!("count={}", size / 512))
        .arg("status=none"));
    out
}

/// `fsck.fat -n`: Ok, or its complaints.
pub fn fsck_fat(fat: &Path) -> Result<(), String> {
    checker(Command::new("fsck.fat").arg("-n").arg(fat))
}

/// `e2fsck -fn`: Ok, or its complaints.
pub fn e2fsck(fs: &Path) -> Result<(), String> {
    checker(Command::new("e2fsck").arg("-fn").arg(fs))
}

/// Runs a read-only file-system checker: Ok, or everything it printed.
fn checker(cmd: &mut Command) -> Result<(), String> {
    let out = output(cmd);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn mtools(tool: &str) -> Command {
    let mut c = Command::new(tool);
    c.env("MTOOLS_SKIP_CHECK", "1");
    c
}

/// Reads a file with mtools (`None` if it does not exist).
pub fn mread(fat: &Path, path: &str) -> Option<Vec<u8>> {
    let out = output(mtools("mtype").arg("-i").arg(fat).arg(format!("::/{path}")));
    out.status.success().then_some(out.stdout)
}

/// One entry of the FAT as mtools sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dir: bool,
    pub sha256: String,
    /// The entry's line in `mdir -a` (short name, size, date, time, long name).
    pub meta: String,
}

/// Every file and directory of the FAT: path → entry. Paths have no leading `/`; directories
/// end with `/`.
pub fn listing(fat: &Path) -> BTreeMap<String, Entry> {
    let bare = run(mtools("mdir")
        .arg("-i")
        .arg(fat)
        .args(["-/", "-b", "-a", "::/"]));
    let mut out = BTreeMap::new();
    let mut metas: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in bare.lines() {
        let path = line.trim_start_matches("::/").to_string();
        if path.is_empty() {
            continue;
        }
        let (parent, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), path.trim_end_matches('/').to_string()),
        };
        let lines = metas
            .entry(parent.clone())
            .or_insert_with(|| dir_lines(fat, &parent));
        let meta = lines
            .iter()
            .find(|l| entry_name(l).eq_ignore_ascii_case(&name))
            .cloned()
            .unwrap_or_default();
        let dir = path.ends_with('/');
        let sha256 = if dir {
            String::new()
        } else {
            sha256(&mread(fat, &path).unwrap())
        };
        out.insert(path, Entry { dir, sha256, meta });
    }
    out
}

fn dir_lines(fat: &Path, dir: &str) -> Vec<String> {
    let text = run(mtools("mdir")
        .arg("-i")
        .arg(fat)
        .arg("-a")
        .arg(format!("::/{dir}")));
    text.lines()
        .skip_while(|l| !l.starts_with("Directory for"))
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.contains(" bytes") && !l.contains(" file"))
        .map(str::to_string)
        .collect()
}

/// The long name at the end of an `mdir -a` line, or the short name for 8.3-only entries.
fn entry_name(line: &str) -> String {
    // Columns: NAME(8) EXT(3) SIZE|<DIR> DATE TIME [LONG NAME]
    let fields: Vec<&str> = line.split_whitespace().collect();
    let time_at = fields.iter().position(|f| f.contains(':') && f.len() <= 5);
    match time_at {
        Some(i) if i + 1 < fields.len() => line[line.find(fields[i]).unwrap() + fields[i].len()..]
            .trim()
            .to_string(),
        _ => {
            let (name, ext) = (
                line.get(..8).unwrap_or("").trim(),
                line.get(9..12).unwrap_or("").trim(),
            );
            if ext.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{ext}")
            }
        }
    }
}

/// Writes a profile into `dir` and returns its path.
pub fn write_profile(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Whether the tests run as root (CI does; some checks need namespaces).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// [`is_root`]; when not, prints `skipped: {why}` for the test that returns early.
pub fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipped: {why}");
    false
}

/// A profile for `alice` with `KEY_1` inline: `os` (whole lines, or empty) before
/// `defaults`, `user` (more lines of alice's, or empty) after her key, `rest` (cluster,
/// nodes) last.
pub fn profile_yaml(os: &str, user: &str, rest: &str) -> String {
    format!(
        "version: 1\n{os}defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n{user}{rest}"
    )
}

/// What a run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a run printed, stdout then stderr.
pub fn both(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// The permission bits of `path` (not following a symlink).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// A failure, no panic, and exactly one `error:` line on stderr, which holds every needle:
/// returns that line.
pub fn one_error_line(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected a failure, got success:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in {:?}",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// Every YAML document of the file at `path`, read by PyYAML (a YAML reader other than the
/// one pinode writes with), as JSON values.
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let script =
        "import yaml,json,sys; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    serde_json::from_str(&run(Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(path)))
    .unwrap()
}

/// Each command line in `cases` (appended to `base()`) is a usage error: exit 2 and one
/// `error:` line, no panic.
pub fn usage_errors(base: impl Fn() -> Command, cases: &[Vec<&str>]) {
    for args in cases {
        let out = output(base().args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", both(&out));
        one_error_line(&out, &[]);
    }
}

/// [`one_error_line`], and that line is all of stderr.
pub fn only_error_line(out: &Output, needles: &[&str]) -> String {
    let line = one_error_line(out, needles);
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    line
}

/// `cmd` with every variable it sets (not the ones it removes) copied, and run as
/// `uid`:`gid` with no supplementary groups, in a clean environment with a system PATH.
pub fn as_uid(uid: u32, gid: u32, cmd: &Command) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

/// The environment `sudo` gives a command that user `name` (`uid`:`gid`) runs with it.
pub fn sudo_env(cmd: &mut Command, name: &str, uid: u32, gid: u32) {
    cmd.env("SUDO_USER", name)
        .env("SUDO_UID", uid.to_string())
        .env("SUDO_GID", gid.to_string())
        .env("HOME", "/root")
        .env("USER", "root");
}

/// Runs `cmd`, killing it after `limit`; returns its output and how long it ran, or panics
/// naming `what` when it had to be killed.
pub fn run_within(cmd: &mut Command, limit: Duration, what: &str) -> (Output, Duration) {
    use std::io::Read;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained as it comes, so that a full pipe never stalls the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {limit:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, took)
}

/// Starts pinode paused at `stage` of the test hook PINODE_TEST_PAUSE (`verify` or `write:N`); returns the child and the pause
/// file once pinode has reached it.
pub fn start_paused(mut cmd: Command, dir: &Path, stage: &str) -> (std::process::Child, PathBuf) {
    let pause = dir.join("pause");
    let child = cmd
        .env("PINODE_TEST_PAUSE", format!("{stage}@{}", pause.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pause.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "pinode never reached {stage}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, pause)
}
