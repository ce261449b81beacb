//! Values that would fail on the Pi are refused by `profile check`, judged against the data
//! files in `data/` (K3s channels, XKB layouts, glibc locales), not by their look; and the
//! example profile's SSH key, which nobody can log in with, is flagged.

mod common;

use common::*;
use std::path::Path;

/// A one-server cluster profile with `defaults` lines and a `k3s` block added.
fn cluster(key: &str, defaults: &str, k3s: &str) -> String {
    format!(
        "version: 1\n\
         defaults:\n  user:\n    name: alice\n    ssh_authorized_keys: [\"{key}\"]\n{defaults}\
         cluster:\n  name: lab\n  k3s:\n{k3s}\
         nodes:\n  - hostname: cp\n    role: server\n"
    )
}

fn check(dir: &Path, text: &str) -> std::process::Output {
    let path = write_profile(dir, "p.yaml", text);
    // Not under CI: there a cluster without a token gets a warning (CI must not generate one),
    // which is not what these tests look at.
    // A state directory of the test's own: never the user's (a cluster of the same name kept
    // there by another run would change what profile check says).
    output(
        pinode()
            .env_remove("CI")
            .env("PINODE_STATE_DIR", dir.join("state"))
            .args(["profile", "check"])
            .arg(path),
    )
}

#[test]
fn channel_keyboard_and_locale_problems_all_come_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = cluster(
        KEY_2,
        "  keyboard: uk\n  locale: en_UK.UTF-8\n",
        "    channel: \"1.33\"\n",
    );
    let out = check(dir.path(), &text);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 3, "{err}");
    let p = dir.path().join("p.yaml");
    let p = p.display();
    for (line, col, field, says) in [
        (6, 13, "defaults.keyboard", "did you mean gb?"),
        (7, 11, "defaults.locale", "did you mean en_GB.UTF-8?"),
        (11, 14, "cluster.k3s.channel", "start with 'v': v1.33"),
    ] {
        let want = format!("error: {p}:{line}:{col}: {field}: ");
        assert!(
            errors
                .iter()
                .any(|l| l.starts_with(&want) && l.contains(says)),
            "no {want}…{says} in:\n{err}"
        );
    }
    assert!(out.stdout.is_empty(), "nothing is printed as valid");
}

#[test]
fn listed_values_pass_and_unlisted_ones_of_the_right_shape_fail() {
    let dir = tempfile::tempdir().unwrap();
    for (defaults, k3s) in [
        (
            "  keyboard: gb\n  locale: en_GB.UTF-8\n",
            "    channel: v1.33\n",
        ),
        (
            "  keyboard: latam\n  locale: de_DE@euro\n",
            "    channel: testing\n",
        ),
        (
            "  keyboard: de\n  locale: C.UTF-8\n",
            "    version: v1.30.0-rc2+k3s1\n",
        ),
    ] {
        let out = check(dir.path(), &cluster(KEY_2, defaults, k3s));
        assert!(out.status.success(), "{defaults}{k3s}: {}", stderr(&out));
        assert!(!stderr(&out).contains("warning:"), "{}", stderr(&out));
    }
    // Each of these has the look the old rules accepted; none exists.
    for (defaults, k3s, field) in [
        ("  keyboard: xx\n", "", "defaults.keyboard"),
        ("  locale: xx_YY.UTF-8\n", "", "defaults.locale"),
        ("", "    channel: v1.15\n", "cluster.k3s.channel"),
        ("", "    channel: v1.99\n", "cluster.k3s.channel"),
        ("", "    version: v1.33.5\n", "cluster.k3s.version"),
    ] {
        let out = check(dir.path(), &cluster(KEY_2, defaults, k3s));
        one_error_line(&out, &[field]);
    }
}

#[test]
fn the_example_key_is_flagged_and_a_real_key_is_not() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/example.yaml");
    let state = tempfile::tempdir().unwrap();
    let out = output(
        pinode()
            .env("PINODE_STATE_DIR", state.path())
            .args(["profile", "check"])
            .arg(&example),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "a warning, not an error: {err}");
    let want = format!(
        "warning: {}:14:9: defaults.user.ssh_authorized_keys[0]: this key cannot log in",
        example.display()
    );
    assert!(
        err.lines().any(|l| l.starts_with(&want)),
        "{want}\nin:\n{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &cluster(KEY_2, "", ""));
    assert!(out.status.success() && !stderr(&out).contains("cannot log in"));
    // A placeholder body: a well-formed ed25519 key whose 32 bytes are all zero.
    let zeros = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} me", "A".repeat(43));
    let out = check(dir.path(), &cluster(&zeros, "", ""));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot log in"), "{}", stderr(&out));
}

/// The committed lists are what the system's own files say, where this machine has them
/// (the tests above need only the committed files).
#[test]
fn data_files_match_the_system_lists_when_present() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names = |path: &str| -> Vec<String> {
        std::fs::read_to_string(root.join(path))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    for file in [
        "data/k3s/channels.txt",
        "data/xkb/layouts.txt",
        "data/glibc/locales.txt",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.starts_with('#') && text.contains("Source") && text.contains("2026-"),
            "{file} needs a header with its source and date"
        );
    }
    if let Ok(base) = std::fs::read_to_string("/usr/share/X11/xkb/rules/base.lst") {
        let layouts: Vec<String> = base
            .split("! layout")
            .nth(1)
            .and_then(|s| s.split("\n!").next())
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| *n != "custom")
            .map(str::to_string)
            .collect();
        assert_eq!(names("data/xkb/layouts.txt"), layouts);
    }
    if let Ok(supported) = std::fs::read_to_string("/usr/share/i18n/SUPPORTED") {
        let locales: Vec<String> = supported
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        assert_eq!(names("data/glibc/locales.txt"), locales);
    }
}

/// The wizard asks with the same rules: each wrong value is explained (with the same
/// suggestion `profile check` gives) and asked again, and the fixed one is saved.
#[test]
fn the_wizard_refuses_the_same_values_and_suggests_the_same_fixes() {
    use common::pty::{answer, spawn, wizard_command};
    use expectrl::Expect;

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_1}\n")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = wizard_command(&work, &home);
    cmd.env("TZ", "Europe/Berlin")
        .env("LANG", "de_DE.UTF-8")
        .env("PINODE_STATE_DIR", dir.path().join("state"));
    let mut s = spawn(cmd);
    let down = "\x1b[B";
    answer(&mut s, "Cluster name", "\r");
    answer(&mut s, "How many servers", "\r");
    answer(&mut s, "Server hostnames", "\r");
    answer(&mut s, "How many agents", "0\r");
    answer(&mut s, "K3s channel or version", "1.33\r");
    answer(&mut s, "minor channels start with 'v': v1.33", "v1.33.5\r");
    answer(&mut s, "K3s releases carry a build suffix", "v1.33\r");
    answer(&mut s, "Operating system", &format!("{down}\r"));
    answer(
        &mut s,
        "Image file",
        &format!("{}\r", fixture("bookworm").display()),
    );
    answer(&mut s, "User name", "alice\r");
    answer(&mut s, "SSH public key", "\r");
    answer(&mut s, "Also set a password", "n\r");
    answer(&mut s, "Connect to Wi-Fi", "n\r");
    answer(&mut s, "Time zone", "\r");
    answer(&mut s, "Locale", "en_UK.UTF-8\r");
    answer(&mut s, "did you mean en_GB.UTF-8?", "en_GB.UTF-8\r");
    answer(&mut s, "Keyboard layout", "uk\r");
    answer(&mut s, "did you mean gb?", "gb\r");
    answer(&mut s, "Install a GitLab Runner", "n\r");
    answer(&mut s, "Save the profile as", "\r");
    answer(&mut s, "What now?", &format!("{down}{down}\r"));
    s.expect("later: sudo pinode flash").unwrap();

    let text = std::fs::read_to_string(work.join("pi-cluster.yaml")).unwrap();
    for line in [
        "channel: \"v1.33\"",
        "locale: \"en_GB.UTF-8\"",
        "keyboard: \"gb\"",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}
