//! Text fields: XML escaping, truncation with an ellipsis, STAT emphasis.

mod common;

use aliquot_labels::{LabelData, LabelFormat, LabelLayout, render_svg, render_zpl};
use common::sample;

/// The character data of every `<text>` element, in document order.
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text ")
        .skip(1)
        .map(|t| {
            let from = t.find('>').unwrap() + 1;
            &t[from..t.find("</text>").unwrap()]
        })
        .collect()
}

/// The field data of every text field (`^A0`), in order.
fn zpl_texts(zpl: &str) -> Vec<&str> {
    zpl.lines()
        .filter(|l| l.contains("^A0N"))
        .map(|l| {
            let from = l.find("^FD").unwrap() + 3;
            &l[from..l.len() - 3]
        })
        .collect()
}

fn assert_well_formed(svg: &str) {
    resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default())
        .unwrap_or_else(|e| panic!("not a valid SVG ({e}):\n{svg}"));
}

#[test]
fn markup_in_fields_is_escaped() {
    let data = LabelData {
        accession: "<b>&\"'".into(),
        family_name: "<script>x</script>".into(),
        second_identifier: "MRN \"1\" & 'x'".into(),
        tube: "]]><!--".into(),
        tests: vec!["<A>".into()],
        priority: "<STAT>".into(),
        ..sample()
    };
    let svg = render_svg(&data, &LabelLayout::default()).unwrap();
    assert_well_formed(&svg);
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("<b>") && !svg.contains("<!--") && !svg.contains("<A>"));
    let texts = svg_texts(&svg);
    assert_eq!(
        texts,
        [
            "&lt;script&gt;x&lt;/script&gt;, Jane",
            "&lt;STAT&gt;",
            "DOB 1980-02-29",
            "MRN &quot;1&quot; &amp; &apos;x&apos;",
            "&lt;b&gt;&amp;&quot;&apos;",
            "Coll 2026-11-21 07:45",
            "]]&gt;&lt;!--",
            "&lt;A&gt;",
        ]
    );
}

#[test]
fn control_characters_keep_the_svg_well_formed() {
    let data = LabelData {
        family_name: "DOE\u{0}\u{1b}".into(),
        given_name: " Jane\n".into(),
        ..sample()
    };
    let svg = render_svg(&data, &LabelLayout::default()).unwrap();
    assert_well_formed(&svg);
    assert_eq!(svg_texts(&svg)[0], "DOE\u{FFFD}\u{FFFD}, Jane");
}

#[test]
fn unicode_names_pass_through_both_formats() {
    let data = LabelData {
        family_name: "MÜLLER-ŁUKA".into(),
        given_name: "Zoë".into(),
        ..sample()
    };
    let layout = LabelLayout::default();
    let svg = render_svg(&data, &layout).unwrap();
    let zpl = render_zpl(&data, &layout).unwrap();
    assert_eq!(svg_texts(&svg)[0], "MÜLLER-ŁUKA, Zoë");
    assert_eq!(zpl_texts(&zpl)[0], "MÜLLER-ŁUKA, Zoë");
    assert!(zpl.contains("^CI28"), "UTF-8 field data needs ^CI28");
}

#[test]
fn long_test_list_is_cut_at_whole_codes_with_an_ellipsis() {
    let tests: Vec<String> = [
        "CBC", "HBA1C", "LIPID", "TSH", "FT4", "CRP", "FERR", "B12", "FOL", "VITD", "PSA",
    ]
    .map(String::from)
    .into();
    let data = LabelData {
        tests: tests.clone(),
        ..sample()
    };
    let layout = LabelLayout::default();

    let svg = render_svg(&data, &layout).unwrap();
    let svg_line = *svg_texts(&svg).last().unwrap();
    let zpl = render_zpl(&data, &layout).unwrap();
    let zpl_line = *zpl_texts(&zpl).last().unwrap();
    assert_eq!(svg_line, "CBC, HBA1C, LIPID, TSH, FT4, CRP, …");
    assert_eq!(zpl_line, "CBC, HBA1C, LIPID, TSH, FT4, CRP, ...");
    assert!(!svg.contains("PSA") && !zpl.contains("PSA"));

    // The same list fits a 4" label uncut.
    let wide = LabelLayout {
        width: 812,
        ..layout
    };
    let svg = render_svg(&data, &wide).unwrap();
    assert_eq!(*svg_texts(&svg).last().unwrap(), tests.join(", "));
}

#[test]
fn one_overlong_test_code_is_cut_mid_code() {
    let data = LabelData {
        tests: vec!["X".repeat(60), "CBC".into()],
        ..sample()
    };
    let svg = render_svg(&data, &LabelLayout::default()).unwrap();
    let line = *svg_texts(&svg).last().unwrap();
    assert!(line.starts_with("XXXX") && line.ends_with('…'), "{line}");
    assert!(line.chars().count() < 60);
}

#[test]
fn long_name_and_tube_are_truncated_short_fields_are_not() {
    let data = LabelData {
        family_name: "VERYLONGFAMILYNAME-DOUBLEBARREL".into(),
        given_name: "Christopher-Alexander".into(),
        tube: "Light blue sodium citrate 3.2% 2.7 mL (coagulation)".into(),
        ..sample()
    };
    let layout = LabelLayout::default();
    let svg_lines = svg_texts(&render_svg(&data, &layout).unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let zpl = render_zpl(&data, &layout).unwrap();
    let zpl_lines = zpl_texts(&zpl);

    // Both names stay (the rule of `fit_name`): the family name cut, the given name as an
    // initial when nothing more fits.
    for (line, ellipsis) in [(svg_lines[0].as_str(), "…"), (zpl_lines[0], "...")] {
        let (family, given) = line.split_once(", ").expect("family, given");
        let family = family.strip_suffix(ellipsis).expect("family name cut");
        assert!(
            data.family_name.starts_with(family) && family.len() > 10,
            "{line}"
        );
        assert_eq!(given, "C.", "{line}");
    }
    assert!(svg_lines[6].starts_with("Light blue") && svg_lines[6].ends_with('…'));
    assert!(zpl_lines[6].starts_with("Light blue") && zpl_lines[6].ends_with("..."));
    // Untouched: birth date, MRN, accession, collection.
    assert_eq!(
        svg_lines[2..6],
        [
            "DOB 1980-02-29",
            "MRN 12345",
            "24-000123",
            "Coll 2026-11-21 07:45"
        ]
    );
}

#[test]
fn the_issue_s_long_name_keeps_both_names_and_the_mrn() {
    let data = LabelData {
        family_name: "WOLFESCHLEGELSTEINHAUSENBERGERDORFF".into(),
        given_name: "Hubert Blaine".into(),
        ..sample()
    };
    for layout in [
        LabelLayout::tube_2x1_203dpi(),
        LabelLayout::tube_2x1_300dpi(),
    ] {
        let svg = render_svg(&data, &layout).unwrap();
        let texts = svg_texts(&svg);
        assert!(
            texts[0].starts_with("WOLFESCH") && texts[0].ends_with("…, Hubert B."),
            "{}",
            texts[0]
        );
        assert!(texts.contains(&"MRN 12345"), "{texts:?}");
        assert!(texts.contains(&"DOB 1980-02-29"), "{texts:?}");
    }
}

#[test]
fn a_long_test_list_gives_way_to_the_department() {
    let data = LabelData {
        tests: [
            "WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "RDW", "PLT", "ESR", "A1C",
        ]
        .map(String::from)
        .into(),
        department: Some("Hematology".into()),
        ..sample()
    };
    let svg = render_svg(&data, &LabelLayout::default()).unwrap();
    assert_eq!(*svg_texts(&svg).last().unwrap(), "Hematology (11 tests)");
    // A short list is printed as it is.
    let short = LabelData {
        department: Some("Hematology".into()),
        ..sample()
    };
    let svg = render_svg(&short, &LabelLayout::default()).unwrap();
    assert_eq!(*svg_texts(&svg).last().unwrap(), "CBC, HBA1C");
}

#[test]
fn stat_is_reversed_and_routine_is_plain() {
    let layout = LabelLayout::default();
    let stat = LabelData {
        priority: "stat".into(),
        ..sample()
    };
    let svg = render_svg(&stat, &layout).unwrap();
    assert!(
        svg.contains(r##"<rect x="316" y="5" width="82" height="27" fill="#000"/>"##),
        "{svg}"
    );
    assert!(svg.contains(r##"fill="#fff" font-weight="bold" xml:space="preserve">STAT</text>"##));
    let zpl = render_zpl(&stat, &layout).unwrap();
    assert!(zpl.contains("^GB82,27,27^FS") && zpl.contains("^FR^FH_^FDSTAT^FS"));

    let routine = render_svg(&sample(), &layout).unwrap();
    assert!(!routine.contains(r##"fill="#fff" font-weight"##));
    assert!(
        routine.contains(r##"text-anchor="end" fill="#000" xml:space="preserve">ROUTINE</text>"##)
    );
}

#[test]
fn blank_collection_and_reprint_counter() {
    let data = LabelData {
        collection: None,
        copy: Some(2),
        ..sample()
    };
    let svg = render_svg(&data, &LabelLayout::default()).unwrap();
    let texts = svg_texts(&svg);
    assert_eq!(texts[5], "Coll __ ___ __:__");
    assert_eq!(*texts.last().unwrap(), "R2");
    let original = render_svg(&sample(), &LabelLayout::default()).unwrap();
    assert_eq!(*svg_texts(&original).last().unwrap(), "CBC, HBA1C");
}

#[test]
fn label_format_dispatches() {
    let layout = LabelLayout::default();
    let data = sample();
    assert_eq!(
        LabelFormat::Zpl.render(&data, &layout),
        render_zpl(&data, &layout)
    );
    assert_eq!(
        "svg".parse::<LabelFormat>().unwrap().render(&data, &layout),
        render_svg(&data, &layout)
    );
    assert_eq!(LabelFormat::Svg.media_type(), "image/svg+xml");
}
