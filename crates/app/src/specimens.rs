//! The specimen lifecycle: reading a specimen with its chain of custody, printing its label,
//! collection (with positive identification), receipt (with the domain's receipt check) and
//! rejection (problem log and recollection task). Every change writes a custody event and an
//! audit entry in the same transaction.

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{ContainerType, SpecimenType, Temperature};
use aliquot_domain::ids::AccessionNumber;
use aliquot_domain::specimen::stability::{TemperatureSegment, TemperatureStage};
use aliquot_domain::specimen::{
    Event, Fill, ReceiptFacts, ReceiptTest, RejectionReason, SpecimenState, TestStatus,
    TransitionError, check_collection_time, check_label, check_receipt, content_after_receipt,
    match_container, transition,
};
use aliquot_labels::{LabelData, LabelFormat, LabelLayout};
use aliquot_store::{
    ProblemRecord, RecollectTaskRecord, SpecimenChange, SpecimenEventRecord, SpecimenRecord, Tx,
};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::catalog::definition;

mod receipt;
use crate::patients::{PatientIdentification, invalid};
use crate::{Actor, App, AppError, AppResult};
pub(crate) use receipt::IDENTIFICATION_SETTING;

/// A specimen status change as the chain of custody and the audit trail record it.
pub(crate) struct Transition<'a> {
    /// The event: `collect`, `receive`, `reject`…
    pub kind: &'a str,
    /// The status after the change.
    pub next: &'a str,
    pub details: Value,
    pub location: Option<String>,
}

/// One entry of the chain of custody.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecimenEventView {
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub kind: String,
    pub from_status: String,
    pub to_status: String,
    pub details: Value,
    pub location: Option<String>,
}

/// A specimen with its tests and chain of custody.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecimenDetail {
    pub id: i64,
    pub accession: String,
    pub status: String,
    pub order_id: i64,
    pub patient_id: i64,
    pub container: String,
    pub container_name: String,
    /// The specimen type tested (the received container's, see receipt).
    pub specimen_type: String,
    /// Measured specimen content, µL (0 before receipt).
    pub volume_ul: i64,
    /// The planned demand of the tests on the tube, µL.
    pub demand_ul: i64,
    /// The container recorded at receipt.
    pub received_container: Option<String>,
    pub collected_at: Option<Timestamp>,
    pub temperature: Option<String>,
    pub tests: Vec<String>,
    pub events: Vec<SpecimenEventView>,
    // processing (issue 4): aliquot lineage.
    /// The accession this aliquot was poured from.
    pub parent: Option<String>,
    /// The aliquots poured from this specimen.
    pub children: Vec<crate::AliquotChildView>,
    /// Where it is stored now (`room/unit/rack[/box]/position`), if it is.
    pub storage_location: Option<String>,
}

/// A rendered tube label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedLabel {
    pub body: String,
    pub media_type: &'static str,
    /// 1 for the original print, n for reprint Rn.
    pub print: i64,
}

#[derive(Debug, Clone, Default)]
pub struct CollectInput {
    /// RFC 3339: the real draw time, which may precede the order's entry.
    pub collected_at: String,
    /// Who drew it, when not the user recording it (a phlebotomist, a clinic nurse).
    pub collector: Option<String>,
    pub site: Option<String>,
    pub patient: PatientIdentification,
    /// `room` (default), `refrigerated` or `frozen`.
    pub temperature: Option<String>,
}

/// A corrected collection time and why.
#[derive(Debug, Clone)]
pub struct CollectionCorrectionInput {
    /// RFC 3339.
    pub collected_at: String,
    pub reason: String,
}

/// An RFC 3339 time, kept to the microsecond (the database's resolution).
fn parse_collected_at(text: &str) -> AppResult<Timestamp> {
    parse_time("collected_at", "collected_at_format", text)
}

/// An RFC 3339 time in `field`, kept to the microsecond.
pub(crate) fn parse_time(field: &str, code: &'static str, text: &str) -> AppResult<Timestamp> {
    let t: Timestamp = text.trim().parse().map_err(|_| {
        AppError::invalid(field, code, "an RFC 3339 time, e.g. 2026-05-01T08:00:00Z")
    })?;
    Ok(Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t))
}

/// A separation time lies between the draw and now (the domain's rule).
fn check_separated_at(
    t: Timestamp,
    collected_at: Option<Timestamp>,
    now: Timestamp,
) -> AppResult<Timestamp> {
    if !aliquot_domain::specimen::stability::separation_time_plausible(t, collected_at, now) {
        return Err(AppError::invalid(
            "separated_at",
            "separated_at_range",
            "the tube is spun after its draw and not in the future",
        ));
    }
    Ok(t)
}

/// What the receiving technologist attests (issue 10 item 6): `label`, `container` and the
/// fill (`volume_ul`, or `fill` for a tube with a fill line) are required, never assumed.
#[derive(Debug, Clone, Default)]
pub struct ReceiveInput {
    /// Measured specimen content in µL (tubes without a fill line).
    pub volume_ul: Option<i64>,
    /// `to_line`, `under` or `over`: a citrate tube judged against its fill line.
    pub fill: Option<String>,
    /// The container that arrived (catalogue code, e.g. `SST`, `PST`).
    pub container: Option<String>,
    pub temperature: Option<String>,
    /// `ok`, `missing` or `illegible`.
    pub label: Option<String>,
    /// The order on the requisition that came with the tube, when the station scans it: a
    /// tube of another order (another patient's, or another draw) is refused.
    pub order_id: Option<i64>,
    /// The patient named on the requisition, when checked at receipt: two identifiers, as at
    /// collection.
    pub patient: Option<PatientIdentification>,
    /// The draw time written on an outreach requisition, for a tube that arrives without a
    /// recorded collection: it is recorded first (with `patient`, required then), and the
    /// receipt check judges stability from it.
    pub collected_at: Option<String>,
    /// Who drew it (with `collected_at`).
    pub collector: Option<String>,
    /// RFC 3339: the draw site spun the tube (serum or plasma arrived separated) at this time;
    /// stability before separation is judged up to it (CLSI GP44).
    pub separated_at: Option<String>,
}

/// One problem found at receipt, with the rejection reason it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptProblemView {
    pub code: String,
    pub message: String,
    pub rejection_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemView {
    pub id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub reason: String,
    pub comment: Option<String>,
    pub opened_at: Timestamp,
    pub opened_by: String,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecollectTaskView {
    pub id: i64,
    pub order_id: i64,
    pub location_id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub reason: String,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    pub done_by: Option<String>,
    pub replacement_accession: Option<String>,
}

pub(crate) fn parse_accession(input: &str) -> AppResult<AccessionNumber> {
    AccessionNumber::parse(input).map_err(|e| invalid(&e, "", "accession"))
}

pub(crate) fn not_found() -> AppError {
    AppError::NotFound { entity: "specimen" }
}

pub(crate) fn state_of(s: &SpecimenRecord) -> AppResult<SpecimenState> {
    SpecimenState::parse(&s.status)
        .map_err(|_| AppError::Internal(format!("specimen {} has status {:?}", s.id, s.status)))
}

pub(crate) fn transition_conflict(e: TransitionError) -> AppError {
    AppError::Conflict {
        field: e.field().map(str::to_owned),
        code: e.code(),
        message: e.to_string(),
    }
}

pub(crate) fn changed_meanwhile() -> AppError {
    AppError::Conflict {
        field: None,
        code: "specimen_changed",
        message: "the specimen was changed by another request; reload and retry".into(),
    }
}

/// An accession number as typed or scanned, for the audit trail of a refused attempt:
/// control characters escaped, at most 40 characters.
fn presented(input: &str) -> String {
    let escaped: String = input.escape_debug().collect();
    match escaped.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

pub(crate) fn parse_temperature(t: Option<&str>) -> AppResult<Option<Temperature>> {
    t.map(|t| Temperature::parse(t.trim()).map_err(|e| invalid(&e, "", "temperature")))
        .transpose()
}

/// Optional free text: trimmed, at most `max` characters, no control characters but newline.
pub(crate) fn free_text(field: &str, v: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() <= max && !s.chars().any(|c| c.is_control() && c != '\n') => {
            Ok(Some(s.to_owned()))
        }
        Some(_) => Err(AppError::invalid(
            field,
            "text_format",
            format!("at most {max} characters without control characters"),
        )),
    }
}

fn problem_view(p: ProblemRecord) -> ProblemView {
    ProblemView {
        id: p.id,
        specimen_id: p.specimen_id,
        accession: p.accession,
        reason: p.reason,
        comment: p.comment,
        opened_at: p.opened_at,
        opened_by: p.opened_by,
        resolved_at: p.resolved_at,
        resolved_by: p.resolved_by,
        resolution: p.resolution,
    }
}

fn task_view(t: RecollectTaskRecord) -> RecollectTaskView {
    RecollectTaskView {
        id: t.id,
        order_id: t.order_id,
        location_id: t.location_id,
        specimen_id: t.specimen_id,
        accession: t.accession,
        reason: t.reason,
        created_at: t.created_at,
        done_at: t.done_at,
        done_by: t.done_by,
        replacement_accession: t.replacement_accession,
    }
}

/// The codes of the pending tests (ordered, or with a held result) on tube `s`.
pub(crate) async fn pending_tests_on(
    tx: &mut Box<dyn Tx>,
    s: &SpecimenRecord,
) -> AppResult<Vec<String>> {
    Ok(tx
        .tests_of_order(s.order_id)
        .await?
        .into_iter()
        .filter(|t| t.specimen_id == s.id)
        .filter(|t| TestStatus::parse(&t.status).is_ok_and(TestStatus::is_pending))
        .map(|t| t.test_code)
        .collect())
}

fn o_active(o: &aliquot_store::OrderRecord) -> bool {
    o.status == "active"
}

/// The container type with this code.
pub(crate) fn container_by_code(code: &str) -> Option<ContainerType> {
    ContainerType::defaults()
        .into_iter()
        .find(|c| c.code.as_str() == code)
}

pub(crate) fn container_name(code: &str) -> String {
    container_by_code(code)
        .map(|c| c.name)
        .unwrap_or_else(|| code.to_owned())
}

/// Required free text: as [`free_text`], and 422 `required` when empty.
pub(crate) fn required_text(field: &str, v: &str, max: usize) -> AppResult<String> {
    free_text(field, Some(v), max)?
        .ok_or_else(|| AppError::invalid(field, "required", format!("{field} is required")))
}

impl App {
    /// Runs a specimen command; when it is refused for a reason the user can act on (bad
    /// input, unknown specimen, illegal transition), the attempt is written to the audit trail
    /// in its own transaction (`specimen.<kind>_refused`, with the error code and field) and
    /// the error returned unchanged. Nothing else is written: the command's own transaction
    /// was dropped. Should the audit write itself fail, the refusal is still returned and the
    /// failure logged.
    pub(crate) async fn attempt<T>(
        &self,
        actor: &Actor,
        kind: &str,
        accession: &str,
        command: impl std::future::Future<Output = AppResult<T>>,
    ) -> AppResult<T> {
        let result = command.await;
        if let Err(e) = &result {
            let (code, field) = match e {
                AppError::Invalid { code, field, .. } | AppError::Conflict { code, field, .. } => {
                    (*code, field.clone())
                }
                AppError::NotFound { .. } => ("not_found", None),
                _ => return result,
            };
            let entry = self.entry(
                actor,
                &format!("specimen.{kind}_refused"),
                "specimen",
                presented(accession),
                None,
                Some(json!({"code": code, "field": field})),
                None,
            );
            let written = async {
                let mut tx = self.store.begin().await?;
                tx.audit(entry);
                tx.commit().await
            };
            // The user still gets the refusal they caused; the failure to record it is
            // logged (without the accession, which names a patient's specimen).
            if let Err(e) = written.await {
                tracing::error!(action = kind, error = %e, "could not audit a refused attempt");
            }
        }
        result
    }

    /// The guarded status change `s.status → next` (with the temperature when given); 409
    /// `specimen_changed` when another request changed the specimen first.
    pub(crate) async fn change_status(
        &self,
        tx: &mut Box<dyn Tx>,
        s: &SpecimenRecord,
        next: SpecimenState,
        temperature: Option<String>,
    ) -> AppResult<()> {
        let change = SpecimenChange {
            id: s.id,
            from: s.status.clone(),
            to: next.as_str().to_owned(),
            collected_at: None,
            temperature,
            volume_ul: None,
        };
        if !tx.change_specimen(&change).await? {
            return Err(changed_meanwhile());
        }
        Ok(())
    }

    pub(crate) fn custody(
        &self,
        actor: &Actor,
        s: &SpecimenRecord,
        kind: &str,
        to: &str,
        details: Value,
        location: Option<String>,
    ) -> SpecimenEventRecord {
        SpecimenEventRecord {
            id: 0,
            specimen_id: s.id,
            at: self.now(),
            actor_id: actor.user_id,
            actor_name: actor.username.clone(),
            kind: kind.to_owned(),
            from_status: s.status.clone(),
            to_status: to.to_owned(),
            details: details.to_string(),
            location,
        }
    }

    /// Records a status change of `s` in the caller's transaction: its chain-of-custody
    /// event and its audit entry (`specimen.<kind>`, old and new status).
    pub(crate) async fn record_transition(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        s: &SpecimenRecord,
        t: Transition<'_>,
    ) -> AppResult<()> {
        tx.insert_specimen_event(&self.custody(
            actor,
            s,
            t.kind,
            t.next,
            t.details.clone(),
            t.location,
        ))
        .await?;
        let mut new = t.details;
        new["status"] = json!(t.next);
        tx.audit(self.entry(
            actor,
            &format!("specimen.{}", t.kind),
            "specimen",
            &s.accession,
            Some(json!({"status": s.status, "volume_ul": s.volume_ul})),
            Some(new),
            None,
        ));
        Ok(())
    }

    pub(crate) async fn specimen_detail(&self, s: &SpecimenRecord) -> AppResult<SpecimenDetail> {
        let tests = self.store.tests_of_order(s.order_id).await?;
        let events = self.store.specimen_events(s.id).await?;
        Ok(SpecimenDetail {
            id: s.id,
            accession: s.accession.clone(),
            status: s.status.clone(),
            order_id: s.order_id,
            patient_id: s.patient_id,
            container: s.container.clone(),
            container_name: container_name(&s.container),
            specimen_type: s.specimen_type.clone(),
            volume_ul: s.volume_ul,
            demand_ul: s.demand_ul,
            received_container: s.received_container.clone(),
            collected_at: s.collected_at,
            temperature: s.temperature.clone(),
            tests: tests
                .into_iter()
                .filter(|t| t.specimen_id == s.id)
                .map(|t| t.test_code)
                .collect(),
            events: events
                .into_iter()
                .map(|e| SpecimenEventView {
                    at: e.at,
                    actor_id: e.actor_id,
                    actor_name: e.actor_name,
                    kind: e.kind,
                    from_status: e.from_status,
                    to_status: e.to_status,
                    details: serde_json::from_str(&e.details).unwrap_or(Value::Null),
                    location: e.location,
                })
                .collect(),
            // processing (issue 4): aliquot lineage.
            parent: self.store.specimen_parent(s.id).await?.map(|p| p.accession),
            children: self.children_of(s.id).await?,
            storage_location: self
                .store
                .latest_placement(s.id)
                .await?
                .filter(|p| p.removed_at.is_none())
                .map(|p| crate::storage::placement_path(&p)),
        })
    }

    pub(crate) async fn reload(&self, accession: &str) -> AppResult<SpecimenDetail> {
        let s = self
            .store
            .specimen_by_accession(accession)
            .await?
            .ok_or_else(not_found)?;
        self.specimen_detail(&s).await
    }

    /// A specimen with its tests and chain of custody. Recorded in the access log.
    pub async fn specimen(&self, actor: &Actor, accession: &str) -> AppResult<SpecimenDetail> {
        actor.require(Permission::OrderRead)?;
        let acc = parse_accession(accession)?;
        let s = self
            .store
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        if self
            .require_patient_visible(actor, s.patient_id, "specimen")
            .await
            .is_err()
        {
            return Err(not_found());
        }
        let detail = self.specimen_detail(&s).await?;
        self.store
            .record_access(&self.access(
                actor,
                "specimen.read",
                "specimen",
                acc.as_str(),
                vec![s.patient_id],
            ))
            .await?;
        Ok(detail)
    }

    /// Renders the tube label (`zpl` or `svg`); every print is counted, audited and written to
    /// the chain of custody, and reprints carry `Rn`.
    pub async fn specimen_label(
        &self,
        actor: &Actor,
        accession: &str,
        format: &str,
    ) -> AppResult<RenderedLabel> {
        self.attempt(
            actor,
            "label_print",
            accession,
            self.specimen_label_inner(actor, accession, format),
        )
        .await
    }

    async fn specimen_label_inner(
        &self,
        actor: &Actor,
        accession: &str,
        format: &str,
    ) -> AppResult<RenderedLabel> {
        actor.require(Permission::SpecimenCollect)?;
        let format: LabelFormat =
            format
                .trim()
                .parse()
                .map_err(|e: aliquot_labels::UnknownLabelFormat| {
                    AppError::invalid("format", "unknown_label_format", e.to_string())
                })?;
        let acc = parse_accession(accession)?;
        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let order = tx
            .order_by_id(s.order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        check_label(state_of(&s)?, order.status == "cancelled").map_err(|e| {
            AppError::Conflict {
                field: None,
                code: e.code(),
                message: e.to_string(),
            }
        })?;
        let patient = tx
            .patient_by_id(s.patient_id)
            .await?
            .ok_or(AppError::NotFound { entity: "patient" })?;
        let order_tests = tx.tests_of_order(s.order_id).await?;
        let on = |id: i64| -> Vec<String> {
            order_tests
                .iter()
                .filter(|t| t.specimen_id == id && t.status != "cancelled")
                .map(|t| t.test_code.clone())
                .collect()
        };
        let mut tests = on(s.id);
        // An aliquot poured without tests of its own is labelled with its parent's.
        if tests.is_empty()
            && let Some(parent) = tx.specimen_parent(s.id).await?
        {
            tests = on(parent.id);
        }
        let mut departments: Vec<String> = Vec::new();
        for code in &tests {
            if let Some(entry) = tx.catalog_by_code(code).await?
                && let Some(d) = definition(&entry)?.department
            {
                let d = d.replace('_', " ");
                if !departments.contains(&d) {
                    departments.push(d);
                }
            }
        }
        let tz = self.lab_timezone().await?;
        let print = tx.count_label_print(s.id).await?;
        let data = LabelData {
            accession: s.accession.clone(),
            family_name: patient.family_name.to_uppercase(),
            given_name: patient.given_name.clone(),
            birth_date: format!("DOB {}", patient.birth_date),
            second_identifier: format!("MRN {}", patient.mrn),
            department: (!departments.is_empty()).then(|| {
                let mut d = departments.join(", ");
                if let Some(first) = d.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                d
            }),
            tube: container_name(&s.container),
            tests,
            priority: order.priority.to_uppercase(),
            // In the lab's time zone with its abbreviation, e.g. `21 Nov 08:05 EST`: short
            // enough for the row it shares with the date of birth.
            collection: s.collected_at.map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%d %b %H:%M %Z")
                    .to_string()
            }),
            copy: (print > 1).then(|| u32::try_from(print).unwrap_or(u32::MAX)),
        };
        let body = format
            .render(&data, &LabelLayout::default())
            .map_err(|e| AppError::Internal(format!("label: {e}")))?;
        let details = json!({"format": format.extension(), "print": print});
        tx.insert_specimen_event(&self.custody(
            actor,
            &s,
            "label_print",
            &s.status,
            details.clone(),
            None,
        ))
        .await?;
        tx.log_access(&self.access(
            actor,
            "specimen.label",
            "specimen",
            &s.accession,
            vec![s.patient_id],
        ))
        .await?;
        tx.audit(self.entry(
            actor,
            "specimen.label_print",
            "specimen",
            &s.accession,
            None,
            Some(details),
            None,
        ));
        tx.commit().await?;
        Ok(RenderedLabel {
            body,
            media_type: format.media_type(),
            print,
        })
    }

    /// Collection: positive identification (two identifiers), a plausible collection time,
    /// planned → collected; the collector is the actor.
    pub async fn collect_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: CollectInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "collect",
            accession,
            self.collect_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn collect_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: CollectInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenCollect)?;
        let acc = parse_accession(accession)?;
        let collected_at = parse_collected_at(&input.collected_at)?;
        let temperature =
            parse_temperature(input.temperature.as_deref())?.unwrap_or(Temperature::Room);
        let site = free_text("site", input.site.as_deref(), 100)?;
        let collector = free_text("collector", input.collector.as_deref(), 100)?;
        let lookback = self.collection_lookback().await?;

        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let patient = self.identify_patient(&mut tx, &input.patient).await?;
        if patient.id != s.patient_id {
            return Err(AppError::invalid(
                "patient",
                "patient_mismatch",
                "the identified patient is not the patient of this specimen",
            ));
        }
        check_collection_time(collected_at, self.now(), lookback)
            .map_err(|e| invalid(&e, "", "collected_at"))?;
        let next = transition(state_of(&s)?, &Event::Collect).map_err(transition_conflict)?;
        let change = SpecimenChange {
            id: s.id,
            from: s.status.clone(),
            to: next.as_str().to_owned(),
            collected_at: Some(collected_at),
            temperature: Some(temperature.as_str().to_owned()),
            volume_ul: None,
        };
        if !tx.change_specimen(&change).await? {
            return Err(changed_meanwhile());
        }
        let details = json!({"collected_at": collected_at.to_string(),
            "temperature": temperature.as_str(), "site": site,
            "collector": collector.as_deref().unwrap_or(actor.username.as_str())});
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "collect",
                next: next.as_str(),
                details,
                location: site.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Corrects a recorded collection time (the draw time was mistyped, or the requisition
    /// showed the real one later), with a reason: the old and new times go into the audit
    /// entry and the chain of custody; stability and turnaround time use the corrected time
    /// from then on. The status does not change.
    pub async fn correct_collection_time(
        &self,
        actor: &Actor,
        accession: &str,
        input: CollectionCorrectionInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "collection_correct",
            accession,
            self.correct_collection_time_inner(actor, accession, input),
        )
        .await
    }

    async fn correct_collection_time_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: CollectionCorrectionInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenCollect)?;
        let acc = parse_accession(accession)?;
        let collected_at = parse_collected_at(&input.collected_at)?;
        let reason = required_text("reason", &input.reason, 500)?;
        let lookback = self.collection_lookback().await?;
        check_collection_time(collected_at, self.now(), lookback)
            .map_err(|e| invalid(&e, "", "collected_at"))?;
        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let Some(old) = s.collected_at else {
            return Err(AppError::Conflict {
                field: Some("collected_at".into()),
                code: "not_collected",
                message: "the specimen has no recorded collection to correct".into(),
            });
        };
        if s.status == "cancelled" {
            return Err(AppError::Conflict {
                field: None,
                code: "specimen_cancelled",
                message: "a cancelled specimen's collection is not corrected".into(),
            });
        }
        let change = SpecimenChange {
            id: s.id,
            from: s.status.clone(),
            to: s.status.clone(),
            collected_at: Some(collected_at),
            temperature: None,
            volume_ul: None,
        };
        if !tx.change_specimen(&change).await? {
            return Err(changed_meanwhile());
        }
        let details = json!({"collected_at": collected_at.to_string(),
            "previous_collected_at": old.to_string(), "reason": &reason});
        tx.insert_specimen_event(&self.custody(
            actor,
            &s,
            "collection_correct",
            &s.status,
            details,
            None,
        ))
        .await?;
        tx.audit(self.entry(
            actor,
            "specimen.collection_correct",
            "specimen",
            &s.accession,
            Some(json!({"collected_at": old.to_string()})),
            Some(json!({"collected_at": collected_at.to_string()})),
            Some(&reason),
        ));
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// An outreach tube arrives with its requisition's draw time and no recorded collection:
    /// the collection is recorded first, as at the bedside (two identifiers, the draw-time
    /// window, its own audited transaction; it did happen whatever the receipt check finds).
    /// A tube already collected keeps its time: a different one is corrected with a reason.
    async fn collect_at_receipt(
        &self,
        actor: &Actor,
        acc: &AccessionNumber,
        collected_at: &str,
        input: &ReceiveInput,
    ) -> AppResult<()> {
        let s = self
            .store
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        if state_of(&s)? != SpecimenState::Planned {
            let same = s
                .collected_at
                .is_some_and(|t| parse_collected_at(collected_at).is_ok_and(|c| c == t));
            if same {
                return Ok(());
            }
            return Err(AppError::Conflict {
                field: Some("collected_at".into()),
                code: "already_collected",
                message: "this tube's collection is already recorded; correct its time with \
                          POST /specimens/{accession}/collection-time and a reason"
                    .into(),
            });
        }
        let Some(patient) = input.patient.clone() else {
            return Err(AppError::invalid(
                "patient",
                "required",
                "recording the draw at receipt needs the patient's two identifiers",
            ));
        };
        self.collect_specimen_inner(
            actor,
            acc.as_str(),
            CollectInput {
                collected_at: collected_at.to_owned(),
                collector: input.collector.clone(),
                site: None,
                patient,
                temperature: input.temperature.clone(),
            },
        )
        .await
        .map(|_| ())
    }

    /// Receipt in the lab: the domain's receipt check first. With problems nothing changes
    /// (the refused attempt is audited) and the problems are returned; otherwise
    /// collected/in transit → received.
    pub async fn receive_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: ReceiveInput,
    ) -> AppResult<Result<SpecimenDetail, Vec<ReceiptProblemView>>> {
        self.attempt(
            actor,
            "receive",
            accession,
            self.receive_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn receive_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: ReceiveInput,
    ) -> AppResult<Result<SpecimenDetail, Vec<ReceiptProblemView>>> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let attested = receipt::attested(&input, self.flag_setting(IDENTIFICATION_SETTING).await?)?;
        if let Some(collected_at) = &input.collected_at {
            self.collect_at_receipt(actor, &acc, collected_at, &input)
                .await?;
        }
        let temperature = parse_temperature(input.temperature.as_deref())?;
        let separated_at = input
            .separated_at
            .as_deref()
            .map(|t| parse_time("separated_at", "separated_at_format", t))
            .transpose()?;

        // The facts are gathered on the read side; the transaction re-checks the status.
        let s = self
            .store
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        transition(state_of(&s)?, &Event::Receive).map_err(transition_conflict)?;
        // The tube against its requisition: the order scanned with it, the patient named on it.
        if input.order_id.is_some_and(|o| o != s.order_id) {
            return Err(AppError::invalid(
                "order_id",
                "specimen_order_mismatch",
                "this tube belongs to another order than the requisition; set it aside and \
                 check both labels",
            ));
        }
        if let Some(ident) = &input.patient {
            let mut tx = self.store.begin().await?;
            let patient = self.identify_patient(&mut tx, ident).await?;
            drop(tx);
            if patient.id != s.patient_id {
                return Err(AppError::invalid(
                    "patient",
                    "patient_mismatch",
                    "the patient on the requisition is not the patient of this tube",
                ));
            }
        }
        let internal = |what: &str| AppError::Internal(format!("specimen {}: {what}", s.id));
        let specimen_type =
            SpecimenType::parse(&s.specimen_type).map_err(|_| internal("specimen type"))?;
        let stored_temperature = s
            .temperature
            .as_deref()
            .map(Temperature::parse)
            .transpose()
            .map_err(|_| internal("temperature"))?;
        let temperature = temperature
            .or(stored_temperature)
            .unwrap_or(Temperature::Room);
        let mut tests = Vec::new();
        for t in self.store.tests_of_order(s.order_id).await? {
            if t.specimen_id != s.id {
                continue;
            }
            let entry = self
                .store
                .catalog_by_code(&t.test_code)
                .await?
                .ok_or_else(|| internal("test not in catalogue"))?;
            let def = definition(&entry)?;
            let ordered = def.ordered_test()?;
            tests.push(ReceiptTest {
                test_code: ordered.test_code,
                accepted: def.accepted_specimens()?,
                min_volume_ul: ordered.min_volume_ul,
                stability: def.full_stability_rule(),
            });
        }
        // The history so far, the draw site's spin, and how the tube arrives now.
        let now = self.now();
        let separated_at = separated_at
            .map(|t| check_separated_at(t, s.collected_at, now))
            .transpose()?;
        let mut history = self.specimen_history(&s).await?;
        history.separated_at = history.separated_at.into_iter().chain(separated_at).min();
        history.segments.push(TemperatureSegment {
            from: now,
            temperature,
            stage: TemperatureStage::Receipt,
        });
        let tested_type =
            match_container(&tests, &attested.container.code, specimen_type).tested_type;
        let volume_ul = content_after_receipt(&attested.container, attested.fill);
        let facts = ReceiptFacts {
            label: attested.label,
            identity: Ok(()),
            container: attested.container.clone(),
            planned_type: specimen_type,
            fill: attested.fill,
            collected_at: s.collected_at,
            history,
            tests,
        };
        let problems = check_receipt(&facts, now);
        if !problems.is_empty() {
            let views: Vec<ReceiptProblemView> = problems
                .iter()
                .map(|p| ReceiptProblemView {
                    code: p.code().to_owned(),
                    message: p.to_string(),
                    rejection_reason: p.rejection_reason().as_str().to_owned(),
                })
                .collect();
            let mut tx = self.store.begin().await?;
            tx.audit(self.entry(
                actor,
                "specimen.receive_refused",
                "specimen",
                &s.accession,
                Some(json!({"status": s.status})),
                Some(json!({"problems": views.iter().map(|p| json!({"code": p.code, "rejection_reason": p.rejection_reason})).collect::<Vec<_>>()})),
                None,
            ));
            tx.commit().await?;
            return Ok(Err(views));
        }

        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let next = transition(state_of(&s)?, &Event::Receive).map_err(transition_conflict)?;
        let change = SpecimenChange {
            id: s.id,
            from: s.status.clone(),
            to: next.as_str().to_owned(),
            collected_at: None,
            temperature: Some(temperature.as_str().to_owned()),
            volume_ul: Some(i64::from(volume_ul)),
        };
        if !tx.change_specimen(&change).await? {
            return Err(changed_meanwhile());
        }
        tx.set_received_container(s.id, attested.container.code.as_str(), tested_type.as_str())
            .await?;
        let fill = match attested.fill {
            Fill::Measured { .. } => None,
            Fill::Line(l) => Some(l.as_str()),
        };
        let details = json!({"volume_ul": volume_ul, "temperature": temperature.as_str(),
            "label": "ok", "container": attested.container.code.as_str(),
            "planned_container": s.container, "specimen_type": tested_type.as_str(),
            "planned_specimen_type": s.specimen_type, "fill": fill,
            "identified": input.patient.is_some(),
            "separated_at": separated_at.map(|t| t.to_string())});
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "receive",
                next: next.as_str(),
                details,
                location: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(self.reload(acc.as_str()).await?))
    }

    /// Rejection with a reason code: status rejected, a problem-log entry and a recollection
    /// task for the ordering location; the tube's pending tests move to a replacement tube
    /// planned in the same order (when it is active).
    pub async fn reject_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        reason: &str,
        comment: Option<&str>,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "reject",
            accession,
            self.reject_specimen_inner(actor, accession, reason, comment),
        )
        .await
    }

    async fn reject_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        reason: &str,
        comment: Option<&str>,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let reason = RejectionReason::parse(reason.trim())
            .map_err(|e| invalid(&e, "", "reason").with_field("reason"))?;
        let comment = free_text("comment", comment, 500)?;

        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let next =
            transition(state_of(&s)?, &Event::Reject { reason }).map_err(transition_conflict)?;
        self.change_status(&mut tx, &s, next, None).await?;
        let order = tx
            .order_by_id(s.order_id)
            .await?
            .ok_or(AppError::NotFound { entity: "order" })?;
        let now = self.now();
        let problem = tx
            .insert_problem(&ProblemRecord {
                id: 0,
                specimen_id: s.id,
                accession: s.accession.clone(),
                reason: reason.as_str().to_owned(),
                comment: comment.clone(),
                opened_at: now,
                opened_by: actor.username.clone(),
                resolved_at: None,
                resolved_by: None,
                resolution: None,
            })
            .await?;
        let task = tx
            .insert_recollect_task(&RecollectTaskRecord {
                id: 0,
                order_id: order.id,
                location_id: order.location_id,
                specimen_id: s.id,
                accession: s.accession.clone(),
                reason: reason.as_str().to_owned(),
                created_at: now,
                done_at: None,
                done_by: None,
                replacement_accession: None,
            })
            .await?;
        // The tube's pending tests move to a replacement tube planned for the redraw (issue
        // 10 item 11): they never stay behind on a rejected tube.
        let pending = pending_tests_on(&mut tx, &s).await?;
        let replacement = if o_active(&order) && !pending.is_empty() {
            Some(self.plan_replacement(&mut tx, &order, &s, &pending).await?)
        } else {
            None
        };
        let details = json!({"reason": reason.as_str(), "comment": comment,
            "problem_id": problem, "recollect_task_id": task,
            "replacement": replacement.as_ref().map(|r| r.accession.clone()),
            "tests_moved": if replacement.is_some() { pending } else { Vec::new() }});
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "reject",
                next: next.as_str(),
                details,
                location: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// The problem log (only unresolved entries with `open_only`), oldest first, at most 500.
    /// Recorded in the access log.
    pub async fn problem_log(&self, actor: &Actor, open_only: bool) -> AppResult<Vec<ProblemView>> {
        actor.require(Permission::SpecimenProcess)?;
        let problems = self.store.problem_log(open_only, 500).await?;
        let which = if open_only { "open" } else { "all" };
        Ok(self
            .worklist(actor, "problem_log.list", "problem_log", which, problems)
            .await?
            .into_iter()
            .map(problem_view)
            .collect())
    }

    /// Recollection tasks (only those not done with `open_only`), oldest first, at most 500.
    /// Recorded in the access log.
    pub async fn recollect_tasks(
        &self,
        actor: &Actor,
        open_only: bool,
    ) -> AppResult<Vec<RecollectTaskView>> {
        actor.require(Permission::SpecimenProcess)?;
        let tasks = self.store.recollect_tasks(open_only, 500).await?;
        let which = if open_only { "open" } else { "all" };
        Ok(self
            .worklist(actor, "recollect_task.list", "recollect_task", which, tasks)
            .await?
            .into_iter()
            .map(task_view)
            .collect())
    }

    /// Closes a problem-log entry with what was done about it (recollected, result reported
    /// with a disclaimer, order cancelled…). Audited; an entry is resolved once.
    pub async fn resolve_problem(
        &self,
        actor: &Actor,
        id: i64,
        resolution: &str,
    ) -> AppResult<ProblemView> {
        actor.require(Permission::SpecimenProcess)?;
        let resolution = required_text("resolution", resolution, 500)?;
        let mut tx = self.store.begin().await?;
        if !tx
            .resolve_problem(id, self.now(), &actor.username, &resolution)
            .await?
        {
            return Err(AppError::NotFound {
                entity: "open problem-log entry",
            });
        }
        tx.audit(self.entry(
            actor,
            "problem.resolve",
            "problem",
            id,
            Some(json!({"resolved": false})),
            Some(json!({"resolved": true, "resolution": resolution})),
            None,
        ));
        tx.commit().await?;
        self.store
            .problem_by_id(id)
            .await?
            .map(problem_view)
            .ok_or(AppError::NotFound {
                entity: "problem-log entry",
            })
    }

    /// Completes a recollection task with the specimen drawn instead. The replacement must be
    /// a specimen of the same patient that has been collected; audited.
    pub async fn complete_recollect_task(
        &self,
        actor: &Actor,
        id: i64,
        replacement_accession: &str,
    ) -> AppResult<RecollectTaskView> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(replacement_accession)
            .map_err(|e| e.with_field("replacement_accession"))?;
        let task = self
            .store
            .recollect_task_by_id(id)
            .await?
            .filter(|t| t.done_at.is_none())
            .ok_or(AppError::NotFound {
                entity: "open recollection task",
            })?;
        let mut tx = self.store.begin().await?;
        let replacement = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(|| {
                AppError::invalid(
                    "replacement_accession",
                    "unknown_specimen",
                    "no specimen has this accession number",
                )
            })?;
        let rejected = tx
            .specimen_by_accession(&task.accession)
            .await?
            .ok_or_else(not_found)?;
        if replacement.patient_id != rejected.patient_id {
            return Err(AppError::invalid(
                "replacement_accession",
                "patient_mismatch",
                "the replacement specimen belongs to another patient",
            ));
        }
        if matches!(
            state_of(&replacement)?,
            SpecimenState::Planned | SpecimenState::Cancelled | SpecimenState::Rejected
        ) {
            return Err(AppError::invalid(
                "replacement_accession",
                "replacement_not_collected",
                "the replacement specimen has not been collected (or was itself rejected)",
            ));
        }
        if !tx
            .complete_recollect_task(id, self.now(), &actor.username, acc.as_str())
            .await?
        {
            return Err(changed_meanwhile());
        }
        // Pending tests still on the rejected tube go with the recollection to its
        // replacement, when it is a tube of the same order.
        let mut moved = Vec::new();
        if replacement.order_id == rejected.order_id {
            moved = pending_tests_on(&mut tx, &rejected).await?;
            if !moved.is_empty() {
                let n = tx.move_tests(rejected.id, replacement.id, &moved).await?;
                if n != moved.len() as u64 {
                    return Err(changed_meanwhile());
                }
            }
        }
        tx.audit(self.entry(
            actor,
            "recollect_task.complete",
            "recollect_task",
            id,
            Some(json!({"done": false})),
            Some(json!({"done": true, "replacement_accession": acc.as_str(),
                "rejected_accession": task.accession, "tests_moved": moved})),
            None,
        ));
        tx.commit().await?;
        self.store
            .recollect_task_by_id(id)
            .await?
            .map(task_view)
            .ok_or(AppError::NotFound {
                entity: "recollection task",
            })
    }
}
