//! `aliquot catalog import` then `export` round-trips a lab's menu; a second import adds
//! nothing; an invalid entry is refused by name.

use std::process::Command;

fn aliquot(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aliquot"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ALIQUOT_DATABASE")
        .output()
        .expect("run aliquot")
}

#[test]
fn import_export_round_trip() {
    let dir = std::env::temp_dir().join(format!("aliquot-catalog-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/../app/data/demo_catalog.csv");
    let out = aliquot(&dir, &["catalog", "import", csv]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("imported 72 catalogue entries (0 already present)")
    );
    let again = aliquot(&dir, &["catalog", "import", csv]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("imported 0 catalogue entries (72 already present)")
    );

    let export = aliquot(&dir, &["catalog", "export"]);
    assert!(export.status.success());
    let exported = String::from_utf8(export.stdout).unwrap();
    let mut a = aliquot_app::demo_catalog::parse_catalog_csv(&exported).unwrap();
    let mut b = aliquot_app::demo_catalog::demo_catalog();
    a.sort_by(|x, y| x.code.cmp(&y.code));
    b.sort_by(|x, y| x.code.cmp(&y.code));
    assert_eq!(a, b);

    let bad = dir.join("bad.csv");
    let header = exported.lines().next().unwrap();
    std::fs::write(
        &bad,
        format!(
            "{header}\nZZ1,test,Bad,1234-5,chemistry,serum,SST,50,,,,,,,numeric,0,,mg/dL,,,,,,,,\n"
        ),
    )
    .unwrap();
    let out = aliquot(&dir, &["catalog", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entry ZZ1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
