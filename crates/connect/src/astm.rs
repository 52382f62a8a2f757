//! ASTM E1394 result messages into the ingest use case.
//!
//! Reading (`read_message`), one message = the records from H to L:
//! - the sender is H-5's first component (the instrument's name); ASTM has no message control
//!   id, so the key is a SHA-256 of the message: the same message sent again in a new session
//!   is answered from the store and not posted twice;
//! - each O opens a specimen: the accession is O-3 (the host's specimen id); the patient id
//!   is P-3 (the practice patient id the host sent in its query answer), checked against the
//!   tube's patient when present;
//! - each R is a result: R-3's test code, R-4 the value (a decimal comma read as a point,
//!   comparators kept: `<0,5` is `<0.5`), R-5 the unit, R-7 the flags, C records after it the
//!   comment. Only R-9 `F`, `C`, `R`, `V` or empty are posted; any other status (`P`, `X`,
//!   `I`, …) is named as an error for a person to decide.

use aliquot_app::connections::{
    Inbound, InboundError, InboundObservation, InboundSpecimen, Protocol,
};
use aliquot_astm::parse_records;
use aliquot_astm::records::{Comment, Header, Order, Patient, ResultRecord};
use sha2::{Digest, Sha256};

/// Reads one ASTM message (records H … L, without link framing).
pub fn read_message(raw: &[u8]) -> Inbound {
    let parsed = parse_records(raw);
    let mut inbound = Inbound {
        protocol: Protocol::Astm,
        sender: String::new(),
        control_id: format!("sha256:{}", hex::encode(Sha256::digest(raw))),
        message_type: "R".into(),
        raw: raw.to_vec(),
        rejected: Vec::new(),
        specimens: Vec::new(),
    };
    let mut patient_ids: Vec<String> = Vec::new();
    let mut patient_location = String::new();
    let mut counts = [0u32; 256];
    for r in &parsed.records {
        let kind = r.kind();
        counts[kind as usize] += 1;
        let n = counts[kind as usize];
        if let Some(h) = Header::from_record(r) {
            inbound.sender = h.sender().component(1).trim().to_owned();
        } else if let Some(p) = Patient::from_record(r) {
            patient_location = format!("P[{n}]-3");
            let id = p.practice_id().component(1).trim().to_owned();
            patient_ids = if id.is_empty() { Vec::new() } else { vec![id] };
        } else if let Some(o) = Order::from_record(r) {
            inbound.specimens.push(InboundSpecimen {
                accession: o.specimen_id(),
                location: format!("O[{n}]-3"),
                patient_ids: patient_ids.clone(),
                patient_location: patient_location.clone(),
                observations: Vec::new(),
            });
        } else if let Some(res) = ResultRecord::from_record(r) {
            let location = format!("R[{n}]");
            let Some(s) = inbound.specimens.last_mut() else {
                inbound.rejected.push(InboundError {
                    location,
                    code: "segment_sequence".into(),
                    message: "a result record before any order record".into(),
                });
                continue;
            };
            let status = res.status().trimmed();
            if !matches!(status.as_str(), "" | "F" | "C" | "R" | "V") {
                inbound.rejected.push(InboundError {
                    location: format!("{location}-9"),
                    code: "result_status".into(),
                    message: format!(
                        "result status {status} is not posted (only F, C, R or V): a person \
                         decides"
                    ),
                });
                continue;
            }
            let value = match res.numeric() {
                Some(n) => format!("{}{}", n.comparator.unwrap_or_default(), n.number),
                None => res.value().component(1).trim().to_owned(),
            };
            s.observations.push(InboundObservation {
                location,
                code: res.test_code(),
                value,
                units: Some(res.units().component(1).trim().to_owned()).filter(|u| !u.is_empty()),
                flags: res.flag_list(),
                comment: None,
            });
        } else if let Some(c) = Comment::from_record(r)
            && let Some(o) = inbound
                .specimens
                .last_mut()
                .and_then(|s| s.observations.last_mut())
        {
            let text = c.text().component(2).trim().to_owned();
            let text = if text.is_empty() {
                c.text().component(1).trim().to_owned()
            } else {
                text
            };
            if !text.is_empty() {
                o.comment = Some(match o.comment.take() {
                    Some(prev) => format!("{prev} {text}"),
                    None => text,
                });
            }
        }
    }
    if inbound.sender.is_empty() {
        inbound.rejected.push(InboundError {
            location: "H[1]-5".into(),
            code: "required".into(),
            message: "H-5 (sender name) is required".into(),
        });
    }
    inbound
}
