//! The id dictionary (`ids.parquet`, with or without its hash): refused or loaded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::id_dictionary(data);
});
