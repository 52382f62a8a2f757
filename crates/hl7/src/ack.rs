//! Acknowledgement building (original AA/AE/AR, enhanced CA/CE/CR).

use crate::encode::{OwnedMessage, OwnedSegment};
use crate::parse::Message;

/// MSA-1 codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept (enhanced mode).
    CA,
    /// Commit error (enhanced mode).
    CE,
    /// Commit reject (enhanced mode).
    CR,
}

impl AckCode {
    /// The two-letter code.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// True for the commit (accept-level) codes.
    pub fn is_commit(self) -> bool {
        matches!(self, AckCode::CA | AckCode::CE | AckCode::CR)
    }
}

/// Which acknowledgement mode the sender asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// MSH-15 and MSH-16 empty: one AA/AE/AR.
    Original,
    /// MSH-15 and/or MSH-16 set: commit ACK (CA/CE/CR) then, if MSH-16 asks, an application ACK.
    Enhanced {
        /// MSH-15 (AL, NE, ER, SU; empty means AL).
        accept: String,
        /// MSH-16.
        application: String,
    },
}

/// The acknowledgement mode of `msg`.
pub fn ack_mode(msg: &Message<'_, '_>) -> AckMode {
    let msh = msg.msh();
    let a = msh
        .accept_ack_type()
        .map(|v| v.value().trim().to_string())
        .unwrap_or_default();
    let b = msh
        .application_ack_type()
        .map(|v| v.value().trim().to_string())
        .unwrap_or_default();
    if a.is_empty() && b.is_empty() {
        AckMode::Original
    } else {
        AckMode::Enhanced {
            accept: a,
            application: b,
        }
    }
}

/// Where an error is (ERR-2 ERL, or the location part of v2.3.1 ERR-1).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ErrorLocation {
    /// Segment ID, e.g. `PID`.
    pub segment: String,
    /// Segment sequence (1-based occurrence).
    pub sequence: u32,
    /// Field position.
    pub field: u32,
    /// Field repetition (v2.5+ only).
    pub repetition: Option<u32>,
    /// Component (v2.5+ only).
    pub component: Option<u32>,
}

/// One error to report in ERR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError {
    /// HL7 table 0357 code (e.g. 101 required field missing, 207 internal error).
    pub code: u16,
    /// Text of the code.
    pub text: String,
    /// Location, if known.
    pub location: Option<ErrorLocation>,
    /// Severity E, W or I (v2.5+ ERR-4).
    pub severity: char,
}

/// What to acknowledge with.
#[derive(Clone, Debug)]
pub struct AckOptions {
    /// MSA-1.
    pub code: AckCode,
    /// MSH-10 of the ACK itself.
    pub control_id: String,
    /// MSH-7 of the ACK (the caller's clock, e.g. `20261121141500+0000`).
    pub timestamp: String,
    /// Human-readable text (MSA-3 before v2.5; ERR-8 from v2.5).
    pub text: Option<String>,
    /// Errors for ERR segments.
    pub errors: Vec<AckError>,
}

fn version_tuple(v: &str) -> (u32, u32, u32) {
    let mut it = v
        .trim()
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// Builds the acknowledgement of `msg`: MSH-3/4 and MSH-5/6 swapped,
/// MSH-11/12 copied, MSH-9 `ACK^trigger^ACK` (v2.4+) or `ACK^trigger`
/// (older), MSA-2 = the original MSH-10, ERR in the form of the version
/// (ERR-1 up to v2.4, ERR-2/3/4 from v2.5). Commit ACKs carry MSH-15/16 = NE.
pub fn build_ack(msg: &Message<'_, '_>, opts: &AckOptions) -> OwnedMessage {
    let msh = msg.msh();
    let field = |v: Option<crate::parse::Value<'_, '_>>| {
        v.map(|v| crate::encode::owned_field(v))
            .unwrap_or_else(|| vec![vec![vec![String::new()]]])
    };
    let version_str = msh
        .version()
        .map(|v| v.comp_str(1).into_owned())
        .unwrap_or_default();
    let version = version_tuple(&version_str);
    let trigger = msh
        .message_type()
        .map(|v| v.comp_str(2).into_owned())
        .unwrap_or_default();

    let mut h = OwnedSegment::new("MSH");
    let delims = msg.delimiters();
    h.set(1, &(delims.field as char).to_string());
    h.set(2, &String::from_utf8_lossy(&delims.encoding_characters()));
    h.set_field(3, field(msh.receiving_application()));
    h.set_field(4, field(msh.receiving_facility()));
    h.set_field(5, field(msh.sending_application()));
    h.set_field(6, field(msh.sending_facility()));
    h.set(7, &opts.timestamp);
    if version >= (2, 4, 0) {
        h.set_components(9, &["ACK", &trigger, "ACK"]);
    } else if trigger.is_empty() {
        h.set(9, "ACK");
    } else {
        h.set_components(9, &["ACK", &trigger]);
    }
    h.set(10, &opts.control_id);
    h.set_field(11, field(msh.processing_id()));
    h.set_field(12, field(msh.version()));
    if opts.code.is_commit() {
        h.set(15, "NE");
        h.set(16, "NE");
    }
    if let Some(cs) = msh.charset()
        && !cs.is_empty()
    {
        h.set_field(18, field(Some(cs)));
    }

    let mut msa = OwnedSegment::new("MSA");
    msa.set(1, opts.code.as_str());
    msa.set(
        2,
        &msh.control_id()
            .map(|v| v.value().into_owned())
            .unwrap_or_default(),
    );
    let modern = version >= (2, 5, 0);
    if let Some(t) = &opts.text
        && !modern
    {
        msa.set(3, t);
    }
    let mut segs = vec![h, msa];
    for e in &opts.errors {
        let mut err = OwnedSegment::new("ERR");
        if modern {
            if let Some(l) = &e.location {
                let opt = |o: Option<u32>| o.map(|n| n.to_string()).unwrap_or_default();
                let mut erl = vec![
                    l.segment.clone(),
                    l.sequence.to_string(),
                    if l.field == 0 {
                        String::new()
                    } else {
                        l.field.to_string()
                    },
                    opt(l.repetition),
                    opt(l.component),
                ];
                // Trailing empty components are left out, as the encoding rules ask.
                while erl.last().is_some_and(String::is_empty) {
                    erl.pop();
                }
                let erl: Vec<&str> = erl.iter().map(String::as_str).collect();
                err.set_components(2, &erl);
            }
            err.set_components(3, &[&e.code.to_string(), &e.text, "HL70357"]);
            err.set(4, &e.severity.to_string());
            if let Some(t) = &opts.text {
                err.set(8, t);
            }
        } else {
            let l = e.location.clone().unwrap_or_default();
            let code = vec![e.code.to_string(), e.text.clone(), "HL70357".to_string()];
            err.set_field(
                1,
                vec![vec![
                    vec![l.segment.clone()],
                    vec![if l.sequence == 0 {
                        String::new()
                    } else {
                        l.sequence.to_string()
                    }],
                    vec![if l.field == 0 {
                        String::new()
                    } else {
                        l.field.to_string()
                    }],
                    code,
                ]],
            );
        }
        segs.push(err);
    }
    OwnedMessage {
        delimiters: delims,
        segments: segs,
    }
}
