//! New orders and cancellations from an EMR (HL7 ORM^O01 / OML^O21 over MLLP), read by the
//! edge into an [`InboundOrders`] and placed through the same order use case as
//! `POST /api/v1/orders`.
//!
//! The EMR is registered like an instrument (protocol `hl7`, sender = MSH-3); its messages
//! act as `instrument:<code>` (role interface). A message is **all or nothing**: every order
//! it carries is placed (or cancelled) in one transaction, or none is and the message waits
//! in the interface error queue with each problem named by its place in the message (an
//! order message half placed could not be replayed without placing its first half twice).
//!
//! Mapping, before the transaction (read side): the sender must be registered; the ordering
//! provider is found by NPI; the client location by code (the first of the message's
//! candidates that is a location, else the `interfaces.default_location` setting); each test
//! by the sender's own test-code mapping, else the catalogue (local code or LOINC).
//!
//! In the transaction: the patient is identified by two identifiers (the PID-3 identifier,
//! as a facility identifier of its assigning authority or else as the lab's MRN, and the
//! birth date), as the API does; an unknown patient is registered only when
//! `interfaces.register_unknown_patients` is `true` (a registration resembling a live
//! patient is refused: a person decides). A cancellation finds the active order by placer
//! order number at the client location and cancels it through the cancel use case.

use std::collections::HashMap;

use aliquot_domain::auth::Permission;
use aliquot_store::{InterfaceMessageRecord, InterfaceMessageRecord as Stored, Tx};
use serde_json::json;

use super::Protocol;
use super::ingest::{AckFacts, AckKind, InboundError, IngestOutcome, ack_control_id_of};
use crate::catalog::catalog_key;
use crate::orders::NewOrderInput;
use crate::patients::{FacilityIdentifier, NewPatientInput, PatientIdentification};
use crate::{Actor, App, AppError, AppResult};

/// An order message as an edge read it.
#[derive(Debug, Clone)]
pub struct InboundOrders {
    pub protocol: Protocol,
    /// How the message names its sender (HL7 MSH-3).
    pub sender: String,
    /// HL7 MSH-10.
    pub control_id: String,
    /// e.g. `ORM^O01`.
    pub message_type: String,
    pub raw: Vec<u8>,
    /// Problems with the message itself (structure, unsupported order control or priority):
    /// it is rejected (AR) and kept, nothing is placed.
    pub rejected: Vec<InboundError>,
    pub orders: Vec<InboundOrder>,
}

/// The patient a message names (HL7 PID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundPatient {
    /// The segment, e.g. `PID[1]`; errors name its fields (`PID[1]-3`).
    pub location: String,
    /// The record number (HL7 PID-3.1 of the `MR` repetition, else the first).
    pub mrn: String,
    /// Its assigning authority (PID-3.4), when given.
    pub assigning_authority: Option<String>,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    /// `YYYY-MM-DD` when the message's date could be read, else as sent.
    pub birth_date: String,
    /// HL7 table 0001 (F, M, O, U, A, N).
    pub sex: String,
}

/// What an order asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderControl {
    /// HL7 ORC-1 `NW`.
    New,
    /// HL7 ORC-1 `CA`.
    Cancel,
}

/// A code and where it is in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub value: String,
    /// e.g. `PV1[1]-3`.
    pub location: String,
}

/// One test or panel of an order (HL7: one OBR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundTest {
    /// e.g. `OBR[2]-4`.
    pub location: String,
    /// The codes naming it, in order of preference (identifier, alternate identifier).
    pub codes: Vec<String>,
}

/// One order of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOrder {
    /// The segment opening it, e.g. `ORC[1]`.
    pub location: String,
    pub control: OrderControl,
    /// The placer order number (HL7 ORC-2, else OBR-2), with its location.
    pub placer_order_number: Located,
    /// `stat`, `asap` or `routine` (the edge maps the wire's codes).
    pub priority: String,
    pub priority_location: String,
    /// The ordering provider's NPI (HL7 ORC-12, else OBR-16).
    pub provider_npi: Option<Located>,
    /// Location codes the message gives for the ordering client, in order of preference.
    pub client_locations: Vec<Located>,
    pub tests: Vec<InboundTest>,
    /// ICD-10-CM codes (HL7 DG1-3).
    pub diagnosis_codes: Vec<Located>,
    pub patient: Option<InboundPatient>,
    /// Why the order is cancelled (HL7 ORC-16), for a cancellation.
    pub reason: Option<String>,
}

/// What became of one order of a message, for the order response (HL7 ORR^O02 / ORL^O22:
/// ORC-1, ORC-2, ORC-3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderResponse {
    pub control: OrderControl,
    /// As the message gave it.
    pub placer_order_number: String,
    /// Placed (a new order) or cancelled (a cancellation), with the whole message.
    pub accepted: bool,
    /// The lab's order id (the filler order number), when accepted.
    pub order_id: Option<i64>,
    /// The tests or panels as the message named them (the first code of each), in order.
    pub services: Vec<String>,
}

/// What the edge builds its order response from: the acknowledgement's facts and, in the
/// message's order, what became of each order it carries (empty when none could be read).
#[derive(Debug)]
pub struct OrderAckFacts<'a> {
    pub ack: AckFacts<'a>,
    pub orders: &'a [OrderResponse],
}

/// What a message of any kind reads into (for replay, where the stored bytes are read again).
#[derive(Debug, Clone)]
pub enum InboundMessage {
    Results(super::Inbound),
    Orders(InboundOrders),
}

/// An order mapped to the lab's records, ready to be placed or cancelled.
struct MappedOrder {
    location_id: i64,
    provider_id: i64,
    tests: Vec<String>,
}

struct Mapped {
    instrument_code: String,
    orders: Vec<MappedOrder>,
}

fn problem(location: &str, code: &str, message: impl Into<String>) -> InboundError {
    InboundError {
        location: location.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// A refusal of a use case as the acknowledgement names it; `None` for errors that mean
/// "could not store" (the sender tries again).
fn refusal(e: &AppError, locate: impl Fn(Option<&str>) -> String) -> Option<InboundError> {
    let (code, message, field) = match e {
        AppError::Invalid {
            code,
            message,
            field,
        }
        | AppError::Conflict {
            code,
            message,
            field,
        } => ((*code).to_owned(), message.clone(), field.as_deref()),
        AppError::NotFound { entity } => {
            ("not_found".to_owned(), format!("{entity} not found"), None)
        }
        AppError::Forbidden { message } => ("forbidden".to_owned(), message.clone(), None),
        AppError::Unauthorized { .. } | AppError::Locked { .. } | AppError::Internal(_) => {
            return None;
        }
    };
    Some(InboundError {
        location: locate(field),
        code,
        message,
    })
}

/// Where an error of the order use case about `field` is in the message.
fn order_location(order: &InboundOrder, field: Option<&str>) -> String {
    let pid = order
        .patient
        .as_ref()
        .map_or("PID[1]".to_owned(), |p| p.location.clone());
    let indexed = |prefix: &str| -> Option<usize> {
        field?
            .strip_prefix(prefix)?
            .strip_prefix('[')?
            .split(']')
            .next()?
            .parse()
            .ok()
    };
    if let Some(i) = indexed("tests")
        && let Some(t) = order.tests.get(i)
    {
        return t.location.clone();
    }
    if let Some(i) = indexed("diagnosis_codes")
        && let Some(d) = order.diagnosis_codes.get(i)
    {
        return d.location.clone();
    }
    match field.unwrap_or("") {
        "priority" | "timed_at" => order.priority_location.clone(),
        "placer_order_number" => order.placer_order_number.location.clone(),
        "provider_id" => order
            .provider_npi
            .as_ref()
            .map_or(format!("{}-12", order.location), |p| p.location.clone()),
        "location_id" => order
            .client_locations
            .first()
            .map_or(format!("{}-21", order.location), |l| l.location.clone()),
        "tests" => order
            .tests
            .first()
            .map_or(order.location.clone(), |t| t.location.clone()),
        "patient.birth_date" | "birth_date" => format!("{pid}-7"),
        "patient.family_name"
        | "patient.given_name"
        | "family_name"
        | "given_name"
        | "middle_name"
        | "name" => format!("{pid}-5"),
        "sex" => format!("{pid}-8"),
        f if f.starts_with("patient") || f == "mrn" || f.starts_with("identifiers") => {
            format!("{pid}-3")
        }
        _ => order.location.clone(),
    }
}

/// How the patient is presented: the PID-3 identifier as a facility identifier of its
/// assigning authority, or as the lab's MRN; with the birth date as the second identifier.
fn identification(p: &InboundPatient, as_facility_id: bool) -> PatientIdentification {
    let birth_date = Some(p.birth_date.clone()).filter(|d| !d.is_empty());
    match (&p.assigning_authority, as_facility_id) {
        (Some(system), true) => PatientIdentification {
            identifier: Some(FacilityIdentifier {
                system: system.clone(),
                value: p.mrn.clone(),
            }),
            birth_date,
            ..PatientIdentification::default()
        },
        _ => PatientIdentification {
            mrn: Some(p.mrn.clone()),
            birth_date,
            ..PatientIdentification::default()
        },
    }
}

fn is_unknown_patient(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Invalid {
            code: "unknown_patient",
            ..
        }
    )
}

impl App {
    /// Ingests an order message (see the module doc): answered from the store when it was
    /// received before (same protocol, sender and control id); otherwise its orders are
    /// placed or cancelled, and the message is stored with the acknowledgement `ack` builds,
    /// in one transaction. `Err` means nothing was stored: the edge answers "try again".
    pub async fn ingest_orders<F>(&self, msg: &InboundOrders, ack: F) -> AppResult<IngestOutcome>
    where
        F: Fn(&OrderAckFacts<'_>) -> Vec<u8> + Send + Sync,
    {
        match self.ingest_orders_once(msg, &ack).await {
            // Two copies raced past the lookup (two servers on one database).
            Err(AppError::Conflict {
                code: "conflict", ..
            }) => self.ingest_orders_once(msg, &ack).await,
            other => other,
        }
    }

    async fn ingest_orders_once<F>(&self, msg: &InboundOrders, ack: &F) -> AppResult<IngestOutcome>
    where
        F: Fn(&OrderAckFacts<'_>) -> Vec<u8> + Send + Sync,
    {
        let protocol = msg.protocol.as_str();
        let mapped = if msg.rejected.is_empty() {
            Some(self.map_orders(msg).await?)
        } else {
            None
        };
        let mut tx = self.store.begin().await?;
        if let Some(m) = tx
            .interface_message_by_key(protocol, &msg.sender, &msg.control_id)
            .await?
        {
            return Ok(stored_outcome(m));
        }
        let mut placed = Vec::new();
        let (kind, connection, posted, errors) = match mapped {
            None => (AckKind::Reject, msg.sender.clone(), 0, msg.rejected.clone()),
            Some(Err((connection, errors))) => (AckKind::Error, connection, 0, errors),
            Some(Ok(m)) => match self.apply_orders(&mut tx, msg, &m).await? {
                Ok(ids) => {
                    placed = ids;
                    let n = i64::try_from(placed.len()).unwrap_or(i64::MAX);
                    (AckKind::Accept, m.instrument_code, n, Vec::new())
                }
                Err(errors) => {
                    // Nothing of the message may stay: the transaction (holding what was
                    // placed before the refusal) is rolled back, and the message is stored
                    // in a new one.
                    drop(tx);
                    tx = self.store.begin().await?;
                    if let Some(m) = tx
                        .interface_message_by_key(protocol, &msg.sender, &msg.control_id)
                        .await?
                    {
                        return Ok(stored_outcome(m));
                    }
                    (AckKind::Error, m.instrument_code, 0, errors)
                }
            },
        };
        // All or nothing: every order accepted with its order id, or none.
        let responses: Vec<OrderResponse> = msg
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| OrderResponse {
                control: o.control,
                placer_order_number: o.placer_order_number.value.clone(),
                accepted: kind == AckKind::Accept,
                order_id: placed.get(i).copied(),
                services: o
                    .tests
                    .iter()
                    .map(|t| t.codes.first().cloned().unwrap_or_default())
                    .collect(),
            })
            .collect();
        let ack_bytes = ack(&OrderAckFacts {
            ack: AckFacts {
                kind,
                control_id: ack_control_id_of(msg.protocol, &msg.sender, &msg.control_id),
                errors: &errors,
            },
            orders: &responses,
        });
        let now = self.now();
        let status = if kind == AckKind::Accept {
            "accepted"
        } else {
            "error"
        };
        let record = InterfaceMessageRecord {
            id: 0,
            protocol: protocol.to_owned(),
            connection,
            sender: msg.sender.clone(),
            control_id: msg.control_id.clone(),
            message_type: msg.message_type.clone(),
            received_at: now,
            raw: msg.raw.clone(),
            status: status.to_owned(),
            ack: ack_bytes.clone(),
            errors: serde_json::to_string(&errors)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            posted,
            updated_at: now,
            updated_by: format!("{protocol}:receive"),
        };
        let id = tx.insert_interface_message(&record).await?;
        tx.commit().await?;
        Ok(IngestOutcome {
            message_id: id,
            repeated: false,
            status: status.to_owned(),
            posted,
            errors,
            ack: ack_bytes,
        })
    }

    /// Replays an order message from the error queue (called by [`App::replay_message`]):
    /// mapped and placed again with today's registry, settings and patients; the replay is
    /// audited as the analyst's, the orders as the sender's.
    pub(super) async fn replay_orders(
        &self,
        actor: &Actor,
        old: Stored,
        msg: &InboundOrders,
    ) -> AppResult<IngestOutcome> {
        actor.require(Permission::InterfaceManage)?;
        let mapped = if msg.rejected.is_empty() {
            Some(self.map_orders(msg).await?)
        } else {
            None
        };
        let mut tx = self.store.begin().await?;
        let (connection, posted, errors) = match mapped {
            None => (old.connection.clone(), 0, msg.rejected.clone()),
            Some(Err((connection, errors))) => (connection, 0, errors),
            Some(Ok(m)) => match self.apply_orders(&mut tx, msg, &m).await? {
                Ok(ids) => (
                    m.instrument_code,
                    i64::try_from(ids.len()).unwrap_or(i64::MAX),
                    Vec::new(),
                ),
                Err(errors) => {
                    drop(tx);
                    tx = self.store.begin().await?;
                    (m.instrument_code, 0, errors)
                }
            },
        };
        let status = if errors.is_empty() {
            "replayed"
        } else {
            "error"
        };
        let record = InterfaceMessageRecord {
            status: status.to_owned(),
            errors: serde_json::to_string(&errors)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            posted,
            updated_at: self.now(),
            updated_by: actor.username.clone(),
            connection,
            ..old.clone()
        };
        // Guarded by the row's last change: a concurrent replay (which would have placed
        // the orders too) makes this one fail and roll back.
        if !tx.update_interface_message(&record, old.updated_at).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "message_changed",
                message: "the message was replayed meanwhile: reload it".into(),
            });
        }
        tx.audit(self.entry(
            actor,
            "interface_message.replay",
            "interface_message",
            old.id,
            Some(json!({"status": old.status, "posted": old.posted})),
            Some(json!({"status": status, "posted": posted, "errors": errors.len()})),
            None,
        ));
        tx.commit().await?;
        Ok(IngestOutcome {
            message_id: old.id,
            repeated: false,
            status: status.to_owned(),
            posted,
            errors,
            ack: old.ack,
        })
    }

    /// Maps the message's sender, providers, locations and tests to the lab's records (read
    /// side). `Err((connection, problems))` names every problem found.
    async fn map_orders(
        &self,
        msg: &InboundOrders,
    ) -> AppResult<Result<Mapped, (String, Vec<InboundError>)>> {
        let Some(instrument) = self
            .store
            .instrument_by_sender(msg.protocol.as_str(), &msg.sender)
            .await?
            .filter(|i| i.retired_at.is_none())
        else {
            return Ok(Err((
                msg.sender.clone(),
                vec![problem(
                    "MSH[1]-3",
                    "unknown_sender",
                    "no active sender is registered under this name; register the EMR (POST \
                     /api/v1/instruments) and replay the message",
                )],
            )));
        };
        let own_codes: HashMap<String, String> = self
            .store
            .instrument_test_codes(instrument.id)
            .await?
            .into_iter()
            .map(|c| (c.code, c.test_code))
            .collect();
        let default_location = self
            .store
            .setting("interfaces.default_location")
            .await?
            .map(|s| s.value);
        let mut problems = Vec::new();
        let mut orders = Vec::new();
        if msg.orders.is_empty() {
            problems.push(problem("", "no_orders", "the message carries no order"));
        }
        for o in &msg.orders {
            // The client location: the first candidate that is a location, else the default.
            let mut location_id = None;
            for l in &o.client_locations {
                let code = l.value.trim().to_ascii_uppercase();
                if let Some(r) = self.store.location_by_code(&code).await? {
                    location_id = Some(r.id);
                    break;
                }
            }
            if location_id.is_none()
                && let Some(code) = &default_location
                && let Some(r) = self.store.location_by_code(code).await?
            {
                location_id = Some(r.id);
            }
            if location_id.is_none() {
                let tried: Vec<&str> = o
                    .client_locations
                    .iter()
                    .map(|l| l.value.as_str())
                    .collect();
                problems.push(problem(
                    &o.client_locations
                        .first()
                        .map_or(format!("{}-21", o.location), |l| l.location.clone()),
                    "unknown_location",
                    format!(
                        "no client location has the code(s) {tried:?} the message gives, and \
                         the setting interfaces.default_location names none; register the \
                         location or set the default, and replay"
                    ),
                ));
            }
            let mut provider_id = 0;
            if o.control == OrderControl::New {
                match &o.provider_npi {
                    None => problems.push(problem(
                        &format!("{}-12", o.location),
                        "required",
                        "the ordering provider's NPI (ORC-12 or OBR-16) is required",
                    )),
                    Some(npi) => match self.store.provider_by_npi(npi.value.trim()).await? {
                        Some(p) => provider_id = p.id,
                        None => problems.push(problem(
                            &npi.location,
                            "unknown_provider",
                            format!(
                                "no provider has NPI {}; register the provider and replay",
                                npi.value.trim()
                            ),
                        )),
                    },
                }
                if o.tests.is_empty() {
                    problems.push(problem(&o.location, "no_tests", "the order names no test"));
                }
            }
            let mut tests = Vec::new();
            if o.control == OrderControl::New {
                for t in &o.tests {
                    let mut found = None;
                    for c in t.codes.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
                        if let Some(test) = own_codes.get(c) {
                            found = Some(test.clone());
                            break;
                        }
                        if self.store.catalog_by_code(&catalog_key(c)).await?.is_some() {
                            found = Some(c.to_owned());
                            break;
                        }
                    }
                    match found {
                        Some(code) => tests.push(code),
                        None => problems.push(problem(
                            &t.location,
                            "unknown_test_code",
                            format!(
                                "{:?} is neither a test code of {} nor a catalogue test or \
                                 panel (local code or LOINC)",
                                t.codes.first().map(String::as_str).unwrap_or(""),
                                instrument.code
                            ),
                        )),
                    }
                }
            }
            orders.push(MappedOrder {
                location_id: location_id.unwrap_or(0),
                provider_id,
                tests,
            });
        }
        if problems.is_empty() {
            Ok(Ok(Mapped {
                instrument_code: instrument.code,
                orders,
            }))
        } else {
            Ok(Err((instrument.code, problems)))
        }
    }

    /// Places or cancels every order of the message inside `tx`: the ids of the orders placed
    /// or cancelled, in the message's order. `Ok(Err(problems))`: one was refused, and `tx`
    /// may hold the orders placed before it; the caller drops it.
    async fn apply_orders(
        &self,
        tx: &mut Box<dyn Tx>,
        msg: &InboundOrders,
        mapped: &Mapped,
    ) -> AppResult<Result<Vec<i64>, Vec<InboundError>>> {
        let actor = Actor::instrument(&mapped.instrument_code, msg.protocol);
        let register = self
            .store
            .setting("interfaces.register_unknown_patients")
            .await?
            .is_some_and(|s| s.value.trim() == "true");
        let mut done = Vec::with_capacity(msg.orders.len());
        for (o, m) in msg.orders.iter().zip(&mapped.orders) {
            let outcome = match o.control {
                OrderControl::New => self.place_inbound(tx, &actor, o, m, register).await,
                OrderControl::Cancel => self.cancel_inbound(tx, &actor, msg, o, m).await,
            };
            match outcome {
                Ok(Ok(id)) => done.push(id),
                Ok(Err(p)) => return Ok(Err(vec![p])),
                Err(e) => match refusal(&e, |f| order_location(o, f)) {
                    Some(p) => return Ok(Err(vec![p])),
                    None => return Err(e),
                },
            }
        }
        Ok(Ok(done))
    }

    async fn place_inbound(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        o: &InboundOrder,
        m: &MappedOrder,
        register: bool,
    ) -> AppResult<Result<i64, InboundError>> {
        let Some(p) = &o.patient else {
            return Ok(Err(problem(
                &o.location,
                "required",
                "a new order needs the patient (PID)",
            )));
        };
        let patient = match self.patient_of(tx, actor, p, register).await? {
            Ok(ident) => ident,
            Err(problem) => return Ok(Err(problem)),
        };
        let input = NewOrderInput {
            patient,
            provider_id: m.provider_id,
            location_id: m.location_id,
            tests: m.tests.clone(),
            priority: o.priority.clone(),
            timed_at: None,
            clinical_notes: None,
            diagnosis_codes: o.diagnosis_codes.iter().map(|d| d.value.clone()).collect(),
            placer_order_number: Some(o.placer_order_number.value.clone()),
            winged_collection_set: false,
        };
        let prepared = self.prepare_order(&input).await?;
        let placed = self.place_order_in(tx, actor, &input, prepared).await?;
        Ok(Ok(placed.id))
    }

    /// How to present the message's patient to the order use case: identified by the PID-3
    /// identifier as its authority's facility identifier, else as the lab's MRN (each with
    /// the birth date); an unknown patient registered when the setting allows it.
    async fn patient_of(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        p: &InboundPatient,
        register: bool,
    ) -> AppResult<Result<PatientIdentification, InboundError>> {
        let attempts: &[bool] = if p.assigning_authority.is_some() {
            &[true, false]
        } else {
            &[false]
        };
        for &as_facility_id in attempts {
            // The EMR's own record number need not be shaped like the lab's MRN.
            if !as_facility_id
                && p.assigning_authority.is_some()
                && aliquot_domain::ids::Mrn::parse(&p.mrn).is_err()
            {
                continue;
            }
            let ident = identification(p, as_facility_id);
            match self.identify_patient(tx, &ident).await {
                Ok(_) => return Ok(Ok(ident)),
                Err(e) if is_unknown_patient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !register {
            return Ok(Err(problem(
                &format!("{}-3", p.location),
                "unknown_patient",
                "no patient has this identifier (with this birth date); register the patient \
                 (or allow interfaces.register_unknown_patients) and replay",
            )));
        }
        let input = NewPatientInput {
            mrn: p.mrn.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            middle_name: p.middle_name.clone(),
            birth_date: p.birth_date.clone(),
            sex: p.sex.clone(),
            clinical_sex: None,
            birth_time: None,
            identifiers: p
                .assigning_authority
                .iter()
                .map(|system| FacilityIdentifier {
                    system: system.clone(),
                    value: p.mrn.clone(),
                })
                .collect(),
            ..NewPatientInput::default()
        };
        match self.register_patient_in(tx, actor, &input).await? {
            Ok(_) => Ok(Ok(identification(p, false))),
            Err(candidates) => Ok(Err(problem(
                &p.location,
                "possible_duplicate_patient",
                format!(
                    "the patient is not registered, and registering them would resemble {} \
                     live patient(s): a person decides",
                    candidates.len()
                ),
            ))),
        }
    }

    async fn cancel_inbound(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        msg: &InboundOrders,
        o: &InboundOrder,
        m: &MappedOrder,
    ) -> AppResult<Result<i64, InboundError>> {
        let placer = o.placer_order_number.value.trim();
        let Some(id) = tx.active_order_by_placer(m.location_id, placer).await? else {
            return Ok(Err(problem(
                &o.placer_order_number.location,
                "unknown_order",
                "no active order carries this placer order number from this client",
            )));
        };
        let reason = o
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map_or_else(
                || {
                    format!(
                        "cancelled by {} ({} {})",
                        msg.sender, msg.message_type, msg.control_id
                    )
                },
                str::to_owned,
            );
        self.cancel_order_in(tx, actor, id, &reason).await?;
        Ok(Ok(id))
    }
}

fn stored_outcome(m: Stored) -> IngestOutcome {
    IngestOutcome {
        message_id: m.id,
        repeated: true,
        errors: serde_json::from_str(&m.errors).unwrap_or_default(),
        status: m.status,
        posted: m.posted,
        ack: m.ack,
    }
}
