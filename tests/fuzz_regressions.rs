//! Inputs that once broke a fuzz target (see fuzz/README.md), run again through the very same
//! harness code: no panic and no broken invariant (an `Err` from pinode is fine). The inputs
//! live in tests/fuzz_regressions/ as `<target>-<short-name>.bin`; the fuzz seeds
//! (fuzz/seeds/<target>/) run too, so the harnesses themselves stay working.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

mod partition_table {
    include!("../fuzz/harness/partition_table.rs");
}
mod boot_fat {
    include!("../fuzz/harness/boot_fat.rs");
}
mod profile {
    include!("../fuzz/harness/profile.rs");
}
mod cmdline {
    include!("../fuzz/harness/cmdline.rs");
}
mod config_txt {
    include!("../fuzz/harness/config_txt.rs");
}
mod allocation {
    include!("../fuzz/harness/allocation.rs");
}

fn files_in(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic, also those that `pinode::guard::contain` turns into an error: as in the
/// fuzz targets, a contained panic in a dependency counts as a failure.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default_hook(info);
        }));
    });
}

/// Runs `harness` on every regression input of `target` and every seed; fails naming each
/// input that panicked (anywhere, contained or not).
fn check(target: &str, harness: fn(&[u8])) {
    count_panics();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = files_in(&repo.join("tests/fuzz_regressions"), &format!("{target}-"));
    inputs.extend(files_in(&repo.join("fuzz/seeds").join(target), ""));
    assert!(!inputs.is_empty(), "no inputs for {target}");
    let failed: Vec<String> = inputs
        .iter()
        .filter(|input| {
            let data = std::fs::read(input).unwrap();
            let before = PANICS.load(Ordering::SeqCst);
            let unwound = std::panic::catch_unwind(|| harness(&data)).is_err();
            unwound || PANICS.load(Ordering::SeqCst) != before
        })
        .map(|input| input.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failed on {failed:#?}");
}

#[test]
fn partition_table() {
    check("partition_table", partition_table::run);
}

#[test]
fn boot_fat() {
    check("boot_fat", boot_fat::run);
}

#[test]
fn profile() {
    check("profile", profile::run);
}

#[test]
fn cmdline() {
    check("cmdline", cmdline::run);
}

#[test]
fn config_txt() {
    check("config_txt", config_txt::run);
}

#[test]
fn allocation() {
    check("allocation", allocation::run);
}
