//! HL7 v2 in and out of the ingest use case: an ORU^R01 read into an [`Inbound`], and the
//! acknowledgement built from the ingest's [`AckFacts`].
//!
//! Reading (`read_message`):
//! - the sender is MSH-3's namespace id; the control id MSH-10 (a message without one is
//!   rejected: it could not be told from its resend);
//! - each OBR opens a specimen: the accession is SPM-2 (filler, else placer) when the group
//!   has an SPM, else OBR-3 (filler order number, where analyzers put the sample id), else
//!   OBR-2; the patient identifiers are the PID-3 ids before it;
//! - each OBX is a result: OBX-3.1 the instrument's code, OBX-5 the value (an SN `<^0.5` is
//!   read as `<0.5`; a coded value by its code), OBX-6.1 the unit, OBX-8 the flags, NTEs after
//!   it the comment. Only OBX-11 `F`, `C`, `R` or empty are posted; any other status (`P`
//!   preliminary, `X` could not be obtained, `D`/`W` delete or wrong) is named as an error and
//!   the message waits in the error queue for a person.
//!
//! Acknowledging: original mode answers AA, AE (with one ERR per problem, located as
//! `SEG[n]-field`) or AR. Enhanced mode (MSH-15 or MSH-16 set) answers the commit ACK CA once
//! the message is stored (CR when it is rejected) and then, when MSH-16 asks for it (`AL`, or
//! `ER` with errors, or `SU` without), the application ACK AA/AE on the same connection.

use aliquot_app::connections::{
    AckFacts, AckKind, Inbound, InboundError, InboundObservation, InboundSpecimen, Protocol,
};
use aliquot_hl7::{
    AckCode, AckError, AckMode, AckOptions, Document, ErrorLocation, Message, OwnedMessage,
    ack_mode, build_ack, encode_frame,
};
use sha2::{Digest, Sha256};

/// What every message's MSH says, with the problems any header can have: no MSH, a doubtful
/// structure, no control id (a digest of the message stands in, so it can still be kept
/// once), no sender. Shared by the result and the order readers.
pub(crate) struct Header {
    pub(crate) sender: String,
    pub(crate) control_id: String,
    pub(crate) code: String,
    pub(crate) trigger: String,
    pub(crate) problems: Vec<InboundError>,
}

impl Header {
    pub(crate) fn message_type(&self) -> String {
        format!("{}^{}", self.code, self.trigger)
    }
}

pub(crate) fn problem(location: &str, code: &str, message: &str) -> InboundError {
    InboundError {
        location: location.to_owned(),
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

/// Reads the header of `doc` (parsed from `raw`); the message is `None` when there is no MSH.
pub(crate) fn read_header<'d, 'a>(
    doc: &'d Document<'a>,
    raw: &[u8],
) -> (Header, Option<Message<'d, 'a>>) {
    let Some(msg) = doc.messages().next() else {
        let header = Header {
            sender: String::new(),
            control_id: digest(raw),
            code: String::new(),
            trigger: String::new(),
            problems: vec![problem(
                "MSH[1]",
                "malformed",
                "no MSH segment: not an HL7 message",
            )],
        };
        return (header, None);
    };
    let msh = msg.msh();
    let (code, trigger) = msh
        .message_type()
        .map(|v| (v.comp_str(1).into_owned(), v.comp_str(2).into_owned()))
        .unwrap_or_default();
    let mut h = Header {
        sender: msh
            .sending_application()
            .map(|v| v.comp_str(1).trim().to_owned())
            .unwrap_or_default(),
        control_id: msh
            .control_id()
            .map(|v| v.value().trim().to_owned())
            .unwrap_or_default(),
        code,
        trigger,
        problems: Vec::new(),
    };
    if doc.has_errors() || doc.message_count() != 1 {
        h.problems.push(problem(
            "MSH[1]",
            "malformed",
            "the message's structure cannot be trusted (one message per frame, well formed)",
        ));
    }
    if h.control_id.is_empty() {
        h.control_id = digest(raw);
        h.problems.push(problem(
            "MSH[1]-10",
            "required",
            "MSH-10 (message control id) is required",
        ));
    }
    if h.sender.is_empty() {
        h.problems.push(problem(
            "MSH[1]-3",
            "required",
            "MSH-3 (sending application) is required",
        ));
    }
    (h, Some(msg))
}

/// Reads one HL7 message (without MLLP framing).
pub fn read_message(raw: &[u8]) -> Inbound {
    let doc = Document::parse(raw);
    let (header, msg) = read_header(&doc, raw);
    let mut inbound = Inbound {
        protocol: Protocol::Hl7,
        message_type: if msg.is_some() {
            header.message_type()
        } else {
            String::new()
        },
        sender: header.sender,
        control_id: header.control_id,
        raw: raw.to_vec(),
        rejected: header.problems,
        specimens: Vec::new(),
    };
    let Some(msg) = msg else {
        return inbound;
    };
    let (code, trigger) = (header.code, header.trigger);
    if (code.as_str(), trigger.as_str()) != ("ORU", "R01") {
        inbound.rejected.push(problem(
            "MSH[1]-9",
            "unsupported_message_type",
            "this listener accepts ORU^R01 results and ORM^O01 / OML^O21 orders",
        ));
    }
    if inbound.rejected.is_empty() {
        inbound.specimens = read_results(&msg, &mut inbound.rejected);
    }
    inbound
}

/// The specimens and results of an ORU^R01.
fn read_results(msg: &Message<'_, '_>, problems: &mut Vec<InboundError>) -> Vec<InboundSpecimen> {
    let mut specimens: Vec<InboundSpecimen> = Vec::new();
    let mut patient_ids: Vec<String> = Vec::new();
    let mut patient_location = String::new();
    let mut counts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut spm_seen = false;
    for seg in msg.segments() {
        let name = seg.name().into_owned();
        let n = {
            let c = counts.entry(name.clone()).or_insert(0);
            *c += 1;
            *c
        };
        match name.as_str() {
            "PID" => {
                patient_location = format!("PID[{n}]-3");
                patient_ids = seg
                    .field(3)
                    .map(|f| {
                        f.repetitions()
                            .iter()
                            .map(|r| r.comp_str(1).trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            "OBR" => {
                spm_seen = false;
                let filler = seg
                    .field(3)
                    .map(|f| f.comp_str(1).trim().to_owned())
                    .unwrap_or_default();
                let (accession, location) = if filler.is_empty() {
                    (
                        seg.field(2)
                            .map(|f| f.comp_str(1).trim().to_owned())
                            .unwrap_or_default(),
                        format!("OBR[{n}]-2"),
                    )
                } else {
                    (filler, format!("OBR[{n}]-3"))
                };
                specimens.push(InboundSpecimen {
                    accession,
                    location,
                    patient_ids: patient_ids.clone(),
                    patient_location: patient_location.clone(),
                    observations: Vec::new(),
                });
            }
            "SPM" => {
                if let Some(s) = specimens.last_mut()
                    && !spm_seen
                {
                    spm_seen = true;
                    let id = seg.field(2).map(|f| {
                        let filler = f.comp_str(2).trim().to_owned();
                        if filler.is_empty() {
                            f.comp_str(1).trim().to_owned()
                        } else {
                            filler
                        }
                    });
                    if let Some(id) = id.filter(|i| !i.is_empty()) {
                        s.accession = id;
                        s.location = format!("SPM[{n}]-2");
                    }
                }
            }
            "OBX" => {
                let location = format!("OBX[{n}]");
                let Some(s) = specimens.last_mut() else {
                    problems.push(InboundError {
                        location,
                        code: "segment_sequence".into(),
                        message: "an OBX before any OBR".into(),
                    });
                    continue;
                };
                let status = seg
                    .field(11)
                    .map(|f| f.value().trim().to_owned())
                    .unwrap_or_default();
                if !matches!(status.as_str(), "" | "F" | "C" | "R") {
                    problems.push(InboundError {
                        location: format!("{location}-11"),
                        code: "result_status".into(),
                        message: format!(
                            "result status {status} is not posted (only F, C or R): a person \
                             decides"
                        ),
                    });
                    continue;
                }
                let value_type = seg
                    .field(2)
                    .map(|f| f.value().trim().to_owned())
                    .unwrap_or_default();
                let value = seg
                    .field(5)
                    .and_then(|f| f.repetition(1))
                    .map(|v| match value_type.as_str() {
                        "SN" => format!("{}{}", v.comp_str(1).trim(), v.comp_str(2).trim()),
                        "CE" | "CWE" | "CNE" | "CF" => v.comp_str(1).trim().to_owned(),
                        _ => v.value().trim().to_owned(),
                    })
                    .unwrap_or_default();
                let flags = seg
                    .field(8)
                    .map(|f| {
                        f.repetitions()
                            .iter()
                            .map(|r| r.comp_str(1).trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                s.observations.push(InboundObservation {
                    location,
                    code: seg
                        .field(3)
                        .map(|f| f.comp_str(1).trim().to_owned())
                        .unwrap_or_default(),
                    value,
                    units: seg
                        .field(6)
                        .map(|f| f.comp_str(1).trim().to_owned())
                        .filter(|u| !u.is_empty()),
                    flags,
                    comment: None,
                });
            }
            "NTE" => {
                if let Some(o) = specimens.last_mut().and_then(|s| s.observations.last_mut()) {
                    let text = seg
                        .field(3)
                        .map(|f| f.value().trim().to_owned())
                        .unwrap_or_default();
                    if !text.is_empty() {
                        o.comment = Some(match o.comment.take() {
                            Some(c) => format!("{c} {text}"),
                            None => text,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    specimens
}

/// A stand-in key for a message without a usable control id.
pub(crate) fn digest(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

/// MSH-7 of an acknowledgement.
pub(crate) fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%d%H%M%S+0000")
        .to_string()
}

/// HL7 table 0357 code for an error code of the ingest.
fn error_code(code: &str) -> (u16, &'static str) {
    match code {
        "malformed" | "segment_sequence" => (100, "Segment sequence error"),
        "required" | "value_required" => (101, "Required field missing"),
        "unsupported_message_type" => (200, "Unsupported message type"),
        c if c.starts_with("value_") => (102, "Data type error"),
        "unknown_test_code"
        | "result_status"
        | "unknown_test"
        | "test_retired"
        | "order_control"
        | "unsupported_priority" => (103, "Table value not found"),
        c if c.contains("unit") => (103, "Table value not found"),
        "unknown_sender" | "unknown_specimen" | "not_found" | "wrong_patient"
        | "wrong_specimen" | "invalid_accession" | "test_not_ordered" | "unknown_patient"
        | "unknown_provider" | "unknown_location" | "unknown_order" => {
            (204, "Unknown key identifier")
        }
        "result_released" | "duplicate_placer_order" => (205, "Duplicate key identifier"),
        _ => (207, "Application internal error"),
    }
}

/// `OBX[2]-5` → segment OBX, sequence 2, field 5.
fn location(l: &str) -> Option<ErrorLocation> {
    let (seg, rest) = l.split_once('[')?;
    let (seq, rest) = rest.split_once(']')?;
    let field = rest
        .strip_prefix('-')
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    Some(ErrorLocation {
        segment: seg.to_owned(),
        sequence: seq.parse().ok()?,
        field,
        repetition: None,
        component: None,
    })
}

fn ack_errors(errors: &[InboundError]) -> Vec<AckError> {
    errors
        .iter()
        .map(|e| {
            let (code, text) = error_code(&e.code);
            AckError {
                code,
                text: format!("{text}: {} ({})", e.message, e.code),
                location: location(&e.location),
                severity: 'E',
            }
        })
        .collect()
}

/// Turns an application acknowledgement into the message type's own response (e.g. an
/// ORR^O02 answering an order); commit acknowledgements stay ACKs.
pub(crate) type Shape<'s> = &'s dyn Fn(&Message<'_, '_>, &mut OwnedMessage);

struct Framer<'m, 'd, 'a> {
    msg: &'m Message<'d, 'a>,
    timestamp: &'m str,
    shape: Option<Shape<'m>>,
}

impl Framer<'_, '_, '_> {
    /// A commit-level acknowledgement (CA, CR): always an ACK.
    fn frame(
        &self,
        code: AckCode,
        control_id: &str,
        text: Option<String>,
        errors: &[InboundError],
        out: &mut Vec<u8>,
    ) {
        framed(
            self.msg,
            code,
            control_id,
            self.timestamp,
            text,
            errors,
            None,
            out,
        );
    }

    /// An application-level acknowledgement (AA, AE, AR): shaped when asked.
    fn frame_application(
        &self,
        code: AckCode,
        control_id: &str,
        text: Option<String>,
        errors: &[InboundError],
        out: &mut Vec<u8>,
    ) {
        framed(
            self.msg,
            code,
            control_id,
            self.timestamp,
            text,
            errors,
            self.shape,
            out,
        );
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the facts of one acknowledgement"
)]
fn framed(
    msg: &Message<'_, '_>,
    code: AckCode,
    control_id: &str,
    timestamp: &str,
    text: Option<String>,
    errors: &[InboundError],
    shape: Option<Shape<'_>>,
    out: &mut Vec<u8>,
) {
    let mut ack = build_ack(
        msg,
        &AckOptions {
            code,
            control_id: control_id.to_owned(),
            timestamp: timestamp.to_owned(),
            text,
            errors: ack_errors(errors),
        },
    );
    if let Some(shape) = shape {
        shape(msg, &mut ack);
    }
    encode_frame(&ack.encode(), out);
}

/// The acknowledgement bytes (MLLP-framed, one or two messages) for `raw` as the ingest
/// decided.
pub fn acknowledge(raw: &[u8], facts: &AckFacts<'_>) -> Vec<u8> {
    acknowledge_at(raw, facts, &timestamp())
}

/// [`acknowledge`] with the acknowledgement's MSH-7 given.
pub fn acknowledge_at(raw: &[u8], facts: &AckFacts<'_>, timestamp: &str) -> Vec<u8> {
    acknowledge_shaped(raw, facts, timestamp, None)
}

/// [`acknowledge_at`] whose application acknowledgement (original mode's only answer,
/// enhanced mode's second) is reshaped by `shape`.
pub(crate) fn acknowledge_shaped(
    raw: &[u8],
    facts: &AckFacts<'_>,
    timestamp: &str,
    shape: Option<Shape<'_>>,
) -> Vec<u8> {
    let doc = Document::parse(raw);
    let mut out = Vec::new();
    let Some(msg) = doc.messages().next() else {
        return out;
    };
    let f = Framer {
        msg: &msg,
        timestamp,
        shape,
    };
    let summary = |kind: AckKind| match kind {
        AckKind::Accept => None,
        AckKind::Error => Some(format!(
            "{} problem(s); the message is in the interface error queue",
            facts.errors.len()
        )),
        AckKind::Reject => Some("message rejected".to_owned()),
    };
    match ack_mode(&msg) {
        AckMode::Original => {
            let code = match facts.kind {
                AckKind::Accept => AckCode::AA,
                AckKind::Error => AckCode::AE,
                AckKind::Reject => AckCode::AR,
            };
            f.frame_application(
                code,
                &facts.control_id,
                summary(facts.kind),
                facts.errors,
                &mut out,
            );
        }
        AckMode::Enhanced { application, .. } => {
            if facts.kind == AckKind::Reject {
                f.frame(
                    AckCode::CR,
                    &facts.control_id,
                    summary(facts.kind),
                    facts.errors,
                    &mut out,
                );
                return out;
            }
            f.frame(AckCode::CA, &facts.control_id, None, &[], &mut out);
            let wanted = match application.as_str() {
                "AL" => true,
                "ER" => facts.kind == AckKind::Error,
                "SU" => facts.kind == AckKind::Accept,
                _ => false,
            };
            if wanted {
                let code = if facts.kind == AckKind::Accept {
                    AckCode::AA
                } else {
                    AckCode::AE
                };
                f.frame_application(
                    code,
                    // Its own control id: the commit ACK's with the last digit replaced by
                    // `Z` (never a hex digit), still 20 characters.
                    &format!(
                        "{}Z",
                        facts.control_id.get(..19).unwrap_or(&facts.control_id)
                    ),
                    summary(facts.kind),
                    facts.errors,
                    &mut out,
                );
            }
        }
    }
    out
}

/// The answer when nothing could be stored (the database is unavailable): AR, or CR in
/// enhanced mode, asking the sender to send again. Nothing of it is kept.
pub fn try_again(raw: &[u8]) -> Vec<u8> {
    let doc = Document::parse(raw);
    let mut out = Vec::new();
    let Some(msg) = doc.messages().next() else {
        return out;
    };
    let code = match ack_mode(&msg) {
        AckMode::Original => AckCode::AR,
        AckMode::Enhanced { .. } => AckCode::CR,
    };
    let errors = [InboundError {
        location: String::new(),
        code: "unavailable".into(),
        message: "the laboratory system could not store the message; send it again".into(),
    }];
    framed(
        &msg,
        code,
        "RETRY",
        &timestamp(),
        Some("temporarily unable to store; send again".into()),
        &errors,
        None,
        &mut out,
    );
    out
}
