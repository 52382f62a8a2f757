//! The template renders the fixture; the same data gives the same bytes.

use aliquot_report::{PdfMeta, render_pdf};

fn meta() -> PdfMeta {
    PdfMeta {
        ident: "order-17-report-2".into(),
        created: "2026-11-28T16:05:00Z".parse().unwrap(),
    }
}

#[test]
fn the_fixture_renders_the_same_bytes_twice() {
    let data = include_bytes!("fixtures/order_report.json");
    let a = render_pdf(data, &meta()).unwrap();
    let b = render_pdf(data, &meta()).unwrap();
    assert!(a.starts_with(b"%PDF-"));
    assert_eq!(a, b, "same data and meta, same bytes");
    if let Ok(dir) = std::env::var("REPORT_OUT") {
        std::fs::write(format!("{dir}/fixture.pdf"), &a).unwrap();
    }
}

#[test]
fn broken_data_is_an_error_not_a_panic() {
    let e = render_pdf(b"{\"kind\": \"orders\"}", &meta()).unwrap_err();
    assert!(e.to_string().contains("report rendering failed"), "{e}");
}

#[test]
fn every_glyph_is_embedded_and_extractable() {
    let pdf = render_pdf(include_bytes!("fixtures/order_report.json"), &meta()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-raw", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) must be installed");
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "OKONKWO-LINDQVIST, Zoë",
        "Đorđević, Milan",
        "≥ 60",
        "136–145",
        "CORRECTED REPORT",
        "Page 1 of 1",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let fonts = std::process::Command::new("pdffonts")
        .arg(&path)
        .output()
        .expect("pdffonts (poppler-utils)");
    let fonts = String::from_utf8(fonts.stdout).unwrap();
    // Every font is embedded (pdffonts' "emb" column), none is substituted.
    for line in fonts.lines().skip(2) {
        assert!(line.contains(" yes "), "a font is not embedded: {line}");
    }
}
