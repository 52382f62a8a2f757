//! Own fixtures written from the standard: dialects, escapes, delimiters, MLLP.

mod common;
use aliquot_hl7::{
    AckCode, AckError, AckMode, AckOptions, Charset, Delimiters, DiagnosticKind as K,
    DiscardReason, Document, ErrorLocation, MllpDecoder, MllpEvent, Severity as S, UnescapeOptions,
    ack_mode, build_ack, encode_frame,
};
use common::*;

#[test]
fn oru_with_escapes_everywhere() {
    let b = fixture("oru_r01_v251_escapes.hl7");
    check(
        &b,
        &[
            ("MSH-10", &["CTRL|0001"]),
            ("MSH-4.2", &["1.2.3&4"]),
            ("MSH-18", &["UNICODE UTF-8"]),
            ("PID-3.1", &["PAT&1", "XYZ99"]),
            ("PID-3.4.2", &["1.2.3"]),
            ("PID-3.5", &["MR", "SS"]),
            ("PID-5.1", &["O\\Brien"]),
            ("PID-5.2", &["Seán"]),
            (
                "OBX-5",
                &[
                    "5.2",
                    "<^0.5",
                    "Result critical called",
                    "27",
                    "25",
                    "\\Z1234\\kept\n\nend\\Cxx\\x",
                ],
            ),
            (
                "OBX-5.1",
                &[
                    "5.2",
                    "<",
                    "Result critical called",
                    "27",
                    "25",
                    "\\Z1234\\kept\n\nend\\Cxx\\x",
                ],
            ),
            ("OBX-8", &["H", "L", "A", "", "", ""]),
            ("NTE-3", &["Line one\nLine two ^ caret ~ tilde | bar"]),
            ("SPM-2.1.1", &["SP1"]),
            ("SPM-2.2.3", &["1.3"]),
            ("SPM-17.2", &["20261121080500"]),
        ],
    );
    let doc = Document::parse(&b);
    assert!(doc.diagnostics().is_empty(), "{:?}", doc.diagnostics());
    let m = doc.messages().next().expect("m");
    let obx = m
        .segments_named("OBX")
        .nth(2)
        .map(aliquot_hl7::Obx)
        .expect("obx3");
    let v = obx.value().expect("v");
    assert_eq!(
        v.value_with(&UnescapeOptions {
            highlight_on: "*",
            highlight_off: "*"
        }),
        "Result* critical* called"
    );
    assert_eq!(v.raw(), b"Result\\H\\ critical\\N\\ called");
}

#[test]
fn mindray_v231_with_lf() {
    let b = fixture("mindray_v231_lf.hl7");
    check(
        &b,
        &[
            ("MSH-16", &["0"]),
            ("MSH-18", &["ASCII"]),
            ("OBX-4", &["GLU", "ALT"]),
            ("OBX-5", &["5.6", "88"]),
            ("OBX-7", &["3.9-6.1", "0-40"]),
            ("OBX-8", &["N", "H"]),
            ("OBR-15", &["serum"]),
        ],
    );
    assert_eq!(diag_kinds(&b), [(S::Warning, K::NonCrSegmentTerminator)]);
}

#[test]
fn v27_truncation_crlf_bom() {
    let b = fixture("v27_truncation.hl7");
    check(
        &b,
        &[
            ("MSH-2", &["^~\\&#"]),
            ("NTE-3", &["hash # inside#truncated"]),
            ("QPD-3.2", &["SMITH", "F"]),
            ("QAK-4", &["2"]),
        ],
    );
    assert_eq!(
        diag_kinds(&b),
        [
            (S::Warning, K::ByteOrderMark),
            (S::Warning, K::NonCrSegmentTerminator)
        ]
    );
}

#[test]
fn nonstandard_delimiters_no_final_cr() {
    let b = fixture("nonstd_delims.hl7");
    check(
        &b,
        &[
            ("MSH-9.2", &["R01"]),
            ("PID-3.4.2", &["Y"]),
            ("PID-5.1", &["Name", "Alias"]),
            ("PID-5.2", &["Given", "Other"]),
            ("OBX-3.2", &["Test"]),
            ("OBX-5", &["pipe|caret^amp&tilde~ escaped ! @ * %"]),
        ],
    );
    let doc = Document::parse(&b);
    assert_eq!(
        doc.messages().next().expect("m").delimiters(),
        Delimiters {
            field: b'!',
            component: Some(b'@'),
            repetition: Some(b'*'),
            escape: Some(b'\\'),
            subcomponent: Some(b'%'),
            truncation: None
        }
    );
}

#[test]
fn latin1_hex_policy() {
    let b = fixture("latin1_hex_and_bytes.hl7");
    // \Xfc\ is ü in Latin-1; \X00e9\ is two bytes 00 e9; \Xzz\ is not hex and is kept.
    check(
        &b,
        &[("PID-5.1", &["Müller"]), ("PID-5.2", &["J\u{0}ér\\Xzz\\"])],
    );
    let raw = fixture("latin1_raw.hl7");
    check(&raw, &[("PID-5.1", &["Müller"])]);
    assert_eq!(diag_kinds(&raw), [(S::Warning, K::NotUtf8)]);
    assert_eq!(Charset::from_msh18(b"UNICODE UTF-8"), Charset::Utf8);
    assert_eq!(Charset::from_msh18(b"8859/1"), Charset::Latin1);
}

#[test]
fn python_hl7_escape_vectors() {
    let text = String::from_utf8(shared("hl7", "pythonhl7_escape-vectors.json")).expect("utf8");
    // Minimal reading of the JSON vectors: op, input, expected, options.
    let v: Vec<(String, String, String, bool)> = parse_vectors(&text);
    assert_eq!(v.len(), 17);
    let d = Delimiters::default();
    for (op, input, expected, has_opts) in v {
        if op == "unescape" {
            let got = if has_opts {
                aliquot_hl7::unescape_with(
                    input.as_bytes(),
                    &d,
                    Charset::Latin1,
                    &UnescapeOptions {
                        highlight_on: "*",
                        highlight_off: "*",
                    },
                )
            } else if input.contains("\\H\\") {
                aliquot_hl7::unescape_with(
                    input.as_bytes(),
                    &d,
                    Charset::Latin1,
                    &UnescapeOptions {
                        highlight_on: "_",
                        highlight_off: "_",
                    },
                )
            } else {
                aliquot_hl7::unescape(input.as_bytes(), &d, Charset::Latin1)
            };
            assert_eq!(got, expected, "unescape {input:?}");
        } else {
            let mut out = Vec::new();
            aliquot_hl7::escape_into(
                &mut out,
                &input,
                &d,
                &aliquot_hl7::EncodeOptions {
                    non_ascii: aliquot_hl7::NonAscii::HexLatin1,
                },
            );
            assert_eq!(String::from_utf8_lossy(&out), expected, "escape {input:?}");
        }
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let h: String = it.by_ref().take(4).collect();
                    out.push(
                        char::from_u32(u32::from_str_radix(&h, 16).expect("hex")).expect("char"),
                    );
                }
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field_of(obj: &str, key: &str) -> String {
    let k = format!("\"{key}\": ");
    let start = obj.find(&k).expect("key") + k.len();
    let rest = &obj[start..];
    if rest.starts_with("null") {
        return "null".into();
    }
    if rest.starts_with('{') {
        return "{".into();
    }
    let body = &rest[1..];
    let mut end = 0;
    let bytes = body.as_bytes();
    while end < bytes.len() {
        if bytes[end] == b'\\' {
            end += 2;
            continue;
        }
        if bytes[end] == b'"' {
            break;
        }
        end += 1;
    }
    json_str(&body[..end])
}

fn parse_vectors(text: &str) -> Vec<(String, String, String, bool)> {
    text.split("\"op\"")
        .skip(1)
        .map(|chunk| {
            let obj = format!("\"op\"{chunk}");
            (
                field_of(&obj, "op"),
                field_of(&obj, "input"),
                field_of(&obj, "expected"),
                field_of(&obj, "options") == "{",
            )
        })
        .collect()
}

#[test]
fn mllp_stream_recovery() {
    let b = fixture("mllp_stream.bin");
    for chunk in [1usize, 2, 3, 7, 1000] {
        let mut dec = MllpDecoder::default();
        let mut events = Vec::new();
        for c in b.chunks(chunk) {
            dec.push(c);
            while let Some(e) = dec.next_event() {
                events.push(e);
            }
        }
        dec.finish();
        while let Some(e) = dec.next_event() {
            events.push(e);
        }
        let summary: Vec<String> = events
            .iter()
            .map(|e| match e {
                MllpEvent::Frame(f) => {
                    let d = Document::parse(f);
                    format!(
                        "frame {}",
                        d.messages()
                            .next()
                            .and_then(|m| m.get("MSH-10"))
                            .unwrap_or_default()
                    )
                }
                MllpEvent::Discarded { bytes, reason } => format!("{reason:?} {bytes}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "Garbage 4",
                "frame M1",
                "Interrupted 16",
                "frame M2",
                "Truncated 20"
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn mllp_split_between_fs_and_cr_and_oversize() {
    let mut out = Vec::new();
    encode_frame(b"MSH|^~\\&|A\r", &mut out);
    let mut dec = MllpDecoder::new(8);
    dec.push(&out);
    assert_eq!(
        dec.next_event(),
        Some(MllpEvent::Discarded {
            bytes: 11,
            reason: DiscardReason::Oversized
        })
    );
    let mut dec = MllpDecoder::new(100);
    let (a, c) = out.split_at(out.len() - 1);
    dec.push(a);
    assert_eq!(dec.next_event(), None);
    dec.push(c);
    assert_eq!(dec.next_frame().as_deref(), Some(&b"MSH|^~\\&|A\r"[..]));
    // commit ACK block of MLLP release 2 is just a one-byte frame
    dec.push(&[0x0B, 0x06, 0x1C, 0x0D]);
    assert_eq!(dec.next_frame(), Some(vec![0x06]));
}

#[test]
fn ack_original_v251_with_err() {
    let b = fixture("oru_r01_v251_escapes.hl7");
    let doc = Document::parse(&b);
    let m = doc.messages().next().expect("m");
    assert!(matches!(ack_mode(&m), AckMode::Enhanced { .. }));
    let ack = build_ack(
        &m,
        &AckOptions {
            code: AckCode::AE,
            control_id: "ACK1".into(),
            timestamp: "20261121101501+0100".into(),
            text: Some("Unknown test".into()),
            errors: vec![AckError {
                code: 103,
                text: "Table value not found".into(),
                location: Some(ErrorLocation {
                    segment: "OBX".into(),
                    sequence: 1,
                    field: 3,
                    repetition: Some(1),
                    component: Some(1),
                }),
                severity: 'E',
            }],
        },
    );
    let enc = String::from_utf8(ack.encode()).expect("utf8");
    assert_eq!(
        enc,
        "MSH|^~\\&|EHR|HOSP|ALQ LAB|ALQ^1.2.3&4^ISO|20261121101501+0100||ACK^R01^ACK|ACK1|P|2.5.1||||||UNICODE UTF-8\r\
MSA|AE|CTRL\\F\\0001\r\
ERR||OBX^1^3^1^1|103^Table value not found^HL70357|E||||Unknown test\r"
    );
    // The ACK parses back and MSA-2 echoes MSH-10.
    let d2 = Document::parse(enc.as_bytes());
    assert_eq!(
        d2.messages().next().and_then(|m| m.get("MSA-2")).as_deref(),
        Some("CTRL|0001")
    );
}

#[test]
fn ack_v231_and_commit() {
    let b = fixture("mindray_v231_lf.hl7");
    let doc = Document::parse(&b);
    let m = doc.messages().next().expect("m");
    let opts = |code| AckOptions {
        code,
        control_id: "A9".into(),
        timestamp: "20261121".into(),
        text: Some("bad".into()),
        errors: vec![AckError {
            code: 101,
            text: "Required field missing".into(),
            location: Some(ErrorLocation {
                segment: "PID".into(),
                sequence: 1,
                field: 3,
                ..Default::default()
            }),
            severity: 'E',
        }],
    };
    let enc = String::from_utf8(build_ack(&m, &opts(AckCode::AR)).encode()).expect("utf8");
    assert_eq!(
        enc,
        "MSH|^~\\&|||Mindray|BS-240|20261121||ACK^R01|A9|P|2.3.1||||||ASCII\rMSA|AR|42|bad\rERR|PID^1^3^101&Required field missing&HL70357\r"
    );
    let mut o = opts(AckCode::CA);
    o.errors.clear();
    o.text = None;
    let enc = String::from_utf8(build_ack(&m, &o).encode()).expect("utf8");
    assert_eq!(
        enc,
        "MSH|^~\\&|||Mindray|BS-240|20261121||ACK^R01|A9|P|2.3.1|||NE|NE||ASCII\rMSA|CA|42\r"
    );
}

#[test]
fn limits_and_garbage_never_panic() {
    let lim = aliquot_hl7::Limits {
        max_input_bytes: 10,
        ..Default::default()
    };
    let d = Document::parse_with_limits(b"MSH|^~\\&|A|B|C|D|E", &lim);
    assert!(d.diagnostics().iter().any(|x| x.kind == K::LimitExceeded));
    let d = Document::parse(b"");
    assert_eq!(d.diagnostics()[0].kind, K::Empty);
    let d = Document::parse(b"MSH|");
    assert!(d.has_errors());
    let d = Document::parse(b"MSH|^^^^|x");
    assert!(d.diagnostics().iter().any(|x| x.kind == K::BadDelimiters));
    let d = Document::parse(b"PID|1\rMSH|^~\\&|A\r");
    assert!(d.diagnostics().iter().any(|x| x.kind == K::MissingHeader));
    let d = Document::parse(&[0xff, 0x00, 0x0d, 0x0a, 0x7c, 0x5e]);
    assert!(d.has_errors());
}
