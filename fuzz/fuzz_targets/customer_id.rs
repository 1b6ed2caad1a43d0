//! Customer ids written as text (lookups, lists): the canonical integer spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::customer_id(data);
});
