//! The SVG barcode decodes back to the accession.
//!
//! Each test renders the label to SVG text, rasterises that text with resvg
//! (a full SVG renderer, so every byte of our markup that matters for the
//! bars is exercised: viewBox, rect geometry, fill), and decodes the bitmap
//! with rxing's Code 128 reader.

mod common;

use aliquot_labels::{LabelData, LabelLayout, render_svg};
use common::{CODE128_ACCESSION, decode_code128, rasterize_svg, sample};
use proptest::prelude::*;

fn decode_svg(data: &LabelData, layout: &LabelLayout) -> String {
    let svg = render_svg(data, layout).expect("renders");
    // Three pixels per printer dot, as a scanner sees a printed label.
    let image = rasterize_svg(&svg, layout.width * 3);
    decode_code128(&image).unwrap_or_else(|e| panic!("no Code 128 found: {e}\n{svg}"))
}

#[test]
fn sample_label_decodes_at_203_dpi() {
    let data = sample();
    assert_eq!(decode_svg(&data, &LabelLayout::default()), data.accession);
}

#[test]
fn sample_label_decodes_at_300_dpi() {
    let data = sample();
    assert_eq!(
        decode_svg(&data, &LabelLayout::tube_2x1_300dpi()),
        data.accession
    );
}

#[test]
fn stat_label_with_hostile_text_still_decodes() {
    let data = LabelData {
        accession: "S26-0000042".into(),
        family_name: "<script>alert(1)</script>".into(),
        given_name: "O'Brien^~_".into(),
        priority: "STAT".into(),
        collection: None,
        copy: Some(3),
        ..sample()
    };
    assert_eq!(decode_svg(&data, &LabelLayout::default()), data.accession);
}

#[test]
fn awkward_characters_in_the_accession_decode() {
    for accession in [
        "A>B<C&D",
        "^~_\\ \"'`{|}",
        "1234567890123456",
        "x 1 y 22 z 333",
    ] {
        let data = LabelData {
            accession: accession.into(),
            ..sample()
        };
        assert_eq!(decode_svg(&data, &LabelLayout::default()), accession);
    }
}

#[test]
fn svg_has_physical_size_and_dot_viewbox() {
    let svg = render_svg(&sample(), &LabelLayout::default()).unwrap();
    assert!(svg.starts_with(
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="50.80mm" height="25.40mm" viewBox="0 0 406 203">"#
    ));
    let svg = render_svg(&sample(), &LabelLayout::tube_2x1_300dpi()).unwrap();
    assert!(svg.contains(r#"width="50.80mm" height="25.40mm" viewBox="0 0 600 300""#));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_accessions_round_trip(accession in CODE128_ACCESSION) {
        let data = LabelData { accession: accession.clone(), ..sample() };
        prop_assert_eq!(decode_svg(&data, &LabelLayout::default()), accession);
    }
}
