//! Time windows (`30d`): parsed or refused, never a panic or an overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::window(data);
});
