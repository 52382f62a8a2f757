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

/// A batch print: every page's running header names the patient of the report the page
/// belongs to (also on a report's second page, where the body does not), and each report
/// counts its own pages. (The header reads this from the report's start, never from the data,
/// so that typst's memoised layout serves later reports: see ARCHITECTURE.md.)
#[test]
fn each_page_of_a_batch_names_its_own_patient_and_counts_its_own_pages() {
    let mut doc: serde_json::Value =
        serde_json::from_slice(include_bytes!("fixtures/order_report.json")).unwrap();
    let first = doc["reports"][0].clone();
    let mut long = first.clone();
    long["patient"]["name"] = "MÜLLER, Jürgen".into();
    long["patient"]["mrn"] = "M000777".into();
    long["status"] = "FINAL".into();
    let departments = long["departments"].as_array().unwrap().clone();
    long["departments"] = departments
        .iter()
        .cycle()
        .take(3 * departments.len())
        .cloned()
        .collect();
    let mut last = first.clone();
    last["patient"]["name"] = "王秀英".into();
    last["patient"]["mrn"] = "M000999".into();
    last["status"] = "PRELIMINARY".into();
    doc["reports"] = vec![first, long, last].into();
    let pdf = render_pdf(&serde_json::to_vec(&doc).unwrap(), &meta()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let page_text = |page: usize| {
        let out = std::process::Command::new("pdftotext")
            .args(["-raw", "-enc", "UTF-8", "-f", &page.to_string(), "-l"])
            .arg(page.to_string())
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils)");
        String::from_utf8(out.stdout).unwrap()
    };
    let patients = [
        ("OKONKWO-LINDQVIST, Zoë", "M000123", "CORRECTED"),
        ("MÜLLER, Jürgen", "M000777", "FINAL"),
        ("王秀英", "M000999", "PRELIMINARY"),
    ];
    // (page, report, "Page X of Y")
    for (page, report, of) in [
        (1, 0, "Page 1 of 1"),
        (2, 1, "Page 1 of 2"),
        (3, 1, "Page 2 of 2"),
        (4, 2, "Page 1 of 1"),
    ] {
        let text = page_text(page);
        let header = text.lines().take(3).collect::<Vec<_>>().join("\n");
        let (name, mrn, status) = patients[report];
        assert!(header.contains(name), "page {page}'s header: {header}");
        assert!(
            header.contains(&format!("MRN {mrn}")),
            "page {page}'s header: {header}"
        );
        assert!(header.contains(status), "page {page}'s header: {header}");
        for (other, _, _) in patients.iter().filter(|p| p.0 != name) {
            assert!(!text.contains(other), "page {page} names {other}: {text}");
        }
        assert!(text.contains(of), "page {page}: {text}");
    }
    assert!(page_text(5).trim().is_empty(), "four pages");
}
