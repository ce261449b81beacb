//! `cluster.airgap`: a K3s release's files downloaded into the cache over HTTPS, verified,
//! placed on the boot partition of a prepared image, and installed from there at first boot.
//!
//! The release is a STAND-IN of the real layout (k3s-io/k3s releases: `k3s-arm64`,
//! `k3s-airgap-images-arm64.tar.zst`, `sha256sum-arm64.txt` under
//! `<release_url>/<tag>/`, and `install.sh`), served from 127.0.0.1 by the boot tests' real
//! HTTPS server (tests/boot/https_server.py) with a test CA pinode trusts through
//! SSL_CERT_FILE. The stand-in binary is a shell script, the archive a zstd tar with the
//! file names `docker save` writes; neither is K3s.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::scratch::ScratchRoot;
use common::user_env::UserEnv;
use common::{
    fixture, fsck_fat, mode, mread, output, root_or_skip, run, sha256, sha256_file, stderr,
    write_profile,
};

const TAG: &str = "v1.33.5+k3s1";
const BINARY: &str = "k3s-arm64";
const IMAGES: &str = "k3s-airgap-images-arm64.tar.zst";
const SUMS: &str = "sha256sum-arm64.txt";
const AIRGAP_DIR: &str = "pinode/k3s/airgap";

/// The stand-in installer: records its arguments and environment where the test can read
/// them, and leaves the kubeconfig K3s would write (the stage copies it for the user).
const STAND_IN_INSTALLER: &str = r#"#!/bin/sh
# STAND-IN for K3s's install.sh (not K3s): records how it was run.
mkdir -p /var/lib/pinode-test
{
	echo "args=$*"
	echo "INSTALL_K3S_SKIP_DOWNLOAD=${INSTALL_K3S_SKIP_DOWNLOAD:-}"
	echo "K3S_TOKEN_FILE=${K3S_TOKEN_FILE:-}"
	echo "INSTALL_K3S_VERSION=${INSTALL_K3S_VERSION:-}"
} >/var/lib/pinode-test/installer.env
mkdir -p /etc/rancher/k3s
echo 'apiVersion: v1 # a stand-in kubeconfig' >/etc/rancher/k3s/k3s.yaml
"#;

/// Stand-in release files: (binary, images archive, installer).
struct Release {
    binary: Vec<u8>,
    images: Vec<u8>,
    installer: Vec<u8>,
}

impl Release {
    /// A stand-in binary of `binary_len` bytes and an archive of about `images_len`
    /// (incompressible filler, so that the sizes are what the FAT must hold).
    fn new(dir: &Path, binary_len: usize, images_len: usize) -> Release {
        let mut binary =
            b"#!/bin/sh\n# STAND-IN for k3s-arm64 (not K3s)\necho k3s stand-in\nexit 0\n".to_vec();
        binary.extend(filler(binary_len.saturating_sub(binary.len()), 1));
        // The layout `docker save` writes: manifest.json, repositories, a layer blob.
        let tree = dir.join("archive");
        std::fs::create_dir_all(tree.join("blobs")).unwrap();
        std::fs::write(
            tree.join("manifest.json"),
            r#"[{"Config":"blobs/config.json","RepoTags":["docker.io/rancher/mirrored-pause:3.6"],"Layers":["blobs/layer.tar"]}]"#,
        )
        .unwrap();
        std::fs::write(tree.join("repositories"), "{}").unwrap();
        std::fs::write(tree.join("blobs/config.json"), "{}").unwrap();
        std::fs::write(tree.join("blobs/layer.tar"), filler(images_len, 2)).unwrap();
        let archive = dir.join(IMAGES);
        run(Command::new("tar")
            .arg("--zstd")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&tree)
            .args(["manifest.json", "repositories", "blobs"]));
        Release {
            binary,
            images: std::fs::read(&archive).unwrap(),
            installer: STAND_IN_INSTALLER.as_bytes().to_vec(),
        }
    }

    /// The release's SHA-256 list, as `sha256sum` prints it (the real one lists more files).
    fn sums(&self) -> String {
        format!(
            "{}  {BINARY}\n{}  {IMAGES}\n{}  k3s-airgap-images-arm64.tar.gz\n",
            sha256(&self.binary),
            sha256(&self.images),
            "0".repeat(64)
        )
    }
}

/// Pseudo-random bytes (zstd cannot shrink them).
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The test's world: a user's environment, a cache, and the HTTPS server (started here,
/// stopped by its PID when the world is dropped).
struct World {
    env: UserEnv,
    www: PathBuf,
    ca: PathBuf,
    port: u16,
    server: Child,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl World {
    fn new(release: &Release) -> World {
        let env = UserEnv::new();
        let dir = env.dir.path().to_path_buf();
        let ca = dir.join("test-ca.pem");
        let key = dir.join("test-ca.key");
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=pinode airgap test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&ca));
        let www = dir.join("www");
        let tag_dir = www.join("releases").join(TAG);
        std::fs::create_dir_all(&tag_dir).unwrap();
        std::fs::write(tag_dir.join(BINARY), &release.binary).unwrap();
        std::fs::write(tag_dir.join(IMAGES), &release.images).unwrap();
        std::fs::write(tag_dir.join(SUMS), release.sums()).unwrap();
        std::fs::write(www.join("install.sh"), &release.installer).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boot/https_server.py");
        let server = Command::new("python3")
            .arg(script)
            .arg("--dir")
            .arg(&www)
            .arg("--workdir")
            .arg(dir.join("https"))
            .arg("--ca-cert")
            .arg(&ca)
            .arg("--ca-key")
            .arg(&key)
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let world = World {
            env,
            www,
            ca,
            port,
            server,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "no HTTPS server");
            std::thread::sleep(Duration::from_millis(100));
        }
        world
    }

    fn dir(&self) -> &Path {
        self.env.dir.path()
    }

    fn cache(&self) -> PathBuf {
        self.dir().join("cache")
    }

    fn release_dir(&self) -> PathBuf {
        self.cache().join("releases/k3s").join(TAG)
    }

    /// pinode as the user runs it, trusting the test CA, with its own cache.
    fn pinode(&self) -> Command {
        let mut c = self.env.pinode();
        c.env("SSL_CERT_FILE", &self.ca)
            .env("PINODE_CACHE_DIR", self.cache())
            .env("PINODE_HTTP_BACKOFF_MS", "20")
            .env("PINODE_HTTP_TIMEOUT", "5");
        c
    }

    /// An air-gapped K3s profile: one server, release files from this world's server.
    fn profile(&self, name: &str) -> PathBuf {
        let text = format!(
            "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  token_env: K3S_TOKEN
  airgap: true
  k3s:
    version: {TAG}
    release_url: https://127.0.0.1:{port}/releases
    install_url: https://127.0.0.1:{port}/install.sh
nodes:
  - hostname: lab-1
    role: server
",
            port = self.port
        );
        write_profile(self.dir(), name, &text)
    }

    /// The paths the HTTPS server was asked for, in order.
    fn requested(&self) -> Vec<String> {
        let log = self.dir().join("https/https-requests.jsonl");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["path"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// `pinode prepare` of the profile onto `image` into `out`.
    fn prepare(&self, profile: &Path, image: &Path, out: &Path) -> std::process::Output {
        output(
            self.pinode()
                .args(["prepare", "--profile"])
                .arg(profile)
                .arg("--image")
                .arg(image)
                .arg("--out-dir")
                .arg(out),
        )
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn prepare_downloads_once_verifies_and_places_the_release_on_the_fat() {
    let work = tempfile::tempdir().unwrap();
    let release = Release::new(work.path(), 3 << 20, 4 << 20);
    let world = World::new(&release);
    let profile = world.profile("airgap.yaml");
    let out = world.dir().join("out");
    let result = world.prepare(&profile, &fixture("bookworm"), &out);
    assert!(result.status.success(), "{}", stderr(&result));

    // In the cache, verified: the bytes served.
    let cached = world.release_dir();
    assert_eq!(std::fs::read(cached.join(BINARY)).unwrap(), release.binary);
    assert_eq!(std::fs::read(cached.join(IMAGES)).unwrap(), release.images);
    assert_eq!(
        std::fs::read(cached.join("install.sh")).unwrap(),
        release.installer
    );
    let record = std::fs::read_to_string(cached.join("install.sh.sha256")).unwrap();
    assert!(record.starts_with(&sha256(&release.installer)), "{record}");
    assert!(
        files_in(&cached).iter().all(|n| !n.ends_with(".part")),
        "{:?}",
        files_in(&cached)
    );

    // On the FAT, byte for byte, and the file system clean.
    let fat = common::extract_boot(&out.join("lab-1.img"), work.path());
    fsck_fat(&fat).unwrap();
    let on_fat = |name: &str| mread(&fat, &format!("{AIRGAP_DIR}/{name}"));
    assert_eq!(on_fat(BINARY).unwrap(), release.binary);
    assert_eq!(on_fat(IMAGES).unwrap(), release.images);
    assert_eq!(on_fat("install.sh").unwrap(), release.installer);

    // The requests: the tag URL-encoded, each file once.
    let first = world.requested();
    let tag = "v1.33.5%2Bk3s1";
    for path in [
        format!("/releases/{tag}/{SUMS}"),
        format!("/releases/{tag}/{BINARY}"),
        format!("/releases/{tag}/{IMAGES}"),
        "/install.sh".to_string(),
    ] {
        assert_eq!(
            first.iter().filter(|p| **p == path).count(),
            1,
            "{path} in {first:?}"
        );
    }

    // Once in the cache, never downloaded again; the second image has the same files.
    let again = world.dir().join("out-again");
    let result = world.prepare(&profile, &fixture("bookworm"), &again);
    assert!(result.status.success(), "{}", stderr(&result));
    assert_eq!(world.requested(), first);
    let second = work.path().join("again");
    std::fs::create_dir_all(&second).unwrap();
    let fat_again = common::extract_boot(&again.join("lab-1.img"), &second);
    assert_eq!(
        mread(&fat_again, &format!("{AIRGAP_DIR}/{IMAGES}")).unwrap(),
        release.images
    );

    // profile check says what is placed, with the sizes now known.
    let check = run(world.pinode().args(["profile", "check"]).arg(&profile));
    assert!(
        check.contains("air-gap: K3s v1.33.5+k3s1 from the boot partition")
            && check.contains("k3s-arm64 3.0 MiB")
            && check.contains(SUMS),
        "{check}"
    );
}

#[test]
fn a_corrupt_asset_is_refused_deleted_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let release = Release::new(work.path(), 1 << 20, 1 << 20);
    let world = World::new(&release);
    // The archive served is not the one the release's list names: one byte differs.
    let mut corrupt = release.images.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    std::fs::write(world.www.join("releases").join(TAG).join(IMAGES), &corrupt).unwrap();
    let profile = world.profile("airgap.yaml");
    let out = world.dir().join("out");
    let result = world.prepare(&profile, &fixture("bookworm"), &out);
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("SHA-256 mismatch")
            && err.contains(&sha256(&release.images))
            && err.contains(&sha256(&corrupt))
            && err.contains("deleted"),
        "{err}"
    );
    let cached = files_in(&world.release_dir());
    assert!(
        !cached.iter().any(|n| n.starts_with(IMAGES)),
        "the corrupt download stayed: {cached:?}"
    );
    assert!(
        files_in(&out).iter().all(|n| !n.ends_with(".img")),
        "{:?}",
        files_in(&out)
    );
    // The verified binary stays for the next run, which downloads only the archive (and the
    // installer, never reached in the failed run).
    assert!(cached.contains(&BINARY.to_string()), "{cached:?}");
    std::fs::write(
        world.www.join("releases").join(TAG).join(IMAGES),
        &release.images,
    )
    .unwrap();
    let before = world.requested().len();
    let result = world.prepare(&profile, &fixture("bookworm"), &out);
    assert!(result.status.success(), "{}", stderr(&result));
    let after = world.requested();
    assert_eq!(
        after[before..],
        [
            format!("/releases/v1.33.5%2Bk3s1/{IMAGES}"),
            "/install.sh".to_string()
        ],
        "{after:?}"
    );
}

#[test]
fn a_boot_partition_too_small_names_the_sizes_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    // The fixtures' boot partition is 40 MiB; Bullseye's real one is 256 MiB, which the real
    // release's files overflow the same way.
    let release = Release::new(work.path(), 8 << 20, 40 << 20);
    let world = World::new(&release);
    let profile = world.profile("airgap.yaml");
    let out = world.dir().join("out");
    let result = world.prepare(&profile, &fixture("bullseye"), &out);
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("no room for the air-gap files")
            && err.contains("k3s-arm64 8.0 MiB")
            && err.contains("needed")
            && err.contains("free")
            && err.contains("256 MiB")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert!(
        files_in(&out).iter().all(|n| !n.ends_with(".img")),
        "{:?}",
        files_in(&out)
    );

    // patch downloads nothing and refuses, leaving the image as it was.
    let target = work.path().join("target.img");
    std::fs::copy(fixture("bookworm"), &target).unwrap();
    let before = sha256_file(&target);
    let result = output(
        world
            .pinode()
            .args(["patch", "--profile"])
            .arg(&profile)
            .arg(&target),
    );
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("cluster.airgap"),
        "{}",
        stderr(&result)
    );
    assert_eq!(sha256_file(&target), before);
}

#[test]
fn the_profile_is_checked_for_a_pinned_k3s_release() {
    let env = UserEnv::new();
    let head = "version: 1
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
nodes:
  - hostname: lab-1
    role: server
cluster:
  name: lab
  token_env: K3S_TOKEN
  airgap: true
";
    let cases = [
        ("channel", String::new(), "cluster.k3s.version"),
        (
            "microk8s",
            "  distribution: microk8s\n".to_string(),
            "only available for K3s",
        ),
        (
            "http",
            "  k3s:\n    version: v1.33.5+k3s1\n    release_url: http://example.org\n".to_string(),
            "cluster.k3s.release_url",
        ),
    ];
    for (name, rest, needle) in cases {
        let path = write_profile(
            env.dir.path(),
            &format!("{name}.yaml"),
            &format!("{head}{rest}"),
        );
        let out = output(env.pinode().args(["profile", "check"]).arg(&path));
        assert!(!out.status.success(), "{name}");
        let err = stderr(&out);
        assert!(
            err.contains(needle) && err.contains(&format!("{name}.yaml:")),
            "{name}: {err}"
        );
    }
}

/// An air-gap server prepared from a stand-in release (1 MiB binary, 1 MiB archive), its boot
/// partition's first-boot files copied into a scratch root, as the first stage finds them.
/// The work directory and the world (its HTTPS server) live as long as the caller keeps them;
/// the release is what the card must carry.
fn first_boot_root() -> (tempfile::TempDir, Release, World, ScratchRoot) {
    let work = tempfile::tempdir().unwrap();
    let release = Release::new(work.path(), 1 << 20, 1 << 20);
    let world = World::new(&release);
    let profile = world.profile("airgap.yaml");
    let out = world.dir().join("out");
    let result = world.prepare(&profile, &fixture("bookworm"), &out);
    assert!(result.status.success(), "{}", stderr(&result));
    let fat = common::extract_boot(&out.join("lab-1.img"), work.path());
    let root = ScratchRoot::new("/boot/firmware");
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-n", "-i"])
        .arg(&fat)
        .arg("::/pinode")
        .arg("::/firstrun.sh")
        .arg("::/cmdline.txt")
        .arg("::/userconf.txt")
        .arg(root.boot()));
    (work, release, world, root)
}

/// The first boot in a scratch root, from the prepared image's FAT: the files move off the
/// card, the installer runs with INSTALL_K3S_SKIP_DOWNLOAD=true and nothing is downloaded.
#[test]
fn first_boot_installs_k3s_from_the_card_and_empties_it() {
    if !root_or_skip("runs the first-boot scripts in a mount namespace") {
        return;
    }
    let (_work, release, _world, root) = first_boot_root();
    let script = root.boot().join("pinode/firstboot.sh");
    run(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(&script));
    // Nothing may be downloaded: a curl that is called fails and says so.
    root.stub("curl", "exit 7");
    root.stub(
        "getent",
        "case \"$1 $2\" in 'ahostsv4 '*.local) echo \"10.0.0.5 STREAM $2\"; exit 0 ;; esac\nexec /usr/bin/getent \"$@\"",
    );
    // /usr/local/bin of the scratch root, over the host's, in each run's namespace.
    std::fs::create_dir_all(root.path("usrlocalbin")).unwrap();
    let bind = format!(
        "mount --bind '{}' /usr/local/bin; ",
        root.path("usrlocalbin").display()
    );
    let first = root.run(&format!("{bind}sh /boot/firmware/firstrun.sh"));
    assert!(first.status.success(), "firstrun.sh: {}", stderr(&first));

    // Off the card at once: the FAT holds none of the files, nor their directory.
    assert!(!root.boot().join(AIRGAP_DIR).exists());
    let binary = root.path("usrlocalbin/k3s");
    assert_eq!(std::fs::read(&binary).unwrap(), release.binary);
    assert_eq!(mode(&binary), 0o755);
    let archive = root.path("varlib/rancher/k3s/agent/images").join(IMAGES);
    assert_eq!(std::fs::read(&archive).unwrap(), release.images);

    let second = root.run(&format!("{bind}/usr/local/lib/pinode/firstboot.sh run"));
    assert!(
        second.status.success(),
        "firstboot.sh run: {}",
        stderr(&second)
    );
    let env = std::fs::read_to_string(root.path("varlib/pinode-test/installer.env")).unwrap();
    assert!(env.contains("args=server\n"), "{env}");
    assert!(env.contains("INSTALL_K3S_SKIP_DOWNLOAD=true\n"), "{env}");
    assert!(
        env.contains("K3S_TOKEN_FILE=/etc/pinode/secrets/k3s-token\n"),
        "{env}"
    );
    assert!(!root.stub_log().contains("curl"), "{}", root.stub_log());
    assert!(
        root.path("varlib/pinode/firstboot.done").exists(),
        "{}",
        stderr(&second)
    );
}

/// A copy that fails in the first stage (here the air-gap binary's: its destination is
/// read-only, as a full or broken root file system would fail it) must not leave the token or
/// the CA keys on the FAT: the secrets are moved first, and a failure scrubs what is left
/// (the first stage never runs again).
#[test]
fn a_failing_first_stage_copy_leaves_no_secret_on_the_card() {
    if !root_or_skip("runs the first-boot scripts in a mount namespace") {
        return;
    }
    let (_work, _release, _world, root) = first_boot_root();
    let secrets = root.boot().join("pinode/secrets");
    let names: Vec<String> = std::fs::read_dir(&secrets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "k3s-token"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "k3s-ca-server-ca.key"),
        "{names:?}"
    );
    root.stub("curl", "exit 7");
    // The binary's destination is read-only: the real `install` fails there.
    std::fs::create_dir_all(root.path("usrlocalbin")).unwrap();
    let bind = format!(
        "mount --bind '{}' /usr/local/bin; mount -o remount,ro,bind /usr/local/bin; ",
        root.path("usrlocalbin").display()
    );
    let stage = root.run(&format!(
        "{bind}sh /boot/firmware/pinode/firstboot.sh install /boot/firmware"
    ));
    assert!(!stage.status.success(), "the copy did not fail");
    assert!(
        stderr(&stage).contains("/usr/local/bin/k3s"),
        "{}",
        stderr(&stage)
    );
    let left: Vec<_> = std::fs::read_dir(&secrets)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left on the FAT: {left:?}");
    for name in &names {
        let kept = root.path(&format!("etc/pinode/secrets/{name}"));
        assert_eq!(mode(&kept), 0o600, "{name}");
    }
    assert_eq!(mode(&root.path("etc/pinode/secrets")), 0o700);
}

/// `render` places no release files and downloads nothing, but says what prepare places.
#[test]
fn render_downloads_nothing_and_says_what_prepare_places() {
    let work = tempfile::tempdir().unwrap();
    let release = Release::new(work.path(), 1 << 20, 1 << 20);
    let world = World::new(&release);
    let profile = world.profile("airgap.yaml");
    let out = world.dir().join("render");
    let said = run(world
        .pinode()
        .args(["render", "--profile"])
        .arg(&profile)
        .args(["--generation", "bookworm", "--out-dir"])
        .arg(&out));
    assert!(
        said.contains("air-gap (placed in pinode/k3s/airgap/ by prepare and flash, not by render)")
            && said.contains("sizes known once prepare or flash downloaded them"),
        "{said}"
    );
    assert!(world.requested().is_empty(), "{:?}", world.requested());
    assert!(!out.join("boot").join(AIRGAP_DIR).exists());
    // The stage installs from the card: no installer URL, no curl.
    let stage = std::fs::read_to_string(out.join("boot/pinode/firstboot.sh")).unwrap();
    assert!(stage.contains("INSTALL_K3S_SKIP_DOWNLOAD=true"), "{stage}");
    assert!(!stage.contains("curl --") && !stage.contains("K3S_INSTALL_URL"));
}

/// `cache clean` deletes the release files nobody uses, and leaves alone a release a run is
/// using (its lock held shared, as `prepare` and `flash` hold it until the cards or images
/// are written), as it leaves busy images alone.
#[test]
fn cache_clean_leaves_a_release_in_use_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let releases = cache.join("releases/k3s");
    for tag in [TAG, "v1.32.9+k3s1"] {
        std::fs::create_dir_all(releases.join(tag)).unwrap();
        std::fs::write(releases.join(tag).join(BINARY), b"stand-in binary").unwrap();
    }
    std::fs::write(
        cache.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    let lock = std::fs::File::create(releases.join(format!("{TAG}.lock"))).unwrap();
    lock.lock_shared().unwrap();
    let out = output(
        common::pinode()
            .arg("--cache-dir")
            .arg(&cache)
            .args(["cache", "clean"]),
    );
    drop(lock);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        releases.join(TAG).join(BINARY).is_file(),
        "the release in use stays: {err}"
    );
    assert!(
        err.contains(&format!(
            "releases/k3s/{TAG}: in use by another pinode process"
        )),
        "{err}"
    );
    assert!(
        !releases.join("v1.32.9+k3s1").exists(),
        "the release nobody uses is deleted"
    );
}
