#![no_main]
//! Fuzz target `cmdline`: see harness/cmdline.rs for the input format and the checks.

mod harness {
    include!("../harness/cmdline.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
