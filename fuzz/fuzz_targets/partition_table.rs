#![no_main]
//! Fuzz target `partition_table`: see harness/partition_table.rs for the input format and the checks.

mod harness {
    include!("../harness/partition_table.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
