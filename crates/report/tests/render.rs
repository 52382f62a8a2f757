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

/// Every PDF declares PDF/A-2b: the XMP metadata (`pdfinfo -meta`) carries the PDF/A
/// identification, the catalogue an output intent (GTS_PDFA1, sRGB); the fonts are embedded
/// (above). typst-pdf's writer (krilla) enforces the rest of the standard while writing.
#[test]
fn reports_are_pdf_a_2b() {
    let pdf = render_pdf(include_bytes!("fixtures/order_report.json"), &meta()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let out = std::process::Command::new("pdfinfo")
        .arg("-meta")
        .arg(&path)
        .output()
        .expect("pdfinfo (Debian package poppler-utils) must be installed");
    let xmp = String::from_utf8(out.stdout).unwrap();
    assert!(xmp.contains("<pdfaid:part>2</pdfaid:part>"), "{xmp}");
    assert!(
        xmp.contains("<pdfaid:conformance>B</pdfaid:conformance>"),
        "{xmp}"
    );
    assert!(
        xmp.contains("Laboratory report"),
        "the title is in the XMP: {xmp}"
    );
    let has = |needle: &[u8]| pdf.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"/OutputIntents"), "no output intent");
    assert!(has(b"/GTS_PDFA1"), "the output intent is not PDF/A's");
}
