//! The wizard, driven through a pseudo-terminal as a person would: answers typed, arrow keys
//! for lists, invalid answers re-asked, Ctrl-C mid-way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use expectrl::Expect;
use expectrl::process::unix::{Signal, WaitStatus};
use expectrl::session::OsSession as Session;

use common::loopdev::{FakeSystem, card_in_tempdir};
use common::pty::{CLUSTER_DEFAULTS, absent, answer, answer_all, before, spawn, wizard_command};
use common::*;

const DOWN: &str = "\x1b[B";
const UP: &str = "\x1b[A";

/// A home with one SSH key, and a wizard in a terminal in `dir`.
fn wizard(dir: &Path) -> Session {
    wizard_with(dir, &[])
}

/// The wizard's last line: the command that follows the cluster's first boot.
const NEXT: &str = "next: boot the nodes, then follow them until they are Ready with: pinode status --profile pi-cluster.yaml --watch";

fn wizard_with(dir: &Path, env: &[(&str, &Path)]) -> Session {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_1}\n")).unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = wizard_command(&work, &home);
    cmd.env("TZ", "Europe/Berlin")
        .env("LANG", "de_DE.UTF-8")
        .env("PINODE_STATE_DIR", dir.join("state"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn(cmd)
}

fn work(dir: &Path) -> PathBuf {
    dir.join("work")
}

/// From the OS (the bookworm fixture, a local image) to the saved profile: defaults
/// everywhere but the servers' names (empty: the default) and the number of agents.
fn walk_with_local_image(s: &mut Session, servers: &str, agents: usize) {
    answer(s, "Cluster name", "\r");
    answer(s, "How many servers", "\r");
    answer(s, "Server hostnames", &format!("{servers}\r"));
    answer(s, "How many agents", &format!("{agents}\r"));
    if agents > 0 {
        answer(s, "Agent hostnames", "\r");
    }
    answer(s, "K3s channel or version", "\r");
    answer(s, "Operating system", &format!("{DOWN}\r"));
    answer(
        s,
        "Image file",
        &format!("{}\r", fixture("bookworm").display()),
    );
    answer(s, "User name", "\r");
    answer(s, "SSH public key", "\r");
    answer(s, "Also set a password", "n\r");
    answer(s, "Connect to Wi-Fi", "n\r");
    answer(s, "Time zone", "\r");
    answer(s, "Locale", "\r");
    answer(s, "Keyboard layout", "gb\r");
    answer(s, "Install a GitLab Runner", "n\r");
    answer(s, "Save the profile as", "\r");
}

fn exit_code(s: &mut Session) -> i32 {
    match s.get_process_mut().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("wizard ended with {other:?}"),
    }
}

#[test]
fn walks_from_start_to_a_saved_profile_re_asking_bad_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wizard(dir.path());
    answer(&mut s, "Cluster name", "lab\r");
    answer(&mut s, "How many servers", "\r");
    answer(&mut s, "Server hostnames", "bad host\r");
    answer(&mut s, "not a valid hostname", "cp\r");
    answer(&mut s, "How many agents", "\r");
    answer(&mut s, "Agent hostnames", "worker-[1-3]\r");
    answer(&mut s, "3 host(s), 2 wanted", "worker-[1-2]\r");
    answer(&mut s, "K3s channel or version", "v1.33.5+k3s1\r");
    answer(&mut s, "Operating system", "\r");
    // The invoker is root here (no sudo): no default name, so type it.
    answer(&mut s, "User name", "alice\r");
    // Not the key found in ~/.ssh: paste another, after a bad one.
    answer(&mut s, "SSH public key", &format!("{DOWN}\r"));
    answer(&mut s, "Public key", "not a key\r");
    answer(
        &mut s,
        "is not an SSH public key type",
        &format!("{KEY_2}\r"),
    );
    answer(&mut s, "Also set a password", "y\r");
    answer(&mut s, "Password", "s3cret-pw\r");
    answer(&mut s, "Again", "s3cret-pw\r");
    answer(&mut s, "Connect to Wi-Fi", "y\r");
    answer(&mut s, "Wi-Fi name", "Lab Net\r");
    answer(&mut s, "Where should secrets", "\r");
    answer(&mut s, "Wi-Fi passphrase", "correct horse\r");
    answer(&mut s, "Again", "correct horse\r");
    answer(&mut s, "Wi-Fi country", "XX\r");
    answer(&mut s, "not an ISO 3166", "DE\r");
    answer(&mut s, "Time zone", "\r");
    answer(&mut s, "Locale", "\r");
    answer(&mut s, "Keyboard layout", "de\r");
    answer(&mut s, "Install a GitLab Runner", "y\r");
    answer(&mut s, "GitLab URL", "\r");
    answer(&mut s, "Runner authentication token", "GR1348941oldstyle\r");
    answer(&mut s, "registration token", "glrt-t3st-t0ken-value\r");
    answer(&mut s, "Again", "glrt-t3st-t0ken-value\r");
    answer(&mut s, "Save the profile as", "\r");
    answer(&mut s, "What now?", &format!("{DOWN}{DOWN}\r"));
    s.expect("later: sudo pinode flash").unwrap();
    s.expect(NEXT.replace("pi-cluster.yaml", "lab.yaml"))
        .unwrap();
    assert_eq!(exit_code(&mut s), 0);

    let profile = work(dir.path()).join("lab.yaml");
    let text = std::fs::read_to_string(&profile).unwrap();
    let hash_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("password_hash:"))
        .unwrap();
    let hash: String = serde_json::from_str(
        hash_line
            .trim_start()
            .trim_start_matches("password_hash:")
            .split("   #")
            .next()
            .unwrap()
            .trim(),
    )
    .unwrap();
    // The hash is of the password typed, by an independent implementation.
    // The salt, with its `rounds=N$` prefix, which openssl accepts as part of it.
    let salt = hash.trim_start_matches("$6$").rsplit_once('$').unwrap().0;
    let again = run(Command::new("openssl").args(["passwd", "-6", "-salt", salt, "s3cret-pw"]));
    assert_eq!(again.trim(), hash);
    let expected = EXPECTED.replace("KEY_2", KEY_2).replace("HASH", &hash);
    assert_eq!(text, expected, "the saved profile:\n{text}");
    assert!(!text.contains("correct horse") && !text.contains("glrt-t3st"));

    for (file, value) in [
        ("lab.wifi-psk", "correct horse\n"),
        ("lab.runner-token", "glrt-t3st-t0ken-value\n"),
    ] {
        let path = work(dir.path()).join(file);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), value);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let check = run(pinode()
        .env("PINODE_STATE_DIR", dir.path().join("state"))
        .args(["profile", "check"])
        .arg(&profile));
    assert!(check.contains("cp"), "{check}");
    assert!(check.contains("worker-2"), "{check}");
}

const EXPECTED: &str = r#"# A pinode profile, written by `pinode wizard`.
# Check it:        pinode profile check THIS-FILE
# Flash cards:     sudo pinode flash --profile THIS-FILE
# Image files:     pinode prepare --profile THIS-FILE --out-dir images
# The format: README.md, "The profile"; `pinode profile schema` prints its JSON Schema.
version: 1

os:
  image: "raspios-lite-arm64"   # a catalog alias (pinode os list) or an image file
  init: auto   # firstrun (Bullseye, Bookworm) or cloud-init (Trixie), from the image

defaults:
  user:
    name: "alice"
    ssh_authorized_keys:
      - "KEY_2"
    password_hash: "HASH"   # sha512-crypt; the password itself is not kept
    sudo: nopasswd
  ssh:
    enabled: true
  wifi:
    ssid: "Lab Net"
    psk_file: "lab.wifi-psk"   # the passphrase: mode 0600, next to this profile
    country: "DE"
  timezone: "Europe/Berlin"
  locale: "de_DE.UTF-8"
  keyboard: "de"

cluster:
  name: "lab"
  # The join token: generated on first use and kept (0600) in pinode's state directory;
  # set token_env or token_file to bring your own.
  k3s:
    version: "v1.33.5+k3s1"
  runner:
    kind: gitlab
    url: "https://gitlab.com"
    token_file: "lab.runner-token"   # the glrt- token: mode 0600, next to this profile

nodes:
  - hostname: "cp"   # the first server founds the cluster
    role: server
  - hostname: "worker-[1-2]"
    role: agent
"#;

#[test]
fn ctrl_c_mid_way_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wizard(dir.path());
    answer(&mut s, "Cluster name", "lab\r");
    answer(&mut s, "How many servers", "\r");
    answer(&mut s, "Server hostnames", "\r");
    answer(&mut s, "How many agents", "0\r");
    answer(&mut s, "K3s channel or version", "\r");
    answer(&mut s, "Operating system", "\r");
    answer(&mut s, "User name", "\r");
    answer(&mut s, "SSH public key", "\r");
    answer(&mut s, "Also set a password", "n\r");
    answer(&mut s, "Connect to Wi-Fi", "y\r");
    answer(&mut s, "Wi-Fi name", "Lab Net\r");
    answer(&mut s, "Where should secrets", "\r");
    answer(&mut s, "Wi-Fi passphrase", "correct horse\r");
    answer(&mut s, "Again", "\x03");
    match s.get_process_mut().wait().unwrap() {
        WaitStatus::Signaled(_, signal, _) => {
            assert_eq!(signal, Signal::SIGINT)
        }
        other => panic!("expected death by SIGINT, got {other:?}"),
    }
    let left: Vec<_> = std::fs::read_dir(work(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_second_run_prepares_verified_images_from_a_local_image() {
    let dir = tempfile::tempdir().unwrap();
    // Run as if under sudo: the saved profile goes back to the invoking user.
    let nobody = Path::new("65534");
    let mut s = wizard_with(dir.path(), &[("SUDO_UID", nobody), ("SUDO_GID", nobody)]);
    walk_with_local_image(&mut s, "", 1);
    answer(&mut s, "What now?", &format!("{DOWN}\r"));
    answer(&mut s, "Write the images to", "\r");
    s.expect("pi-cluster-worker: ").unwrap();
    s.expect(NEXT).unwrap();
    assert_eq!(exit_code(&mut s), 0);

    let images = work(dir.path()).join("images");
    for host in ["pi-cluster-server", "pi-cluster-worker"] {
        assert!(images.join(format!("{host}.img")).is_file(), "{host}");
    }
    run(Command::new("sha256sum")
        .arg("-c")
        .arg("pi-cluster-server.img.sha256")
        .arg("pi-cluster-worker.img.sha256")
        .current_dir(&images));
    let v = inspect_json(images.join("pi-cluster-worker.img"));
    assert_eq!(v["boot"]["hostname"], "pi-cluster-worker");
    let profile_path = work(dir.path()).join("pi-cluster.yaml");
    if is_root() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&profile_path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "owned by the sudo user"
        );
    }
    let profile = std::fs::read_to_string(&profile_path).unwrap();
    assert!(profile.contains(&format!(
        "image: {:?}",
        std::fs::canonicalize(fixture("bookworm")).unwrap().display().to_string()
    )));
}

#[test]
fn without_a_terminal_it_points_to_the_other_commands() {
    for args in [&["wizard"][..], &[][..]] {
        let out = output(pinode().args(args).stdin(std::process::Stdio::null()));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs a terminal"), "{err}");
        assert!(
            err.contains("pinode profile check") && err.contains("pinode prepare"),
            "{err}"
        );
    }
}

#[test]
fn flashes_from_the_device_picker_which_explains_refused_disks() {
    let Some((dir, card)) = card_in_tempdir() else {
        return;
    };
    // A machine with the card in a reader, and a system disk.
    let fake = FakeSystem::new(dir.path(), "22 1 8:241 / / rw - ext4 /dev/sdz1 rw\n");
    fake.disk(&card.name(), &card.devno(), 100 << 20, &[]).disk(
        "sdz",
        "8:240",
        64 << 30,
        &[("sdz1", "8:241")],
    );
    let mut s = wizard_with(dir.path(), &[("PINODE_SYSTEM_ROOT", &fake.root)]);
    walk_with_local_image(&mut s, "solo", 0);
    answer(&mut s, "What now?", "\r");
    // The system disk is listed with its verdict, the loop card hidden; the cursor is not on
    // the refused disk but on "Look again", so Enter lists the disks again.
    s.expect("Which card?").unwrap();
    s.expect("refused: system disk (holds /)").unwrap();
    let listed = before(&mut s, "Show loop devices (1 hidden");
    assert!(
        !listed.contains(&card.name()),
        "loop card listed: {listed:?}"
    );
    s.expect("Cancel").unwrap();
    s.send("\r").unwrap();
    let again = before(&mut s, "Cancel");
    assert!(!again.contains("cannot be written"), "{again:?}");
    s.send(format!("{UP}\r")).unwrap();
    // Now listed, first, with the cursor on it; the system disk below it is explained when
    // chosen, then the question comes again.
    s.expect("Which card?").unwrap();
    answer(
        &mut s,
        "refused: system disk (holds /)",
        &format!("{DOWN}\r"),
    );
    s.expect("/dev/sdz cannot be written here: system disk")
        .unwrap();
    answer(&mut s, "Which card?", "\r");
    answer(&mut s, "[y/N]", "y\r");
    // Allocation-aware: the blocks in use of the 60 MiB fixture.
    s.expect("of 60.0 MiB (the blocks in use) written to")
        .unwrap();
    s.expect(NEXT).unwrap();
    assert_eq!(exit_code(&mut s), 0);
    let v = inspect_json(&card.dev);
    assert_eq!(v["boot"]["hostname"], "solo");
}

#[test]
fn offers_the_catalog_with_lite_64_bit_first() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |name: &str, series: &str, file: &str| {
        serde_json::json!({
            "name": name,
            "description": "test entry",
            "url": format!("https://downloads.raspberrypi.com/{series}/images/{series}-2025-10-02/{file}"),
            "extract_size": 1 << 20,
            "extract_sha256": "0".repeat(64),
            "image_download_size": 1 << 19,
            "release_date": "2025-10-01",
            "init_format": "cloudinit-rpi",
        })
    };
    let catalog = dir.path().join("os_list.json");
    std::fs::write(
        &catalog,
        serde_json::to_vec(&serde_json::json!({ "os_list": [
            entry("Raspberry Pi OS (64-bit)", "raspios_arm64", "2025-10-01-raspios-trixie-arm64.img.xz"),
            { "name": "Raspberry Pi OS (other)", "subitems": [
                entry("Raspberry Pi OS Lite (32-bit)", "raspios_lite_armhf", "2025-10-01-raspios-trixie-armhf-lite.img.xz"),
                entry("Raspberry Pi OS Lite (64-bit)", "raspios_lite_arm64", "2025-10-01-raspios-trixie-arm64-lite.img.xz"),
            ]},
        ]}))
        .unwrap(),
    )
    .unwrap();
    let mut s = wizard_with(dir.path(), &[("PINODE_CATALOG", &catalog)]);
    answer_all(&mut s, &CLUSTER_DEFAULTS);
    s.expect("Operating system").unwrap();
    // Lite 64-bit first and chosen by default; the others follow.
    answer(
        &mut s,
        "Raspberry Pi OS Lite (64-bit) (2025-10-01): raspios-lite-arm64",
        "",
    );
    s.expect("raspios-arm64").unwrap();
    s.expect("A local image file").unwrap();
    s.send("\x03").unwrap();
    let _ = s.get_process_mut().wait();
}

/// The GitLab URL follows the rule `profile check` applies: https, or http with the same
/// warning (the wizard used to refuse http outright while the profile accepted it).
#[test]
fn the_gitlab_url_rule_is_the_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wizard(dir.path());
    answer(&mut s, "Cluster name", "\r");
    answer(&mut s, "How many servers", "\r");
    answer(&mut s, "Server hostnames", "solo\r");
    answer(&mut s, "How many agents", "0\r");
    answer(&mut s, "K3s channel or version", "\r");
    answer(&mut s, "Operating system", "\r");
    answer(&mut s, "User name", "alice\r");
    answer(&mut s, "SSH public key", "\r");
    answer(&mut s, "Also set a password", "n\r");
    answer(&mut s, "Connect to Wi-Fi", "n\r");
    answer(&mut s, "Time zone", "\r");
    answer(&mut s, "Locale", "\r");
    answer(&mut s, "Keyboard layout", "gb\r");
    answer(&mut s, "Install a GitLab Runner", "y\r");
    // Erase the default, then a URL that is not one.
    let erase = "\x7f".repeat("https://gitlab.com".len());
    answer(&mut s, "GitLab URL", &format!("{erase}ftp://gitlab.lan\r"));
    answer(
        &mut s,
        "must be the GitLab instance URL",
        &format!(
            "{}http://gitlab.lan\r",
            "\x7f".repeat("ftp://gitlab.lan".len())
        ),
    );
    s.expect("warning: plain http: the runner token travels unencrypted; use https")
        .unwrap();
    answer(&mut s, "Where should secrets", "\r");
    answer(
        &mut s,
        "Runner authentication token",
        "glrt-t3st-t0ken-value\r",
    );
    answer(&mut s, "Again", "glrt-t3st-t0ken-value\r");
    answer(&mut s, "Save the profile as", "\r");
    answer(&mut s, "What now?", &format!("{DOWN}{DOWN}\r"));
    s.expect("later: sudo pinode flash").unwrap();
    s.expect(NEXT).unwrap();
    assert_eq!(exit_code(&mut s), 0);

    let profile = work(dir.path()).join("pi-cluster.yaml");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("    url: \"http://gitlab.lan\"\n"), "{text}");
    let out = output(
        pinode()
            .env("PINODE_STATE_DIR", dir.path().join("state"))
            .args(["profile", "check"])
            .arg(&profile),
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cluster.runner.url: plain http: the runner token travels unencrypted"),
        "{err}"
    );
}

/// Cancel at the card picker names the command that flashes the saved profile later. The
/// cursor starts on "Look again" when no listed disk can be written (here only the system
/// disk): Enter lists them again rather than choosing a refused disk.
#[test]
fn cancelling_the_card_picker_says_how_to_flash_later() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSystem::new(dir.path(), "22 1 8:241 / / rw - ext4 /dev/sdz1 rw\n");
    fake.disk("sdz", "8:240", 64 << 30, &[("sdz1", "8:241")]);
    let mut s = wizard_with(dir.path(), &[("PINODE_SYSTEM_ROOT", &fake.root)]);
    walk_with_local_image(&mut s, "solo", 0);
    answer(&mut s, "What now?", "\r");
    s.expect("Which card?").unwrap();
    s.expect("Cancel").unwrap();
    s.send("\r").unwrap();
    let again = before(&mut s, "Cancel");
    assert!(!again.contains("cannot be written"), "{again:?}");
    s.send(format!("{DOWN}\r")).unwrap();
    s.expect(
        "not flashed; to flash later: sudo pinode flash --profile pi-cluster.yaml --device \
         /dev/sdX (the card's name as `pinode devices` lists it)",
    )
    .unwrap();
    s.expect(NEXT).unwrap();
    assert_eq!(exit_code(&mut s), 0);
    assert!(work(dir.path()).join("pi-cluster.yaml").is_file());
}

/// A yes/no question is answered by Enter, not by the letter alone: `n` shows nothing new,
/// Enter answers, and that Enter does not also answer the next question. An even number of
/// servers is warned about at once, and can be changed.
#[test]
fn yes_no_waits_for_enter_and_an_even_server_count_is_warned_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = wizard(dir.path());
    let second = std::time::Duration::from_secs(1);
    answer(&mut s, "Cluster name", "\r");
    answer(&mut s, "How many servers", "2\r");
    s.expect(
        "warning: 2 servers: embedded etcd needs a majority (2 of 2) to keep running, so an \
         even count tolerates no more failures than 1 server would; use an odd number",
    )
    .unwrap();
    // Before the next question.
    answer(&mut s, "Keep 2 servers?", "n");
    absent(&mut s, "How many servers", second);
    s.send("\r").unwrap();
    // Asked again, offering 3; the Enter that answered "Keep" did not answer this.
    s.expect("How many servers").unwrap();
    absent(&mut s, "Server hostnames", second);
    s.send("\r").unwrap();
    answer(&mut s, "pi-cluster-server-[1-3]", "\r");
    answer(&mut s, "How many agents", "0\r");
    answer(&mut s, "K3s channel or version", "\r");
    answer(&mut s, "Operating system", &format!("{DOWN}\r"));
    answer(
        &mut s,
        "Image file",
        &format!("{}\r", fixture("bookworm").display()),
    );
    answer(&mut s, "User name", "alice\r");
    answer(&mut s, "SSH public key", "\r");
    answer(&mut s, "Also set a password", "n");
    absent(&mut s, "Connect to Wi-Fi", second);
    s.send("\r").unwrap();
    s.expect("Connect to Wi-Fi").unwrap();
    absent(&mut s, "Time zone", second);
    s.send("y\r").unwrap();
    answer(&mut s, "Wi-Fi name", "\x03");
    let _ = s.get_process_mut().wait();
}
