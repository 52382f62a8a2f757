//! Host query over HL7 (IHE LAW style): an analyzer or middleware asks which tests a
//! specimen needs with `QBP^Q11` (QPD-3 the specimen id, repeated for a rack) and gets
//! `RSP^K11`: QAK `OK` with, per specimen, PID (the patient's MRN and name), SPM (the
//! specimen), and one ORC/OBR pair per test in the instrument's own codes; QAK `NF` when the
//! lab knows nothing for it. The same use case answers the ASTM host query. Nothing is
//! stored (a query changes nothing); the patients shown are access-logged.

use aliquot_app::App;
use aliquot_app::connections::Protocol;
use aliquot_hl7::{Document, OwnedMessage, OwnedSegment, encode_frame};

/// Whether `raw` is a `QBP^Q11`.
pub fn is_query(raw: &[u8]) -> bool {
    let doc = Document::parse(raw);
    doc.messages().next().is_some_and(|m| {
        m.msh()
            .message_type()
            .is_some_and(|t| t.comp_str(1) == "QBP" && t.comp_str(2) == "Q11")
    })
}

/// The framed `RSP^K11` to a `QBP^Q11` (or an AR when the query cannot be read).
pub async fn answer_query(app: &App, raw: &[u8], timestamp: &str) -> Vec<u8> {
    let doc = Document::parse(raw);
    let mut out = Vec::new();
    let Some(msg) = doc.messages().next() else {
        return out;
    };
    let msh = msg.msh();
    let get = |v: Option<aliquot_hl7::Value<'_, '_>>| v.map(|v| v.value().trim().to_owned());
    let sender = msh
        .sending_application()
        .map(|v| v.comp_str(1).trim().to_owned())
        .unwrap_or_default();
    let control_id = get(msh.control_id()).unwrap_or_default();
    let version = get(msh.version()).unwrap_or_else(|| "2.5.1".into());
    let qpd = msg.segment("QPD");
    let tag = qpd
        .as_ref()
        .and_then(|q| q.field(2))
        .map(|v| v.value().trim().to_owned())
        .unwrap_or_default();
    let specimens: Vec<String> = qpd
        .as_ref()
        .and_then(|q| q.field(3))
        .map(|f| {
            f.repetitions()
                .iter()
                .map(|r| r.comp_str(1).trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut segs = Vec::new();
    let delimiters = msg.delimiters();
    let mut h = OwnedSegment::new("MSH");
    h.set(1, &(delimiters.field as char).to_string());
    h.set(
        2,
        &String::from_utf8_lossy(&delimiters.encoding_characters()),
    );
    h.set(3, "ALIQUOT");
    h.set(4, "LAB");
    h.set(5, &sender);
    h.set(7, timestamp);
    h.set_components(9, &["RSP", "K11", "RSP_K11"]);
    h.set(
        10,
        &format!("R{}", control_id.chars().take(19).collect::<String>()),
    );
    h.set(11, "P");
    h.set(12, &version);
    segs.push(h);
    let mut msa = OwnedSegment::new("MSA");
    if specimens.is_empty() {
        msa.set(1, "AR");
        msa.set(2, &control_id);
        segs.push(msa);
        let mut err = OwnedSegment::new("ERR");
        err.set_components(2, &["QPD", "1", "3"]);
        err.set_components(
            3,
            &[
                "101",
                "Required field missing: QPD-3 (specimen id)",
                "HL70357",
            ],
        );
        err.set(4, "E");
        segs.push(err);
        encode_frame(
            &OwnedMessage {
                delimiters,
                segments: segs,
            }
            .encode(),
            &mut out,
        );
        return out;
    }
    let orders = match app.host_query(Protocol::Hl7, &sender, &specimens).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "HL7 host query answered with nothing");
            Vec::new()
        }
    };
    msa.set(1, "AA");
    msa.set(2, &control_id);
    segs.push(msa);
    let mut qak = OwnedSegment::new("QAK");
    qak.set(1, &tag);
    qak.set(2, if orders.is_empty() { "NF" } else { "OK" });
    segs.push(qak);
    if let Some(q) = &qpd {
        segs.push(q.to_owned_segment());
    }
    for (i, o) in orders.iter().enumerate() {
        let mut pid = OwnedSegment::new("PID");
        pid.set(1, &(i + 1).to_string());
        pid.set_components(3, &[&o.patient_id, "", "", "", "MR"]);
        pid.set_components(5, &[&o.family_name, &o.given_name]);
        segs.push(pid);
        let mut spm = OwnedSegment::new("SPM");
        spm.set(1, "1");
        spm.set(2, &o.accession);
        segs.push(spm);
        for (n, code) in o.tests.iter().enumerate() {
            let mut orc = OwnedSegment::new("ORC");
            orc.set(1, "NW");
            orc.set(3, &o.accession);
            segs.push(orc);
            let mut obr = OwnedSegment::new("OBR");
            obr.set(1, &(n + 1).to_string());
            obr.set(3, &o.accession);
            obr.set_components(4, &[code, code]);
            obr.set(5, &o.priority);
            segs.push(obr);
        }
    }
    encode_frame(
        &OwnedMessage {
            delimiters,
            segments: segs,
        }
        .encode(),
        &mut out,
    );
    out
}
