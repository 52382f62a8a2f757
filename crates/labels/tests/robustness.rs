//! Any data on any layout renders or fails cleanly: no panic, and every
//! successful render is one well-formed ZPL format and a valid SVG.

mod common;

use aliquot_labels::{LabelData, LabelError, LabelLayout, render_svg, render_zpl};
use proptest::prelude::*;

fn layout() -> impl Strategy<Value = LabelLayout> {
    prop_oneof![
        3 => plausible_layout(),
        1 => extreme_layout(),
    ]
}

/// Sizes around real tube labels: most of these render.
fn plausible_layout() -> impl Strategy<Value = LabelLayout> {
    (
        (150u32..=600, 200u32..=1_200, 60u32..=600, 0u32..=20),
        (0u32..=6, 1u32..=4, 0u32..=12, 10u32..=120),
        (8u32..=40, 8u32..=40, 8u32..=30),
    )
        .prop_map(
            |(
                (dpi, width, height, margin),
                (row_gap, module_width, quiet_zone_modules, barcode_height),
                (name_font, accession_font, text_font),
            )| LabelLayout {
                dpi,
                width,
                height,
                margin,
                row_gap,
                module_width,
                quiet_zone_modules,
                barcode_height,
                name_font,
                accession_font,
                text_font,
            },
        )
}

/// Any values at all, including zero and `u32::MAX`.
fn extreme_layout() -> impl Strategy<Value = LabelLayout> {
    let size = prop_oneof![0u32..4, any::<u32>(), (u32::MAX - 4)..=u32::MAX];
    (
        (size.clone(), size.clone(), size.clone(), size.clone()),
        (size.clone(), size.clone(), size.clone(), size.clone()),
        (size.clone(), size.clone(), size),
    )
        .prop_map(
            |(
                (dpi, width, height, margin),
                (row_gap, module_width, quiet_zone_modules, barcode_height),
                (name_font, accession_font, text_font),
            )| LabelLayout {
                dpi,
                width,
                height,
                margin,
                row_gap,
                module_width,
                quiet_zone_modules,
                barcode_height,
                name_font,
                accession_font,
                text_font,
            },
        )
}

fn data() -> impl Strategy<Value = LabelData> {
    (
        prop_oneof![3 => "[ -~]{1,24}", 1 => ".{0,24}"],
        (".{0,80}", ".{0,40}", ".{0,60}", ".{0,12}"),
        prop::collection::vec(".{0,12}", 0..12),
        (prop::option::of(".{0,30}"), prop::option::of(any::<u32>())),
        (".{0,40}", ".{0,20}", prop::option::of(".{0,30}")),
    )
        .prop_map(
            |(
                accession,
                (family_name, second_identifier, tube, priority),
                tests,
                (collection, copy),
                (given_name, birth_date, department),
            )| {
                LabelData {
                    accession,
                    family_name,
                    given_name,
                    birth_date,
                    second_identifier,
                    tube,
                    tests,
                    department,
                    priority,
                    collection,
                    copy,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn renders_or_fails_cleanly(data in data(), layout in layout()) {
        let zpl = render_zpl(&data, &layout);
        let svg = render_svg(&data, &layout);
        prop_assert_eq!(zpl.is_ok(), svg.is_ok());
        match (zpl, svg) {
            (Ok(zpl), Ok(svg)) => {
                prop_assert_eq!(zpl.matches("^XA").count(), 1);
                prop_assert_eq!(zpl.matches("^XZ").count(), 1);
                prop_assert!(!zpl.contains('~'));
                prop_assert!(zpl.lines().all(|l| l.starts_with('^')));
                let parsed = resvg::usvg::Tree::from_str(&svg, &resvg::usvg::Options::default());
                prop_assert!(parsed.is_ok(), "invalid SVG: {:?}", parsed.err());
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            _ => unreachable!("checked above"),
        }
    }

    #[test]
    fn default_layout_accepts_every_code128_accession_up_to_20(accession in common::CODE128_ACCESSION) {
        let data = LabelData { accession, ..common::sample() };
        prop_assert!(render_zpl(&data, &LabelLayout::default()).is_ok());
        prop_assert!(render_svg(&data, &LabelLayout::tube_2x1_300dpi()).is_ok());
    }
}

#[test]
fn zero_sized_layout_is_an_error() {
    let layout = LabelLayout {
        width: 0,
        ..LabelLayout::default()
    };
    assert!(matches!(
        render_zpl(&common::sample(), &layout),
        Err(LabelError::InvalidLayout(_))
    ));
}
