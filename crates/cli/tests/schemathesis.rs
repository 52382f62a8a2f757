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

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::Server;

const VERSION: &str = "4.32.5";

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The venv's python with schemathesis installed at the pinned version.
fn schemathesis_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args([
                "-c",
                &format!(
                    "import schemathesis, sys; sys.exit(schemathesis.SCHEMATHESIS_VERSION != '{VERSION}')"
                ),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready() {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                &format!("schemathesis=={VERSION}"),
            ]),
            "pip install schemathesis",
        );
        assert!(
            ready(),
            "schemathesis {VERSION} is not importable after installing it"
        );
    }
    python
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
