#![no_main]
//! Fuzz target `hl7_parse`: the same entry point the corpus replay test uses.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = aliquot_hl7::fuzzing::hl7_parse(data) {
        panic!("property violated: {e}");
    }
});
