//! Every public sample in ../shared/testdata/hl7, read in place.

mod common;
use aliquot_hl7::{DiagnosticKind as K, Document, Severity as S};
use common::*;

#[test]
fn every_shared_hl7_file_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(shared_dir("hl7"))
        .expect("read hl7 dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hl7"))
        .collect();
    names.sort();
    let covered = [
        "fhirconv_LAB-ORM-1_orm_o01_v23.hl7",
        "fhirconv_LAB-ORU-1_multi-obr-spm_v25.hl7",
        "fhirconv_LRI-NG-CBC_oru_r01_v251.hl7",
        "fhirconv_MDHHS-OML-O21-1_DEFECT-missing-segment-terminator.hl7",
        "fhirconv_MDHHS-OML-O21-2_oml_o21_v251_enhanced-ack.hl7",
        "fhirconv_OML-O21-02_multi-order_msh9-orm.hl7",
        "fhirconv_ORU-R01-01_elr_v251_kitchen-sink.hl7",
        "hl7apy_oml_o33_v25_multi-specimen-multi-order.hl7",
        "hl7apy_qbp_q22_query.hl7",
        "hl7apy_rsp_k22_response.hl7",
        "hl7apy_rsp_k22_v25_pdq.hl7",
        "hl7apy_rsp_k22_v27_truncation-char.hl7",
        "hl7rust_batch_fhs-bhs_ack-aa-ae-err_v25.hl7",
        "pythonhl7_DEFECT-batch-bhs-in-middle.hl7",
        "pythonhl7_file-batch_fhs-bhs-bts-fts.hl7",
        "pythonhl7_ghh-lab_oru_r01_v24.hl7",
        "pythonhl7_nonstandard-separators_dollar-percent.hl7",
        "pythonhl7_repetition-component-subcomponent.hl7",
    ];
    for n in &names {
        assert!(
            covered.contains(&n.as_str()),
            "shared sample {n} has no test"
        );
    }
    assert_eq!(names.len(), covered.len());
}

#[test]
fn ghh_lab_oru_v24() {
    let b = shared("hl7", "pythonhl7_ghh-lab_oru_r01_v24.hl7");
    check(
        &b,
        &[
            ("MSH-1", &["|"]),
            ("MSH-2", &["^~\\&"]),
            ("MSH-9", &["ORU^R01"]),
            ("MSH-9.2", &["R01"]),
            ("MSH-10", &["CNTRL-3456"]),
            ("MSH-12", &["2.4"]),
            ("PID-3", &["555-44-4444"]),
            ("PID-5.1", &["EVERYWOMAN"]),
            ("PID-5.2", &["EVE"]),
            ("PID-11.3", &["STATESVILLE"]),
            ("OBR-4", &["1554-5^GLUCOSE"]),
            ("OBR-15.7", &["MD"]),
            ("OBR-30.2", &["HIPPOCRATES"]),
            ("OBX-2", &["SN", "FN"]),
            ("OBX-5", &["^182", "^182"]),
            ("OBX-5.2", &["182", "182"]),
            ("OBX-7", &["70_105", "70_105"]),
            ("OBX-8", &["H", "H"]),
            ("OBX-11", &["F", "F"]),
        ],
    );
    let doc = Document::parse(&b);
    assert!(doc.diagnostics().is_empty(), "{:?}", doc.diagnostics());
    assert_eq!(doc.message_count(), 1);
    assert_eq!(doc.segment_count(), 5);
}

#[test]
fn repetition_component_subcomponent() {
    let b = shared("hl7", "pythonhl7_repetition-component-subcomponent.hl7");
    check(
        &b,
        &[
            ("PID-1", &["Field1"]),
            ("PID-2.2", &["Component2"]),
            ("PID-3.2", &["Sub-Component1&Sub-Component2"]),
            ("PID-3.2.1", &["Sub-Component1"]),
            ("PID-3.2.2", &["Sub-Component2"]),
            ("PID-3.3", &["Component3"]),
            ("PID-4", &["Repeat1", "Repeat2"]),
            ("PID-4[2]", &["Repeat2"]),
        ],
    );
    let doc = Document::parse(&b);
    let pid = doc
        .messages()
        .next()
        .and_then(|m| m.segment("PID"))
        .expect("PID");
    assert_eq!(pid.field(4).map(|f| f.len()), Some(2));
    assert!(!doc.has_errors());
}

#[test]
fn nonstandard_dollar_percent() {
    let b = shared("hl7", "pythonhl7_nonstandard-separators_dollar-percent.hl7");
    check(
        &b,
        &[
            ("MSH-1", &["$"]),
            ("MSH-2", &["%~\\&"]),
            ("MSH-3", &["GHH LAB"]),
            ("PID-3", &["555-44-4444"]),
            ("PID-5.1", &["EVERYWOMAN"]),
            ("PID-5.3", &["E"]),
            ("PID-5.6", &["L"]),
        ],
    );
    let doc = Document::parse(&b);
    let m = doc.messages().next().expect("msg");
    assert_eq!(m.delimiters().field, b'$');
    assert_eq!(m.delimiters().component, Some(b'%'));
}

#[test]
fn file_batch_two_batches() {
    let b = shared("hl7", "pythonhl7_file-batch_fhs-bhs-bts-fts.hl7");
    let doc = Document::parse(&b);
    assert!(!doc.has_errors(), "{:?}", doc.diagnostics());
    assert_eq!(doc.message_count(), 3);
    check(
        &b,
        &[
            (
                "MSH-10",
                &["12334456778890", "12334456778891", "12334456778890"],
            ),
            ("BTS-1", &["2", "1"]),
            ("FTS-1", &["2"]),
            ("FHS-10", &["abchs20070101123401.hl7"]),
            ("PID-3.4", &["100", "100", "100"]),
            ("EVN-1", &["A04", "A04", "A04"]),
        ],
    );
    let segs: Vec<String> = doc
        .messages()
        .nth(1)
        .expect("2nd")
        .segments()
        .map(|s| s.name().into_owned())
        .collect();
    assert_eq!(segs, ["MSH", "EVN", "PID", "PD1", "NK1", "PV1"]);
}

#[test]
fn defect_bhs_in_middle_is_rejected() {
    let b = shared("hl7", "pythonhl7_DEFECT-batch-bhs-in-middle.hl7");
    let doc = Document::parse(&b);
    assert!(doc.has_errors());
    let kinds = diag_kinds(&b);
    assert!(kinds.contains(&(S::Error, K::BatchStructure)), "{kinds:?}");
    assert!(
        kinds.contains(&(S::Error, K::SegmentOutsideMessage)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&(S::Error, K::BatchCount)), "{kinds:?}");
    // The message before the stray BHS holds only MSH and EVN: PID is not attached to it.
    assert_eq!(doc.message_count(), 1);
    let names: Vec<String> = doc
        .messages()
        .next()
        .expect("msg")
        .segments()
        .map(|s| s.name().into_owned())
        .collect();
    assert_eq!(names, ["MSH", "EVN"]);
}

#[test]
fn hl7rust_batch_of_acks() {
    let b = shared("hl7", "hl7rust_batch_fhs-bhs_ack-aa-ae-err_v25.hl7");
    let doc = Document::parse(&b);
    assert!(!doc.has_errors(), "{:?}", doc.diagnostics());
    assert_eq!(doc.message_count(), 2);
    check(
        &b,
        &[
            ("MSA-1", &["AA", "AE"]),
            ("MSA-2", &["MSG00042", "MSG00043"]),
            ("MSA-3", &["Segment out of order"]),
            ("ERR-3.1", &["207"]),
            ("ERR-3.2", &["Application internal error"]),
            ("ERR-4", &["E"]),
            ("BTS-1", &["2"]),
            ("FTS-1", &["1"]),
        ],
    );
}

#[test]
fn lri_cbc_v251_bom_lf() {
    let b = shared("hl7", "fhirconv_LRI-NG-CBC_oru_r01_v251.hl7");
    let doc = Document::parse(&b);
    let kinds = diag_kinds(&b);
    assert!(kinds.contains(&(S::Warning, K::ByteOrderMark)));
    assert!(kinds.contains(&(S::Warning, K::NonCrSegmentTerminator)));
    assert!(!doc.has_errors(), "{:?}", doc.diagnostics());
    check(
        &b,
        &[
            ("MSH-9", &["ORU^R01^ORU_R01"]),
            ("MSH-10", &["NIST-LRI-NG-002.00"]),
            ("MSH-12", &["2.5.1"]),
            ("MSH-15", &["AL"]),
            (
                "MSH-21.1",
                &[
                    "LRI_Common_Component",
                    "LRI_NG_Component",
                    "LRI_RU_Component",
                ],
            ),
            ("PID-3.1", &["PATID1234"]),
            ("PID-5.1", &["Jones"]),
            ("ORC-1", &["RE"]),
            ("ORC-3.1", &["R-991133"]),
        ],
    );
    let p = aliquot_hl7::FieldPath::parse("OBX-6.1").expect("path");
    let units: Vec<String> = doc
        .query(&p)
        .iter()
        .map(|v| v.value().into_owned())
        .collect();
    assert_eq!(units.len(), 28);
    assert_eq!(units[0], "10*6/uL");
    let first = doc.messages().next().expect("m");
    let obx = first.segments_named("OBX").next().expect("obx");
    let obx = aliquot_hl7::Obx(obx);
    assert_eq!(obx.reference_range().expect("r").value(), "4.3 to 6.2");
    assert_eq!(obx.value().expect("v").value(), "4.41");
    assert_eq!(obx.units().expect("u").comp_str(3), "UCUM");
    let flags: Vec<String> = doc
        .query(&aliquot_hl7::FieldPath::parse("OBX-8").expect("p"))
        .iter()
        .map(|v| v.value().into_owned())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(
        flags.contains(&"HH".to_string()) && flags.contains(&"L".to_string()),
        "{flags:?}"
    );
}

#[test]
fn lab_oru_multi_obr_spm() {
    let b = shared("hl7", "fhirconv_LAB-ORU-1_multi-obr-spm_v25.hl7");
    check(
        &b,
        &[
            ("OBR-1", &["2", "1"]),
            (
                "OBX-5",
                &["", "4.06", "", "40.1", "221", "72", "2", "20", "6", "0"],
            ),
            (
                "OBX-11",
                &["I", "P", "I", "P", "F", "P", "P", "P", "P", "P"],
            ),
            (
                "OBX-6",
                &["", "tera.l-1", "", "%", "giga.l-1", "%", "%", "%", "%", "%"],
            ),
            ("SPM-2", &["SpecimenID", "SpecimenID"]),
            ("OBR-33.1.2", &["CYTO", "CYTO"]),
        ],
    );
    assert!(!Document::parse(&b).has_errors());
}

#[test]
fn lab_orm_v23() {
    let b = shared("hl7", "fhirconv_LAB-ORM-1_orm_o01_v23.hl7");
    check(
        &b,
        &[
            ("MSH-9", &["ORM^O01"]),
            ("PID-3.1", &["10006579"]),
            ("PID-3.5", &["MR"]),
            ("ORC-1", &["NW"]),
            ("ORC-2", &["88502218"]),
            ("OBR-4.1", &["24317-0"]),
            ("OBR-24", &["HM"]),
            ("PV1-2", &["I"]),
        ],
    );
}

#[test]
fn defect_missing_segment_terminator() {
    let b = shared(
        "hl7",
        "fhirconv_MDHHS-OML-O21-1_DEFECT-missing-segment-terminator.hl7",
    );
    let doc = Document::parse(&b);
    let d: Vec<_> = doc
        .diagnostics()
        .iter()
        .filter(|d| d.kind == K::ProbableMissingTerminator)
        .collect();
    assert_eq!(d.len(), 1, "{:?}", doc.diagnostics());
    assert!(d[0].message.contains("ORC"));
    assert_eq!(&b[d[0].offset..d[0].offset + 4], b"ORC|");
    // No ORC segment exists; the GT1 swallowed it.
    let m = doc.messages().next().expect("m");
    assert!(m.segment("ORC").is_none());
    check(
        &b,
        &[
            ("GT1-21.2", &["LORC"]),
            ("MSH-10", &["TC09SAPartAIG030101AA"]),
        ],
    );
}

#[test]
fn oml_o21_enhanced_ack() {
    let b = shared(
        "hl7",
        "fhirconv_MDHHS-OML-O21-2_oml_o21_v251_enhanced-ack.hl7",
    );
    let doc = Document::parse(&b);
    let m = doc.messages().next().expect("m");
    assert_eq!(
        aliquot_hl7::ack_mode(&m),
        aliquot_hl7::AckMode::Enhanced {
            accept: "AL".into(),
            application: "AL".into()
        }
    );
    check(
        &b,
        &[
            ("ORC-1", &["NW"]),
            ("ORC-2.1", &["ORD723222"]),
            ("ORC-2.3", &["2.16.840.1.113883.3.72.5.24"]),
            ("PID-5.1", &["Old"]),
            ("OBR-1", &["1", "2"]),
        ],
    );
    assert!(
        doc.diagnostics()
            .iter()
            .all(|d| d.kind != K::ProbableMissingTerminator)
    );
}

#[test]
fn oml_with_orm_msh9() {
    let b = shared("hl7", "fhirconv_OML-O21-02_multi-order_msh9-orm.hl7");
    check(
        &b,
        &[
            ("MSH-9.1", &["ORM"]),
            ("MSH-9.3", &["ORM_O01"]),
            ("MSH-12", &["2.6"]),
            ("PID-3.4.2", &["2.16.1"]),
            ("PID-3.4", &["test1&2.16.1&HCD", "USSSA"]),
            ("PID-5.1.1", &["EVERYMAN", "Josh"]),
            ("PID-5.1.5", &["Aniston", "Bing"]),
            ("ORC-2.1", &["1101", "2203"]),
        ],
    );
}

#[test]
fn elr_kitchen_sink() {
    let b = shared("hl7", "fhirconv_ORU-R01-01_elr_v251_kitchen-sink.hl7");
    let doc = Document::parse(&b);
    assert!(!doc.has_errors(), "{:?}", doc.diagnostics());
    let m = doc.messages().next().expect("m");
    assert_eq!(m.get("MSH-3.1").as_deref(), Some("IA PHIMS Stage"));
    assert_eq!(
        m.get("PID-3.4.2").as_deref(),
        Some("2.16.840.1.114222.4.3.3.5.1.2")
    );
    let obx5: Vec<String> = m
        .query(&aliquot_hl7::FieldPath::parse("OBX-5").expect("p"))
        .iter()
        .map(|v| v.value().into_owned())
        .collect();
    assert!(obx5.windows(2).any(|w| w == ["27", "25"]), "{obx5:?}");
    let nte: Vec<String> = m
        .query(&aliquot_hl7::FieldPath::parse("NTE-3").expect("p"))
        .iter()
        .map(|v| v.value().into_owned())
        .collect();
    assert!(
        nte.iter().any(|s| s.contains('&')),
        "\\T\\ must decode to &: {nte:?}"
    );
    let spm = m.segment("SPM").map(aliquot_hl7::Spm).expect("spm");
    assert_eq!(
        spm.specimen_id()
            .expect("id")
            .component(1)
            .and_then(|c| c.subcomponent(1))
            .map(|v| v.value().into_owned())
            .as_deref(),
        Some("2012545")
    );
}

#[test]
fn hl7apy_oml_o33() {
    let b = shared("hl7", "hl7apy_oml_o33_v25_multi-specimen-multi-order.hl7");
    let doc = Document::parse(&b);
    let m = doc.messages().next().expect("m");
    assert_eq!(m.segments_named("SPM").count(), 2);
    assert_eq!(m.segments_named("ORC").count(), 4);
    assert_eq!(m.get("MSH-9.3").as_deref(), Some("OML_O33"));
    assert_eq!(m.get("PID-11[1].2").as_deref(), Some("CAGLIARI"));
    assert_eq!(m.get("PID-11[2].1").as_deref(), Some(""));
    assert_eq!(m.get("PID-11[2].7").as_deref(), Some("L"));
    check(
        &b,
        &[("PID-5.1", &["PIPPO"]), ("PID-3.4.1", &["GATEWAY_IL"])],
    );
}

#[test]
fn hl7apy_queries_and_responses() {
    let q = shared("hl7", "hl7apy_qbp_q22_query.hl7");
    check(
        &q,
        &[
            ("MSH-9", &["QBP^Q22^QBP_Q21"]),
            ("QPD-1", &["IHE PDQ Query"]),
            ("QPD-2", &["111069"]),
            ("QPD-3.1", &["@PID.3.1"]),
            ("QPD-3.2", &["1"]),
            ("RCP-1", &["I"]),
        ],
    );
    let r = shared("hl7", "hl7apy_rsp_k22_response.hl7");
    check(
        &r,
        &[
            ("MSA-1", &["AA"]),
            ("MSA-2", &["26775702551812240"]),
            ("QAK-2", &["OK"]),
            ("QAK-4", &["1"]),
            ("QPD-3.2", &["1010110909194822", "SMITH"]),
            ("PID-5.1", &["MOUSE"]),
        ],
    );
    let p = shared("hl7", "hl7apy_rsp_k22_v25_pdq.hl7");
    check(
        &p,
        &[
            ("MSH-10", &["1234"]),
            ("QAK-1", &["111069"]),
            ("PID-3.4.2", &["1.3.6.1.4.1.21367.2011.2.5.17"]),
        ],
    );
    let t = shared("hl7", "hl7apy_rsp_k22_v27_truncation-char.hl7");
    let doc = Document::parse(&t);
    let d = doc.messages().next().expect("m").delimiters();
    assert_eq!(d.truncation, Some(b'#'));
    assert!(!doc.has_errors(), "{:?}", doc.diagnostics());
    check(
        &t,
        &[
            ("MSH-2", &["^~\\&#"]),
            ("MSH-12", &["2.7"]),
            ("QAK-2", &["OK"]),
            ("PID-5.2", &["SMITH"]),
        ],
    );
}
