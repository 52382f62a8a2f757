//! Cross-check of the Westgard evaluator against the independent westgard-python 0.3.0
//! (DOMAIN §1.9): `scripts/westgard-crosscheck.py` generates seeded random QC sequences (2 and
//! 3 levels, classic and modern, presets and custom rule sets), judges them with westgard-python
//! and with `aliquot qc evaluate`, and fails on any difference (the script documents how the
//! two definitions are mapped). The venv lives under the target directory and is created with
//! `python3 -m venv` and `pip install westgard-python==0.3.0` when missing: a missing Python or
//! package is a failure, never a skip.

use std::path::PathBuf;
use std::process::Command;

mod pypi;
use pypi::run;

const PACKAGE: &str = "westgard-python==0.3.0";

/// The venv's python with westgard-python 0.3.0 installed.
fn oracle_python() -> PathBuf {
    pypi::python_with(
        "westgard-python-venv",
        &[PACKAGE],
        "import westgard, sys; sys.exit(westgard.__version__ != '0.3.0')",
    )
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
