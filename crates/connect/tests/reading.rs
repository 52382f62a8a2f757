//! How the connection edges read messages and answer them: public samples from real systems
//! (read in place from `../shared/testdata`) and byte-exact acknowledgements.

use aliquot_app::connections::{AckFacts, AckKind, Inbound, InboundError, Protocol};
use aliquot_connect::{astm, hl7};

fn sample(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `(specimen accession, its location, [(location, code, value, units, flags)])`.
type Shape = Vec<(
    String,
    String,
    Vec<(String, String, String, Option<String>, Vec<String>)>,
)>;

fn shape(i: &Inbound) -> Shape {
    i.specimens
        .iter()
        .map(|s| {
            (
                s.accession.clone(),
                s.location.clone(),
                s.observations
                    .iter()
                    .map(|o| {
                        (
                            o.location.clone(),
                            o.code.clone(),
                            o.value.clone(),
                            o.units.clone(),
                            o.flags.clone(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// One row of a reading case table: what it shows, the message, the specimens and results
/// read, the problems named `(location, code)`.
type Case = (
    &'static str,
    String,
    Shape,
    &'static [(&'static str, &'static str)],
);

fn errors(i: &Inbound) -> Vec<(&str, &str)> {
    i.rejected
        .iter()
        .map(|e| (e.location.as_str(), e.code.as_str()))
        .collect()
}

fn obs(
    loc: &str,
    code: &str,
    value: &str,
    units: Option<&str>,
    flags: &[&str],
) -> (String, String, String, Option<String>, Vec<String>) {
    (
        loc.into(),
        code.into(),
        value.into(),
        units.map(Into::into),
        flags.iter().map(|f| f.to_string()).collect(),
    )
}

#[test]
fn an_oru_with_two_orders_and_specimen_segments_is_read_result_by_result() {
    let raw = sample("hl7/fhirconv_LAB-ORU-1_multi-obr-spm_v25.hl7");
    let i = hl7::read_message(&raw);
    assert_eq!(i.protocol, Protocol::Hl7);
    assert_eq!(i.sender, "SomeSystem");
    assert_eq!(i.control_id, "182");
    assert_eq!(i.message_type, "ORU^R01");
    // SPM-2 names the specimen of each OBR group; PID-3 the patient.
    assert_eq!(i.specimens[0].patient_ids, ["10006579"]);
    assert_eq!(i.specimens[0].patient_location, "PID[1]-3");
    // Only final results are posted: OBX-11 I (pending) and P (preliminary) are named for a
    // person to decide.
    assert_eq!(
        shape(&i),
        vec![
            (
                "SpecimenID".to_owned(),
                "SPM[1]-2".to_owned(),
                vec![obs("OBX[5]", "11125-2", "221", Some("giga.l-1"), &["N"])],
            ),
            ("SpecimenID".to_owned(), "SPM[2]-2".to_owned(), vec![]),
        ]
    );
    assert_eq!(
        errors(&i),
        [
            ("OBX[1]-11", "result_status"),
            ("OBX[2]-11", "result_status"),
            ("OBX[3]-11", "result_status"),
            ("OBX[4]-11", "result_status"),
            ("OBX[6]-11", "result_status"),
            ("OBX[7]-11", "result_status"),
            ("OBX[8]-11", "result_status"),
            ("OBX[9]-11", "result_status"),
            ("OBX[10]-11", "result_status"),
        ]
    );
}

/// One row: a message → its sender, control id, specimens with their results, and problems.
#[test]
fn hl7_reading_case_table() {
    let msh = "MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||ORU^R01|C1|P|2.5.1\r";
    let cases: &[Case] = &[
        (
            "OBR-3 holds the analyzer's sample id; NTE is the result's comment",
            format!(
                "{msh}OBR|1|PL1|AB260001X|CHEM\rOBX|1|NM|K^Potassium||4.2|mmol/L|3.5-5.1|N|||F\r\
                 NTE|1||slight\rNTE|2||hemolysis\r"
            ),
            vec![(
                "AB260001X".into(),
                "OBR[1]-3".into(),
                vec![obs("OBX[1]", "K", "4.2", Some("mmol/L"), &["N"])],
            )],
            &[],
        ),
        (
            "without a filler number, OBR-2; an SN value keeps its comparator",
            format!("{msh}OBR|1|AB260002X||CHEM\rOBX|1|SN|TROP||<^0.01|ng/mL||L~W|||F\r"),
            vec![(
                "AB260002X".into(),
                "OBR[1]-2".into(),
                vec![obs("OBX[1]", "TROP", "<0.01", Some("ng/mL"), &["L", "W"])],
            )],
            &[],
        ),
        (
            "a coded value by its code; C (corrected) and R are posted, X and D are not",
            format!(
                "{msh}OBR|1||AB260003X\rOBX|1|CWE|UPRO||NEG^Negative^L||||||C\r\
                 OBX|2|NM|K||4.0|mmol/L|||||X\rOBX|3|NM|NA||140|mmol/L|||||R\r\
                 OBX|4|NM|CL||101|mmol/L|||||D\r"
            ),
            vec![(
                "AB260003X".into(),
                "OBR[1]-3".into(),
                vec![
                    obs("OBX[1]", "UPRO", "NEG", None, &[]),
                    obs("OBX[3]", "NA", "140", Some("mmol/L"), &[]),
                ],
            )],
            &[
                ("OBX[2]-11", "result_status"),
                ("OBX[4]-11", "result_status"),
            ],
        ),
        (
            "an OBX before any OBR",
            format!("{msh}OBX|1|NM|K||4.0|mmol/L|||||F\r"),
            vec![],
            &[("OBX[1]", "segment_sequence")],
        ),
        (
            "another message type is rejected whole",
            "MSH|^~\\&|EMR|H|ALIQUOT|LAB|20261128||ADT^A01|C2|P|2.5\rPID|1\r".into(),
            vec![],
            &[("MSH[1]-9", "unsupported_message_type")],
        ),
        (
            "no control id, no sender",
            "MSH|^~\\&||LAB|ALIQUOT|LAB|20261128||ORU^R01||P|2.5\r".into(),
            vec![],
            &[("MSH[1]-10", "required"), ("MSH[1]-3", "required")],
        ),
        (
            "not HL7 at all",
            "GET / HTTP/1.1\r\n".into(),
            vec![],
            &[("MSH[1]", "malformed")],
        ),
    ];
    for (what, raw, want, problems) in cases {
        let i = hl7::read_message(raw.as_bytes());
        assert_eq!(&shape(&i), want, "{what}");
        assert_eq!(&errors(&i), problems, "{what}");
        assert!(
            !i.control_id.is_empty(),
            "{what}: a key even without MSH-10"
        );
    }
}

fn facts<'a>(kind: AckKind, errors: &'a [InboundError]) -> AckFacts<'a> {
    AckFacts {
        kind,
        control_id: "0123456789ABCDEF0123".into(),
        errors,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn acknowledgements_are_byte_exact() {
    const TS: &str = "20261128101600+0000";
    let oru = b"MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||ORU^R01^ORU_R01|MSG-1|P|2.5.1\r\
                OBR|1||AB260001X\rOBX|1|NM|K||4.2|mmol/L|||||F\r";
    // Original mode, everything posted: AA, MSA-2 = MSH-10, sender and receiver swapped.
    assert_eq!(
        text(&hl7::acknowledge_at(oru, &facts(AckKind::Accept, &[]), TS)),
        "\x0bMSH|^~\\&|ALIQUOT|LAB|CHEM1|LAB|20261128101600+0000||ACK^R01^ACK|\
         0123456789ABCDEF0123|P|2.5.1\rMSA|AA|MSG-1\r\x1c\r"
    );
    // An error: AE with one ERR per problem (v2.5: ERR-2 location, ERR-3 code, ERR-4 E).
    let errs = [
        InboundError {
            location: "OBX[1]-3".into(),
            code: "unknown_test_code".into(),
            message: "no mapping".into(),
        },
        InboundError {
            location: "OBR[1]-3".into(),
            code: "unknown_specimen".into(),
            message: "no such tube".into(),
        },
    ];
    assert_eq!(
        text(&hl7::acknowledge_at(oru, &facts(AckKind::Error, &errs), TS)),
        "\x0bMSH|^~\\&|ALIQUOT|LAB|CHEM1|LAB|20261128101600+0000||ACK^R01^ACK|\
         0123456789ABCDEF0123|P|2.5.1\rMSA|AE|MSG-1\r\
         ERR||OBX^1^3|103^Table value not found: no mapping (unknown_test_code)^HL70357|E||||\
         2 problem(s); the message is in the interface error queue\r\
         ERR||OBR^1^3|204^Unknown key identifier: no such tube (unknown_specimen)^HL70357|E||||\
         2 problem(s); the message is in the interface error queue\r\x1c\r"
    );
    // v2.3: ERR-1 carries the location and code, MSA-3 the text.
    let v23 = b"MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||ORU^R01|MSG-2|P|2.3\r";
    assert_eq!(
        text(&hl7::acknowledge_at(
            v23,
            &facts(AckKind::Error, &errs[..1]),
            TS
        )),
        "\x0bMSH|^~\\&|ALIQUOT|LAB|CHEM1|LAB|20261128101600+0000||ACK^R01|\
         0123456789ABCDEF0123|P|2.3\rMSA|AE|MSG-2|\
         1 problem(s); the message is in the interface error queue\r\
         ERR|OBX^1^3^103&Table value not found: no mapping (unknown_test_code)&HL70357\r\x1c\r"
    );
    // Enhanced mode asking for both: CA (MSH-15/16 NE) after the commit, then AA.
    let enhanced =
        b"MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||ORU^R01|MSG-3|P|2.5.1|||AL|AL\r";
    assert_eq!(
        text(&hl7::acknowledge_at(
            enhanced,
            &facts(AckKind::Accept, &[]),
            TS
        )),
        "\x0bMSH|^~\\&|ALIQUOT|LAB|CHEM1|LAB|20261128101600+0000||ACK^R01^ACK|\
         0123456789ABCDEF0123|P|2.5.1|||NE|NE\rMSA|CA|MSG-3\r\x1c\r\
         \x0bMSH|^~\\&|ALIQUOT|LAB|CHEM1|LAB|20261128101600+0000||ACK^R01^ACK|\
         0123456789ABCDEF012Z|P|2.5.1\rMSA|AA|MSG-3\r\x1c\r"
    );
    // Enhanced, application ACK on errors only (ER): nothing more when all is well.
    let er = b"MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128101500||ORU^R01|MSG-4|P|2.5.1|||AL|ER\r";
    let one = hl7::acknowledge_at(er, &facts(AckKind::Accept, &[]), TS);
    assert_eq!(one.iter().filter(|b| **b == 0x0b).count(), 1);
    let two = hl7::acknowledge_at(er, &facts(AckKind::Error, &errs[..1]), TS);
    assert_eq!(two.iter().filter(|b| **b == 0x0b).count(), 2);
}

#[test]
fn an_astm_result_upload_is_read_with_flags_statuses_and_comments() {
    let raw = sample("astm/goastm_horiba-yumizen-h550_flags-LL-W-comment.astm");
    let i = astm::read_message(&raw);
    assert_eq!(i.protocol, Protocol::Astm);
    assert_eq!(i.sender, "H550");
    assert!(i.control_id.starts_with("sha256:"));
    // R-9 W (a warning, not final) is for a person; the final RDW is read with its flag.
    assert_eq!(
        shape(&i),
        vec![(
            "70424906396".to_owned(),
            "O[1]-3".to_owned(),
            vec![obs("R[4]", "RDW-CV", "23.0", Some("%"), &["H"])],
        )]
    );
    assert_eq!(
        errors(&i),
        [
            ("R[1]-9", "result_status"),
            ("R[2]-9", "result_status"),
            ("R[3]-9", "result_status"),
        ]
    );
}

#[test]
fn astm_reading_case_table() {
    let h = "H|\\^&|||CHEM1^1.0|||||||P|LIS2-A2|20261128101500\r";
    let cases: &[Case] = &[
        (
            "a decimal comma and a comparator; the host's patient id; a comment",
            format!(
                "{h}P|1|MRN-900\rO|1|AB260001X||^^^K|R\rR|1|^^^K|4,2|mmol/L||N||F\r\
                 C|1|I|^slightly hemolysed|G\rR|2|^^^CRP|<0,5|mg/L||||F\rL|1|N\r"
            ),
            vec![(
                "AB260001X".into(),
                "O[1]-3".into(),
                vec![
                    obs("R[1]", "K", "4.2", Some("mmol/L"), &["N"]),
                    obs("R[2]", "CRP", "<0.5", Some("mg/L"), &[]),
                ],
            )],
            &[],
        ),
        (
            "a result before its order",
            format!("{h}R|1|^^^K|4.2|mmol/L||||F\rL|1|N\r"),
            vec![],
            &[("R[1]", "segment_sequence")],
        ),
        (
            "no sender",
            "H|\\^&\rO|1|AB260001X\rL|1|N\r".into(),
            vec![("AB260001X".into(), "O[1]-3".into(), vec![])],
            &[("H[1]-5", "required")],
        ),
    ];
    for (what, raw, want, problems) in cases {
        let i = astm::read_message(raw.as_bytes());
        assert_eq!(&shape(&i), want, "{what}");
        assert_eq!(&errors(&i), problems, "{what}");
    }
    let i = astm::read_message(cases[0].1.as_bytes());
    assert_eq!(i.specimens[0].patient_ids, ["MRN-900"]);
    assert_eq!(
        i.specimens[0].observations[0].comment.as_deref(),
        Some("slightly hemolysed")
    );
}
