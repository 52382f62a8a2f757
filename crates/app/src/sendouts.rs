//! Send-outs to reference laboratories (issue 14 item 4).
//!
//! - **The registry**: each reference laboratory with its name, address and CLIA number (the
//!   report prints them beside every result it performed), its expected turnaround time and
//!   its own test codes mapped to catalogue tests, as an instrument's are (versioned, replaced
//!   whole with a reason, audited).
//! - **Send-out** (`App::send_out_specimen`, in `storage.rs`): a tube, or some of its tests,
//!   handed to a registered reference laboratory that performs every test sent (each must be
//!   in its mapping).
//! - **Shipment**: the send-outs to one laboratory at one temperature not yet packed are
//!   packed into a shipment with a manifest number (`SO000001`): packed when, by whom, at what
//!   temperature. It moves created → shipped (courier, tracking number) → received (the
//!   reference laboratory's delivery time) → resulted by `aliquot_domain::sendout::transition`;
//!   each step is a `shipment_events` row and an audit entry in one transaction, the state
//!   written with a guarded update (two clerks: one wins, the other gets 409).
//! - **The manifest** lists each tube with its patient (name, MRN, birth date, sex), type,
//!   container, collection time and tests (the catalogue's and the reference laboratory's
//!   codes); reading it is access-logged.
//! - **Results as received** go through the one result entry (`results/entry.rs`): a result
//!   for a sent-out test carries the performing laboratory ([`SentOut`]); none is accepted
//!   before its shipment left; the first result of the last test of a send-out closes it, and
//!   the last send-out of a shipment moves the shipment to `resulted`.
//! - **Outstanding**: every sent-out test without a result, with its age and due time from its
//!   laboratory's expected turnaround time, overdue ones first (access-logged).

use std::collections::{BTreeSet, HashMap};

use aliquot_domain::auth::Permission;
use aliquot_domain::sendout::{
    CliaNumber, ShipmentEvent, ShipmentStatus, check_received_at, outstanding, results_accepted,
    transition,
};
use aliquot_store::{
    ReferenceLabRecord, ReferenceLabTestCodeRecord, SendOutRecord, ShipmentEventRecord,
    ShipmentRecord, StoreError, Tx,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::catalog::{catalog_key, definition};
use crate::patients::invalid;
use crate::results::PerformingLab;
use crate::shown::{ShowsPatient, Subject};
use crate::specimens::{free_text, parse_temperature};
use crate::{Actor, App, AppError, AppResult, require_reason, short_text as text};

/// At most this many send-outs in one shipment.
pub const MAX_SHIPMENT: usize = 200;
/// The turnaround expected of send-outs recorded before the registry (no laboratory).
pub const DEFAULT_EXPECTED_TAT_HOURS: i64 = 7 * 24;
const LIST_LIMIT: i64 = 500;

/// A reference laboratory as registered or replaced.
#[derive(Debug, Clone, Default)]
pub struct ReferenceLabInput {
    /// The lab's name for it, e.g. `MAYO` (letters, digits, `-` and `_`, at most 20).
    pub code: String,
    pub name: String,
    pub address: String,
    /// CLIA certificate number, e.g. `24D0404292`.
    pub clia: String,
    pub phone: Option<String>,
    /// Hours within which its results are expected (1 to 2,160: 90 days).
    pub expected_tat_hours: i64,
    pub test_codes: Vec<ReferenceTestCodeInput>,
}

/// One of the reference laboratory's test codes.
#[derive(Debug, Clone, Default)]
pub struct ReferenceTestCodeInput {
    /// The code in its test menu (as ordered on its manifest).
    pub code: String,
    /// The catalogue test (code or LOINC).
    pub test: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceLabView {
    pub code: String,
    pub name: String,
    pub address: String,
    pub clia: String,
    pub phone: Option<String>,
    pub expected_tat_hours: i64,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub retired: bool,
    /// `(reference lab's code, catalogue test)`.
    pub test_codes: Vec<(String, String)>,
}

/// Packing a shipment.
#[derive(Debug, Clone, Default)]
pub struct ShipmentInput {
    /// The reference laboratory's code.
    pub reference_lab: String,
    /// `room`, `refrigerated` or `frozen`: every send-out packed must travel so.
    pub temperature: String,
    /// The tubes to pack (each with an unpacked send-out to this laboratory at this
    /// temperature); every such send-out when absent.
    pub accessions: Option<Vec<String>>,
}

/// One step of a shipment.
#[derive(Debug, Clone, Default)]
pub struct ShipmentStepInput {
    /// The version the caller read (refused when the shipment changed meanwhile).
    pub version: i64,
    /// Ship: the courier.
    pub courier: Option<String>,
    /// Ship: the courier's tracking number.
    pub tracking: Option<String>,
    /// Receive: when the reference laboratory received it (default now).
    pub received_at: Option<Timestamp>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentEventView {
    pub at: Timestamp,
    pub by: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentItemView {
    pub send_out_id: i64,
    pub accession: String,
    pub tests: Vec<String>,
    pub resulted_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentView {
    pub id: i64,
    pub manifest: String,
    pub reference_lab: String,
    pub reference_lab_name: String,
    pub status: String,
    pub temperature: String,
    pub packed_at: Timestamp,
    pub packed_by: String,
    pub courier: Option<String>,
    pub tracking: Option<String>,
    pub shipped_at: Option<Timestamp>,
    pub received_at: Option<Timestamp>,
    pub resulted_at: Option<Timestamp>,
    pub version: i64,
    pub items: Vec<ShipmentItemView>,
    pub events: Vec<ShipmentEventView>,
}

/// One test on a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestTest {
    pub code: String,
    pub name: String,
    /// The reference laboratory's code for it.
    pub reference_code: String,
}

/// One tube on a manifest, with its patient's demographics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestItem {
    pub accession: String,
    pub specimen_type: String,
    pub container: String,
    pub collected_at: Option<Timestamp>,
    pub family_name: String,
    pub given_name: String,
    pub mrn: String,
    pub birth_date: String,
    pub sex: String,
    pub tests: Vec<ManifestTest>,
}

/// A shipment's manifest: what goes where, packed when and by whom, at what temperature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDocument {
    pub manifest: String,
    pub status: String,
    /// The sending laboratory: name, address, CLIA number.
    pub sender: PerformingLab,
    pub reference_lab: PerformingLab,
    pub temperature: String,
    pub packed_at: Timestamp,
    pub packed_by: String,
    pub courier: Option<String>,
    pub tracking: Option<String>,
    /// When the courier took it (`None` before it was shipped).
    pub shipped_at: Option<Timestamp>,
    pub items: Vec<ManifestItem>,
}

/// A sent-out test without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutstandingView {
    pub send_out_id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub test: String,
    /// The reference laboratory's code (its name for send-outs before the registry).
    pub reference_lab: String,
    pub manifest: Option<String>,
    pub shipment_status: Option<String>,
    pub tracking: Option<String>,
    pub sent_at: Timestamp,
    pub age_minutes: i64,
    pub due_at: Timestamp,
    pub overdue: bool,
}

impl ShowsPatient for OutstandingView {
    fn subject(&self) -> Subject {
        Subject::Specimen(self.specimen_id)
    }
}

/// A sent-out test as result entry sees it: the send-out, its laboratory, its shipment.
#[derive(Debug, Clone)]
pub(crate) struct SentOut {
    pub send_out: SendOutRecord,
    pub lab: PerformingLab,
    pub shipment: Option<ShipmentRecord>,
}

fn lab_view(r: ReferenceLabRecord, codes: Vec<ReferenceLabTestCodeRecord>) -> ReferenceLabView {
    ReferenceLabView {
        code: r.code,
        name: r.name,
        address: r.address,
        clia: r.clia,
        phone: r.phone,
        expected_tat_hours: r.expected_tat_hours,
        version: r.version,
        updated_at: r.updated_at,
        updated_by: r.updated_by,
        retired: r.retired_at.is_some(),
        test_codes: codes.into_iter().map(|c| (c.code, c.test_code)).collect(),
    }
}

fn lab_audit(v: &ReferenceLabView) -> Value {
    json!({
        "name": v.name, "address": v.address, "clia": v.clia, "phone": v.phone,
        "expected_tat_hours": v.expected_tat_hours, "version": v.version, "retired": v.retired,
        "test_codes": v.test_codes.iter().map(|(c, t)| json!({"code": c, "test": t})).collect::<Vec<_>>(),
    })
}

pub(crate) fn performing(r: &ReferenceLabRecord) -> PerformingLab {
    PerformingLab {
        code: r.code.clone(),
        name: r.name.clone(),
        address: r.address.clone(),
        clia: r.clia.clone(),
    }
}

fn lab_not_found() -> AppError {
    AppError::NotFound {
        entity: "reference lab",
    }
}

fn shipment_not_found() -> AppError {
    AppError::NotFound { entity: "shipment" }
}

fn tests_of(o: &SendOutRecord) -> Vec<String> {
    serde_json::from_str(&o.tests).unwrap_or_default()
}

fn status_of(s: &ShipmentRecord) -> AppResult<ShipmentStatus> {
    ShipmentStatus::parse(&s.status)
        .map_err(|_| AppError::Internal(format!("shipment {}: status {}", s.id, s.status)))
}

fn shipment_conflict(e: &aliquot_domain::sendout::ShipmentError) -> AppError {
    AppError::Conflict {
        field: e.field().map(str::to_owned),
        code: e.code(),
        message: e.to_string(),
    }
}

fn changed(current: i64, expected: i64, what: &'static str) -> AppError {
    AppError::Conflict {
        field: Some("version".into()),
        code: "version_changed",
        message: format!("the {what} is at version {current}, not {expected}: reload it"),
    }
}

impl App {
    /// Checks a reference laboratory's fields and resolves its test codes.
    async fn parse_reference_lab(
        &self,
        input: &ReferenceLabInput,
    ) -> AppResult<(ReferenceLabRecord, Vec<ReferenceLabTestCodeRecord>)> {
        let code = input.code.trim();
        if code.is_empty()
            || code.len() > 20
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AppError::invalid(
                "code",
                "invalid_reference_lab_code",
                "1 to 20 letters, digits, '-' or '_'",
            ));
        }
        let clia = CliaNumber::parse(&input.clia).map_err(|e| invalid(&e, "", "clia"))?;
        if !(1..=2160).contains(&input.expected_tat_hours) {
            return Err(AppError::invalid(
                "expected_tat_hours",
                "invalid_expected_tat",
                "1 to 2,160 hours (90 days)",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut tests = BTreeSet::new();
        let mut codes = Vec::with_capacity(input.test_codes.len());
        for (i, t) in input.test_codes.iter().enumerate() {
            let field = |f: &str| format!("test_codes[{i}].{f}");
            let c = text(&field("code"), &t.code, 50)?;
            if !seen.insert(c.clone()) {
                return Err(AppError::invalid(
                    &field("code"),
                    "duplicate_test_code",
                    "this reference laboratory code is mapped twice",
                ));
            }
            let test = self
                .store
                .catalog_by_code(&catalog_key(&t.test))
                .await?
                .ok_or_else(|| {
                    AppError::invalid(
                        &field("test"),
                        "unknown_test",
                        "no such test in the catalogue",
                    )
                })?;
            if !tests.insert(test.code.clone()) {
                return Err(AppError::invalid(
                    &field("test"),
                    "duplicate_test",
                    "this catalogue test has another code of this laboratory already",
                ));
            }
            codes.push(ReferenceLabTestCodeRecord {
                reference_lab_id: 0,
                code: c,
                test_code: test.code,
            });
        }
        let record = ReferenceLabRecord {
            id: 0,
            code: code.to_owned(),
            name: text("name", &input.name, 200)?,
            address: text("address", &input.address, 300)?,
            clia: clia.as_str().to_owned(),
            phone: free_text("phone", input.phone.as_deref(), 50)?,
            expected_tat_hours: input.expected_tat_hours,
            version: 1,
            updated_at: self.now(),
            updated_by: String::new(),
            retired_at: None,
        };
        Ok((record, codes))
    }

    /// Registers a reference laboratory with its test codes (`catalog.write`).
    pub async fn register_reference_lab(
        &self,
        actor: &Actor,
        input: ReferenceLabInput,
    ) -> AppResult<ReferenceLabView> {
        actor.require(Permission::CatalogWrite)?;
        let (mut record, mut codes) = self.parse_reference_lab(&input).await?;
        record.updated_by = actor.username.clone();
        let mut tx = self.store.begin().await?;
        record.id = tx
            .insert_reference_lab(&record)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AppError::Conflict {
                    field: Some("code".into()),
                    code: "reference_lab_exists",
                    message: "a reference laboratory with this code is already registered".into(),
                },
                other => other.into(),
            })?;
        for c in &mut codes {
            c.reference_lab_id = record.id;
        }
        tx.replace_reference_lab_test_codes(record.id, &codes)
            .await?;
        let v = lab_view(record, codes);
        tx.audit(self.entry(
            actor,
            "reference_lab.register",
            "reference_lab",
            &v.code,
            None,
            Some(lab_audit(&v)),
            None,
        ));
        tx.commit().await?;
        Ok(v)
    }

    /// Replaces a reference laboratory's details and whole test-code mapping over the version
    /// the caller read (`catalog.write`, with a reason). Results already received keep the
    /// laboratory as it was then.
    pub async fn replace_reference_lab(
        &self,
        actor: &Actor,
        code: &str,
        expected_version: i64,
        input: ReferenceLabInput,
        retired: bool,
        reason: Option<&str>,
    ) -> AppResult<ReferenceLabView> {
        actor.require(Permission::CatalogWrite)?;
        let reason = require_reason(reason)?;
        let (new, mut codes) = self.parse_reference_lab(&input).await?;
        let mut tx = self.store.begin().await?;
        let old = tx
            .reference_lab_by_code(code)
            .await?
            .ok_or_else(lab_not_found)?;
        if new.code != old.code {
            return Err(AppError::invalid(
                "code",
                "reference_lab_identity",
                "a reference laboratory's code is not changed; register another",
            ));
        }
        if old.version != expected_version {
            return Err(changed(
                old.version,
                expected_version,
                "reference laboratory",
            ));
        }
        let old_codes = tx.reference_lab_test_codes(old.id).await?;
        let now = self.now();
        let record = ReferenceLabRecord {
            id: old.id,
            version: old.version + 1,
            updated_at: now,
            updated_by: actor.username.clone(),
            retired_at: if retired {
                old.retired_at.or(Some(now))
            } else {
                None
            },
            ..new
        };
        if !tx.update_reference_lab(&record).await? {
            return Err(changed(
                old.version + 1,
                expected_version,
                "reference laboratory",
            ));
        }
        for c in &mut codes {
            c.reference_lab_id = old.id;
        }
        tx.replace_reference_lab_test_codes(old.id, &codes).await?;
        let before = lab_audit(&lab_view(old, old_codes));
        let v = lab_view(record, codes);
        tx.audit(self.entry(
            actor,
            "reference_lab.replace",
            "reference_lab",
            &v.code,
            Some(before),
            Some(lab_audit(&v)),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(v)
    }

    /// Every reference laboratory with its test codes (`specimen.process`).
    pub async fn list_reference_labs(&self, actor: &Actor) -> AppResult<Vec<ReferenceLabView>> {
        actor.require(Permission::SpecimenProcess)?;
        let mut out = Vec::new();
        for r in self.store.reference_labs().await? {
            let codes = self.store.reference_lab_test_codes(r.id).await?;
            out.push(lab_view(r, codes));
        }
        Ok(out)
    }

    /// One reference laboratory with its test codes (`specimen.process`).
    pub async fn get_reference_lab(
        &self,
        actor: &Actor,
        code: &str,
    ) -> AppResult<ReferenceLabView> {
        actor.require(Permission::SpecimenProcess)?;
        let r = self
            .store
            .reference_lab_by_code(code)
            .await?
            .ok_or_else(lab_not_found)?;
        let codes = self.store.reference_lab_test_codes(r.id).await?;
        Ok(lab_view(r, codes))
    }

    /// The active reference laboratory a send-out names, and its mapping; every sent test must
    /// be in it (`field` names the tests).
    pub(crate) async fn reference_lab_for(
        &self,
        tx: &mut Box<dyn Tx>,
        code: &str,
        tests: &[String],
    ) -> AppResult<ReferenceLabRecord> {
        let unknown = || {
            AppError::invalid(
                "reference_lab",
                "unknown_reference_lab",
                "no active reference laboratory has this code (GET /api/v1/reference-labs)",
            )
        };
        let lab = tx
            .reference_lab_by_code(code.trim())
            .await?
            .filter(|l| l.retired_at.is_none())
            .ok_or_else(unknown)?;
        let codes = tx.reference_lab_test_codes(lab.id).await?;
        for (i, t) in tests.iter().enumerate() {
            if !codes.iter().any(|c| &c.test_code == t) {
                return Err(AppError::invalid(
                    &format!("tests[{i}]"),
                    "reference_lab_test_unmapped",
                    format!(
                        "{} does not perform {t}: map it to one of its codes",
                        lab.code
                    ),
                ));
            }
        }
        Ok(lab)
    }

    /// Packs the unpacked send-outs to one reference laboratory at one temperature into a
    /// shipment (`specimen.process`): all of them or, with `accessions`, those tubes', all or
    /// nothing.
    pub async fn pack_shipment(
        &self,
        actor: &Actor,
        input: ShipmentInput,
    ) -> AppResult<ShipmentView> {
        actor.require(Permission::SpecimenProcess)?;
        let temperature = parse_temperature(Some(&input.temperature))?.ok_or_else(|| {
            AppError::invalid("temperature", "required", "temperature is required")
        })?;
        if let Some(list) = &input.accessions
            && (list.is_empty() || list.len() > MAX_SHIPMENT)
        {
            return Err(AppError::invalid(
                "accessions",
                "shipment_size",
                format!(
                    "a shipment holds 1 to {MAX_SHIPMENT} tubes; leave accessions out to pack all"
                ),
            ));
        }
        let mut tx = self.store.begin().await?;
        let lab = tx
            .reference_lab_by_code(input.reference_lab.trim())
            .await?
            .ok_or_else(|| {
                AppError::invalid(
                    "reference_lab",
                    "unknown_reference_lab",
                    "no reference laboratory has this code",
                )
            })?;
        let unpacked = tx
            .unpacked_send_outs(lab.id, MAX_SHIPMENT as i64 * 5)
            .await?;
        let chosen: Vec<SendOutRecord> = match &input.accessions {
            None => unpacked
                .into_iter()
                .filter(|o| o.temperature == temperature.as_str())
                .take(MAX_SHIPMENT)
                .collect(),
            Some(list) => {
                let mut out: Vec<SendOutRecord> = Vec::new();
                for (i, a) in list.iter().enumerate() {
                    let field = format!("accessions[{i}]");
                    let a = a.trim();
                    let mine: Vec<&SendOutRecord> =
                        unpacked.iter().filter(|o| o.accession == a).collect();
                    if mine.is_empty() {
                        return Err(AppError::invalid(
                            &field,
                            "not_awaiting_shipment",
                            format!("{a} has no send-out to {} waiting to be packed", lab.code),
                        ));
                    }
                    for o in mine {
                        if o.temperature != temperature.as_str() {
                            return Err(AppError::invalid(
                                &field,
                                "temperature_mismatch",
                                format!(
                                    "{a} travels {}, this shipment {}: pack it separately",
                                    o.temperature,
                                    temperature.as_str()
                                ),
                            ));
                        }
                        if !out.iter().any(|p| p.id == o.id) {
                            out.push(o.clone());
                        }
                    }
                }
                out
            }
        };
        if chosen.is_empty() {
            return Err(AppError::invalid(
                "reference_lab",
                "nothing_to_ship",
                format!(
                    "no send-out to {} at {} is waiting to be packed",
                    lab.code,
                    temperature.as_str()
                ),
            ));
        }
        let now = self.now();
        let n = tx.next_counter("send_out_shipment").await?;
        let mut record = ShipmentRecord {
            id: 0,
            manifest: format!("SO{n:06}"),
            reference_lab_id: lab.id,
            status: ShipmentStatus::Created.as_str().to_owned(),
            temperature: temperature.as_str().to_owned(),
            packed_at: now,
            packed_by: actor.username.clone(),
            courier: None,
            tracking: None,
            shipped_at: None,
            received_at: None,
            resulted_at: None,
            version: 1,
        };
        record.id = tx.insert_shipment(&record).await?;
        for o in &chosen {
            if !tx.pack_send_out(o.id, record.id).await? {
                return Err(AppError::Conflict {
                    field: Some("accessions".into()),
                    code: "packed_meanwhile",
                    message: format!("{} was packed into another shipment meanwhile", o.accession),
                });
            }
        }
        let accessions: Vec<&str> = chosen.iter().map(|o| o.accession.as_str()).collect();
        let details = json!({"accessions": accessions, "temperature": record.temperature,
            "send_outs": chosen.iter().map(|o| o.id).collect::<Vec<_>>()});
        tx.insert_shipment_event(&ShipmentEventRecord {
            id: 0,
            shipment_id: record.id,
            at: now,
            by_user: actor.username.clone(),
            kind: "pack".into(),
            from_status: String::new(),
            to_status: record.status.clone(),
            details: details.to_string(),
        })
        .await?;
        tx.audit(self.entry(
            actor,
            "shipment.pack",
            "shipment",
            record.id,
            None,
            Some(
                json!({"manifest": record.manifest, "reference_lab": lab.code,
                "accessions": accessions, "temperature": record.temperature}),
            ),
            None,
        ));
        tx.commit().await?;
        self.shipment_view(record.id).await
    }

    /// A shipment step (ship, receive) over the version the caller read.
    async fn shipment_step(
        &self,
        actor: &Actor,
        id: i64,
        event: ShipmentEvent,
        input: ShipmentStepInput,
    ) -> AppResult<ShipmentView> {
        actor.require(Permission::SpecimenProcess)?;
        let note = free_text("note", input.note.as_deref(), 500)?;
        let (courier, tracking) = match event {
            ShipmentEvent::Ship => (
                Some(text(
                    "courier",
                    input.courier.as_deref().unwrap_or(""),
                    100,
                )?),
                Some(text(
                    "tracking",
                    input.tracking.as_deref().unwrap_or(""),
                    100,
                )?),
            ),
            _ => (None, None),
        };
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let old = tx
            .shipment_by_id(id)
            .await?
            .ok_or_else(shipment_not_found)?;
        if old.version != input.version {
            return Err(changed(old.version, input.version, "shipment"));
        }
        let next = transition(status_of(&old)?, event).map_err(|e| shipment_conflict(&e))?;
        let mut record = ShipmentRecord {
            status: next.as_str().to_owned(),
            version: old.version + 1,
            ..old.clone()
        };
        let details = match event {
            ShipmentEvent::Ship => {
                record.courier = courier.clone();
                record.tracking = tracking.clone();
                record.shipped_at = Some(now);
                json!({"courier": courier, "tracking": tracking, "note": note})
            }
            ShipmentEvent::Receive => {
                let at = input.received_at.unwrap_or(now);
                let shipped = old.shipped_at.unwrap_or(old.packed_at);
                check_received_at(shipped, at, now).map_err(|e| invalid(&e, "", "received_at"))?;
                record.received_at = Some(at);
                json!({"received_at": at.to_string(), "note": note})
            }
            ShipmentEvent::ResultsBack => {
                return Err(AppError::Internal(
                    "results back is not a clerk's step".into(),
                ));
            }
        };
        if !tx.update_shipment(&record).await? {
            return Err(changed(old.version + 1, input.version, "shipment"));
        }
        self.shipment_event(&mut tx, actor, &old, &record, event, details, now)
            .await?;
        tx.commit().await?;
        self.shipment_view(id).await
    }

    /// Writes a shipment step's event row and audit entry.
    #[expect(clippy::too_many_arguments, reason = "the facts of one step")]
    async fn shipment_event(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        old: &ShipmentRecord,
        new: &ShipmentRecord,
        event: ShipmentEvent,
        details: Value,
        now: Timestamp,
    ) -> AppResult<()> {
        tx.insert_shipment_event(&ShipmentEventRecord {
            id: 0,
            shipment_id: new.id,
            at: now,
            by_user: actor.username.clone(),
            kind: event.as_str().to_owned(),
            from_status: old.status.clone(),
            to_status: new.status.clone(),
            details: details.to_string(),
        })
        .await?;
        tx.audit(self.entry(
            actor,
            &format!("shipment.{}", event.as_str()),
            "shipment",
            new.id,
            Some(json!({"status": old.status, "version": old.version})),
            Some(json!({"status": new.status, "version": new.version, "details": details})),
            None,
        ));
        Ok(())
    }

    /// Hands a packed shipment to the courier (created → shipped) with its tracking number.
    pub async fn ship_shipment(
        &self,
        actor: &Actor,
        id: i64,
        input: ShipmentStepInput,
    ) -> AppResult<ShipmentView> {
        self.shipment_step(actor, id, ShipmentEvent::Ship, input)
            .await
    }

    /// Records the reference laboratory's delivery (shipped → received).
    pub async fn receive_shipment(
        &self,
        actor: &Actor,
        id: i64,
        input: ShipmentStepInput,
    ) -> AppResult<ShipmentView> {
        self.shipment_step(actor, id, ShipmentEvent::Receive, input)
            .await
    }

    async fn shipment_view(&self, id: i64) -> AppResult<ShipmentView> {
        let s = self
            .store
            .shipment_by_id(id)
            .await?
            .ok_or_else(shipment_not_found)?;
        let lab = self
            .store
            .reference_lab_by_id(s.reference_lab_id)
            .await?
            .ok_or_else(|| AppError::Internal("shipment without laboratory".into()))?;
        let items = self
            .store
            .send_outs_of_shipment(id)
            .await?
            .into_iter()
            .map(|o| ShipmentItemView {
                send_out_id: o.id,
                tests: tests_of(&o),
                accession: o.accession,
                resulted_at: o.resulted_at,
            })
            .collect();
        let events = self
            .store
            .shipment_events(id)
            .await?
            .into_iter()
            .map(|e| ShipmentEventView {
                at: e.at,
                by: e.by_user,
                kind: e.kind,
                from: e.from_status,
                to: e.to_status,
                details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
            })
            .collect();
        Ok(ShipmentView {
            id: s.id,
            manifest: s.manifest,
            reference_lab: lab.code,
            reference_lab_name: lab.name,
            status: s.status,
            temperature: s.temperature,
            packed_at: s.packed_at,
            packed_by: s.packed_by,
            courier: s.courier,
            tracking: s.tracking,
            shipped_at: s.shipped_at,
            received_at: s.received_at,
            resulted_at: s.resulted_at,
            version: s.version,
            items,
            events,
        })
    }

    /// One shipment with its tubes and steps (`specimen.process`; accessions only, no
    /// patient data).
    pub async fn shipment(&self, actor: &Actor, id: i64) -> AppResult<ShipmentView> {
        actor.require(Permission::SpecimenProcess)?;
        self.shipment_view(id).await
    }

    /// Shipments, newest first, of one status when given (`specimen.process`).
    pub async fn shipments(
        &self,
        actor: &Actor,
        status: Option<&str>,
    ) -> AppResult<Vec<ShipmentView>> {
        actor.require(Permission::SpecimenProcess)?;
        let status = status
            .map(|s| {
                ShipmentStatus::parse(s.trim())
                    .map_err(|e| invalid(&e, "", "status").with_field("status"))
            })
            .transpose()?;
        let mut out = Vec::new();
        for s in self
            .store
            .shipments(status.map(ShipmentStatus::as_str), LIST_LIMIT)
            .await?
        {
            out.push(self.shipment_view(s.id).await?);
        }
        Ok(out)
    }

    /// A shipment's manifest with the patients' demographics (`specimen.process`;
    /// access-logged).
    pub async fn shipment_manifest(&self, actor: &Actor, id: i64) -> AppResult<ManifestDocument> {
        actor.require(Permission::SpecimenProcess)?;
        let s = self
            .store
            .shipment_by_id(id)
            .await?
            .ok_or_else(shipment_not_found)?;
        let lab = self
            .store
            .reference_lab_by_id(s.reference_lab_id)
            .await?
            .ok_or_else(|| AppError::Internal("shipment without laboratory".into()))?;
        let codes = self.store.reference_lab_test_codes(lab.id).await?;
        let sender = self.lab_block().await?;
        let field = |k: &str| sender[k].as_str().unwrap_or_default().to_owned();
        let sender = PerformingLab {
            code: String::new(),
            name: field("name"),
            address: field("address"),
            clia: field("clia"),
        };
        let send_outs = self.store.send_outs_of_shipment(id).await?;
        let mut items = Vec::new();
        let mut names: HashMap<String, String> = HashMap::new();
        for o in &send_outs {
            let sp = self
                .store
                .specimen_by_accession(&o.accession)
                .await?
                .ok_or_else(|| AppError::Internal("send-out without specimen".into()))?;
            let p = self
                .store
                .patient_by_id(sp.patient_id)
                .await?
                .ok_or_else(|| AppError::Internal("specimen without patient".into()))?;
            let mut tests = Vec::new();
            for t in tests_of(o) {
                if !names.contains_key(&t) {
                    let name = match self.store.catalog_by_code(&t).await? {
                        Some(c) => definition(&c)?.name,
                        None => t.clone(),
                    };
                    names.insert(t.clone(), name);
                }
                tests.push(ManifestTest {
                    name: names.get(&t).cloned().unwrap_or_default(),
                    reference_code: codes
                        .iter()
                        .find(|c| c.test_code == t)
                        .map(|c| c.code.clone())
                        .unwrap_or_default(),
                    code: t,
                });
            }
            items.push(ManifestItem {
                accession: o.accession.clone(),
                specimen_type: sp.specimen_type,
                container: sp.container,
                collected_at: sp.collected_at,
                family_name: p.family_name,
                given_name: p.given_name,
                mrn: p.mrn,
                birth_date: p.birth_date,
                sex: p.sex,
                tests,
            });
        }
        self.log_shown(
            actor,
            "shipment.manifest",
            "shipment",
            id,
            send_outs.iter().map(|o| Subject::Specimen(o.specimen_id)),
        )
        .await?;
        Ok(ManifestDocument {
            manifest: s.manifest,
            status: s.status,
            sender,
            reference_lab: performing(&lab),
            temperature: s.temperature,
            packed_at: s.packed_at,
            packed_by: s.packed_by,
            courier: s.courier,
            tracking: s.tracking,
            shipped_at: s.shipped_at,
            items,
        })
    }

    /// Every sent-out test without a result, overdue ones first then oldest first
    /// (`specimen.process`; access-logged).
    pub async fn outstanding_send_outs(&self, actor: &Actor) -> AppResult<Vec<OutstandingView>> {
        actor.require(Permission::SpecimenProcess)?;
        let now = self.now();
        let mut labs: HashMap<i64, Option<ReferenceLabRecord>> = HashMap::new();
        let mut shipments: HashMap<i64, Option<ShipmentRecord>> = HashMap::new();
        let mut rows = Vec::new();
        for o in self.store.send_outs(true, LIST_LIMIT).await? {
            let Some(sp) = self.store.specimen_by_accession(&o.accession).await? else {
                continue;
            };
            let order_tests = self.store.tests_of_order(sp.order_id).await?;
            let results = self.store.results_of_order(sp.order_id).await?;
            let lab = match o.reference_lab_id {
                Some(l) => match labs.get(&l) {
                    Some(x) => x.clone(),
                    None => {
                        let x = self.store.reference_lab_by_id(l).await?;
                        labs.insert(l, x.clone());
                        x
                    }
                },
                None => None,
            };
            let shipment = match o.shipment_id {
                Some(id) => match shipments.get(&id) {
                    Some(x) => x.clone(),
                    None => {
                        let x = self.store.shipment_by_id(id).await?;
                        shipments.insert(id, x.clone());
                        x
                    }
                },
                None => None,
            };
            let tat = SignedDuration::from_hours(
                lab.as_ref()
                    .map_or(DEFAULT_EXPECTED_TAT_HOURS, |l| l.expected_tat_hours),
            );
            let state = outstanding(o.sent_at, tat, now);
            for t in tests_of(&o) {
                let Some(ot) = order_tests.iter().find(|x| x.test_code == t) else {
                    continue;
                };
                if ot.status == "cancelled" || results.iter().any(|r| r.order_test_id == ot.id) {
                    continue;
                }
                rows.push(OutstandingView {
                    send_out_id: o.id,
                    specimen_id: o.specimen_id,
                    accession: o.accession.clone(),
                    test: t,
                    reference_lab: lab
                        .as_ref()
                        .map_or_else(|| o.reference_lab.clone(), |l| l.code.clone()),
                    manifest: shipment.as_ref().map(|s| s.manifest.clone()),
                    shipment_status: shipment.as_ref().map(|s| s.status.clone()),
                    tracking: shipment
                        .as_ref()
                        .and_then(|s| s.tracking.clone())
                        .or_else(|| o.tracking.clone()),
                    sent_at: o.sent_at,
                    age_minutes: state.age.as_mins(),
                    due_at: state.due_at,
                    overdue: state.overdue,
                });
            }
        }
        rows.sort_by_key(|r| (!r.overdue, r.sent_at, r.send_out_id));
        self.worklist(
            actor,
            "send_out.outstanding",
            "send_out",
            "outstanding",
            rows,
        )
        .await
    }

    /// The send-out of `test` on the tube `specimen_id` (or on the tube `also`, the tube the
    /// test is ordered on when the result is posted on an aliquot), with its laboratory and
    /// shipment; `None` when the test is performed in house. `prefetched`: the send-outs a
    /// batch read of its tubes.
    pub(crate) async fn sent_out_of(
        &self,
        tx: &mut Box<dyn Tx>,
        specimen_id: i64,
        also: i64,
        test: &str,
        prefetched: Option<&HashMap<i64, Vec<SendOutRecord>>>,
    ) -> AppResult<Option<SentOut>> {
        let mut ids = vec![specimen_id];
        if also != specimen_id {
            ids.push(also);
        }
        let mut all = Vec::new();
        for id in ids {
            // A batch read its tubes' send-outs (an empty list for a tube without any).
            match prefetched.and_then(|p| p.get(&id)) {
                Some(rows) => all.extend(rows.iter().cloned()),
                None => all.extend(tx.send_outs_of_specimen(id).await?),
            }
        }
        let Some(o) = all
            .into_iter()
            .filter(|o| tests_of(o).iter().any(|t| t == test))
            .max_by_key(|o| o.id)
        else {
            return Ok(None);
        };
        let lab = match o.reference_lab_id {
            Some(id) => match tx.reference_lab_by_id(id).await? {
                Some(l) => performing(&l),
                None => return Err(AppError::Internal("send-out without laboratory".into())),
            },
            // A send-out from before the registry: its laboratory by name only.
            None => PerformingLab {
                code: String::new(),
                name: o.reference_lab.clone(),
                address: String::new(),
                clia: String::new(),
            },
        };
        let shipment = match o.shipment_id {
            Some(id) => tx.shipment_by_id(id).await?,
            None => None,
        };
        Ok(Some(SentOut {
            send_out: o,
            lab,
            shipment,
        }))
    }

    /// Refuses a result for a sent-out test whose shipment has not left the laboratory (or
    /// that is not packed yet). Send-outs from before the registry have no shipment to judge.
    pub(crate) fn check_results_accepted(sent: &SentOut) -> AppResult<()> {
        let (status, which) = match &sent.shipment {
            Some(s) => (status_of(s)?, s.manifest.clone()),
            None if sent.send_out.reference_lab_id.is_some() => {
                (ShipmentStatus::Created, "not packed yet".to_owned())
            }
            None => return Ok(()),
        };
        results_accepted(status).map_err(|e| AppError::Conflict {
            field: Some("accession".into()),
            code: e.code(),
            message: format!("{which}: {e}"),
        })
    }

    /// After the first result of a sent-out test: closes the send-out when every test it
    /// carried has a result (or was cancelled), and moves its shipment to `resulted` when that
    /// was its last open send-out.
    pub(crate) async fn results_back(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        order_id: i64,
        sent: &SentOut,
        now: Timestamp,
    ) -> AppResult<()> {
        let o = &sent.send_out;
        if o.resulted_at.is_some() {
            return Ok(());
        }
        let order_tests = tx.tests_of_order(order_id).await?;
        let results = tx.results_of_order(order_id).await?;
        let all_back = tests_of(o).iter().all(|t| {
            order_tests
                .iter()
                .find(|x| &x.test_code == t)
                .is_none_or(|ot| {
                    ot.status == "cancelled" || results.iter().any(|r| r.order_test_id == ot.id)
                })
        });
        if !all_back || !tx.close_send_out(o.id, now).await? {
            return Ok(());
        }
        tx.audit(self.entry(
            actor,
            "send_out.results_back",
            "send_out",
            o.id,
            None,
            Some(json!({"accession": o.accession, "tests": tests_of(o), "resulted_at": now.to_string()})),
            None,
        ));
        let Some(shipment_id) = o.shipment_id else {
            return Ok(());
        };
        if tx
            .send_outs_of_shipment(shipment_id)
            .await?
            .iter()
            .any(|x| x.resulted_at.is_none())
        {
            return Ok(());
        }
        let old = tx
            .shipment_by_id(shipment_id)
            .await?
            .ok_or_else(shipment_not_found)?;
        let next = transition(status_of(&old)?, ShipmentEvent::ResultsBack)
            .map_err(|e| shipment_conflict(&e))?;
        let record = ShipmentRecord {
            status: next.as_str().to_owned(),
            version: old.version + 1,
            resulted_at: Some(now),
            ..old.clone()
        };
        if !tx.update_shipment(&record).await? {
            return Err(AppError::Conflict {
                field: None,
                code: "shipment_changed",
                message: "the shipment was changed meanwhile: try again".into(),
            });
        }
        self.shipment_event(
            tx,
            actor,
            &old,
            &record,
            ShipmentEvent::ResultsBack,
            json!({"last": o.accession}),
            now,
        )
        .await
    }

    /// The catalogue test a reference laboratory's code stands for (its own code, else the
    /// catalogue's code or LOINC as given).
    pub(crate) async fn reference_test_code(
        &self,
        tx: &mut Box<dyn Tx>,
        lab_code: &str,
        test: &str,
    ) -> AppResult<(ReferenceLabRecord, String)> {
        let lab = tx
            .reference_lab_by_code(lab_code.trim())
            .await?
            .ok_or_else(|| {
                AppError::invalid(
                    "reference_lab",
                    "unknown_reference_lab",
                    "no reference laboratory has this code",
                )
            })?;
        let codes = tx.reference_lab_test_codes(lab.id).await?;
        let t = test.trim();
        let code = codes
            .iter()
            .find(|c| c.code == t)
            .map_or_else(|| t.to_owned(), |c| c.test_code.clone());
        Ok((lab, code))
    }
}
