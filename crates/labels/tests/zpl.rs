//! ZPL output: exact text, injection safety, and the barcode decoded back
//! from the ZPL itself.
//!
//! # How the ZPL barcode is decoded
//!
//! labelize (a ZPL renderer) was evaluated and rejected: 0.5 pulls axum,
//! tokio, clap and a second rxing as normal dependencies, 1.10 still brings
//! image with every codec (rav1e, exr), imageproc, nalgebra and lopdf, about
//! 200 to 300 crates on a 2-core machine; and its `^BC` mode N reads `>0` as
//! a code-set switch, not as the literal `>` of Zebra's invocation table.
//!
//! Instead, [`zpl_printer`] below is a minimal printer for the subset the
//! renderer emits for barcodes: it tokenises the format on `^`, tracks
//! `^PW`, `^LL`, `^FO`, `^BY`, `^BC`, `^FH`, `^FD` and `^FS`, undoes `^FH_`
//! hex escapes if present, interprets the mode N invocation codes (`>:`,
//! `>;`, `>5`, `>6`, and `>0`, `><`, `>=` for `>`, `^`, `~`, as in the
//! ZPL II manual's table) and rebuilds the bars with its own table-driven
//! Code 128
//! encoder (the bar/space widths of the 107 symbols, written out here, not
//! taken from `barcoders` or the crate). The bars are painted on a bitmap
//! the size of the label and decoded with rxing. A wrong invocation code,
//! escape, position or module width in the ZPL makes the decode fail.

mod common;

use aliquot_labels::{LabelData, LabelError, LabelLayout, render_svg, render_zpl};
use common::{CODE128_ACCESSION, Luma, decode_code128, sample};
use proptest::prelude::*;

#[test]
fn sample_label_exact_zpl() {
    let zpl = render_zpl(&sample(), &LabelLayout::default()).unwrap();
    let expected = "\
^XA
^CI28
^PW406
^LL203
^LH0,0
^FO8,8^A0N,24,24^FB294,1,0,L,0^FH_^FDDOE, Jane^FS
^FO8,12^A0N,18,18^FB390,1,0,R,0^FH_^FDROUTINE^FS
^FO8,35^A0N,18,18^FB279,1,0,L,0^FH_^FDDOB 1980-02-29^FS
^FO8,35^A0N,18,18^FB390,1,0,R,0^FH_^FDMRN 12345^FS
^BY2^FO91,56^BCN,64,N,N,N^FD>:24->5000123^FS
^FO8,123^A0N,22,22^FB390,1,0,C,0^FH_^FD24-000123^FS
^FO8,148^A0N,18,18^FB390,1,0,L,0^FH_^FDColl 2026-11-21 07:45^FS
^FO210,148^A0N,18,18^FB188,1,0,R,0^FH_^FDLavender EDTA 4...^FS
^FO8,169^A0N,18,18^FB390,1,0,L,0^FH_^FDCBC, HBA1C^FS
^XZ
";
    assert_eq!(zpl, expected);
}

#[test]
fn stat_reprint_label_exact_zpl() {
    let data = LabelData {
        priority: "STAT".into(),
        collection: None,
        copy: Some(2),
        ..sample()
    };
    let zpl = render_zpl(&data, &LabelLayout::default()).unwrap();
    let lines: Vec<&str> = zpl.lines().collect();
    // Black box, then the priority reversed out of it.
    assert_eq!(lines[6], "^FO316,5^GB82,27,27^FS");
    assert_eq!(lines[7], "^FO316,8^A0N,24,24^FB82,1,0,C,0^FR^FH_^FDSTAT^FS");
    // Blank collection line to fill in at draw; `_` is escaped.
    assert_eq!(
        lines[12],
        "^FO8,148^A0N,18,18^FB390,1,0,L,0^FH_^FDColl _5F_5F _5F_5F_5F _5F_5F:_5F_5F^FS"
    );
    assert_eq!(lines[15], "^FO8,169^A0N,18,18^FB390,1,0,R,0^FH_^FDR2^FS");
    assert!(
        !render_zpl(&sample(), &LabelLayout::default())
            .unwrap()
            .contains("^FR")
    );
}

#[test]
fn injected_commands_are_escaped() {
    let data = LabelData {
        family_name: "O'Brien^~_^XZ~JR".into(),
        given_name: "^XZ".into(),
        birth_date: "DOB ~XZ".into(),
        second_identifier: "MRN ^XZ".into(),
        tube: "^XA^FDX^FS\r\n\\&".into(),
        tests: vec!["^FS".into(), "~HS".into()],
        priority: "^XZ".into(),
        collection: Some("~DGR:X".into()),
        ..sample()
    };
    let layout = LabelLayout::default();
    let zpl = render_zpl(&data, &layout).unwrap();
    assert_eq!(zpl.matches("^XA").count(), 1, "{zpl}");
    assert_eq!(zpl.matches("^XZ").count(), 1, "{zpl}");
    assert!(zpl.starts_with("^XA\n") && zpl.ends_with("^XZ\n"));
    assert!(!zpl.contains('~'), "tilde is a command prefix: {zpl}");
    assert!(!zpl.contains('\r') && zpl.lines().count() == 15, "{zpl}");
    // Every caret left starts a command we emit ourselves.
    for command in zpl.split('^').skip(1) {
        let name = &command[..2];
        assert!(
            [
                "XA", "XZ", "CI", "PW", "LL", "LH", "FO", "A0", "FB", "FH", "FD", "FS", "BY", "BC"
            ]
            .contains(&name),
            "unexpected command ^{name} in {zpl}"
        );
    }
    let lines: Vec<&str> = zpl.lines().collect();
    assert_eq!(
        lines[5],
        "^FO8,8^A0N,24,24^FB341,1,0,L,0^FH_^FDO'Brien_5E_7E_5F_5EXZ_7EJR, _5EXZ^FS"
    );
    assert_eq!(
        lines[11],
        "^FO8,148^A0N,18,18^FB390,1,0,L,0^FH_^FDColl _7EDGR:X^FS"
    );
    assert!(
        lines[12].ends_with(r",1,0,R,0^FH_^FD_5EXA_5EFDX_5EFS_0D_0A\\&^FS"),
        "{}",
        lines[12]
    );
    assert_eq!(
        lines[13],
        "^FO8,169^A0N,18,18^FB390,1,0,L,0^FH_^FD_5EFS, _7EHS^FS"
    );
}

#[test]
fn rejects_accessions_code128_cannot_carry() {
    let layout = LabelLayout::default();
    for (accession, expected) in [
        ("", LabelError::EmptyAccession),
        (
            "24-Ö1",
            LabelError::InvalidAccessionChar {
                character: 'Ö',
                position: 3,
            },
        ),
        (
            "24\n01",
            LabelError::InvalidAccessionChar {
                character: '\n',
                position: 2,
            },
        ),
    ] {
        let data = LabelData {
            accession: accession.into(),
            ..sample()
        };
        assert_eq!(render_zpl(&data, &layout), Err(expected.clone()));
        assert_eq!(render_svg(&data, &layout), Err(expected));
    }
    let data = LabelData {
        accession: "X".repeat(40),
        ..sample()
    };
    assert!(matches!(
        render_zpl(&data, &layout),
        Err(LabelError::BarcodeTooWide { .. })
    ));
}

#[test]
fn sample_barcode_decodes_from_zpl() {
    for layout in [LabelLayout::default(), LabelLayout::tube_2x1_300dpi()] {
        let data = sample();
        assert_eq!(
            decode_zpl(&render_zpl(&data, &layout).unwrap()),
            data.accession
        );
    }
}

#[test]
fn awkward_accessions_decode_from_zpl() {
    for accession in [
        "A>B<C&D",
        ">>>>>>",
        "^~_\\ \"'`{|}",
        "12345678901234567890",
        "x1y22z333z4444",
    ] {
        let data = LabelData {
            accession: accession.into(),
            ..sample()
        };
        let zpl = render_zpl(&data, &LabelLayout::default()).unwrap();
        assert_eq!(decode_zpl(&zpl), accession, "{zpl}");
    }
}

#[test]
fn printer_and_svg_draw_the_same_bars() {
    let layout = LabelLayout::default();
    for accession in ["24-000123", "A123456B", "abc>~^_1234"] {
        let data = LabelData {
            accession: accession.into(),
            ..sample()
        };
        let printed = zpl_printer::print(&render_zpl(&data, &layout).unwrap());
        let drawn = svg_barcode_bitmap(&render_svg(&data, &layout).unwrap(), &layout);
        assert!(
            printed.pixels == drawn.pixels,
            "bars differ for {accession:?}"
        );
    }
}

#[test]
fn corrupted_zpl_does_not_decode_to_the_accession() {
    // The round trip can fail: the decode depends on what the ZPL says.
    let layout = LabelLayout::default();
    let zpl = render_zpl(&sample(), &layout).unwrap();
    let off_label = zpl.replace("^FO91,56^BC", "^FO300,56^BC");
    assert_ne!(zpl, off_label);
    let image = zpl_printer::print(&off_label).scaled(3);
    assert!(
        decode_code128(&image).is_err(),
        "bars cut by the label edge"
    );

    // The invocation codes for `>`, `^` and `~` are told apart.
    let data = LabelData {
        accession: "A>B^C~D_E".into(),
        ..sample()
    };
    let zpl = render_zpl(&data, &layout).unwrap();
    assert!(zpl.contains("^FD>:A>0B><C>=D_E^FS"), "{zpl}");
    assert_eq!(decode_zpl(&zpl), "A>B^C~D_E");
    let swapped = zpl.replace("^FD>:A>0B><C", "^FD>:A><B>0C");
    assert_eq!(decode_zpl(&swapped), "A^B>C~D_E");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_accessions_round_trip_through_zpl(accession in CODE128_ACCESSION) {
        let data = LabelData { accession: accession.clone(), ..sample() };
        let zpl = render_zpl(&data, &LabelLayout::default()).unwrap();
        prop_assert_eq!(zpl.matches("^XA").count(), 1);
        prop_assert_eq!(zpl.matches("^XZ").count(), 1);
        prop_assert_eq!(decode_zpl(&zpl), accession);
    }
}

/// Prints the ZPL with the mini printer and decodes the bitmap.
fn decode_zpl(zpl: &str) -> String {
    let image = zpl_printer::print(zpl).scaled(3);
    decode_code128(&image).unwrap_or_else(|e| panic!("no Code 128 found: {e}\n{zpl}"))
}

/// Paints the `<rect>`s of the SVG's `<g class="barcode">` group on a
/// label-sized bitmap (one pixel per dot), parsing the SVG text.
fn svg_barcode_bitmap(svg: &str, layout: &LabelLayout) -> Luma {
    let start = svg.find(r#"<g class="barcode""#).expect("barcode group");
    let end = start + svg[start..].find("</g>").expect("group end");
    let mut image = Luma::white(layout.width, layout.height);
    for rect in svg[start..end].split("<rect ").skip(1) {
        let attr = |name: &str| -> u32 {
            let key = format!(r#"{name}=""#);
            let from = rect.find(&key).expect("attribute") + key.len();
            let to = from + rect[from..].find('"').expect("quote");
            rect[from..to].parse().expect("integer attribute")
        };
        image.fill_black(attr("x"), attr("y"), attr("width"), attr("height"));
    }
    image
}

/// A minimal ZPL printer for the barcode subset; see the module docs.
mod zpl_printer {
    use super::Luma;

    /// Paints every `^BC` field of the format on a `^PW` x `^LL` bitmap,
    /// one pixel per dot. Panics on anything outside the supported subset.
    pub fn print(zpl: &str) -> Luma {
        let body = zpl
            .trim_end()
            .strip_prefix("^XA")
            .and_then(|z| z.strip_suffix("^XZ"))
            .expect("one ^XA ... ^XZ format");
        assert!(!body.contains('~'), "control commands are not expected");
        let (mut width, mut height) = (0, 0);
        let mut origin = (0, 0);
        let mut module = 2; // the printer's ^BY default
        let mut barcode_height = None;
        let mut hex = false;
        let mut data: Option<String> = None;
        let mut bars: Vec<(u32, u32, u32, u32, Vec<bool>)> = Vec::new();

        for command in body.split('^').skip(1) {
            let command = command.trim_end_matches(['\n', '\r']);
            let (name, args) = command.split_at(2);
            match name {
                "PW" => width = args.parse().expect("^PW"),
                "LL" => height = args.parse().expect("^LL"),
                "FO" => {
                    let (x, y) = args.split_once(',').expect("^FOx,y");
                    origin = (x.parse().expect("x"), y.parse().expect("y"));
                }
                "BY" => module = args.split(',').next().unwrap().parse().expect("^BY"),
                "BC" => {
                    let params: Vec<&str> = args.split(',').collect();
                    assert_eq!(params[0], "N", "orientation");
                    assert!(params.get(5).is_none_or(|m| *m == "N"), "mode N only");
                    barcode_height = Some(params[1].parse().expect("^BC height"));
                }
                "FH" => {
                    assert_eq!(args, "_", "hex indicator");
                    hex = true;
                }
                "FD" => data = Some(args.to_owned()),
                "FS" => {
                    let field = data.take().expect("^FD before ^FS");
                    if let Some(h) = barcode_height.take() {
                        let field = if hex { unhex(&field) } else { field };
                        let modules = code128::modules(&code128::values(&field));
                        bars.push((origin.0, origin.1, module, h, modules));
                    }
                    hex = false;
                }
                "CI" | "LH" | "A0" | "FB" | "FR" | "GB" => {}
                other => panic!("unsupported command ^{other}"),
            }
        }

        let mut image = Luma::white(width, height);
        for (x, y, module, h, modules) in bars {
            for (i, bar) in (0u32..).zip(modules) {
                if bar {
                    image.fill_black(x + i * module, y, module, h);
                }
            }
        }
        image
    }

    /// Undoes `^FH_` escapes: `_XX` is one byte, the result is UTF-8.
    fn unhex(field: &str) -> String {
        let bytes = field.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'_' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("UTF-8 field data")
    }

    /// An independent Code 128 encoder driven by the symbol width table.
    pub mod code128 {
        /// Bar/space widths (in modules) of symbol values 0..=106; 106 is
        /// the stop pattern including its final bar.
        const WIDTHS: [&str; 107] = [
            "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312",
            "132212", "221213", "221312", "231212", "112232", "122132", "122231", "113222",
            "123122", "123221", "223211", "221132", "221231", "213212", "223112", "312131",
            "311222", "321122", "321221", "312212", "322112", "322211", "212123", "212321",
            "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
            "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121",
            "313121", "211331", "231131", "213113", "213311", "213131", "311123", "311321",
            "331121", "312113", "312311", "332111", "314111", "221411", "431111", "111224",
            "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
            "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
            "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112",
            "421211", "212141", "214121", "412121", "111143", "111341", "131141", "114113",
            "114311", "411113", "411311", "113141", "114131", "311141", "411131", "211412",
            "211214", "211232", "2331112",
        ];
        const START_B: u32 = 104;
        const START_C: u32 = 105;
        const CODE_C: u32 = 99;
        const CODE_B: u32 = 100;
        const STOP: u32 = 106;

        /// Symbol values (start, data, checksum, stop) for mode N field
        /// data with the invocation codes `>:`, `>;`, `>5`, `>6`, `>0`,
        /// `><` and `>=`.
        pub fn values(field: &str) -> Vec<u32> {
            let chars: Vec<char> = field.chars().collect();
            let (mut set_c, mut i, start) = match (chars.first(), chars.get(1)) {
                (Some('>'), Some(':')) => (false, 2, START_B),
                (Some('>'), Some(';')) => (true, 2, START_C),
                _ => (false, 0, START_B),
            };
            let mut values = vec![start];
            while i < chars.len() {
                match (chars[i], chars.get(i + 1).copied()) {
                    ('>', Some('5')) => {
                        assert!(!set_c, ">5 in code set C");
                        values.push(CODE_C);
                        set_c = true;
                    }
                    ('>', Some('6')) => {
                        assert!(set_c, ">6 outside code set C");
                        values.push(CODE_B);
                        set_c = false;
                    }
                    // Literal `>`, `^`, `~`: values 30, 62, 94 in code set B.
                    ('>', Some('0')) if !set_c => values.push(30),
                    ('>', Some('<')) if !set_c => values.push(62),
                    ('>', Some('=')) if !set_c => values.push(94),
                    ('>', other) => panic!("unsupported invocation >{other:?} in {field:?}"),
                    (a, Some(b)) if set_c => {
                        let pair = format!("{a}{b}");
                        values.push(pair.parse().unwrap_or_else(|_| panic!("pair {pair:?}")));
                    }
                    (c, _) if !set_c && (' '..='~').contains(&c) => {
                        values.push(u32::from(c) - 32);
                        i += 1;
                        continue;
                    }
                    (c, _) => panic!("cannot encode {c:?} in {field:?}"),
                }
                i += 2;
            }
            let checksum = values
                .iter()
                .zip(0u32..)
                .map(|(v, weight)| v * weight.max(1))
                .sum::<u32>()
                % 103;
            values.push(checksum);
            values.push(STOP);
            values
        }

        /// Module pattern (`true` = bar) of the symbol values.
        pub fn modules(values: &[u32]) -> Vec<bool> {
            let mut out = Vec::new();
            for &value in values {
                for (i, width) in WIDTHS[value as usize].bytes().enumerate() {
                    let bar = i % 2 == 0;
                    out.extend(std::iter::repeat_n(bar, usize::from(width - b'0')));
                }
            }
            out
        }

        #[test]
        fn width_table_is_well_formed() {
            let mut seen = std::collections::HashSet::new();
            for (value, widths) in WIDTHS.iter().enumerate() {
                let sum: u32 = widths.bytes().map(|w| u32::from(w - b'0')).sum();
                assert_eq!(sum, if value == 106 { 13 } else { 11 }, "value {value}");
                assert!(seen.insert(widths), "duplicate pattern {widths}");
            }
        }

        #[test]
        fn checksum_of_a_known_symbol() {
            // Start B + "PJJ123C", by hand: 104 + 48*1 + 42*2 + 42*3
            // + 17*4 + 18*5 + 19*6 + 35*7 = 879, and 879 mod 103 = 55.
            let values = values(">:PJJ123C");
            assert_eq!(values, [104, 48, 42, 42, 17, 18, 19, 35, 55, 106]);
        }
    }
}
