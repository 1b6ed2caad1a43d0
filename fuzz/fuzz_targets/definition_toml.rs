//! Group definition files in TOML: every input is a group or a problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::definition_toml(data);
});
