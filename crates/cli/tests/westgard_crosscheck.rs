//! Cross-check of the Westgard evaluator against the independent westgard-python 0.3.0
//! (DOMAIN §1.9): `scripts/westgard-crosscheck.py` generates seeded random QC sequences (2 and
//! 3 levels, classic and modern, presets and custom rule sets), judges them with westgard-python
//! and with `aliquot qc evaluate`, and fails on any difference (the script documents how the
//! two definitions are mapped). The venv lives under the target directory and is created with
//! `python3 -m venv` and `pip install westgard-python==0.3.0` when missing: a missing Python or
//! package is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "westgard-python==0.3.0";

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

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The venv's python with westgard-python 0.3.0 installed.
fn oracle_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("westgard-python-venv");
    let python = venv_python(&venv);
    let ready = || {
        Command::new(&python)
            .args([
                "-c",
                "import westgard, sys; sys.exit(westgard.__version__ != '0.3.0')",
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
            Command::new(&python).args(["-m", "pip", "install", "--quiet", PACKAGE]),
            "pip install westgard-python==0.3.0",
        );
        assert!(
            ready(),
            "westgard-python 0.3.0 is not importable after installing it"
        );
    }
    python
}

#[test]
fn westgard_python_agrees_on_generated_sequences() {
    let python = oracle_python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/westgard-crosscheck.py"
    );
    let report = run(
        Command::new(python).arg(script).args([
            "--aliquot",
            env!("CARGO_BIN_EXE_aliquot"),
            "--seed",
            "13",
        ]),
        "scripts/westgard-crosscheck.py",
    );
    println!("{report}");
    assert!(report.contains(" runs compared, 0 problems"), "{report}");
}
