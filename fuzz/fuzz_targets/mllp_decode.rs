#![no_main]
//! Fuzz target `mllp_decode`: the same entry point the corpus replay test uses.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = aliquot_hl7::fuzzing::mllp_decode(data) {
        panic!("property violated: {e}");
    }
});
