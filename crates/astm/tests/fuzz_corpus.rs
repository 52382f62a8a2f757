//! Replays the committed fuzz corpora through the fuzz entry points.

use std::path::PathBuf;

fn replay(target: &str, f: fn(&[u8]) -> Result<(), String>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} missing: {e}", dir.display()));
    let mut n = 0;
    for e in entries {
        let p = e.expect("entry").path();
        let data = std::fs::read(&p).expect("read");
        if let Err(msg) = f(&data) {
            panic!("{}: {msg}", p.display());
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} corpus files for {target}");
}

#[test]
fn astm_link_corpus() {
    replay("astm_link", aliquot_astm::fuzzing::astm_link);
}

#[test]
fn astm_records_corpus() {
    replay("astm_records", aliquot_astm::fuzzing::astm_records);
}
