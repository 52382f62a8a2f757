// Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use aliquot_hl7::{DiagnosticKind, Document, FieldPath, Severity};
use std::path::PathBuf;

pub fn shared_dir(sub: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(sub);
    assert!(
        dir.is_dir(),
        "shared test data missing: {} (expected ../shared/testdata beside the repository root)",
        dir.display()
    );
    dir
}

pub fn shared(sub: &str, name: &str) -> Vec<u8> {
    let p = shared_dir(sub).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Data-driven check: every `(path, values)` pair must match the unescaped
/// values found at that path across the whole document, in order.
pub fn check(input: &[u8], expected: &[(&str, &[&str])]) {
    let doc = Document::parse(input);
    for (path, want) in expected {
        let p = FieldPath::parse(path).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = doc
            .query(&p)
            .iter()
            .map(|v| v.value().into_owned())
            .collect();
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "values at {path}");
    }
}

/// The diagnostic kinds (with severity) of `input`, in order.
pub fn diag_kinds(input: &[u8]) -> Vec<(Severity, DiagnosticKind)> {
    Document::parse(input)
        .diagnostics()
        .iter()
        .map(|d| (d.severity, d.kind))
        .collect()
}
