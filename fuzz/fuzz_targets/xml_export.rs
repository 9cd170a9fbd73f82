//! Arbitrary bytes through the export parser: an export or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = c123_live::xml::parse_export(data);
});
