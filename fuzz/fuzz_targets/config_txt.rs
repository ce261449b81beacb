#![no_main]
//! Fuzz target `config_txt`: see harness/config_txt.rs for the input format and the checks.

mod harness {
    include!("../harness/config_txt.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
