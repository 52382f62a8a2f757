#![no_main]
//! Fuzz target `astm_link`: the same entry point the corpus replay test uses.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = aliquot_astm::fuzzing::astm_link(data) {
        panic!("property violated: {e}");
    }
});
