//! E1394 records: every shared sample read in place, own fixtures, host-query answers.

mod common;
use aliquot_astm::parse_records;
use aliquot_astm::records::{
    self, AnswerOrder, Comment, Header, Order, Patient, Query, ResultRecord, Severity, Terminator,
    build_query_answer, parse_numeric,
};
use common::*;

fn kinds(b: &[u8]) -> String {
    parse_records(b)
        .records
        .iter()
        .map(|r| r.kind() as char)
        .collect()
}

/// Data-driven check: `(record index, field number, expected unescaped text)`.
fn check(b: &[u8], expected: &[(usize, usize, &str)]) {
    let recs = parse_records(b);
    for &(i, n, want) in expected {
        let r = recs
            .records
            .get(i)
            .unwrap_or_else(|| panic!("no record {i}"));
        assert_eq!(
            r.text(n),
            want,
            "record {i} ({}) field {n}",
            r.kind() as char
        );
    }
}

#[test]
fn every_shared_astm_file_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(shared_dir("astm"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".astm"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "goastm_biorad-ihcom52_bloodtype.astm",
            "goastm_biorad-ihcom52_bloodtype_two-patients.astm",
            "goastm_euroimmun-analyzer1_multi-patient.astm",
            "goastm_horiba-yumizen-h550_flags-LL-W-comment.astm",
            "goastm_horiba-yumizen-h550_result_m-records.astm",
            "goastm_immucor-galileo_order.astm",
            "goastm_immucor-galileo_result.astm",
            "goastm_immucor_order-result_3comp-value.astm",
            "goastm_rvt_host-query_5xQ.astm",
            "goastm_rvt_multi-header_queries.astm",
            "pyastm_omnilab_order-download_assembled.astm",
            "pyastm_omnilab_result-upload_assembled.astm",
        ]
    );
}

#[test]
fn biorad_bloodtype() {
    let b = shared("astm", "goastm_biorad-ihcom52_bloodtype.astm");
    assert_eq!(kinds(&b), "HPORCRCRCRCL");
    let recs = parse_records(&b);
    assert!(recs.diagnostics.is_empty(), "{:?}", recs.diagnostics);
    let o = Order::from_record(&recs.records[2]).expect("O");
    assert_eq!(o.specimen_id(), "1122206642");
    assert_eq!(o.instrument_specimen_id().repeats().len(), 2);
    assert_eq!(o.tests(), ["MO10"]);
    let r = ResultRecord::from_record(&recs.records[9]).expect("R4");
    assert_eq!(r.test_code(), "Result");
    assert_eq!(
        r.value_components(),
        ["A", "NEG", "NEG", "ccee", "K-", "NEG", "", "", ""]
    );
    assert_eq!(r.status().value(), "S");
    let r1 = ResultRecord::from_record(&recs.records[3]).expect("R1");
    assert_eq!(
        r1.test_field().component(6),
        "Bloodgroup: A,B,D Confirmation for Patients (DiaClon) (5005)"
    );
    let c = Comment::from_record(&recs.records[4]).expect("C");
    assert_eq!(c.source().component(1), "ID-Diluent 2");
    check(
        &b,
        &[
            (0, 5, "Bio-Rad"),
            (0, 6, "IH v5.2"),
            (0, 14, "20220315194227"),
            (1, 4, "1010868845"),
            (11, 3, "N"),
        ],
    );
}

#[test]
fn biorad_two_patients() {
    let b = shared("astm", "goastm_biorad-ihcom52_bloodtype_two-patients.astm");
    assert_eq!(kinds(&b), "HPORCRCRCRCPORL");
    let recs = parse_records(&b);
    let names: Vec<String> = recs
        .records
        .iter()
        .filter_map(Patient::from_record)
        .map(|p| p.name().component(1).into_owned())
        .collect();
    assert_eq!(names, ["Testus", "Testis"]);
}

#[test]
fn euroimmun_decimal_comma_and_censored() {
    let b = shared("astm", "goastm_euroimmun-analyzer1_multi-patient.astm");
    let recs = parse_records(&b);
    let results: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    assert_eq!(results.len(), 20);
    assert_eq!(results[0].value().value(), ">8");
    let n0 = results[0].numeric().expect("n");
    assert_eq!(
        (n0.comparator.as_deref(), n0.number.as_str()),
        (Some(">"), "8")
    );
    let n1 = results[1].numeric().expect("n");
    assert_eq!((n1.number.as_str(), n1.decimal_comma), ("7.41", true));
    assert_eq!(
        results[1].value().value(),
        "7,41",
        "the text is kept exactly as sent"
    );
    assert_eq!(results[1].units().value(), "Ratio");
    check(&b, &[(1, 4, "TEST-27-079-5-1"), (2, 5, "^^^SARSCOV2IGA")]);
    assert_eq!(recs.records.iter().filter(|r| r.kind() == b'P').count(), 20);
}

#[test]
fn yumizen_flags_and_comment() {
    let b = shared("astm", "goastm_horiba-yumizen-h550_flags-LL-W-comment.astm");
    assert_eq!(kinds(&b), "HPOCMRRRRL");
    let recs = parse_records(&b);
    let h = Header::from_record(&recs.records[0]).expect("H");
    assert_eq!(h.sender().component(1), "H550");
    assert_eq!(h.version().value(), "LIS2-A2");
    let o = Order::from_record(&recs.records[2]).expect("O");
    assert_eq!(o.specimen_id(), "70424906396");
    assert_eq!(o.specimen_field().component(3), "013148");
    assert_eq!(o.report_type().value(), "F");
    let c = Comment::from_record(&recs.records[3]).expect("C");
    assert_eq!(c.text().repeats().len(), 10);
    let rs: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    let flags: Vec<String> = rs.iter().map(|r| r.flags().value().into_owned()).collect();
    assert_eq!(flags, ["L", "LL", "L", "H"]);
    let status: Vec<String> = rs.iter().map(|r| r.status().value().into_owned()).collect();
    assert_eq!(status, ["W", "W", "W", "F"]);
    assert_eq!(rs[0].test_code(), "MCV");
    assert_eq!(rs[0].test_field().component(5), "787-2");
    assert_eq!(rs[1].units().value(), "10E3/uL");
    assert_eq!(rs[0].reference_range().component(1), "80.0 - 96.0");
}

#[test]
fn yumizen_m_records_doubled_backslash() {
    let b = shared("astm", "goastm_horiba-yumizen-h550_result_m-records.astm");
    let recs = parse_records(&b);
    assert!(
        recs.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning && d.message.contains("doubled"))
    );
    let m3 = recs
        .records
        .iter()
        .find(|r| r.kind() == b'M' && r.text(2) == "3")
        .expect("M|3");
    let reps: Vec<String> = m3
        .field(4)
        .repeats()
        .iter()
        .map(|r| r.value().into_owned())
        .collect();
    assert_eq!(reps, ["CLEANER", "DILUENT", "LYSE"]);
    let longest = recs
        .records
        .iter()
        .map(|r| r.raw().len())
        .max()
        .unwrap_or(0);
    assert!(
        longest > 11_000,
        "the 11 KB M record is kept whole: {longest}"
    );
    let rs: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    assert_eq!(rs.len(), 20);
    assert_eq!(rs[0].reference_range().component(1), "73.5-83.5");
    assert_eq!(rs[0].reference_range().component(2), "REFERENCE_RANGE");
    check(
        &b,
        &[(0, 12, "Q"), (2, 3, "PX449L"), (2, 16, "CTRL^^CTRLLOW")],
    );
}

#[test]
fn galileo_order_and_result() {
    let o = shared("astm", "goastm_immucor-galileo_order.astm");
    assert_eq!(kinds(&o), "HPOCL");
    let recs = parse_records(&o);
    let l = Terminator::from_record(&recs.records[4]).expect("L");
    assert_eq!(l.code().raw(), b"N ", "raw keeps the trailing space");
    assert_eq!(l.code().trimmed(), "N");
    let c = Comment::from_record(&recs.records[3]).expect("C");
    assert_eq!(
        (c.source().value().as_ref(), c.text().component(2).as_ref()),
        ("L", "R02460")
    );
    check(
        &o,
        &[(2, 3, "0651439A"), (2, 12, "N"), (2, 16, "Blood^Patient")],
    );
    let r = shared("astm", "goastm_immucor-galileo_result.astm");
    let recs = parse_records(&r);
    let rs: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    assert_eq!(rs.len(), 14);
    assert_eq!(rs[2].value_components(), ["3+", "3+", "45"]);
    assert_eq!(rs[8].value().value(), "B Pos");
    assert_eq!(rs[8].test_code(), "ABOD Full Interp");
    assert_eq!(rs[0].operator().value(), "brentp");
    assert_eq!(rs[0].instrument().value(), "M0002");
    assert_eq!(recs.records.iter().filter(|r| r.kind() == b'O').count(), 2);
}

#[test]
fn immucor_three_component_value() {
    let b = shared("astm", "goastm_immucor_order-result_3comp-value.astm");
    let recs = parse_records(&b);
    let p = Patient::from_record(&recs.records[1]).expect("P");
    assert_eq!(p.name().components().len(), 5);
    assert_eq!(p.sex().value(), "U");
    let r = ResultRecord::from_record(&recs.records[3]).expect("R");
    assert_eq!(r.value_components(), ["0", "0", "8.8"]);
    assert_eq!(r.numeric().map(|n| n.number), Some("0".to_string()));
    check(
        &b,
        &[(2, 3, "VAL99999903"), (2, 26, "F"), (4, 4, "Negative")],
    );
}

#[test]
fn rvt_queries() {
    let b = shared("astm", "goastm_rvt_host-query_5xQ.astm");
    assert_eq!(kinds(&b), "HQQQQQL");
    let recs = parse_records(&b);
    let ids: Vec<String> = recs
        .records
        .iter()
        .filter_map(Query::from_record)
        .map(|q| q.specimen_id())
        .collect();
    assert_eq!(
        ids,
        [
            "VALI200301",
            "VALI200302",
            "VALI200303",
            "VALI200304",
            "VALI200305"
        ]
    );
    assert_eq!(
        Query::from_record(&recs.records[1])
            .expect("Q")
            .tests()
            .value(),
        "ALL"
    );
    let m = shared("astm", "goastm_rvt_multi-header_queries.astm");
    let recs = parse_records(&m);
    assert_eq!(recs.records.iter().filter(|r| r.kind() == b'H').count(), 3);
    let ids: Vec<String> = recs
        .records
        .iter()
        .filter_map(Query::from_record)
        .map(|q| q.specimen_id())
        .collect();
    assert_eq!(ids.len(), 11);
    assert_eq!(ids[10], "VALI200305");
}

#[test]
fn omnilab_order_and_result() {
    let o = shared("astm", "pyastm_omnilab_order-download_assembled.astm");
    let recs = parse_records(&o);
    assert_eq!(kinds(&o), "HPOCL");
    let ord = Order::from_record(&recs.records[2]).expect("O");
    assert_eq!(ord.tests(), ["NA", "Cl"]);
    assert_eq!(ord.tests_field().repeats()[1].component(5), "Clorum");
    assert_eq!(
        (
            ord.priority().value().as_ref(),
            ord.action_code().value().as_ref(),
            ord.report_type().value().as_ref()
        ),
        ("R", "N", "O")
    );
    check(
        &o,
        &[
            (0, 13, "E 1394-97"),
            (1, 6, "White^Nicky"),
            (1, 3, "1212000"),
        ],
    );
    let r = shared("astm", "pyastm_omnilab_result-upload_assembled.astm");
    let recs = parse_records(&r);
    let res: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    assert!(!res.is_empty());
    assert_eq!(res[0].reference_range().value(), "10-120");
    assert_eq!(res[0].status().value(), "F");
    assert_eq!(res[0].operator().component(2), "Smith ");
    let ord = recs.records.iter().find_map(Order::from_record).expect("O");
    assert_eq!(ord.report_type().value(), "F");
    assert!(
        recs.records
            .iter()
            .filter_map(Comment::from_record)
            .any(|c| c.source().value() == "I")
    );
}

#[test]
fn escapes_and_nonstandard_delimiters() {
    let b = fixture("escapes_nonstandard.astm");
    let recs = parse_records(&b);
    assert!(recs.diagnostics.is_empty(), "{:?}", recs.diagnostics);
    let d = recs.records[0].delimiters();
    assert_eq!(
        (d.field, d.repeat, d.component, d.escape),
        (b'!', b'@', b'#', b'$')
    );
    let p = Patient::from_record(&recs.records[1]).expect("P");
    assert_eq!(p.lab_id().value(), "ID!42");
    assert_eq!(p.name().component(1), "Smith#Jr");
    assert_eq!(p.name().component(2), "Other");
    let o = Order::from_record(&recs.records[2]).expect("O");
    assert_eq!(o.specimen_id(), "S-1@2");
    assert_eq!(o.tests(), ["NA", "K"]);
    let r = ResultRecord::from_record(&recs.records[3]).expect("R");
    assert_eq!(r.value().value(), "1$2 A $Zab$");
    assert_eq!(r.flags().value(), "N#A");
    assert_eq!(r.flags().components().len(), 2);
}

#[test]
fn numeric_values() {
    type Expected<'a> = Option<(Option<&'a str>, &'a str, bool)>;
    let cases: &[(&str, Expected)] = &[
        ("7,41", Some((None, "7.41", true))),
        ("<0.5", Some((Some("<"), "0.5", false))),
        (">100", Some((Some(">"), "100", false))),
        ("<= 3", Some((Some("<="), "3", false))),
        ("-1.25", Some((None, "-1.25", false))),
        ("POS", None),
        ("1.2.3", None),
        ("", None),
        ("<", None),
    ];
    for (input, want) in cases {
        let got = parse_numeric(input).map(|n| (n.comparator, n.number, n.decimal_comma));
        let want = want.map(|(c, n, d)| (c.map(String::from), n.to_string(), d));
        assert_eq!(got, want, "{input:?}");
    }
}

#[test]
fn host_query_answers() {
    let q = shared("astm", "goastm_rvt_host-query_5xQ.astm");
    let recs = parse_records(&q);
    let query = recs.records.iter().find_map(Query::from_record).expect("Q");
    let ans = build_query_answer(
        "ALIQUOT^1.0",
        "20261121120000",
        &[AnswerOrder {
            patient_id: "P|1".into(),
            patient_name: ("Doe".into(), "Jane".into()),
            specimen_id: query.specimen_id(),
            tests: vec!["GLU".into(), "K".into()],
            priority: "S".into(),
        }],
    );
    assert_eq!(
        String::from_utf8(ans.clone()).expect("utf8"),
        "H|\\^&|||ALIQUOT&S&1.0|||||||P|LIS2-A2|20261121120000\rP|1|P&F&1|||Doe^Jane\rO|1|VALI200301||^^^GLU\\^^^K|S||||||N||||||||||||||Q\rL|1|N\r"
    );
    let back = parse_records(&ans);
    let o = back.records.iter().find_map(Order::from_record).expect("O");
    assert_eq!(
        (
            o.specimen_id().as_str(),
            o.report_type().value().as_ref(),
            o.action_code().value().as_ref()
        ),
        ("VALI200301", "Q", "N")
    );
    assert_eq!(back.records[1].text(3), "P|1");
    let none = build_query_answer("ALIQUOT", "20261121120000", &[]);
    assert_eq!(
        none,
        b"H|\\^&|||ALIQUOT|||||||P|LIS2-A2|20261121120000\rL|1|I\r"
    );
    let _ = records::escape("x", &Default::default());
}

#[test]
fn result_helpers_for_the_lis() {
    let b = b"H|\\^&\rR|1|^^^GLU^Glucose|5,2|mmol/L|3.9-6.1|H\\A|N|F||op|20261121101500|20261121102000^x|C311^1\rR|2|^^^CRP|<0,5|mg/L||||P\rR|3|^^^TSH|>500|mU/L||HH||C\rR|4|^^^HIV|1,2,3|||||F\rR|5|^^^ABO|A^NEG^NEG|||||F\rR|6|GLU| 7.41 \rL|1|N\r";
    let recs = parse_records(b);
    let rs: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    let codes: Vec<String> = rs.iter().map(|r| r.test_code()).collect();
    assert_eq!(codes, ["GLU", "CRP", "TSH", "HIV", "ABO", "GLU"]);
    let values: Vec<String> = rs.iter().map(|r| r.value_text()).collect();
    assert_eq!(values, ["5.2", "<0.5", ">500", "1,2,3", "A", "7.41"]);
    assert_eq!(rs[0].value().value(), "5,2", "the raw field is untouched");
    assert_eq!(rs[0].unit(), "mmol/L");
    assert_eq!(rs[0].flag_list(), ["H", "A"]);
    assert_eq!(rs[2].flag_list(), ["HH"]);
    let status: Vec<String> = rs.iter().map(|r| r.status_code()).collect();
    assert_eq!(status, ["F", "P", "C", "F", "F", ""]);
    assert_eq!(rs[0].completed_at().as_deref(), Some("20261121102000"));
    assert_eq!(rs[0].instrument_id().as_deref(), Some("C311"));
    assert_eq!((rs[1].completed_at(), rs[1].instrument_id()), (None, None));
}

#[test]
fn result_helpers_on_shared_samples() {
    let b = shared("astm", "goastm_euroimmun-analyzer1_multi-patient.astm");
    let recs = parse_records(&b);
    let rs: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    assert_eq!(
        (rs[0].test_code(), rs[0].value_text(), rs[0].unit()),
        (
            "SARSCOV2IGA".to_string(),
            ">8".to_string(),
            "Ratio".to_string()
        )
    );
    assert_eq!(rs[1].value_text(), "7.41");

    let b = shared("astm", "goastm_horiba-yumizen-h550_flags-LL-W-comment.astm");
    let recs = parse_records(&b);
    let rs: Vec<ResultRecord> = recs
        .records
        .iter()
        .filter_map(ResultRecord::from_record)
        .collect();
    let got: Vec<(String, String, String, Vec<String>, String)> = rs
        .iter()
        .map(|r| {
            (
                r.test_code(),
                r.value_text(),
                r.unit(),
                r.flag_list(),
                r.status_code(),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        [
            (s("MCV"), s("56.1"), s("um3"), vec![s("L")], s("W")),
            (s("NEU#"), s("0.00"), s("10E3/uL"), vec![s("LL")], s("W")),
            (s("NEU%"), s("12.5"), s("%"), vec![s("L")], s("W")),
            (s("RDW-CV"), s("23.0"), s("%"), vec![s("H")], s("F")),
        ]
    );
    assert_eq!(rs[0].completed_at(), None);

    let b = shared("astm", "pyastm_omnilab_result-upload_assembled.astm");
    let recs = parse_records(&b);
    let r = recs
        .records
        .iter()
        .find_map(ResultRecord::from_record)
        .expect("R");
    assert_eq!(
        (
            r.test_code(),
            r.value_text(),
            r.unit(),
            r.status_code(),
            r.completed_at(),
            r.instrument_id()
        ),
        (
            s("NA"),
            s("7.273"),
            s("mmol/l"),
            s("F"),
            Some(s("201009261034")),
            Some(s("Architect"))
        )
    );
    let o = recs.records.iter().find_map(Order::from_record).expect("O");
    assert!(!o.specimen_id().is_empty());
}

#[test]
fn query_specimen_ids_and_both_answers() {
    let b = b"H|\\^&\rQ|1|^S1\\^S2 \\S3\\^^rack||^^^ALL||||||||O\rL|1|N\r";
    let recs = parse_records(b);
    let q = recs.records.iter().find_map(Query::from_record).expect("Q");
    assert_eq!(q.specimen_ids(), ["S1", "S2", "S3"]);
    assert_eq!(q.specimen_id(), "S1");

    let b = shared("astm", "goastm_rvt_host-query_5xQ.astm");
    let recs = parse_records(&b);
    let ids: Vec<String> = recs
        .records
        .iter()
        .filter_map(Query::from_record)
        .flat_map(|q| q.specimen_ids())
        .collect();
    assert_eq!(
        ids,
        [
            "VALI200301",
            "VALI200302",
            "VALI200303",
            "VALI200304",
            "VALI200305"
        ]
    );
    let orders: Vec<AnswerOrder> = ids[..2]
        .iter()
        .map(|id| AnswerOrder {
            patient_id: format!("P-{id}"),
            patient_name: ("Doe".into(), "Jo".into()),
            specimen_id: id.clone(),
            tests: vec!["GLU".into()],
            priority: "R".into(),
        })
        .collect();
    assert_eq!(
        build_query_answer("ALIQUOT", "20261121120000", &orders),
        b"H|\\^&|||ALIQUOT|||||||P|LIS2-A2|20261121120000\r\
P|1|P-VALI200301|||Doe^Jo\r\
O|1|VALI200301||^^^GLU|R||||||N||||||||||||||Q\r\
P|2|P-VALI200302|||Doe^Jo\r\
O|1|VALI200302||^^^GLU|R||||||N||||||||||||||Q\r\
L|1|N\r"
    );
    assert_eq!(
        build_query_answer("ALIQUOT", "20261121120000", &[]),
        b"H|\\^&|||ALIQUOT|||||||P|LIS2-A2|20261121120000\rL|1|I\r"
    );
}
