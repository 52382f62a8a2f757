//! A pinned PyPI package in a venv under the target directory, for the tests that check
//! Aliquot against an independent Python tool (each includes this module). A missing Python
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

/// The python of the venv `name` with `package` (a `name==version` pin) installed: the venv
/// is made again when `check` (Python code exiting 0 once the pinned version is importable)
/// fails.
pub fn python_with(name: &str, package: &str, check: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin").join("python");
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
            Command::new(&python).args(["-m", "pip", "install", "--quiet", package]),
            &format!("pip install {package}"),
        );
        assert!(ready(), "{package} is not importable after installing it");
    }
    python
}
