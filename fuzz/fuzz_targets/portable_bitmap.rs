//! The Roaring portable-format parser of published group bitmaps: any bytes are refused
//! or parsed into an index that agrees with roaring-rs' own reading of them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cohort::fuzzing::portable_bitmap(data);
});
