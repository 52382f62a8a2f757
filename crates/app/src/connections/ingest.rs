//! Ingest of result messages: matched to the registered instrument and its test codes, posted
//! through result entry, stored with the acknowledgement in one transaction.
//!
//! A message is posted as far as it can be: each result that passes result entry is stored
//! (results are independent, and a late potassium must not wait for a mis-mapped sodium); each
//! one that does not is named in the acknowledgement's errors (AE) and the message waits in the
//! interface error queue. Replaying it after the mapping is fixed posts the rest: the results
//! already stored come back as duplicates and change nothing. A message whose specimen belongs
//! to another patient than the one it names posts nothing for that specimen.

use std::collections::HashMap;

use aliquot_domain::auth::Permission;
use aliquot_store::{InstrumentRecord, InterfaceMessageRecord, PatientRecord, Tx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Protocol;
use super::orders::InboundMessage;
use crate::results::{EntrySettings, ResultInput, ResultOutcome};
use crate::{Actor, App, AppError, AppResult};

/// A message as an edge read it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub protocol: Protocol,
    /// How the message names its sender (HL7 MSH-3, ASTM H-5).
    pub sender: String,
    /// HL7 MSH-10; for ASTM (which has none) a digest of the message.
    pub control_id: String,
    /// e.g. `ORU^R01`.
    pub message_type: String,
    pub raw: Vec<u8>,
    /// Problems with the message itself (structure, unsupported type): it is rejected (AR)
    /// and kept, nothing is posted.
    pub rejected: Vec<InboundError>,
    pub specimens: Vec<InboundSpecimen>,
}

/// One specimen's results in a message.
#[derive(Debug, Clone)]
pub struct InboundSpecimen {
    /// The tube's accession as the message gives it.
    pub accession: String,
    /// Where the accession is in the message (e.g. `OBR[1]-3`).
    pub location: String,
    /// Patient identifiers the message names for it (HL7 PID-3), checked against the tube's
    /// patient when present.
    pub patient_ids: Vec<String>,
    /// Where those identifiers are (e.g. `PID[1]-3`).
    pub patient_location: String,
    pub observations: Vec<InboundObservation>,
}

/// One result in a message.
#[derive(Debug, Clone)]
pub struct InboundObservation {
    /// Where it is (e.g. `OBX[2]`).
    pub location: String,
    /// The instrument's test code.
    pub code: String,
    pub value: String,
    pub units: Option<String>,
    /// Instrument flags (abnormal flags as sent); kept for autoverification.
    pub flags: Vec<String>,
    pub comment: Option<String>,
}

/// One problem, as the acknowledgement names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundError {
    /// Where in the message (`MSH-3`, `OBR[1]-3`, `OBX[2]-3`).
    pub location: String,
    pub code: String,
    pub message: String,
}

/// How the message is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// Everything posted (HL7 AA / CA).
    Accept,
    /// Stored, but some results could not be posted (AE; the message is in the error queue).
    Error,
    /// The message itself is unusable (AR); kept, nothing posted.
    Reject,
}

/// What the edge builds its acknowledgement from.
#[derive(Debug)]
pub struct AckFacts<'a> {
    pub kind: AckKind,
    /// The acknowledgement's own control id: derived from the message's key, so the stored
    /// answer and a rebuilt one agree.
    pub control_id: String,
    pub errors: &'a [InboundError],
}

/// The answer to a message.
#[derive(Debug)]
pub struct IngestOutcome {
    pub message_id: i64,
    /// The message had been received before: this is the stored answer, nothing was posted.
    pub repeated: bool,
    /// `accepted`, `error` or `replayed`.
    pub status: String,
    pub posted: i64,
    pub errors: Vec<InboundError>,
    /// The acknowledgement, sent only after the commit that stored it.
    pub ack: Vec<u8>,
}

/// Abnormal flags that only interpret the value against a range (HL7 table 0078, ASTM R-7):
/// the lab computes its own from the interval and critical limits in force, so they are not
/// instrument flags. Every other flag (off-scale `<` `>`, a vendor's error or warning codes)
/// is kept and holds the result for review.
const INTERPRETATIONS: &[&str] = &["N", "H", "L", "HH", "LL", "A", "AA"];

fn err(location: &str, code: &str, message: impl Into<String>) -> InboundError {
    InboundError {
        location: location.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// The acknowledgement's control id: 20 hex digits of SHA-256 over the message's key (fits
/// HL7 v2.3's 20-character MSH-10).
fn ack_control_id(inbound: &Inbound) -> String {
    ack_control_id_of(inbound.protocol, &inbound.sender, &inbound.control_id)
}

/// [`ack_control_id`] of a message's key.
pub(super) fn ack_control_id_of(protocol: Protocol, sender: &str, control_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(protocol.as_str());
    h.update([0]);
    h.update(sender.as_bytes());
    h.update([0]);
    h.update(control_id.as_bytes());
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let d = h.finalize();
    let mut id = String::with_capacity(20);
    for b in d.iter().take(10) {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0x0F)]));
    }
    id
}

/// Builds a message's acknowledgement from the decision (the edge knows the wire format).
pub(crate) type AckFn = std::sync::Arc<dyn Fn(&AckFacts<'_>) -> Vec<u8> + Send + Sync>;

/// What posting a message did.
pub(crate) struct Posted {
    connection: String,
    posted: i64,
    errors: Vec<InboundError>,
}

/// What a group of messages reads once: instruments by (protocol, sender), each instrument's
/// test codes and control names, and (for a group) each tube's patient by accession.
#[derive(Default)]
pub(crate) struct Lookups {
    instruments: HashMap<(String, String), Option<InstrumentRecord>>,
    codes: HashMap<i64, HashMap<String, (String, Option<String>)>>,
    controls: HashMap<i64, HashMap<String, i64>>,
    pub(crate) owners: Option<HashMap<String, PatientRecord>>,
}

/// A message read and matched, not yet posted.
#[derive(Default)]
pub(crate) struct Prepared {
    connection: String,
    /// The instrument posting (none for an unknown sender: nothing is posted).
    pub(crate) actor: Option<Actor>,
    instrument: Option<InstrumentRecord>,
    errors: Vec<InboundError>,
    pub(crate) items: Vec<ResultInput>,
    /// Where each item is in the message: (observation, specimen).
    locations: Vec<(String, String)>,
    /// Control samples: (specimen index, lot).
    pub(crate) controls: Vec<(usize, i64)>,
}

/// What a message answers when it was received before: the stored decision.
pub(crate) fn stored_answer(
    m: InterfaceMessageRecord,
    inbound: &Inbound,
    ack: &AckFn,
) -> IngestOutcome {
    let errors: Vec<InboundError> = serde_json::from_str(&m.errors).unwrap_or_default();
    // Past its retention only the content is gone: the answer is rebuilt from what was
    // decided (only accepted and replayed messages are emptied).
    let ack_bytes = if m.ack.is_empty() {
        ack(&AckFacts {
            kind: AckKind::Accept,
            control_id: ack_control_id(inbound),
            errors: &errors,
        })
    } else {
        m.ack
    };
    IngestOutcome {
        message_id: m.id,
        repeated: true,
        errors,
        status: m.status,
        posted: m.posted,
        ack: ack_bytes,
    }
}

/// A message unusable as such (AR): kept, nothing posted.
pub(crate) fn rejected(inbound: &Inbound) -> Posted {
    Posted {
        connection: inbound.sender.clone(),
        posted: 0,
        errors: inbound.rejected.clone(),
    }
}

/// The row a message is stored as, with its acknowledgement, and its answer (its id still
/// to be assigned).
pub(crate) fn answered(
    inbound: &Inbound,
    ack: &AckFn,
    p: Posted,
    now: jiff::Timestamp,
) -> AppResult<(InterfaceMessageRecord, IngestOutcome)> {
    let kind = if !inbound.rejected.is_empty() {
        AckKind::Reject
    } else if p.errors.is_empty() {
        AckKind::Accept
    } else {
        AckKind::Error
    };
    let ack_bytes = ack(&AckFacts {
        kind,
        control_id: ack_control_id(inbound),
        errors: &p.errors,
    });
    let status = if kind == AckKind::Accept {
        "accepted"
    } else {
        "error"
    };
    let protocol = inbound.protocol.as_str();
    let errors = serde_json::to_string(&p.errors).map_err(|e| AppError::Internal(e.to_string()))?;
    let record = InterfaceMessageRecord {
        id: 0,
        protocol: protocol.to_owned(),
        connection: p.connection,
        sender: inbound.sender.clone(),
        control_id: inbound.control_id.clone(),
        message_type: inbound.message_type.clone(),
        received_at: now,
        raw: inbound.raw.clone(),
        status: status.to_owned(),
        ack: ack_bytes.clone(),
        errors,
        posted: p.posted,
        updated_at: now,
        updated_by: format!("{protocol}:receive"),
    };
    Ok((
        record,
        IngestOutcome {
            message_id: 0,
            repeated: false,
            status: status.to_owned(),
            posted: p.posted,
            errors: p.errors,
            ack: ack_bytes,
        },
    ))
}

/// A prepared message's result once its items were posted: each refused item named where it
/// is in the message.
pub(crate) fn finish_inbound(
    inbound: &Inbound,
    prepared: Prepared,
    outcomes: Vec<ResultOutcome>,
    mut posted: i64,
) -> Posted {
    let mut errors = prepared.errors;
    for o in outcomes {
        let Some(e) = o.error else {
            posted += 1;
            continue;
        };
        let (obs, spec) = &prepared.locations[o.index];
        let (code, message, field) = match &e {
            AppError::Invalid {
                code,
                message,
                field,
            }
            | AppError::Conflict {
                code,
                message,
                field,
            } => (code.to_string(), message.clone(), field.clone()),
            AppError::NotFound { entity } => {
                ("not_found".to_owned(), format!("{entity} not found"), None)
            }
            other => ("refused".to_owned(), other.to_string(), None),
        };
        // `results[i].accession` is the specimen's field; the rest are the result's.
        let (code_field, value_field, units_field) = inbound.protocol.result_fields();
        let location = match field.as_deref().and_then(|f| f.rsplit('.').next()) {
            Some("accession") => spec.clone(),
            Some("units") => format!("{obs}-{units_field}"),
            Some("test") => format!("{obs}-{code_field}"),
            _ => format!("{obs}-{value_field}"),
        };
        errors.push(InboundError {
            location,
            code,
            message,
        });
    }
    Posted {
        connection: prepared.connection,
        posted,
        errors,
    }
}

impl App {
    /// Ingests one message in a transaction of its own (see the module doc and
    /// [`App::ingest`], which groups the messages of every connection).
    pub(crate) async fn ingest_alone(
        &self,
        inbound: &Inbound,
        ack: &AckFn,
    ) -> AppResult<IngestOutcome> {
        match self.ingest_once(inbound, ack).await {
            // Two copies raced past the lookup (two servers on one database): the other
            // copy's row is there now.
            Err(AppError::Conflict {
                code: "conflict", ..
            }) => self.ingest_once(inbound, ack).await,
            other => other,
        }
    }

    async fn ingest_once(&self, inbound: &Inbound, ack: &AckFn) -> AppResult<IngestOutcome> {
        let settings = self.entry_settings().await?;
        let mut tx = self.store.begin().await?;
        let protocol = inbound.protocol.as_str();
        if let Some(m) = tx
            .interface_message_by_key(protocol, &inbound.sender, &inbound.control_id)
            .await?
        {
            return Ok(stored_answer(m, inbound, ack));
        }
        let p = if inbound.rejected.is_empty() {
            self.post_inbound(&mut tx, inbound, settings).await?
        } else {
            rejected(inbound)
        };
        let (record, outcome) = answered(inbound, ack, p, self.now())?;
        let id = tx.insert_interface_message(&record).await?;
        tx.commit().await?;
        Ok(IngestOutcome {
            message_id: id,
            ..outcome
        })
    }

    /// Posts a message's results inside `tx`, naming each problem.
    async fn post_inbound(
        &self,
        tx: &mut Box<dyn Tx>,
        inbound: &Inbound,
        settings: EntrySettings,
    ) -> AppResult<Posted> {
        let mut lookups = Lookups::default();
        let mut prepared = self.prepare_inbound(tx, &mut lookups, inbound).await?;
        let mut posted = 0;
        if !prepared.controls.is_empty()
            && let Some(instrument) = prepared.instrument.clone()
        {
            let controls: Vec<(&InboundSpecimen, i64)> = prepared
                .controls
                .iter()
                .map(|(s, lot)| (&inbound.specimens[*s], *lot))
                .collect();
            let codes = lookups
                .codes
                .get(&instrument.id)
                .cloned()
                .unwrap_or_default();
            let actor = Actor::instrument(&instrument.code, inbound.protocol);
            posted += self
                .post_inbound_qc(
                    tx,
                    inbound,
                    &instrument,
                    &codes,
                    &controls,
                    &actor,
                    &mut prepared.errors,
                )
                .await?;
        }
        let outcomes = match &prepared.actor {
            Some(actor) if !prepared.items.is_empty() => {
                self.post_results_in(tx, actor, &prepared.items, settings)
                    .await?
            }
            _ => Vec::new(),
        };
        Ok(finish_inbound(inbound, prepared, outcomes, posted))
    }

    /// Reads and matches a message (its instrument, test codes, control samples, the patient
    /// of each tube) without posting it.
    pub(crate) async fn prepare_inbound(
        &self,
        tx: &mut Box<dyn Tx>,
        lookups: &mut Lookups,
        inbound: &Inbound,
    ) -> AppResult<Prepared> {
        let sender_field = match inbound.protocol {
            Protocol::Hl7 => "MSH-3",
            Protocol::Astm => "H-5",
        };
        let key = (inbound.protocol.as_str().to_owned(), inbound.sender.clone());
        let instrument = match lookups.instruments.get(&key) {
            Some(i) => i.clone(),
            None => {
                let i = tx
                    .instrument_by_sender(inbound.protocol.as_str(), &inbound.sender)
                    .await?
                    .filter(|i| i.retired_at.is_none());
                lookups.instruments.insert(key, i.clone());
                i
            }
        };
        let Some(instrument) = instrument else {
            return Ok(Prepared {
                connection: inbound.sender.clone(),
                errors: vec![err(
                    sender_field,
                    "unknown_sender",
                    "no active instrument is registered under this sender; register it (POST \
                     /api/v1/instruments) and replay the message",
                )],
                ..Prepared::default()
            });
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = lookups.codes.entry(instrument.id)
        {
            let codes = tx
                .instrument_test_codes(instrument.id)
                .await?
                .into_iter()
                .map(|c| (c.code, (c.test_code, c.units)))
                .collect();
            slot.insert(codes);
            let controls = tx
                .qc_control_ids_of(instrument.id)
                .await?
                .into_iter()
                .collect();
            lookups.controls.insert(instrument.id, controls);
        }
        let empty = HashMap::new();
        let codes = lookups.codes.get(&instrument.id).unwrap_or(&empty);
        let empty_controls = HashMap::new();
        let control_ids = lookups
            .controls
            .get(&instrument.id)
            .unwrap_or(&empty_controls);
        let mut prepared = Prepared {
            connection: instrument.code.clone(),
            actor: Some(Actor::instrument(&instrument.code, inbound.protocol)),
            ..Prepared::default()
        };
        for (si, s) in inbound.specimens.iter().enumerate() {
            // A sample the instrument names as one of its controls is QC, never a patient's.
            if let Some(lot_id) = control_ids.get(s.accession.trim()) {
                prepared.controls.push((si, *lot_id));
                continue;
            }
            let owner = lookups
                .owners
                .as_ref()
                .map(|owners| owners.get(s.accession.trim()).cloned());
            if let Some(problem) = self.wrong_patient(tx, s, owner).await? {
                prepared.errors.push(problem);
                continue;
            }
            for o in &s.observations {
                let Some((test, units)) = codes.get(o.code.trim()) else {
                    prepared.errors.push(err(
                        &format!("{}-{}", o.location, inbound.protocol.result_fields().0),
                        "unknown_test_code",
                        format!(
                            "instrument {} has no mapping for this test code",
                            instrument.code
                        ),
                    ));
                    continue;
                };
                prepared.items.push(ResultInput {
                    accession: s.accession.clone(),
                    test: test.clone(),
                    value: o.value.clone(),
                    units: o.units.clone().filter(|u| !u.is_empty()).or(units.clone()),
                    instrument: Some(instrument.code.clone()),
                    flags: o
                        .flags
                        .iter()
                        .filter(|f| !INTERPRETATIONS.contains(&f.as_str()))
                        .cloned()
                        .collect(),
                    indices: None,
                    comment: o.comment.clone(),
                    reference_lab: None,
                });
                prepared
                    .locations
                    .push((o.location.clone(), s.location.clone()));
            }
        }
        if inbound.specimens.iter().all(|s| s.observations.is_empty()) {
            prepared
                .errors
                .push(err("", "no_results", "the message carries no results"));
        }
        prepared.instrument = Some(instrument);
        Ok(prepared)
    }

    /// Posts the control samples of a message as QC runs: one run per test, its controls the
    /// levels measured in this message, measured now (the message's arrival). A control that
    /// cannot be judged (no mapping, no target, an expired lot, not a number) is named in the
    /// acknowledgement like a patient result. Returns the number of control values posted.
    #[expect(clippy::too_many_arguments, reason = "the facts of one message")]
    async fn post_inbound_qc(
        &self,
        tx: &mut Box<dyn Tx>,
        inbound: &Inbound,
        instrument: &aliquot_store::InstrumentRecord,
        codes: &HashMap<String, (String, Option<String>)>,
        controls: &[(&InboundSpecimen, i64)],
        actor: &Actor,
        errors: &mut Vec<InboundError>,
    ) -> AppResult<i64> {
        let (code_field, value_field, _) = inbound.protocol.result_fields();
        let lots = self.store.qc_lots().await?;
        // Test → (lot, level, value, where) of each control measured for it.
        let mut runs: std::collections::BTreeMap<String, Vec<(String, i64, String, String)>> =
            std::collections::BTreeMap::new();
        for (s, lot_id) in controls {
            let Some(lot) = lots.iter().find(|l| l.id == *lot_id) else {
                continue;
            };
            for o in &s.observations {
                match codes.get(o.code.trim()) {
                    Some((test, _)) => runs.entry(test.clone()).or_default().push((
                        lot.lot.clone(),
                        lot.level,
                        o.value.clone(),
                        o.location.clone(),
                    )),
                    None => errors.push(err(
                        &format!("{}-{code_field}", o.location),
                        "unknown_test_code",
                        format!(
                            "instrument {} has no mapping for this test code",
                            instrument.code
                        ),
                    )),
                }
            }
        }
        let mut posted = 0;
        for (test, values) in runs {
            let input = crate::qc::RunInput {
                instrument: instrument.code.clone(),
                test,
                at: None,
                controls: values
                    .iter()
                    .map(|(lot, level, value, _)| crate::qc::ControlInput {
                        lot: lot.clone(),
                        level: *level,
                        value: value.clone(),
                    })
                    .collect(),
            };
            let source = inbound.protocol.as_str();
            let key = format!("{source}:{}:{}", inbound.sender, inbound.control_id);
            let done = match self.prepare_qc_run(&input).await {
                Ok(mut p) => {
                    p.message_key = Some(key);
                    self.post_qc_run_in(&mut **tx, actor, p, source)
                        .await
                        .map(|_| ())
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => posted += values.len() as i64,
                Err(e @ (AppError::Invalid { .. } | AppError::Conflict { .. })) => {
                    for (_, _, _, location) in &values {
                        errors.push(err(
                            &format!("{location}-{value_field}"),
                            "qc_refused",
                            format!("QC not posted: {e}"),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(posted)
    }

    /// A specimen whose message names a patient (by MRN or a facility identifier) other than
    /// the tube's: nothing of it is posted. A tube not found is left to result entry, which names it.
    /// `owner`: the tube's patient when the caller read it already (`Some(None)`: no such
    /// tube).
    async fn wrong_patient(
        &self,
        tx: &mut Box<dyn Tx>,
        s: &InboundSpecimen,
        owner: Option<Option<PatientRecord>>,
    ) -> AppResult<Option<InboundError>> {
        let ids: Vec<&str> = s
            .patient_ids
            .iter()
            .map(|i| i.trim())
            .filter(|i| !i.is_empty())
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let owner = match owner {
            Some(o) => o,
            None => self.tube_owner(tx, s.accession.trim()).await?,
        };
        let Some(patient) = owner else {
            return Ok(None);
        };
        // The lab's MRN, or an identifier another facility gave the patient (an EMR's, echoed
        // by middleware).
        let facility: Vec<crate::FacilityIdentifier> =
            serde_json::from_str(&patient.facility_ids).unwrap_or_default();
        if ids
            .iter()
            .any(|i| *i == patient.mrn || facility.iter().any(|f| f.value == *i))
        {
            return Ok(None);
        }
        Ok(Some(err(
            &s.patient_location,
            "wrong_patient",
            "the specimen belongs to another patient than the message names: nothing of it \
             was posted",
        )))
    }

    /// The patient of the tube `accession`, if there is such a tube.
    async fn tube_owner(
        &self,
        tx: &mut Box<dyn Tx>,
        accession: &str,
    ) -> AppResult<Option<PatientRecord>> {
        Ok(tx
            .tube_owners(&[accession.to_owned()])
            .await?
            .into_iter()
            .next()
            .map(|(_, p)| p))
    }

    /// Replays a message from the interface error queue with today's registry and mappings
    /// (`interface.manage`). The results are posted as the instrument that sent them (their
    /// values are the message's, which the analyst cannot change); the replay itself is
    /// audited as the analyst's. Results already stored come back as duplicates; the message
    /// is `replayed` once nothing is left refused.
    pub async fn replay_message<F>(
        &self,
        actor: &Actor,
        id: i64,
        read: F,
    ) -> AppResult<IngestOutcome>
    where
        F: Fn(Protocol, &[u8]) -> InboundMessage + Send + Sync,
    {
        actor.require(Permission::InterfaceManage)?;
        let settings = self.entry_settings().await?;
        let mut tx = self.store.begin().await?;
        let old = tx
            .interface_message_by_id(id)
            .await?
            .ok_or(AppError::NotFound { entity: "message" })?;
        if old.status != "error" {
            return Err(AppError::Conflict {
                field: None,
                code: "message_not_in_error",
                message: format!("the message is {}, not in the error queue", old.status),
            });
        }
        let protocol = Protocol::parse(&old.protocol)
            .ok_or_else(|| AppError::Internal(format!("stored protocol {}", old.protocol)))?;
        let inbound = match read(protocol, &old.raw) {
            InboundMessage::Results(inbound) => inbound,
            InboundMessage::Orders(orders) => {
                drop(tx);
                return self.replay_orders(actor, old, &orders).await;
            }
        };
        let p = if inbound.rejected.is_empty() {
            self.post_inbound(&mut tx, &inbound, settings).await?
        } else {
            Posted {
                connection: old.connection.clone(),
                posted: 0,
                errors: inbound.rejected.clone(),
            }
        };
        let now = self.now();
        let status = if p.errors.is_empty() {
            "replayed"
        } else {
            "error"
        };
        let record = InterfaceMessageRecord {
            status: status.to_owned(),
            errors: serde_json::to_string(&p.errors)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            posted: p.posted,
            updated_at: now,
            updated_by: actor.username.clone(),
            connection: p.connection,
            ..old.clone()
        };
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
            id,
            Some(json!({"status": old.status, "posted": old.posted})),
            Some(json!({"status": status, "posted": p.posted, "errors": p.errors.len()})),
            None,
        ));
        tx.commit().await?;
        Ok(IngestOutcome {
            message_id: id,
            repeated: false,
            status: status.to_owned(),
            posted: p.posted,
            errors: p.errors,
            ack: old.ack,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_control_id_is_the_first_ten_bytes_of_the_keys_digest_in_hex() {
        for (protocol, sender, control_id) in [
            (Protocol::Hl7, "AU5800|LAB", "MSG00001"),
            (Protocol::Astm, "", ""),
        ] {
            let mut key = Vec::new();
            for part in [protocol.as_str(), sender, control_id] {
                key.extend_from_slice(part.as_bytes());
                key.push(0);
            }
            key.pop();
            let digest = Sha256::digest(&key);
            let want: String = digest.iter().take(10).map(|b| format!("{b:02X}")).collect();
            assert_eq!(ack_control_id_of(protocol, sender, control_id), want);
        }
    }
}
