//! The id perfect hash file (`ids.phf`): refused or loaded, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::ids_phf(data);
});
