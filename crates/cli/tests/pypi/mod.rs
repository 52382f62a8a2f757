//! Pinned PyPI packages in a venv under the target directory, for the tests that check
//! Aliquot against an independent Python tool: the CLI's (schemathesis, westgard-python), the
//! server's (fhir.resources, through `#[path]` in `crates/server/tests/api/main.rs`) and the
//! connections' (hl7, hl7apy, in `crates/connect/tests/order_response.rs`). A missing Python
//! or package is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd`, failing the test with its output when it does not succeed; its stdout and
/// stderr otherwise.
pub fn run(cmd: &mut Command, what: &str) -> String {
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

/// The python of the venv `name` with `packages` (`name==version` pins) installed: the venv
/// is made again when `check` (Python code exiting 0 once the pinned versions are importable)
/// fails. Test processes running at once (a suite's SQLite and PostgreSQL runs) take turns
/// through an exclusive lock on a file beside the venv: one builds it while the others wait.
pub fn python_with(name: &str, packages: &[&str], check: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = dir.join(name);
    let python = venv.join("bin").join("python");
    let lock = std::fs::File::create(dir.join(format!("{name}.lock"))).expect("lock file");
    lock.lock().expect("lock the venv");
    let ready = || {
        Command::new(&python)
            .args(["-c", check])
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
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(packages),
            &format!("pip install {}", packages.join(" ")),
        );
        assert!(
            ready(),
            "{} not importable after installing",
            packages.join(" ")
        );
    }
    drop(lock);
    python
}
