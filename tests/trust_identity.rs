//! Issue 13, items 1, 2, 3 and 10 against the real binary: the identity pinode works for
//! under sudo, secrets' file modes, redaction of secrets and credentials in messages, and the
//! kept cluster token. Tests that need root (a second user, loop devices, a tmpfs) skip with
//! a note when not root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::http::{Behaviour, Server};
use common::loopdev::Loop;
use common::*;

/// Throw-away users (one per test that needs one: nextest runs tests in parallel).
const USER: &str = "pinode-trust-test";
const OTHER_USER: &str = "pinode-trust-test2";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// pinode with none of the per-user overrides: the defaults are what is under test.
fn bare_pinode() -> Command {
    let mut c = pinode();
    for var in [
        "PINODE_CACHE_DIR",
        "PINODE_STATE_DIR",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
        "SUDO_USER",
        "SUDO_UID",
        "SUDO_GID",
    ] {
        c.env_remove(var);
    }
    c
}

/// A throw-away local user with its home in a temporary directory, removed when dropped.
struct TestUser {
    name: &'static str,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl TestUser {
    fn create(name: &'static str, home: &Path) -> TestUser {
        // A leftover of an interrupted run is replaced.
        let _ = output(Command::new("userdel").arg(name));
        run(Command::new("useradd")
            .args(["-M", "-U", "-s", "/bin/sh", "-d"])
            .arg(home)
            .arg(name));
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_2}\n")).unwrap();
        run(Command::new("chown")
            .args(["-R", &format!("{name}:{name}")])
            .arg(home));
        let id = |flag: &str| -> u32 {
            run(Command::new("id").arg(flag).arg(name))
                .trim()
                .parse()
                .unwrap()
        };
        TestUser {
            name,
            uid: id("-u"),
            gid: id("-g"),
            home: home.to_path_buf(),
        }
    }

    /// `cmd` run as this user (with its own HOME, as a login would give).
    fn runs(&self, cmd: &Command) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear()
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("USER", self.name);
        c
    }

    /// The environment `sudo` gives a command the user runs with it.
    fn sudo_env(&self, cmd: &mut Command) {
        cmd.env("SUDO_USER", self.name)
            .env("SUDO_UID", self.uid.to_string())
            .env("SUDO_GID", self.gid.to_string())
            .env("HOME", "/root")
            .env("USER", "root");
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = output(Command::new("userdel").arg(self.name));
    }
}

/// Every entry under `root` (itself included).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    if std::fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(root).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

/// A loopback catalog offering the bookworm fixture as `raspios-lite-arm64`, its URL and the
/// catalog's with `user:password@` and `?token=`: returns the catalog's URL.
fn serve_catalog(server: &Server) -> String {
    let image = std::fs::read(fixture("bookworm")).unwrap();
    let sha = sha256(&image);
    let size = image.len();
    let authed = |path: &str| {
        server
            .url(path)
            .replacen("http://", "http://olivia:s3cretpw@", 1)
    };
    // Aliases come from the path, as on the real catalog.
    let path = "/raspios_lite_arm64/images/raspios_lite_arm64-2025-05-13/\
                2025-05-13-raspios-bookworm-arm64-lite.img?token=tok3nvalue";
    server.serve(path, image, Behaviour::Normal);
    let catalog = format!(
        "{{\"os_list\": [{{\"name\": \"Raspberry Pi OS Lite (64-bit)\", \"url\": \"{}\", \
         \"extract_size\": {size}, \"extract_sha256\": \"{sha}\", \"image_download_size\": {size}, \
         \"release_date\": \"2025-05-13\", \"init_format\": \"systemd\", \
         \"devices\": [\"pi5-64bit\"]}}]}}",
        authed(path)
    );
    server.serve(
        "/os_list.json?token=tok3nvalue",
        catalog.into_bytes(),
        Behaviour::Normal,
    );
    authed("/os_list.json?token=tok3nvalue")
}

fn a_temp_dir_others_can_enter() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Item 1: `sudo pinode flash` of one node and `pinode prepare` of the other, by the same
/// person, with no token configured and the key as `~/.ssh/id_ed25519.pub`: both nodes get
/// the same kept token and that person's key, and what pinode made in their home is theirs.
#[test]
fn sudo_flash_and_plain_prepare_share_the_token_and_the_users_key() {
    if !is_root() {
        eprintln!("skipped: needs root (a second user and a loop device)");
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let user = TestUser::create(USER, &dir.path().join("home"));
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // The base image from a catalog, so that the default cache is used too.
    let image_len = std::fs::metadata(fixture("bookworm")).unwrap().len();
    let server = Server::start();
    let catalog = serve_catalog(&server);
    let profile = write_profile(
        &work,
        "pair.yaml",
        "version: 1\n\
             os:\n  image: raspios-lite-arm64\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub\n\
             cluster:\n  name: pair\n\
             nodes:\n  - hostname: pair-1\n    role: server\n  - hostname: pair-2\n    role: agent\n",
    );
    run(Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(&work));

    // As root, with the environment sudo gives.
    let card = Loop::new(dir.path(), "card", 100 << 20).unwrap();
    let mut flash = bare_pinode();
    flash
        .env("PINODE_CATALOG", &catalog)
        .args([
            "flash",
            "--yes",
            "--allow-non-removable",
            "--node",
            "pair-1",
        ])
        .arg("--profile")
        .arg(&profile)
        .arg("--device")
        .arg(&card.dev);
    user.sudo_env(&mut flash);
    run(&mut flash);

    // As the user, no sudo.
    let mut prepare = bare_pinode();
    prepare
        .env("PINODE_CATALOG", &catalog)
        .args(["prepare", "--node", "pair-2", "--profile"])
        .arg(&profile)
        .arg("--out-dir")
        .arg(work.join("out"));
    run(&mut user.runs(&prepare));

    let copy = dir.path().join("card.img");
    std::fs::write(&copy, card.read(image_len)).unwrap();
    std::fs::create_dir_all(dir.path().join("card-boot")).unwrap();
    std::fs::create_dir_all(dir.path().join("image-boot")).unwrap();
    let card_boot = extract_boot(&copy, &dir.path().join("card-boot"));
    let image_boot = extract_boot(&work.join("out/pair-2.img"), &dir.path().join("image-boot"));
    let token_of = |boot: &Path| {
        String::from_utf8(mread(boot, "pinode/secrets/k3s-token").expect("a k3s token")).unwrap()
    };
    let kept = user.home.join(".local/state/pinode/clusters/pair/token");
    let kept_token = std::fs::read_to_string(&kept).expect("the token kept in the user's state");
    assert_eq!(token_of(&card_boot).trim(), kept_token.trim());
    assert_eq!(token_of(&image_boot).trim(), kept_token.trim());
    for boot in [&card_boot, &image_boot] {
        let firstrun = String::from_utf8(mread(boot, "firstrun.sh").unwrap()).unwrap();
        assert!(firstrun.contains(KEY_2), "the user's key is missing");
    }

    // Everything pinode created in the user's home is the user's.
    let mut created = walk(&user.home.join(".cache"));
    created.extend(walk(&user.home.join(".local")));
    assert!(created.iter().any(|p| p.ends_with("pinode/images")));
    assert!(created.contains(&kept));
    for path in &created {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (user.uid, user.gid),
            "{} is not the user's",
            path.display()
        );
    }
    assert_eq!(mode(&kept), 0o600);
}

/// Item 1: a `*_env` secret that sudo's environment reset removed: the error names the
/// variable and says how to pass it.
#[test]
fn an_env_secret_missing_under_sudo_says_how_to_pass_it() {
    if !is_root() {
        eprintln!("skipped: sudo's environment means running as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n    password_env: PINODE_TRUST_UNSET_PW\n\
             nodes:\n  - hostname: n1\n"
        ),
    );
    let out = output(
        bare_pinode()
            .env_remove("PINODE_TRUST_UNSET_PW")
            .env("SUDO_USER", "someone")
            .env("SUDO_UID", "4242")
            .env("SUDO_GID", "4242")
            .env("HOME", "/root")
            .args(["render", "--generation", "bookworm", "--profile"])
            .arg(&p)
            .arg("--out-dir")
            .arg(dir.path().join("out")),
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("PINODE_TRUST_UNSET_PW") && err.contains("sudo -E") && err.contains("_file"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Item 2: `patch` leaves an image file 0600 (it now holds secrets), saying so.
#[test]
fn patch_makes_a_readable_image_private() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n    password_hash: \"{HASH}\"\n\
             nodes:\n  - hostname: n1\n"
        ),
    );
    let out = output(pinode().arg("patch").arg(&image).arg("--profile").arg(&p));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&image), 0o600);
    let err = stderr(&out);
    assert!(err.contains("0644") && err.contains("0600"), "{err}");
}

/// Item 2: an image file that others can read and that pinode cannot make private (another
/// user's) is refused before anything is written, with the reason.
#[test]
fn patch_refuses_a_readable_image_it_cannot_make_private() {
    if !is_root() {
        eprintln!("skipped: needs root (a second user)");
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let user = TestUser::create(OTHER_USER, &dir.path().join("home"));
    let image = copy_fixture("bookworm", dir.path());
    // root's image, which everyone may read and write (e.g. a shared scratch folder).
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = sha256_file(&image);
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             nodes:\n  - hostname: n1\n"
        ),
    );
    let mut patch = bare_pinode();
    patch.arg("patch").arg(&image).arg("--profile").arg(&p);
    let out = output(&mut user.runs(&patch));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.starts_with("error: ") && err.contains("another user") && err.contains("0666"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(sha256_file(&image), before, "the image was changed");
    assert_eq!(mode(&image), 0o666);
}

/// Item 2: render sets each file's mode on the temporary file before the rename, never by
/// path after it. Structurally: a symlink planted at an output name is replaced, its target
/// untouched; and no chmod by path of anything in the output folder happens at all (strace).
#[test]
fn render_sets_modes_before_the_rename_never_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(out_dir.join("boot")).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "mine").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&victim, out_dir.join("README.txt")).unwrap();
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n    password_hash: \"{HASH}\"\n\
             nodes:\n  - hostname: n1\n"
        ),
    );
    let trace = dir.path().join("trace");
    let mut render = pinode();
    render
        .args(["render", "--generation", "bookworm", "--profile"])
        .arg(&p)
        .arg("--out-dir")
        .arg(&out_dir);
    let traced = output(
        Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=chmod,fchmodat", "-o"])
            .arg(&trace)
            .arg(render.get_program())
            .args(render.get_args())
            .envs(render.get_envs().filter_map(|(k, v)| v.map(|v| (k, v)))),
    );
    assert!(traced.status.success(), "{}", stderr(&traced));
    let log = std::fs::read_to_string(&trace).unwrap();
    let by_path: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&*out_dir.to_string_lossy()))
        .collect();
    assert!(by_path.is_empty(), "chmod by path: {by_path:?}");

    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine");
    assert_eq!(mode(&victim), 0o600);
    let readme = std::fs::symlink_metadata(out_dir.join("README.txt")).unwrap();
    assert!(readme.is_file());
    assert_eq!(mode(&out_dir.join("README.txt")), 0o644);
    assert_eq!(mode(&out_dir.join("boot/userconf.txt")), 0o600);
}

/// Item 3: a key file that is not a public key (a private key, a token file) is refused
/// without quoting any of it.
#[test]
fn a_wrong_key_file_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "glpat-SUPERSECRETVALUE0123456789abcdef";
    std::fs::write(dir.path().join("token.txt"), format!("{secret}\n")).unwrap();
    std::fs::write(
        dir.path().join("two.txt"),
        format!("{secret} AAAAsecondword\n"),
    )
    .unwrap();
    for file in ["token.txt", "two.txt"] {
        let p = write_profile(
            dir.path(),
            "p.yaml",
            &format!(
                "version: 1\n\
                 defaults:\n  user:\n    name: alice\n    ssh_authorized_keys_file: {file}\n\
                 nodes:\n  - hostname: n1\n"
            ),
        );
        let out = output(
            pinode()
                .args(["render", "--generation", "bookworm", "--profile"])
                .arg(&p)
                .arg("--out-dir")
                .arg(dir.path().join("out")),
        );
        assert!(!out.status.success());
        let text = both(&out);
        assert!(text.contains(file), "{text}");
        assert!(!text.contains("SUPERSECRET"), "{text}");
        assert!(!text.contains("AAAAsecond"), "{text}");
    }
}

/// Item 3: URLs with `user:password@` and a query string are redacted wherever pinode prints
/// them: `os list` (and `--json`), `download` (and `--json`), `profile check`, `prepare --json`.
#[test]
fn credentials_and_queries_in_urls_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let catalog = serve_catalog(&server);
    let cache = dir.path().join("cache");
    let with = |args: &[&str]| {
        let mut c = pinode();
        c.env("PINODE_CACHE_DIR", &cache)
            .env("PINODE_CATALOG", &catalog)
            .args(args);
        c
    };
    // os.image must be https: a URL that is only checked, never fetched.
    let by_url = write_profile(
        dir.path(),
        "url.yaml",
        &format!(
            "version: 1\n\
             os:\n  image: \"https://olivia:s3cretpw@127.0.0.1:9/raw.img?token=tok3nvalue\"\n  sha256: {}\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             nodes:\n  - hostname: n1\n",
            "ab".repeat(32)
        ),
    );
    let by_alias = write_profile(
        dir.path(),
        "alias.yaml",
        &format!(
            "version: 1\n\
             os:\n  image: raspios-lite-arm64\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             nodes:\n  - hostname: n1\n"
        ),
    );
    let u = by_url.to_str().unwrap();
    let p = by_alias.to_str().unwrap();
    let out_dir = dir.path().join("out");
    let o = out_dir.to_str().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["os", "list"],
        vec!["os", "list", "--json"],
        vec!["download", "--os", "raspios-lite-arm64"],
        vec!["download", "--os", "raspios-lite-arm64", "--json"],
        vec!["download", "--profile", p, "--json"],
        vec!["profile", "check", u],
        vec!["prepare", "--profile", p, "--out-dir", o, "--json"],
        // Errors that name the catalog.
        vec!["download", "--os", "raspios-nosuch-arm64"],
        vec!["--offline", "os", "list", "--cache-dir", "/nonexistent"],
    ];
    for args in runs {
        let out = output(&mut with(&args));
        let text = both(&out);
        let should_fail = args.contains(&"raspios-nosuch-arm64") || args.contains(&"--offline");
        assert_eq!(out.status.success(), !should_fail, "{args:?}: {text}");
        assert!(
            text.contains("127.0.0.1") || !should_fail,
            "{args:?}: {text}"
        );
        for secret in ["s3cretpw", "tok3nvalue", "olivia"] {
            assert!(!text.contains(secret), "{args:?} printed {secret}:\n{text}");
        }
    }
}

/// Item 10: concurrent first uses of the kept token agree on one token.
#[test]
fn concurrent_first_uses_agree_on_one_kept_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = String::new();
    for i in 1..=8 {
        let role = if i == 1 { "server" } else { "agent" };
        nodes.push_str(&format!("  - hostname: n{i}\n    role: {role}\n"));
    }
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             cluster:\n  name: race\n\
             nodes:\n{nodes}"
        ),
    );
    let state = dir.path().join("state");
    let children: Vec<_> = (1..=8)
        .map(|i| {
            pinode()
                .env("PINODE_STATE_DIR", &state)
                .args(["render", "--generation", "bookworm", "--profile"])
                .arg(&p)
                .args(["--node", &format!("n{i}"), "--out-dir"])
                .arg(dir.path().join(format!("out-{i}")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let kept = std::fs::read_to_string(state.join("clusters/race/token")).unwrap();
    assert_eq!(kept.trim().len(), 64);
    for i in 1..=8 {
        let got = std::fs::read_to_string(
            dir.path()
                .join(format!("out-{i}/boot/pinode/secrets/k3s-token")),
        )
        .unwrap();
        assert_eq!(got.trim(), kept.trim(), "node n{i} got another token");
    }
    // Nothing but the token in its directory (no temporary left behind).
    let names: Vec<_> = std::fs::read_dir(state.join("clusters/race"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["token"]);
}

/// Item 10: a full disk leaves no empty "token" behind, and an empty one left by an older
/// pinode is an error naming the file and what to do, never taken as the token.
#[test]
fn a_full_disk_leaves_no_empty_kept_token() {
    if !is_root() {
        eprintln!("skipped: a full tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "pinode-trust"])
        .arg(&state));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = output(Command::new("umount").arg(&self.0));
        }
    }
    let _unmount = Unmount(state.clone());
    std::fs::create_dir_all(state.join("clusters/full")).unwrap();
    // Fill it.
    let filler = std::fs::File::create(state.join("filler")).unwrap();
    {
        use std::io::Write;
        let mut f = &filler;
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let p = write_profile(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{KEY_1}\"]\n\
             cluster:\n  name: full\n\
             nodes:\n  - hostname: n1\n    role: server\n"
        ),
    );
    let render = || {
        output(
            pinode()
                .env("PINODE_STATE_DIR", &state)
                .args(["render", "--generation", "bookworm", "--profile"])
                .arg(&p)
                .arg("--out-dir")
                .arg(dir.path().join("out")),
        )
    };
    let out = render();
    assert!(!out.status.success());
    let token = state.join("clusters/full/token");
    assert!(!token.exists(), "an empty token file was left");
    assert_eq!(
        std::fs::read_dir(state.join("clusters/full"))
            .unwrap()
            .count(),
        0,
        "a temporary file was left"
    );

    // An empty token left by an older pinode is an error, with what to do.
    drop(filler);
    std::fs::remove_file(state.join("filler")).unwrap();
    std::fs::write(&token, "").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = render();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&*token.to_string_lossy()) && err.contains("delete"),
        "{err}"
    );
}
