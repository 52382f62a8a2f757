//! The answer to an EMR's order message (issue 12): ORR^O02 to ORM^O01, ORL^O22 to OML^O21,
//! with the filler order number in ORC-3, byte for byte against fixtures in
//! `tests/fixtures/`, and read back by two independent HL7 libraries from PyPI (`hl7` 0.4.5
//! and `hl7apy` 1.3.5, the ORL^O22 validated strictly against v2.5.1's structure) by
//! `scripts/hl7-order-response-check.py`. The venv lives under the target directory and is
//! created when missing: a missing Python or package is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use aliquot_app::connections::{
    AckFacts, AckKind, InboundError, OrderAckFacts, OrderControl, OrderResponse,
};
use aliquot_connect::hl7_orders::respond_at;

#[path = "../../cli/tests/pypi/mod.rs"]
mod pypi;
use pypi::run;

const AT: &str = "20261128080001+0000";

const PID: &str = "PID|1||MRN-900^^^^MR||Okonkwo-Lindqvist^Zoe||19610409|F\r";

fn message(kind: &str, control: &str, enhanced: bool, orders: &str) -> Vec<u8> {
    let mode = if enhanced { "|||AL|AL" } else { "" };
    format!(
        "MSH|^~\\&|EMR1|CLINIC|ALIQUOT|LAB|20261128080000||{kind}|{control}|P|2.5.1{mode}\r\
         {PID}PV1|1|O|OPD^^^CLINIC\r{orders}"
    )
    .into_bytes()
}

const NEW: &str = "ORC|NW|PL-1||||||||||1234567893^House^Gregory^^^^^^NPI\r\
                   OBR|1|PL-1||K^Potassium^L\rOBR|2|PL-1||2951-2^Sodium^LN\r";
const CANCEL: &str = "ORC|CA|PL-9||||||||||||||^Ordered in error\rOBR|1|PL-9||K\r";

fn placed(order_id: Option<i64>) -> Vec<OrderResponse> {
    vec![
        OrderResponse {
            control: OrderControl::New,
            placer_order_number: "PL-1".into(),
            accepted: order_id.is_some(),
            order_id,
            services: vec!["K".into(), "2951-2".into()],
        },
        OrderResponse {
            control: OrderControl::Cancel,
            placer_order_number: "PL-9".into(),
            accepted: order_id.is_some(),
            order_id: order_id.map(|_| 3),
            services: vec!["K".into()],
        },
    ]
}

/// The MLLP frames of an answer, without framing.
fn frames(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(start) = rest.iter().position(|b| *b == 0x0b) {
        let end = rest[start..]
            .windows(2)
            .position(|w| w == [0x1c, 0x0d])
            .expect("frame end")
            + start;
        out.push(String::from_utf8(rest[start + 1..end].to_vec()).expect("utf-8"));
        rest = &rest[end + 2..];
    }
    out
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn facts<'a>(
    kind: AckKind,
    errors: &'a [InboundError],
    orders: &'a [OrderResponse],
) -> OrderAckFacts<'a> {
    OrderAckFacts {
        ack: AckFacts {
            kind,
            control_id: "ACK-0001".into(),
            errors,
        },
        orders,
    }
}

/// Each frame of the answer to `raw`, named (a second frame is the application answer).
fn push(out: &mut Vec<(String, String)>, name: &str, raw: &[u8], f: &OrderAckFacts<'_>) {
    for (i, frame) in frames(&respond_at(raw, f, AT)).into_iter().enumerate() {
        let name = if i == 0 {
            name.to_owned()
        } else {
            format!("{name}.application")
        };
        out.push((name, frame));
    }
}

/// The answers, each compared with its fixture (`UPDATE_FIXTURES=1` writes them).
fn answers() -> Vec<(String, String)> {
    let errors = [InboundError {
        location: "PID[1]-3".into(),
        code: "unknown_patient".into(),
        message: "no patient has this identifier".into(),
    }];
    let accepted = placed(Some(7));
    let refused = placed(None);
    let both = format!("{NEW}{CANCEL}");
    let mut out = Vec::new();
    let orm = message("ORM^O01^ORM_O01", "ORM-0001", false, &both);
    push(
        &mut out,
        "orr_o02_accepted.hl7",
        &orm,
        &facts(AckKind::Accept, &[], &accepted),
    );
    push(
        &mut out,
        "orr_o02_error.hl7",
        &orm,
        &facts(AckKind::Error, &errors, &refused),
    );
    let oml = message("OML^O21^OML_O21", "OML-0001", false, &both);
    push(
        &mut out,
        "orl_o22_accepted.hl7",
        &oml,
        &facts(AckKind::Accept, &[], &accepted),
    );
    let enhanced = message("OML^O21^OML_O21", "OML-0002", true, NEW);
    push(
        &mut out,
        "orl_o22_enhanced.hl7",
        &enhanced,
        &facts(AckKind::Accept, &[], &accepted[..1]),
    );
    out
}

#[test]
fn order_responses_match_their_fixtures() {
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let answers = answers();
    assert_eq!(answers.len(), 5, "{answers:?}");
    for (name, text) in &answers {
        let path = fixture(name);
        if update {
            std::fs::write(&path, text.replace('\r', "\n")).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .replace('\n', "\r");
        assert_eq!(text, &want, "{name}");
    }
    // What the fixtures say, in words: ORR^O02 to ORM, ORL^O22 to OML; OK / CR with the
    // filler order numbers when accepted, UA / UC without them when not; the enhanced
    // mode's commit ACK stays an ACK.
    let get = |n: &str| &answers.iter().find(|(name, _)| name == n).unwrap().1;
    assert!(get("orr_o02_accepted.hl7").contains("|ORR^O02^ORR_O02|ACK-0001|"));
    assert!(get("orr_o02_accepted.hl7").contains("\rORC|OK|PL-1|7||SC\rOBR|1|PL-1|7|K\r"));
    assert!(get("orr_o02_accepted.hl7").contains("\rORC|CR|PL-9|3||CA\rOBR|1|PL-9|3|K"));
    assert!(get("orr_o02_error.hl7").contains("\rMSA|AE|ORM-0001"));
    assert!(get("orr_o02_error.hl7").contains("\rORC|UA|PL-1\r"));
    assert!(get("orr_o02_error.hl7").contains("\rORC|UC|PL-9\r"));
    assert!(get("orl_o22_accepted.hl7").contains("|ORL^O22^ORL_O22|"));
    assert!(get("orl_o22_accepted.hl7").contains(&format!("\rMSA|AA|OML-0001\r{PID}ORC|OK|")));
    assert!(get("orl_o22_enhanced.hl7").contains("|ACK^O21^ACK|"));
    assert!(get("orl_o22_enhanced.hl7").contains("\rMSA|CA|OML-0002"));
    assert!(get("orl_o22_enhanced.hl7.application").contains("|ORL^O22^ORL_O22|"));
}

// ── the cross-check with PyPI's HL7 libraries ──

/// The venv's python with hl7 0.4.5 and hl7apy 1.3.5.
fn checker_python() -> PathBuf {
    pypi::python_with(
        "hl7-python-venv",
        &["hl7==0.4.5", "hl7apy==1.3.5"],
        "import hl7, hl7apy",
    )
}

#[test]
fn pypi_hl7_libraries_read_the_order_responses() {
    let python = checker_python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/hl7-order-response-check.py"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in answers() {
        let path = dir.path().join(&name);
        std::fs::write(&path, text.as_bytes()).unwrap();
        files.push(path);
    }
    let report = run(
        Command::new(python).arg(script).args(&files),
        "scripts/hl7-order-response-check.py",
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        5,
        "{report}"
    );
}
