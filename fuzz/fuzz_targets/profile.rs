#![no_main]
//! Fuzz target `profile`: see harness/profile.rs for the input format and the checks.

mod harness {
    include!("../harness/profile.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
