#![no_main]
//! Fuzz target `boot_fat`: see harness/boot_fat.rs for the input format and the checks.

mod harness {
    include!("../harness/boot_fat.rs");
}

libfuzzer_sys::fuzz_target!(
    init: pinode_fuzz_contained_panics(),
    |data: &[u8]| harness::run(data)
);

/// pinode runs every third-party parser of image bytes inside `pinode::guard::contain`, which
/// turns a panic there into an error. libFuzzer's panic hook aborts before unwinding, so every
/// such contained panic counts as a crash here too: that is the point, they are bugs to fix by
/// validating first. PINODE_FUZZ_CONTAINED=allow lets them unwind into pinode's error
/// instead, as in the real program, to look past one.
fn pinode_fuzz_contained_panics() {
    if std::env::var("PINODE_FUZZ_CONTAINED").as_deref() != Ok("allow") {
        return;
    }
    let abort_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !pinode::guard::is_contained() {
            abort_hook(info);
        }
    }));
}
