//! The API contract, checked by schemathesis (issue 16, "The API contract"): the demo server
//! is started on a loopback port and `scripts/schemathesis-run.py` runs schemathesis 4.32.5
//! (PyPI) against `/api/v1/openapi.json` as the demo director and the demo technician, with
//! every schema-conformance check (not a server error, status codes, content types, response
//! schemas and headers, negative data rejected, …; the script says what is left out and why),
//! bounded by examples per operation and a fixed seed. Any failure fails the test.
//!
//! The venv lives under the target directory and is created with `python3 -m venv` and
//! `pip install schemathesis==4.32.5` when missing: a missing Python or package is a failure,
//! never a skip.

use std::path::PathBuf;
use std::process::Command;

mod common;
mod pypi;
use common::Server;

const VERSION: &str = "4.32.5";

/// The venv's python with schemathesis installed at the pinned version.
fn schemathesis_python() -> PathBuf {
    pypi::python_with(
        "schemathesis-venv",
        &[&format!("schemathesis=={VERSION}")],
        &format!(
            "import schemathesis, sys; sys.exit(schemathesis.SCHEMATHESIS_VERSION != '{VERSION}')"
        ),
    )
}

#[test]
fn schemathesis_finds_no_contract_failure_as_director_and_technician() {
    let python = schemathesis_python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &[
            "--data-dir".to_owned(),
            dir.path().join("data").display().to_string(),
        ],
        &["--demo"],
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/schemathesis-run.py"
    );
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let out = Command::new(&python)
        .arg(script)
        .args(["--base", &server.base, "--report-dir"])
        .arg(&reports)
        .output()
        .expect("cannot start scripts/schemathesis-run.py");
    drop(server);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("schemathesis: 2 roles, no failure"), "{text}");
}
