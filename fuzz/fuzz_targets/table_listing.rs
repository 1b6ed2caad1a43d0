//! Object paths under a table's folder (one per line): classified, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::table_listing(data);
});
