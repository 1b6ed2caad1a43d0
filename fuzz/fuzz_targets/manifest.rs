//! `manifest.json` of a published run: refused or parsed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::manifest(data);
});
