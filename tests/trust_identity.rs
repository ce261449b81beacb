//! Issue 13, items 1, 2, 3 and 10 against the real binary: the identity pinode works for
//! under sudo, secrets' file modes, redaction of secrets and credentials in messages, and the
//! kept cluster token. Tests that need root (a second user, loop devices, a tmpfs) skip with
//! a note when not root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::http::{Behaviour, Server};
use common::loopdev::Loop;
use common::*;

/// Throw-away users (one per test that needs one: nextest runs tests in parallel).
const USER: &str = "pinode-trust-test";
const OTHER_USER: &str = "pinode-trust-test2";

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
    // A person's machine, not CI: under CI no cluster token is generated.
    c.env("CI", "false");
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
        let mut c = as_uid(self.uid, self.gid, cmd);
        c.env("HOME", &self.home).env("USER", self.name);
        c
    }

    /// The environment `sudo` gives a command the user runs with it.
    fn sudo_env(&self, cmd: &mut Command) {
        sudo_env(cmd, self.name, self.uid, self.gid);
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

/// `base` (`pinode()` or `bare_pinode()`) rendering `profile` for bookworm into `out_dir`.
fn render(mut base: Command, profile: &Path, out_dir: &Path) -> Command {
    base.args(["render", "--generation", "bookworm", "--profile"])
        .arg(profile)
        .arg("--out-dir")
        .arg(out_dir);
    base
}

/// One node, `n1`; `role` (a `    role: ...` line) or empty.
fn n1(role: &str) -> String {
    format!("nodes:\n  - hostname: n1\n{role}")
}

/// `dir/p.yaml`: alice with `KEY_1` and `user` lines more, node `n1`.
fn n1_profile(dir: &Path, os: &str, user: &str) -> PathBuf {
    write_profile(dir, "p.yaml", &profile_yaml(os, user, &n1("")))
}

/// `dir/p.yaml`: alice whose key is in `file`, node `n1`.
fn key_file_profile(dir: &Path, file: &str) -> PathBuf {
    write_profile(
        dir,
        "p.yaml",
        &format!(
            "version: 1\n\
             defaults:\n  user:\n    name: alice\n    ssh_authorized_keys_file: {file}\n\
             {}",
            n1("")
        ),
    )
}

/// The catalog's alias for the bookworm fixture (see [`serve_catalog`]), as `os:` lines.
const OS_ALIAS: &str = "os:\n  image: raspios-lite-arm64\n";

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
    if !root_or_skip("needs root (a second user and a loop device)") {
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
    // The full token: the kept CA's hash, then the kept secret.
    let ca = user
        .home
        .join(".local/state/pinode/clusters/pair/k3s-ca/server-ca.crt");
    let full = format!("K10{}::server:{}", sha256_file(&ca), kept_token.trim());
    assert_eq!(token_of(&card_boot).trim(), full);
    assert_eq!(token_of(&image_boot).trim(), full);
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
    if !root_or_skip("sudo's environment means running as root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = n1_profile(dir.path(), "", "    password_env: PINODE_TRUST_UNSET_PW\n");
    let mut render = render(bare_pinode(), &p, &dir.path().join("out"));
    render.env_remove("PINODE_TRUST_UNSET_PW");
    sudo_env(&mut render, "someone", 4242, 4242);
    let out = output(&mut render);
    only_error_line(&out, &["PINODE_TRUST_UNSET_PW", "sudo -E", "_file"]);
}

/// Item 2: `patch` leaves an image file 0600 (it now holds secrets), saying so.
#[test]
fn patch_makes_a_readable_image_private() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_fixture("bookworm", dir.path());
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = n1_profile(dir.path(), "", &format!("    password_hash: \"{HASH}\"\n"));
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
    if !root_or_skip("needs root (a second user)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let user = TestUser::create(OTHER_USER, &dir.path().join("home"));
    let image = copy_fixture("bookworm", dir.path());
    // root's image, which everyone may read and write (e.g. a shared scratch folder).
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = sha256_file(&image);
    let p = n1_profile(dir.path(), "", "");
    let mut patch = bare_pinode();
    patch.arg("patch").arg(&image).arg("--profile").arg(&p);
    let out = output(&mut user.runs(&patch));
    let line = only_error_line(&out, &["another user", "0666"]);
    assert!(line.starts_with("error: "), "{line}");
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
    let p = n1_profile(dir.path(), "", &format!("    password_hash: \"{HASH}\"\n"));
    let trace = dir.path().join("trace");
    let render = render(pinode(), &p, &out_dir);
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
        let p = key_file_profile(dir.path(), file);
        let out = output(&mut render(pinode(), &p, &dir.path().join("out")));
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
        &profile_yaml(
            &format!(
                "os:\n  image: \"https://olivia:s3cretpw@127.0.0.1:9/raw.img?token=tok3nvalue\"\n  sha256: {}\n",
                "ab".repeat(32)
            ),
            "",
            &n1(""),
        ),
    );
    let by_alias = write_profile(
        dir.path(),
        "alias.yaml",
        &profile_yaml(OS_ALIAS, "", &n1("")),
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
        &profile_yaml("", "", &format!("cluster:\n  name: race\nnodes:\n{nodes}")),
    );
    let state = dir.path().join("state");
    let children: Vec<_> = (1..=8)
        .map(|i| {
            render(pinode(), &p, &dir.path().join(format!("out-{i}")))
                // Not CI: under CI no token is generated (see ci_refuses_to_generate_a_cluster_token).
                .env("CI", "false")
                .env("PINODE_STATE_DIR", &state)
                .args(["--node", &format!("n{i}")])
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
    // One CA kept by one of them, pinned by every node's token.
    let ca = state.join("clusters/race/k3s-ca/server-ca.crt");
    let kept = format!("K10{}::server:{}", sha256_file(&ca), kept.trim());
    for i in 1..=8 {
        let got = std::fs::read_to_string(
            dir.path()
                .join(format!("out-{i}/boot/pinode/secrets/k3s-token")),
        )
        .unwrap();
        assert_eq!(got.trim(), kept.trim(), "node n{i} got another token");
    }
    // Nothing but the token, the CA, the host keys and known_hosts in its directory (no
    // temporary left behind).
    let mut names: Vec<_> = std::fs::read_dir(state.join("clusters/race"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["host-keys", "k3s-ca", "known_hosts", "token"]);
    // Every node's two lines, none lost to a concurrent rewrite.
    let known = std::fs::read_to_string(state.join("clusters/race/known_hosts")).unwrap();
    for i in 1..=8 {
        for name in [format!("n{i}"), format!("n{i}.local")] {
            assert!(
                known
                    .lines()
                    .any(|l| l.starts_with(&format!("{name} ssh-ed25519 "))),
                "{name} is missing from known_hosts:\n{known}"
            );
        }
    }
    let keys = std::fs::read_dir(state.join("clusters/race/host-keys"))
        .unwrap()
        .count();
    assert_eq!(keys, 8, "one key per node, no temporary left");
}

/// Item 10: a full disk leaves no empty "token" behind, and an empty one left by an older
/// pinode is an error naming the file and what to do, never taken as the token.
#[test]
fn a_full_disk_leaves_no_empty_kept_token() {
    if !root_or_skip("a full tmpfs needs root") {
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
        &profile_yaml(
            "",
            "",
            &format!("cluster:\n  name: full\n{}", n1("    role: server\n")),
        ),
    );
    let render =
        || output(render(pinode(), &p, &dir.path().join("out")).env("PINODE_STATE_DIR", &state));
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

/// One test user per test (nextest runs tests in parallel).
const OUT_USER: &str = "pinode-trust-test3";

/// The owner of `path` (not following a symlink).
fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// Follow-up 1: under sudo, everything pinode creates for the invoking user is theirs: an
/// explicit `--cache-dir` it creates (and what goes into it), the out dirs of `prepare` and
/// `render` it creates, and every output in them (image, .sha256, .bmap, compressed image,
/// rendered files). What existed before (an out dir of root's, a file in it, a cache that
/// is root's) keeps its owner.
#[test]
fn under_sudo_outputs_and_an_explicit_cache_are_the_users() {
    if !root_or_skip("needs root (a second user)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let user = TestUser::create(OUT_USER, &dir.path().join("home"));
    let me = (user.uid, user.gid);
    let root = (0, 0);
    let server = Server::start();
    let catalog = serve_catalog(&server);
    let profile = n1_profile(dir.path(), OS_ALIAS, "");
    // Things that exist before, root's: an out dir with a file in it, and a shared cache.
    let existing_out = dir.path().join("existing-out");
    std::fs::create_dir_all(&existing_out).unwrap();
    std::fs::write(existing_out.join("notes.txt"), "root's").unwrap();
    let shared_cache = dir.path().join("shared-cache");
    std::fs::create_dir_all(&shared_cache).unwrap();
    let sudo = |args: &[&str], cache: &Path, out: &Path| {
        let mut c = bare_pinode();
        c.env("PINODE_CATALOG", &catalog)
            .arg("--cache-dir")
            .arg(cache)
            .args(args)
            .arg("--profile")
            .arg(&profile)
            .arg("--out-dir")
            .arg(out);
        user.sudo_env(&mut c);
        run(&mut c);
    };

    // New cache, new (nested) out dir: all of it is the user's.
    let new_cache = dir.path().join("new/cache");
    let new_out = dir.path().join("made/out");
    sudo(
        &["prepare", "--bmap", "--compress", "zst"],
        &new_cache,
        &new_out,
    );
    let outputs = walk(&dir.path().join("made"));
    for name in ["n1.img.zst", "n1.img.zst.sha256", "n1.img.bmap"] {
        assert!(outputs.contains(&new_out.join(name)), "{name} missing");
    }
    let cache = walk(&dir.path().join("new"));
    assert!(cache.iter().any(|p| p.ends_with("image.img")), "{cache:?}");
    for path in outputs.iter().chain(&cache) {
        assert_eq!(owner(path), me, "{} is not the user's", path.display());
    }

    // render into a new dir: the dir, boot/ and every file are the user's.
    let rendered = dir.path().join("rendered");
    sudo(&["render"], &new_cache, &rendered);
    let files = walk(&rendered);
    assert!(
        files.contains(&rendered.join("boot/firstrun.sh")),
        "{files:?}"
    );
    for path in &files {
        assert_eq!(owner(path), me, "{} is not the user's", path.display());
    }

    // Into what existed, root's: the outputs are the user's, the rest keeps its owner.
    sudo(&["prepare"], &shared_cache, &existing_out);
    assert_eq!(owner(&existing_out), root);
    assert_eq!(owner(&existing_out.join("notes.txt")), root);
    assert_eq!(owner(&existing_out.join("n1.img")), me);
    assert_eq!(owner(&existing_out.join("n1.img.sha256")), me);
    for path in walk(&shared_cache) {
        assert_eq!(owner(&path), root, "{} was given away", path.display());
    }
}

/// A user known to the system only through NSS (a systemd userdb drop-in record, read by
/// nss-systemd), not in /etc/passwd; removed when dropped.
struct NssUser {
    name: &'static str,
    uid: u32,
    home: PathBuf,
    records: Vec<PathBuf>,
}

impl NssUser {
    /// `None` (with a note) when this machine's NSS does not read userdb drop-ins.
    fn create(name: &'static str, uid: u32, home: &Path) -> Option<NssUser> {
        let dir = Path::new("/run/userdb");
        std::fs::create_dir_all(dir).ok()?;
        let record = dir.join(format!("{name}.user"));
        let by_uid = dir.join(format!("{uid}.user"));
        std::fs::write(
            &record,
            format!(
                "{{\"userName\":\"{name}\",\"uid\":{uid},\"gid\":{uid},\
                 \"homeDirectory\":\"{}\",\"disposition\":\"regular\"}}\n",
                home.display()
            ),
        )
        .ok()?;
        let _ = std::fs::remove_file(&by_uid);
        std::os::unix::fs::symlink(record.file_name().unwrap(), &by_uid).ok()?;
        let user = NssUser {
            name,
            uid,
            home: home.to_path_buf(),
            records: vec![by_uid, record],
        };
        let found = output(Command::new("getent").args(["passwd", &uid.to_string()]));
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        if !String::from_utf8_lossy(&found.stdout).starts_with(name)
            || passwd.contains(&format!(":{uid}:"))
        {
            eprintln!("skipped: NSS here does not read /run/userdb (no nss-systemd?)");
            return None;
        }
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_2}\n")).unwrap();
        run(Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(home));
        Some(user)
    }
}

impl Drop for NssUser {
    fn drop(&mut self) {
        for record in &self.records {
            let _ = std::fs::remove_file(record);
        }
    }
}

/// Follow-up 2: the invoking user's account comes from the system's user database (NSS),
/// not from a parse of /etc/passwd: under sudo, a user known only through NSS (here a
/// systemd userdb record) gets `~/` in the profile expanded to their home.
#[test]
fn a_user_known_only_through_nss_is_found() {
    if !root_or_skip("needs root (a user record and sudo's environment)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let Some(user) = NssUser::create("pinode-trust-nss", 61_342, &dir.path().join("home")) else {
        return;
    };
    let profile = key_file_profile(dir.path(), "~/.ssh/id_ed25519.pub");
    let out_dir = dir.path().join("out");
    let mut render = render(bare_pinode(), &profile, &out_dir);
    sudo_env(&mut render, user.name, user.uid, user.uid);
    let out = output(&mut render);
    assert!(out.status.success(), "{}", both(&out));
    let firstrun = std::fs::read_to_string(out_dir.join("boot/firstrun.sh")).unwrap();
    assert!(firstrun.contains(KEY_2), "the NSS user's key is missing");
    assert_eq!(
        owner(&out_dir.join("boot/firstrun.sh")),
        (user.uid, user.uid)
    );
    assert!(user.home.join(".ssh").is_dir());
}

/// Follow-up 3: a kept token pinode cannot read is not "damaged": the error says what it
/// is, and does not advise deleting it (which would split the cluster).
#[test]
fn an_unreadable_kept_token_is_not_called_damaged() {
    if !root_or_skip("needs root (to run as another user)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let uid = 61_343u32;
    let token = dir.path().join("state/clusters/c/token");
    std::fs::create_dir_all(token.parent().unwrap()).unwrap();
    let value = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    std::fs::write(&token, value).unwrap();
    // Private and the runner's, but not readable by them (mode 000).
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::os::unix::fs::chown(&token, Some(uid), Some(uid)).unwrap();
    // The CA kept beside it (a fixture CA, as tests/reproducible.rs keeps one): without it,
    // pinode refuses a cluster prepared before without a CA before it reads the token.
    let ca = dir.path().join("state/clusters/c/k3s-ca");
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&ca, Some(uid), Some(uid)).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reproducible/k3s-ca/solo");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        let to = ca.join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&to, Some(uid), Some(uid)).unwrap();
    }
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(uid), Some(uid)).unwrap();
    let profile = write_profile(
        dir.path(),
        "p.yaml",
        &profile_yaml(
            "",
            "",
            &format!("cluster:\n  name: c\n{}", n1("    role: server\n")),
        ),
    );
    let mut render = render(bare_pinode(), &profile, &out_dir);
    render.env("PINODE_STATE_DIR", dir.path().join("state"));
    let out = output(as_uid(uid, uid, &render).env("HOME", dir.path()));
    let err = only_error_line(
        &out,
        &[&token.to_string_lossy(), "cannot read", "ermission denied"],
    );
    assert!(
        !err.contains("run pinode again to generate"),
        "an unreadable token is not damaged: {err}"
    );
    assert!(!err.contains(value.trim()), "{err}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::read_to_string(&token).unwrap(), value);
}

/// One test user per test (nextest runs tests in parallel).
const WIZARD_USER: &str = "pinode-trust-test4";

/// Follow-up 4: the wizard's default node user name is the invoking user's account name
/// (the Invoker's), not `$USER`/`$LOGNAME`, which may name someone else.
#[test]
fn the_wizard_offers_the_invokers_name() {
    use expectrl::Expect;
    if !root_or_skip("needs root (a second user)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let user = TestUser::create(WIZARD_USER, &dir.path().join("home"));
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(user.uid), Some(user.gid)).unwrap();
    let mut wizard = bare_pinode();
    wizard
        .arg("wizard")
        .env("TERM", "xterm")
        .env("TZ", "Europe/Berlin")
        .env_remove("CI");
    let mut cmd = user.runs(&wizard);
    // A stale environment naming someone else.
    cmd.env("USER", "alice")
        .env("LOGNAME", "alice")
        .current_dir(&work);
    let mut s = common::pty::spawn(cmd);
    common::pty::answer_all(&mut s, &common::pty::CLUSTER_DEFAULTS);
    common::pty::answer(&mut s, "Operating system", "\r");
    s.expect("User name").unwrap();
    s.set_expect_timeout(Some(std::time::Duration::from_secs(10)));
    let offered = s.expect(WIZARD_USER);
    let _ = s.send("\x03");
    offered.unwrap_or_else(|e| panic!("the wizard did not offer {WIZARD_USER}: {e}"));
}

/// `~/` when the invoking user's home is unknown (an account the user database does not
/// know, no `$HOME`) is an error, never a folder named `~` beside the profile.
#[test]
fn tilde_without_a_known_home_is_an_error() {
    if !root_or_skip("needs root (to run as an unknown uid)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let uid = 61_344u32;
    // A decoy where a literal `~` folder beside the profile would be.
    std::fs::create_dir_all(dir.path().join("~/.ssh")).unwrap();
    std::fs::write(
        dir.path().join("~/.ssh/id_ed25519.pub"),
        format!("{KEY_2}\n"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(uid), Some(uid)).unwrap();
    let profile = key_file_profile(dir.path(), "~/.ssh/id_ed25519.pub");
    let render = render(bare_pinode(), &profile, &out_dir);
    let out = output(as_uid(uid, uid, &render).env_remove("HOME"));
    assert!(!out.status.success(), "the decoy was used: {}", both(&out));
    only_error_line(
        &out,
        &["ssh_authorized_keys_file", "home of the invoking user"],
    );
}

/// One test user per test (nextest runs tests in parallel).
const LINK_USER: &str = "pinode-trust-test5";

/// Giving the cache back under sudo changes the owner of what is in the cache only: a hard
/// link to a file of root's planted in the user's cache, and a symlink to one, leave those
/// files root's. (The user's own `--cache-dir`, which already is theirs, gets the rest.)
#[test]
fn giving_the_cache_back_follows_no_planted_link() {
    if !root_or_skip("needs root (a second user)") {
        return;
    }
    let dir = a_temp_dir_others_can_enter();
    let user = TestUser::create(LINK_USER, &dir.path().join("home"));
    let server = Server::start();
    let catalog = serve_catalog(&server);
    let profile = n1_profile(dir.path(), OS_ALIAS, "");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let victims = dir.path().join("victims");
    std::fs::create_dir_all(&victims).unwrap();
    std::fs::write(victims.join("hard"), "root's").unwrap();
    std::fs::write(victims.join("soft"), "root's").unwrap();
    std::fs::hard_link(victims.join("hard"), cache.join("planted-hard")).unwrap();
    std::os::unix::fs::symlink(victims.join("soft"), cache.join("planted-soft")).unwrap();
    std::os::unix::fs::symlink(&victims, cache.join("planted-dir")).unwrap();
    std::os::unix::fs::chown(&cache, Some(user.uid), Some(user.gid)).unwrap();

    let mut prepare = bare_pinode();
    prepare
        .env("PINODE_CATALOG", &catalog)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["prepare", "--profile"])
        .arg(&profile)
        .arg("--out-dir")
        .arg(dir.path().join("out"));
    user.sudo_env(&mut prepare);
    run(&mut prepare);

    for victim in [&victims, &victims.join("hard"), &victims.join("soft")] {
        assert_eq!(owner(victim), (0, 0), "{} was given away", victim.display());
    }
    let image = walk(&cache)
        .into_iter()
        .find(|p| p.ends_with("image.img"))
        .expect("the base image in the cache");
    assert_eq!(owner(&image), (user.uid, user.gid));
}
