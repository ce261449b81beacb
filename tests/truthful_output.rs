//! Output that tells the truth (issue 15): a CI run that would split a cluster is refused,
//! checksum files name files that exist, errors speak of the flags the user typed, `inspect`
//! reads compressed images, and every argument explains itself in `--help`.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `prepare` of the single-node profile (no token_env/token_file: the token would be
/// generated) with its state directory in `dir`.
fn prepare_single_node(dir: &Path, ci: &str) -> std::process::Output {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_1}\n")).unwrap();
    output(
        pinode()
            .env("CI", ci)
            .env("HOME", &home)
            .env("PINODE_STATE_DIR", dir.join("state"))
            .env("GITLAB_RUNNER_TOKEN", "glrt-truthful-0123456789")
            .args(["prepare", "--profile"])
            .arg(repo().join("profiles/single-node.yaml"))
            .arg("--image")
            .arg(fixture("trixie"))
            .arg("--out-dir")
            .arg(dir.join("out")),
    )
}

/// Under CI, a cluster token is never generated: the error says why and how to pass one.
#[test]
fn ci_refuses_to_generate_a_cluster_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = prepare_single_node(dir.path(), "true");
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let line = one_error_line(
        &out,
        &[
            "single-node.yaml",
            "cluster",
            "CI",
            "throw-away",
            "token_env",
        ],
    );
    assert!(line.contains("never join"), "{line}");
    assert!(
        !dir.path().join("state/clusters/solo/token").exists(),
        "a token was generated"
    );
    assert!(
        !dir.path().join("out").exists(),
        "prepare left an output folder behind"
    );

    // `profile check` under CI does not generate a token either, and does not complain.
    let check = output(
        pinode()
            .env("HOME", dir.path().join("home"))
            .env("PINODE_STATE_DIR", dir.path().join("state"))
            .args(["profile", "check"])
            .arg(repo().join("profiles/single-node.yaml")),
    );
    assert!(check.status.success(), "{}", both(&check));
}

/// A token kept from an earlier run (not generated now) is fine under CI; without CI the
/// token is generated and kept as before.
#[test]
fn ci_uses_a_kept_token() {
    let dir = tempfile::tempdir().unwrap();
    let first = prepare_single_node(dir.path(), "false");
    assert!(first.status.success(), "{}", both(&first));
    assert!(
        stderr(&first).contains("generated the K3s token"),
        "{}",
        both(&first)
    );
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let again = prepare_single_node(dir.path(), "true");
    assert!(again.status.success(), "{}", both(&again));
}

/// `prepare` of a two-node profile into `out` with `extra` arguments.
fn prepare_two(dir: &Path, image: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let profile = write_profile(
        dir,
        "two.yaml",
        &profile_yaml("", "", "nodes:\n  - hostname: n1\n  - hostname: n2\n"),
    );
    output(
        pinode()
            .args(["prepare", "--profile"])
            .arg(profile)
            .arg("--image")
            .arg(image)
            .arg("--out-dir")
            .arg(out)
            .args(extra),
    )
}

/// Every checksum file names a file that is there: `sha256sum -c` of every `.sha256` in
/// the output folder passes, whatever `--compress` says (and with `--bmap`).
#[test]
fn sha256sum_check_passes_for_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    for compress in ["none", "xz", "zst"] {
        let out = dir.path().join(format!("out-{compress}"));
        let run_ = prepare_two(
            dir.path(),
            &fixture("bookworm"),
            &out,
            &["--compress", compress, "--bmap"],
        );
        assert!(run_.status.success(), "{}", both(&run_));
        let sums: Vec<PathBuf> = walk(&out)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "sha256"))
            .collect();
        assert_eq!(sums.len(), 2, "{compress}: {sums:?}");
        let check = std::process::Command::new("sha256sum")
            .arg("-c")
            .args(sums.iter().map(|p| p.file_name().unwrap()))
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(check.status.success(), "{compress}: {}", both(&check));
    }
}

/// A failed `prepare` removes the (nested) output folders it made, but never a folder that
/// was there before.
#[test]
fn a_failed_prepare_removes_only_the_empty_folders_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("made/out");
    let failed = prepare_two(dir.path(), Path::new("/nonexistent.img"), &out, &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    assert!(!dir.path().join("made").exists(), "left {}", out.display());

    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let failed = prepare_two(dir.path(), Path::new("/nonexistent.img"), &existing, &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    assert!(existing.is_dir(), "removed a folder it did not make");
}

/// `render --init cloud-init` of an image without cloud-init: the error speaks of `--init`,
/// the flag the user typed, not of the profile's `os.init`.
#[test]
fn render_init_errors_speak_of_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(
        dir.path(),
        "p.yaml",
        &profile_yaml("", "", "nodes:\n  - hostname: n1\n"),
    );
    let out = output(
        pinode()
            .args(["render", "--init", "cloud-init", "--profile"])
            .arg(&profile)
            .arg("--image")
            .arg(fixture("bookworm"))
            .arg("--out-dir")
            .arg(dir.path().join("out")),
    );
    let line = one_error_line(&out, &["no cloud-init", "--init firstrun"]);
    assert!(!line.contains("os.init"), "{line}");
}

/// One unit: sizes are printed through `pinode::ui::size` (binary), the only place with a
/// decimal figure (a card's capacity "as sold"). A decimal division or indicatif's decimal
/// `{bytes}` anywhere else in the sources brings MB back next to MiB.
#[test]
fn sizes_have_one_unit() {
    let mut offenders = Vec::new();
    for path in walk(&repo().join("src")) {
        if path.ends_with("ui/size.rs") || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let decimal = [
                "/ 1e9",
                "/ 1e6",
                "{bytes}/",
                "{total_bytes}",
                "{bytes_per_sec}",
                "\" MB",
                "\" GB",
                " MB/s",
            ];
            if decimal.iter().any(|d| line.contains(d)) {
                offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "decimal sizes:\n{}",
        offenders.join("\n")
    );
}

/// `inspect` reads its own compressed fixture and `.img.zst` / `.img.gz` copies of an image,
/// reporting what it reports for the raw image, and leaves no temporary file behind.
#[test]
fn inspect_reads_compressed_images() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let inspect = |path: &Path| -> serde_json::Value {
        let out = output(
            pinode()
                .env("TMPDIR", &tmp)
                .args(["inspect", "--json"])
                .arg(path),
        );
        assert!(out.status.success(), "{}: {}", path.display(), both(&out));
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_object_mut().unwrap().remove("path");
        v
    };
    let xz = repo().join("fixtures/bookworm-lite.img.xz");
    let raw = dir.path().join("raw.img");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "xz -dc '{0}' > '{1}' && zstd -q -k '{1}' -o '{1}.zst' && gzip -k '{1}'",
            xz.display(),
            raw.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let expected = inspect(&raw);
    assert_eq!(expected["boot_partition"]["label"], "bootfs", "{expected}");
    for compressed in [
        xz,
        raw.with_extension("img.zst"),
        raw.with_extension("img.gz"),
    ] {
        assert_eq!(inspect(&compressed), expected, "{}", compressed.display());
    }
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// `--help` of each command explains every option on its line (the short help puts the text
/// beside the flag), with the global options under their own heading.
#[test]
fn help_describes_every_option() {
    for cmd in [
        &["prepare"][..],
        &["render"],
        &["flash"],
        &["patch"],
        &["inspect"],
        &["download"],
        &["profile", "check"],
    ] {
        let out = output(pinode().args(cmd).arg("-h"));
        assert!(out.status.success(), "{cmd:?}: {}", both(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("\nGlobal options:\n"), "{cmd:?}:\n{text}");
        let global = text.split("\nGlobal options:\n").nth(1).unwrap_or("");
        assert!(
            global.contains("--offline") && global.contains("--verbose"),
            "{text}"
        );
        for line in text.lines() {
            let flag = line.trim_start();
            if flag.starts_with('-') || flag.starts_with('<') {
                // "  -p, --profile <PROFILE>  The profile …": the text after the column gap.
                let described = flag.split("  ").filter(|s| !s.trim().is_empty()).count() > 1;
                assert!(described, "{cmd:?}: no description: {line:?}\n{text}");
            }
        }
    }
}

/// `-v` shows what it promises: why the OS generation was chosen, and (render) each file.
#[test]
fn verbose_says_why_and_what() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(
        dir.path(),
        "p.yaml",
        &profile_yaml("", "", "nodes:\n  - hostname: n1\n"),
    );
    let render = run(pinode()
        .args(["-v", "render", "--profile"])
        .arg(&profile)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(dir.path().join("r")));
    assert!(render.contains("because /etc/os-release"), "{render}");
    assert!(
        render.contains("wrote ") && render.contains("boot/firstrun.sh"),
        "{render}"
    );
    let prepare = run(pinode()
        .args(["prepare", "-v", "--profile"])
        .arg(&profile)
        .arg("--image")
        .arg(fixture("bookworm"))
        .arg("--out-dir")
        .arg(dir.path().join("o")));
    assert!(prepare.contains("because /etc/os-release"), "{prepare}");
}

/// `flash` under CI with no cluster token is refused the same way, and the card is left as
/// it was (root: a loop device stands in for the card).
#[test]
fn ci_flash_refuses_to_generate_a_cluster_token() {
    let dir = tempfile::tempdir().unwrap();
    // Declared after `dir`: detached before the directory goes.
    let Some(card) = common::loopdev::Loop::random(dir.path(), "card", 100 << 20) else {
        return;
    };
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519.pub"), format!("{KEY_1}\n")).unwrap();
    let before = sha256(&card.read(100 << 20));
    let out = output(
        pinode()
            .env("HOME", &home)
            .env("PINODE_STATE_DIR", dir.path().join("state"))
            .env("GITLAB_RUNNER_TOKEN", "glrt-truthful-0123456789")
            .args(["flash", "--yes", "--allow-non-removable", "--profile"])
            .arg(repo().join("profiles/single-node.yaml"))
            .arg("--image")
            .arg(fixture("trixie"))
            .arg("--device")
            .arg(&card.dev),
    );
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        stderr(&out).contains("throw-away CI machine"),
        "{}",
        both(&out)
    );
    assert_eq!(
        sha256(&card.read(100 << 20)),
        before,
        "the card was written"
    );
    assert!(!dir.path().join("state/clusters/solo/token").exists());
}
