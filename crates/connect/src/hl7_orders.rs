//! HL7 v2 orders from an EMR: ORM^O01 and OML^O21 (and OML^O33, whose segments are read the
//! same way) read into an [`InboundOrders`] for `App::ingest_orders`, and answered with the
//! order response ([`respond`]).
//!
//! Answering (`respond`): the acknowledgement is built as for results (original mode AA/AE/AR;
//! enhanced mode a commit ACK, CA or CR, then the application answer MSH-16 asks for), and
//! the application answer is the message type's own response: **ORR^O02** to ORM^O01,
//! **ORL^O22** to OML^O21 (MSH-9 `ORR^O02^ORR_O02`, `ORL^O22^ORL_O22`), with MSA and ERR as
//! in an ACK and then, for every test of every order the message carries, an ORC/OBR pair:
//! ORC-1 `OK` (placed) or `UA` (unable to accept), `CR` (cancelled as requested) or `UC`
//! (unable to cancel); ORC-2 and OBR-2 the placer order number as sent; ORC-3 and OBR-3 the
//! lab's order id (the filler order number, as in the outbound ORU's ORC-3) when accepted;
//! ORC-5 `SC` (placed, to be collected) or `CA`; OBR-4 the test's code as sent.
//! ORL^O22 nests its orders under the patient, so it repeats the message's PID before them.
//! A message is all or nothing, so either every ORC says OK/CR or none does. OML^O33 (whose
//! ORL^O34 nests orders under specimens) and a message whose type could not be read are
//! answered with a plain ACK. The response is stored with the message and answered again,
//! byte for byte, to a resend.
//!
//! Reading (`read_orders`):
//! - the header as for results: MSH-3's namespace id is the sender, MSH-10 the control id
//!   (required), one well-formed message per frame;
//! - PID: PID-3 the identifier (the `MR` repetition, else the first; CX-1 the value, CX-4 the
//!   assigning authority's namespace id, else its universal id), PID-5 the name (family name's
//!   surname, given, second given), PID-7 the birth date (`YYYYMMDD…` read as `YYYY-MM-DD`),
//!   PID-8 the sex. An order takes the PID before it;
//! - PV1-3.1 (point of care) is the first client-location candidate;
//! - each ORC opens an order: ORC-1 `NW` (new) or `CA` (cancel), anything else is rejected;
//!   ORC-2.1 the placer order number; ORC-12.1 the ordering provider's NPI; ORC-7.6 a
//!   priority; ORC-21 (XON-10, else XON-1) and ORC-17.1 further location candidates; ORC-16
//!   the cancellation reason. An ORC with the same control and placer order number as the
//!   order before it continues that order (one requisition sent as several ORC/OBR pairs);
//! - each OBR is one test or panel of the current order: OBR-4.1 (LOINC or a local code),
//!   OBR-4.4 the alternate code; OBR-2.1, OBR-16.1 and OBR-27.6 stand in for ORC-2, ORC-12
//!   and ORC-7 when those are empty;
//! - TQ1-9.1 is the order's priority (before OBR-27.6 and ORC-7.6): `S` stat, `A` asap, `R`
//!   routine, empty routine; any other code is rejected rather than guessed;
//! - DG1-3.1 an ICD-10-CM diagnosis of the current order (of every order when before the
//!   first ORC).

use aliquot_app::connections::{
    InboundError, InboundMessage, InboundOrder, InboundOrders, InboundPatient, InboundTest,
    Located, OrderAckFacts, OrderControl, OrderResponse, Protocol,
};
use aliquot_hl7::{Document, Message, OwnedMessage, OwnedSegment, Segment, Value};

use crate::hl7;

/// The message types read as orders.
const ORDER_TYPES: &[(&str, &str)] = &[("ORM", "O01"), ("OML", "O21"), ("OML", "O33")];

/// MSH-9's code and trigger, when the bytes are an HL7 message.
fn message_type(raw: &[u8]) -> Option<(String, String)> {
    let doc = Document::parse(raw);
    let msg = doc.messages().next()?;
    msg.msh().message_type().map(|v| {
        (
            v.comp_str(1).trim().to_owned(),
            v.comp_str(2).trim().to_owned(),
        )
    })
}

/// Whether MSH-9 names an order message (ORM^O01, OML^O21, OML^O33).
pub fn is_order_message(raw: &[u8]) -> bool {
    message_type(raw).is_some_and(|(c, t)| {
        ORDER_TYPES
            .iter()
            .any(|(code, trigger)| *code == c && *trigger == t)
    })
}

/// Reads any HL7 message the MLLP listener takes: orders, or else results (for replay).
pub fn read_any(raw: &[u8]) -> InboundMessage {
    if is_order_message(raw) {
        InboundMessage::Orders(read_orders(raw))
    } else {
        InboundMessage::Results(hl7::read_message(raw))
    }
}

fn text(v: Option<Value<'_, '_>>) -> String {
    v.map(|v| v.value().trim().to_owned()).unwrap_or_default()
}

/// Component `c` of a field's first repetition, up to its first sub-component.
fn comp(seg: &Segment<'_, '_>, field: usize, c: usize) -> String {
    text(
        seg.field(field)
            .and_then(|f| f.component(c))
            .and_then(|v| v.subcomponent(1)),
    )
}

/// The order response (MLLP-framed) for `raw`, as the ingest decided (see the module doc).
pub fn respond(raw: &[u8], facts: &OrderAckFacts<'_>) -> Vec<u8> {
    respond_at(raw, facts, &hl7::timestamp())
}

/// [`respond`] with the response's MSH-7 given.
pub fn respond_at(raw: &[u8], facts: &OrderAckFacts<'_>, timestamp: &str) -> Vec<u8> {
    hl7::acknowledge_shaped(
        raw,
        &facts.ack,
        timestamp,
        Some(&|msg, ack| shape_response(msg, ack, facts.orders)),
    )
}

/// Makes the application acknowledgement `ack` of order message `msg` its order response.
fn shape_response(msg: &Message<'_, '_>, ack: &mut OwnedMessage, orders: &[OrderResponse]) {
    let Some(kind) = msg.msh().message_type() else {
        return;
    };
    let (code, trigger) = (kind.comp_str(1), kind.comp_str(2));
    let (response, nested_in_patient) = match (code.trim(), trigger.trim()) {
        ("ORM", "O01") => (["ORR", "O02", "ORR_O02"], false),
        ("OML", "O21") => (["ORL", "O22", "ORL_O22"], true),
        _ => return,
    };
    if let Some(msh) = ack.segments.iter_mut().find(|s| s.name == "MSH") {
        msh.set_components(9, &response);
    }
    if orders.is_empty() {
        return;
    }
    if nested_in_patient {
        match msg.segments_named("PID").next() {
            Some(pid) => ack.segments.push(pid.to_owned_segment()),
            None => {
                let mut pid = OwnedSegment::new("PID");
                pid.set(1, "1");
                ack.segments.push(pid);
            }
        }
    }
    for o in orders {
        let (control, status) = match (o.control, o.accepted) {
            (OrderControl::New, true) => ("OK", "SC"),
            (OrderControl::New, false) => ("UA", ""),
            (OrderControl::Cancel, true) => ("CR", "CA"),
            (OrderControl::Cancel, false) => ("UC", ""),
        };
        let filler = o.order_id.map(|id| id.to_string()).unwrap_or_default();
        let orc = || {
            let mut orc = OwnedSegment::new("ORC");
            orc.set(1, control).set(2, &o.placer_order_number);
            // Refused: no filler number, no status (and no empty fields after ORC-2).
            if !filler.is_empty() {
                orc.set(3, &filler).set(5, status);
            }
            orc
        };
        if o.services.is_empty() {
            ack.segments.push(orc());
        }
        // One ORC per OBR (ORR^O02's order group holds one request).
        for (i, service) in o.services.iter().enumerate() {
            ack.segments.push(orc());
            let mut obr = OwnedSegment::new("OBR");
            obr.set(1, &(i + 1).to_string())
                .set(2, &o.placer_order_number)
                .set(3, &filler)
                .set(4, service);
            ack.segments.push(obr);
        }
    }
}

/// Reads one HL7 order message (without MLLP framing).
pub fn read_orders(raw: &[u8]) -> InboundOrders {
    let doc = Document::parse(raw);
    let (header, m) = hl7::read_header(&doc, raw);
    let mut msg = InboundOrders {
        protocol: Protocol::Hl7,
        message_type: if m.is_some() {
            header.message_type()
        } else {
            String::new()
        },
        sender: header.sender,
        control_id: header.control_id,
        raw: raw.to_vec(),
        rejected: header.problems,
        orders: Vec::new(),
    };
    let Some(m) = m else {
        return msg;
    };
    let (code, trigger) = (header.code, header.trigger);
    if !ORDER_TYPES
        .iter()
        .any(|(c, t)| *c == code.trim() && *t == trigger.trim())
    {
        msg.rejected.push(hl7::problem(
            "MSH[1]-9",
            "unsupported_message_type",
            "orders are read from ORM^O01 and OML^O21",
        ));
    }
    if msg.rejected.is_empty() {
        let mut problems = Vec::new();
        msg.orders = read_order_segments(m.segments(), &mut problems);
        msg.rejected = problems;
    }
    msg
}

/// An order being read, with the priority's candidates kept apart until its end.
struct Building {
    order: InboundOrder,
    tq1: Option<Located>,
    obr: Option<Located>,
    orc: Option<Located>,
}

fn priority(code: &str) -> Option<&'static str> {
    match code.trim().to_ascii_uppercase().as_str() {
        "S" => Some("stat"),
        "A" => Some("asap"),
        "R" | "" => Some("routine"),
        _ => None,
    }
}

fn finish(b: Building, problems: &mut Vec<InboundError>) -> InboundOrder {
    let mut o = b.order;
    let chosen = [b.tq1, b.obr, b.orc]
        .into_iter()
        .flatten()
        .find(|p| !p.value.is_empty());
    if let Some(p) = chosen {
        o.priority_location = p.location.clone();
        match priority(&p.value) {
            Some(name) => o.priority = name.to_owned(),
            None => problems.push(InboundError {
                location: p.location,
                code: "unsupported_priority".into(),
                message: format!(
                    "priority {:?} is not one the laboratory takes (S stat, A asap, R routine)",
                    p.value
                ),
            }),
        }
    }
    o
}

fn read_order_segments<'d, 'a: 'd>(
    segments: impl Iterator<Item = Segment<'d, 'a>>,
    problems: &mut Vec<InboundError>,
) -> Vec<InboundOrder> {
    let mut orders: Vec<InboundOrder> = Vec::new();
    let mut current: Option<Building> = None;
    let mut patient: Option<InboundPatient> = None;
    let mut visit_location: Option<Located> = None;
    let mut early_diagnoses: Vec<Located> = Vec::new();
    let mut counts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for seg in segments {
        let name = seg.name().into_owned();
        let n = {
            let c = counts.entry(name.clone()).or_insert(0);
            *c += 1;
            *c
        };
        let at = |field: usize| format!("{name}[{n}]-{field}");
        match name.as_str() {
            "PID" => patient = Some(read_patient(&seg, &format!("PID[{n}]"))),
            "PV1" => {
                let point_of_care = comp(&seg, 3, 1);
                visit_location = (!point_of_care.is_empty()).then(|| Located {
                    value: point_of_care,
                    location: at(3),
                });
            }
            "ORC" => {
                let control_code = comp(&seg, 1, 1).to_ascii_uppercase();
                let control = match control_code.as_str() {
                    "NW" => OrderControl::New,
                    "CA" => OrderControl::Cancel,
                    other => {
                        problems.push(InboundError {
                            location: at(1),
                            code: "order_control".into(),
                            message: format!(
                                "order control {other:?} is not taken: only NW (new order) and \
                                 CA (cancel)"
                            ),
                        });
                        OrderControl::New
                    }
                };
                let placer = comp(&seg, 2, 1);
                if let Some(b) = &current
                    && !placer.is_empty()
                    && b.order.control == control
                    && b.order.placer_order_number.value == placer
                {
                    continue;
                }
                if let Some(b) = current.take() {
                    orders.push(finish(b, problems));
                }
                let mut client_locations: Vec<Located> = visit_location.iter().cloned().collect();
                let facility = seg.field(21);
                for (value, location) in [
                    (text(facility.and_then(|f| f.component(10))), at(21)),
                    (comp(&seg, 21, 1), at(21)),
                    (comp(&seg, 17, 1), at(17)),
                ] {
                    if !value.is_empty() {
                        client_locations.push(Located { value, location });
                    }
                }
                let npi = comp(&seg, 12, 1);
                let reason = [comp(&seg, 16, 2), comp(&seg, 16, 1)]
                    .into_iter()
                    .find(|r| !r.is_empty())
                    .filter(|_| control == OrderControl::Cancel);
                current = Some(Building {
                    order: InboundOrder {
                        location: format!("ORC[{n}]"),
                        control,
                        placer_order_number: Located {
                            value: placer,
                            location: at(2),
                        },
                        priority: "routine".into(),
                        priority_location: format!("ORC[{n}]-7"),
                        provider_npi: (!npi.is_empty()).then(|| Located {
                            value: npi,
                            location: at(12),
                        }),
                        client_locations,
                        tests: Vec::new(),
                        diagnosis_codes: early_diagnoses.clone(),
                        patient: patient.clone(),
                        reason,
                    },
                    tq1: None,
                    obr: None,
                    orc: Some(Located {
                        value: comp(&seg, 7, 6),
                        location: at(7),
                    }),
                });
            }
            "TQ1" => {
                if let Some(b) = current.as_mut() {
                    b.tq1 = Some(Located {
                        value: comp(&seg, 9, 1),
                        location: at(9),
                    });
                }
            }
            "OBR" => {
                let Some(b) = current.as_mut() else {
                    problems.push(InboundError {
                        location: format!("OBR[{n}]"),
                        code: "segment_sequence".into(),
                        message: "an OBR before any ORC".into(),
                    });
                    continue;
                };
                let o = &mut b.order;
                let placer = comp(&seg, 2, 1);
                if o.placer_order_number.value.is_empty() && !placer.is_empty() {
                    o.placer_order_number = Located {
                        value: placer,
                        location: at(2),
                    };
                }
                if o.provider_npi.is_none() {
                    let npi = comp(&seg, 16, 1);
                    o.provider_npi = (!npi.is_empty()).then(|| Located {
                        value: npi,
                        location: at(16),
                    });
                }
                if b.obr.is_none() {
                    b.obr = Some(Located {
                        value: comp(&seg, 27, 6),
                        location: at(27),
                    });
                }
                let mut codes: Vec<String> = [comp(&seg, 4, 1), comp(&seg, 4, 4)]
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect();
                codes.dedup();
                if codes.is_empty() {
                    problems.push(InboundError {
                        location: at(4),
                        code: "required".into(),
                        message: "OBR-4 (the test ordered) is required".into(),
                    });
                }
                o.tests.push(InboundTest {
                    location: at(4),
                    codes,
                });
            }
            "DG1" => {
                let code = comp(&seg, 3, 1);
                if code.is_empty() {
                    continue;
                }
                let d = Located {
                    value: code,
                    location: at(3),
                };
                match current.as_mut() {
                    Some(b) => b.order.diagnosis_codes.push(d),
                    None => early_diagnoses.push(d),
                }
            }
            _ => {}
        }
    }
    if let Some(b) = current.take() {
        orders.push(finish(b, problems));
    }
    for o in &orders {
        if o.placer_order_number.value.is_empty() {
            problems.push(InboundError {
                location: o.placer_order_number.location.clone(),
                code: "required".into(),
                message: "the placer order number (ORC-2 or OBR-2) is required: without it a \
                          resent order could not be told from a new one, nor cancelled"
                    .into(),
            });
        }
    }
    orders
}

fn read_patient(seg: &Segment<'_, '_>, location: &str) -> InboundPatient {
    let ids = seg.field(3).map(|f| f.repetitions()).unwrap_or_default();
    let id = ids
        .iter()
        .find(|r| r.comp_str(5).trim().eq_ignore_ascii_case("MR"))
        .or_else(|| ids.iter().find(|r| !r.comp_str(1).trim().is_empty()));
    let (mrn, assigning_authority) = match id {
        Some(r) => {
            let authority = r.component(4);
            let namespace = text(authority.and_then(|a| a.subcomponent(1)));
            let universal = text(authority.and_then(|a| a.subcomponent(2)));
            (
                r.comp_str(1).trim().to_owned(),
                [namespace, universal].into_iter().find(|a| !a.is_empty()),
            )
        }
        None => (String::new(), None),
    };
    let birth = comp(seg, 7, 1);
    let birth_date = if birth.len() >= 8 && birth.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
        format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..8])
    } else {
        birth
    };
    let middle = comp(seg, 5, 3);
    InboundPatient {
        location: location.to_owned(),
        mrn,
        assigning_authority,
        family_name: comp(seg, 5, 1),
        given_name: comp(seg, 5, 2),
        middle_name: (!middle.is_empty()).then_some(middle),
        birth_date,
        sex: comp(seg, 8, 1),
    }
}
