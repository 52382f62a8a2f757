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
