#![no_main]
//! Fuzz target `allocation`: see harness/allocation.rs for the input format and the checks.

mod harness {
    include!("../harness/allocation.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
