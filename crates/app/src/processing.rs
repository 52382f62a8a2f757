//! Processing and routing (issue 4): start and complete processing, centrifugation (RCF,
//! clotting time of serum tubes), aliquots (child specimens with their own accession suffix,
//! lineage both ways, volume never above the parent's), dilutions kept for the results step,
//! and the sorting view (departments from the catalogue, aliquot plans, STAT first). Every
//! change is guarded, and written with a custody event and an audit entry in one transaction.

use std::collections::{BTreeSet, HashMap};

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{ContainerCode, ContainerType, Department, Priority, SpecimenType};
use aliquot_domain::ids::AccessionNumber;
use aliquot_domain::order::TestCode;
use aliquot_domain::routing::{RoutedTest, SharingPolicy, plan_routing, sort_key};
use aliquot_domain::specimen::processing::{
    ProcessingError, SPIN_MINUTES, check_child_container, check_dilution, check_separated,
    check_spin, default_child_container,
};
use aliquot_domain::specimen::stability::{Phase, StabilityFinding, judge};
use aliquot_domain::specimen::{
    COLLECTION_CLOCK_SKEW, CentrifugationError, CentrifugationRecord, DilutionFactor, Event,
    SpecimenState, check_aliquot, min_clot_time, rcf_from_rpm, transition,
};
use aliquot_store::{
    CentrifugationRecord as SpinRecord, DilutionRecord, SpecimenChange, SpecimenRecord, Tx,
};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;

use crate::catalog::definition;
use crate::patients::invalid;
use crate::specimens::{
    SpecimenDetail, Transition, changed_meanwhile, container_by_code, free_text, not_found,
    parse_accession, required_text, state_of, transition_conflict,
};
use crate::{Actor, App, AppError, AppResult};

/// A centrifugation as entered: RCF directly, or rpm with the rotor radius.
#[derive(Debug, Clone, Default)]
pub struct CentrifugationInput {
    pub centrifuge_id: String,
    pub rcf_g: Option<i64>,
    pub rpm: Option<i64>,
    pub radius_cm: Option<f64>,
    pub minutes: i64,
    pub temperature_c: f64,
    /// RFC 3339; default now.
    pub started_at: Option<String>,
}

/// An aliquot to pour from a specimen.
#[derive(Debug, Clone, Default)]
pub struct AliquotInput {
    pub volume_ul: i64,
    /// Default: the parent's container.
    pub container: Option<String>,
    /// Tests of the parent moved to the child.
    pub tests: Option<Vec<String>>,
}

/// A dilution: `1:10` or `10`, optionally for one test, with the diluent used.
#[derive(Debug, Clone, Default)]
pub struct DilutionInput {
    pub factor: String,
    pub test_code: Option<String>,
    pub diluent: Option<String>,
}

/// An aliquot in a lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliquotChildView {
    pub accession: String,
    pub volume_ul: i64,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentrifugationView {
    pub id: i64,
    pub centrifuge_id: String,
    pub rcf_g: i64,
    pub minutes: i64,
    pub temperature_c: String,
    pub started_at: Timestamp,
    pub operator_name: String,
    pub recorded_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DilutionView {
    pub id: i64,
    /// `1:N`.
    pub factor: String,
    pub test_code: Option<String>,
    pub diluent: Option<String>,
    pub recorded_at: Timestamp,
    pub actor_name: String,
}

/// A specimen's parent and children, with its centrifugations and dilutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageView {
    pub accession: String,
    pub status: String,
    pub volume_ul: i64,
    pub parent: Option<String>,
    pub children: Vec<AliquotChildView>,
    pub centrifugations: Vec<CentrifugationView>,
    pub dilutions: Vec<DilutionView>,
}

/// A suggested aliquot for departments that can't work from the primary tube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliquotPlanView {
    pub departments: Vec<String>,
    pub tests: Vec<String>,
    /// Sum of the tests' minimum volumes.
    pub volume_ul: i64,
}

/// One line of the sorting view: where a specimen goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortingEntry {
    pub accession: String,
    pub status: String,
    pub priority: String,
    pub received_at: Timestamp,
    pub container: String,
    pub specimen_type: String,
    pub volume_ul: i64,
    /// Every department that needs the specimen.
    pub departments: Vec<String>,
    /// Departments working from the primary tube (the first keeps it).
    pub primary: Vec<String>,
    pub primary_tests: Vec<String>,
    pub aliquots: Vec<AliquotPlanView>,
}

/// The states a sorting view lists (`status`; both when not given).
pub const SORTING_STATUSES: [&str; 2] = ["received", "in_process"];

/// Most specimens in one sorting view (and its default).
pub const MAX_SORTING: i64 = 1_000;

fn names(ds: &[Department]) -> Vec<String> {
    ds.iter().map(|d| d.as_str().to_owned()).collect()
}

fn codes(ts: &[TestCode]) -> Vec<String> {
    ts.iter().map(|t| t.as_str().to_owned()).collect()
}

fn spin_error(e: CentrifugationError) -> AppError {
    let field = match e {
        CentrifugationError::Duration { .. } => "minutes",
        _ => e.field().unwrap_or("started_at"),
    };
    AppError::invalid(field, e.code(), e.to_string())
}

pub(crate) fn processing_error(e: ProcessingError) -> AppError {
    match e {
        ProcessingError::GelRespin { .. } | ProcessingError::DilutionState { .. } => {
            AppError::Conflict {
                field: e.field().map(str::to_owned),
                code: e.code(),
                message: e.to_string(),
            }
        }
        _ => AppError::invalid(e.field().unwrap_or("accession"), e.code(), e.to_string()),
    }
}

fn parse_started_at(input: Option<&str>, now: Timestamp) -> AppResult<Timestamp> {
    let Some(text) = input else {
        return Ok(now);
    };
    let t: Timestamp = text.trim().parse().map_err(|_| {
        AppError::invalid(
            "started_at",
            "started_at_format",
            "an RFC 3339 time, e.g. 2026-05-01T08:00:00Z",
        )
    })?;
    let t = Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t);
    if t > now + COLLECTION_CLOCK_SKEW {
        return Err(AppError::invalid(
            "started_at",
            "started_at_in_future",
            "the centrifugation can't start in the future",
        ));
    }
    Ok(t)
}

/// RCF in g from the input: `rcf_g`, or `rpm` with `radius_cm` (never both).
fn rcf_of(input: &CentrifugationInput) -> AppResult<u32> {
    let range = |field: &str, what: &str| {
        AppError::invalid(field, "centrifugation_speed", format!("{field}: {what}"))
    };
    match (input.rcf_g, input.rpm, input.radius_cm) {
        (Some(g), None, None) => u32::try_from(g).map_err(|_| range("rcf_g", "out of range")),
        (None, Some(rpm), Some(radius)) => {
            let rpm = u32::try_from(rpm)
                .ok()
                .filter(|r| (1..=100_000).contains(r))
                .ok_or_else(|| range("rpm", "1 to 100000"))?;
            if !radius.is_finite() || radius <= 0.0 || radius > 100.0 {
                return Err(range("radius_cm", "above 0 and at most 100 cm"));
            }
            let radius =
                Decimal::try_from(radius).map_err(|_| range("radius_cm", "not a number"))?;
            rcf_from_rpm(radius, rpm)
                .and_then(|g| g.round().to_u32())
                .ok_or_else(|| range("rpm", "out of range"))
        }
        _ => Err(AppError::invalid(
            "rcf_g",
            "centrifugation_speed",
            "give rcf_g (g), or rpm with radius_cm, not both",
        )),
    }
}

impl App {
    /// Re-writes a specimen's own status, only while it is still `s.status`: the guard of a
    /// change that keeps the status (centrifugation, dilution). False when it changed.
    pub(crate) async fn guard_unchanged(
        &self,
        tx: &mut Box<dyn Tx>,
        s: &SpecimenRecord,
    ) -> AppResult<bool> {
        Ok(tx
            .change_specimen(&SpecimenChange {
                id: s.id,
                from: s.status.clone(),
                to: s.status.clone(),
                collected_at: None,
                temperature: None,
                volume_ul: None,
            })
            .await?)
    }

    async fn status_change(
        &self,
        actor: &Actor,
        accession: &str,
        kind: &str,
        event: impl FnOnce(&SpecimenRecord, bool) -> AppResult<Event>,
        needs_spin_record: bool,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        // An aliquot poured from a spun tube is already serum or plasma; so is a tube the draw
        // site spun.
        let centrifuged = needs_spin_record && self.separated(&mut tx, &s).await?;
        let next =
            transition(state_of(&s)?, &event(&s, centrifuged)?).map_err(transition_conflict)?;
        self.change_status(&mut tx, &s, next, None).await?;
        let details = if needs_spin_record {
            json!({"centrifuged": centrifuged})
        } else {
            json!({})
        };
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind,
                next: next.as_str(),
                details,
                location: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Received → in process.
    pub async fn start_processing(
        &self,
        actor: &Actor,
        accession: &str,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "start_processing",
            accession,
            self.start_processing_inner(actor, accession),
        )
        .await
    }

    async fn start_processing_inner(
        &self,
        actor: &Actor,
        accession: &str,
    ) -> AppResult<SpecimenDetail> {
        self.status_change(
            actor,
            accession,
            "start_processing",
            |_, _| Ok(Event::StartProcessing),
            false,
        )
        .await
    }

    /// In process → processed; serum and plasma need a centrifugation record (of the
    /// specimen, or of the tube an aliquot was poured from).
    pub async fn complete_processing(
        &self,
        actor: &Actor,
        accession: &str,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "complete_processing",
            accession,
            self.complete_processing_inner(actor, accession),
        )
        .await
    }

    async fn complete_processing_inner(
        &self,
        actor: &Actor,
        accession: &str,
    ) -> AppResult<SpecimenDetail> {
        self.status_change(
            actor,
            accession,
            "complete_processing",
            |s, centrifuged| {
                let specimen_type = SpecimenType::parse(&s.specimen_type).map_err(|_| {
                    AppError::Internal(format!("specimen {} has no valid type", s.id))
                })?;
                Ok(Event::CompleteProcessing {
                    specimen_type,
                    centrifuged,
                })
            },
            true,
        )
        .await
    }

    /// Records a centrifugation (RCF, not rpm; the operator is the actor). Serum tubes must
    /// have clotted long enough since collection. The status stays; a custody event is written.
    pub async fn centrifuge_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: CentrifugationInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "centrifuge",
            accession,
            self.centrifuge_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn centrifuge_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: CentrifugationInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let centrifuge_id = required_text("centrifuge_id", &input.centrifuge_id, 50)?;
        let rcf = rcf_of(&input)?;
        if !SPIN_MINUTES.contains(&input.minutes) {
            return Err(AppError::invalid(
                "minutes",
                "centrifugation_duration",
                format!(
                    "the spin time must be between {} and {} minutes",
                    SPIN_MINUTES.start(),
                    SPIN_MINUTES.end()
                ),
            ));
        }
        if !input.temperature_c.is_finite() || !(-30.0..=50.0).contains(&input.temperature_c) {
            return Err(AppError::invalid(
                "temperature_c",
                "temperature_c_range",
                "the centrifuge temperature must be between -30 and 50 °C",
            ));
        }
        let now = self.now();
        let started_at = parse_started_at(input.started_at.as_deref(), now)?;
        let record =
            CentrifugationRecord::new(started_at, rcf, SignedDuration::from_mins(input.minutes))
                .map_err(spin_error)?;

        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let next = transition(state_of(&s)?, &Event::Centrifuge).map_err(transition_conflict)?;
        let container = container_by_code(&s.container)
            .ok_or_else(|| AppError::Internal(format!("specimen {}: container", s.id)))?;
        // The container's protocol; a gel tube is spun once (issue 10 item 9).
        let earlier = tx.centrifugations(s.id).await?.len();
        check_spin(&container, earlier, record.rcf_g(), input.minutes).map_err(processing_error)?;
        match s.collected_at {
            Some(collected_at) => {
                if started_at < collected_at {
                    return Err(AppError::invalid(
                        "started_at",
                        "started_before_collection",
                        "the centrifugation can't start before the collection",
                    ));
                }
                record
                    .check_clotting(collected_at, container.additive)
                    .map_err(spin_error)?;
                if earlier == 0 {
                    self.check_separation_in_time(&s, collected_at, started_at)
                        .await?;
                }
            }
            None if min_clot_time(container.additive).is_some() => {
                return Err(AppError::invalid(
                    "started_at",
                    "collection_time_unknown",
                    "the clotting time can't be checked without a collection time",
                ));
            }
            None => {}
        }
        if !self.guard_unchanged(&mut tx, &s).await? {
            return Err(changed_meanwhile());
        }
        let temperature_c = input.temperature_c.to_string();
        let id = tx
            .insert_centrifugation(&SpinRecord {
                id: 0,
                specimen_id: s.id,
                centrifuge_id: centrifuge_id.clone(),
                rcf_g: i64::from(record.rcf_g()),
                minutes: input.minutes,
                temperature_c: temperature_c.clone(),
                started_at,
                operator_id: actor.user_id,
                operator_name: actor.username.clone(),
                recorded_at: now,
            })
            .await?;
        let details = json!({"centrifugation_id": id, "centrifuge_id": centrifuge_id,
            "rcf_g": record.rcf_g(), "minutes": input.minutes, "temperature_c": temperature_c,
            "started_at": started_at.to_string()});
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "centrifuge",
                next: next.as_str(),
                details,
                location: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Pours an aliquot: a child specimen `<parent>-NN` of the same patient and order, status
    /// received, with the tests moved to it; the parent's volume goes down. The children never
    /// add up to more than the parent had. Custody events on both, audited.
    pub async fn aliquot_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: AliquotInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "aliquot",
            accession,
            self.aliquot_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn aliquot_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: AliquotInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let requested = u32::try_from(input.volume_ul)
            .ok()
            .filter(|v| *v <= 1_000_000)
            .ok_or_else(|| AppError::invalid("volume_ul", "volume_range", "0 to 1000000 µL"))?;
        let container = match input.container.as_deref().map(str::trim) {
            None => None,
            Some(code) => {
                let code = ContainerCode::parse(code)
                    .map_err(|e| invalid(&e, "", "container").with_field("container"))?;
                Some(container_by_code(code.as_str()).ok_or_else(|| {
                    AppError::invalid("container", "unknown_container", "no such container")
                })?)
            }
        };
        let mut moved: Vec<String> = Vec::new();
        for (i, t) in input.tests.unwrap_or_default().iter().enumerate() {
            let field = format!("tests[{i}]");
            let code = TestCode::parse(t.trim())
                .map_err(|e| invalid(&e, "", "tests").with_field(&field))?;
            if moved.iter().any(|m| m == code.as_str()) {
                return Err(AppError::invalid(
                    &field,
                    "test_duplicate",
                    "a test is listed twice",
                ));
            }
            moved.push(code.as_str().to_owned());
        }

        let mut tx = self.store.begin().await?;
        let parent = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        transition(state_of(&parent)?, &Event::Aliquot).map_err(transition_conflict)?;
        // Only separated serum or plasma is poured, into a container that suits it.
        let specimen_type = SpecimenType::parse(&parent.specimen_type)
            .map_err(|_| AppError::Internal(format!("specimen {}: type", parent.id)))?;
        check_separated(specimen_type, self.separated(&mut tx, &parent).await?)
            .map_err(processing_error)?;
        let container = match container {
            Some(c) => c,
            None => default_child_container(&ContainerType::defaults(), specimen_type)
                .cloned()
                .ok_or_else(|| {
                    AppError::invalid(
                        "container",
                        "aliquot_container_unsuitable",
                        format!("no container of the catalogue takes a {specimen_type} aliquot"),
                    )
                })?,
        };
        check_child_container(&container, specimen_type).map_err(processing_error)?;
        let children = tx.specimen_children(parent.id).await?;
        let poured: Vec<u32> = children
            .iter()
            .map(|c| u32::try_from(c.volume_ul).unwrap_or(u32::MAX))
            .collect();
        let poured_total: i64 = children.iter().map(|c| c.volume_ul).sum();
        let parent_total = u32::try_from(parent.volume_ul + poured_total).unwrap_or(u32::MAX);
        check_aliquot(parent_total, &poured, requested)
            .map_err(|e| invalid(&e, "", "volume_ul"))?;
        if requested > container.nominal_volume_ul {
            return Err(AppError::invalid(
                "volume_ul",
                "aliquot_exceeds_container",
                format!(
                    "the {} holds at most {} µL",
                    container.code.as_str(),
                    container.nominal_volume_ul
                ),
            ));
        }
        let used: BTreeSet<u8> = children
            .iter()
            .filter_map(|c| AccessionNumber::parse(&c.accession).ok()?.aliquot_index())
            .collect();
        let index = (1..=AccessionNumber::MAX_ALIQUOT)
            .find(|n| !used.contains(n))
            .ok_or(AppError::Conflict {
                field: Some("volume_ul".into()),
                code: "aliquot_too_many",
                message: "the accession suffix allows at most 99 aliquots".into(),
            })?;
        let child_acc = acc.child(index).map_err(|e| AppError::Conflict {
            field: Some("accession".into()),
            code: e.code(),
            message: e.to_string(),
        })?;
        let parent_tests: Vec<String> = tx
            .tests_of_order(parent.order_id)
            .await?
            .into_iter()
            .filter(|t| t.specimen_id == parent.id)
            .map(|t| t.test_code)
            .collect();
        if let Some(i) = moved.iter().position(|m| !parent_tests.contains(m)) {
            return Err(AppError::invalid(
                &format!("tests[{i}]"),
                "test_not_on_specimen",
                format!("{} is not a test of {}", moved[i], parent.accession),
            ));
        }
        let volume = i64::from(requested);
        if !tx.take_volume(parent.id, &parent.status, volume).await? {
            return Err(changed_meanwhile());
        }
        let now = self.now();
        let mut child = SpecimenRecord {
            id: 0,
            accession: child_acc.as_str().to_owned(),
            order_id: parent.order_id,
            patient_id: parent.patient_id,
            container: container.code.as_str().to_owned(),
            specimen_type: parent.specimen_type.clone(),
            draw_rank: parent.draw_rank,
            status: SpecimenState::Received.as_str().to_owned(),
            volume_ul: volume,
            capacity_ul: i64::from(container.nominal_volume_ul),
            created_at: now,
            collected_at: parent.collected_at,
            temperature: parent.temperature.clone(),
            demand_ul: 0,
            received_container: None,
        };
        child.id = tx.insert_aliquot(&child, parent.id).await?;
        let n = tx.move_tests(parent.id, child.id, &moved).await?;
        if n != moved.len() as u64 {
            return Err(changed_meanwhile());
        }
        let details = json!({"child": child.accession, "volume_ul": volume,
            "remaining_volume_ul": parent.volume_ul - volume,
            "container": child.container, "tests": moved});
        self.record_transition(
            &mut tx,
            actor,
            &parent,
            Transition {
                kind: "aliquot",
                next: &parent.status,
                details,
                location: None,
            },
        )
        .await?;
        let details = json!({"parent": parent.accession, "volume_ul": volume,
            "container": child.container, "tests": moved});
        tx.insert_specimen_event(&self.custody(
            actor,
            &child,
            "aliquot",
            &child.status,
            details.clone(),
            None,
        ))
        .await?;
        let mut new = details;
        new["status"] = json!(child.status);
        tx.audit(self.entry(
            actor,
            "specimen.aliquot_created",
            "specimen",
            &child.accession,
            None,
            Some(new),
            None,
        ));
        tx.commit().await?;
        self.reload(&child.accession).await
    }

    /// Records a dilution (factor `1:N`) for the results step to apply; the status stays.
    pub async fn dilute_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: DilutionInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "dilution",
            accession,
            self.dilute_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn dilute_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: DilutionInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let factor = DilutionFactor::parse(&input.factor)
            .map_err(|e| invalid(&e, "", "factor").with_field("factor"))?;
        let test_code = input
            .test_code
            .as_deref()
            .map(|t| {
                TestCode::parse(t.trim())
                    .map_err(|e| invalid(&e, "", "test_code").with_field("test_code"))
            })
            .transpose()?;
        let diluent = free_text("diluent", input.diluent.as_deref(), 100)?;

        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let state = state_of(&s)?;
        transition(state, &Event::Aliquot).map_err(|e| AppError::Conflict {
            field: e.field().map(str::to_owned),
            code: e.code(),
            message: format!("a specimen that is {state} can't be diluted"),
        })?;
        // A dilution is made from a specimen in process or processed (not one only received),
        // separated when it is serum or plasma (issue 10 item 10).
        let specimen_type = SpecimenType::parse(&s.specimen_type)
            .map_err(|_| AppError::Internal(format!("specimen {}: type", s.id)))?;
        let separated = self.separated(&mut tx, &s).await?;
        check_dilution(state, specimen_type, separated).map_err(processing_error)?;
        if let Some(code) = &test_code {
            let on_specimen = tx
                .tests_of_order(s.order_id)
                .await?
                .iter()
                .any(|t| t.specimen_id == s.id && t.test_code == code.as_str());
            if !on_specimen {
                return Err(AppError::invalid(
                    "test_code",
                    "test_not_on_specimen",
                    format!("{} is not a test of {}", code.as_str(), s.accession),
                ));
            }
        }
        if !self.guard_unchanged(&mut tx, &s).await? {
            return Err(changed_meanwhile());
        }
        let now = self.now();
        let id = tx
            .insert_dilution(&DilutionRecord {
                id: 0,
                specimen_id: s.id,
                factor: factor.to_string(),
                test_code: test_code.as_ref().map(|t| t.as_str().to_owned()),
                diluent: diluent.clone(),
                recorded_at: now,
                actor_id: actor.user_id,
                actor_name: actor.username.clone(),
            })
            .await?;
        let details = json!({"dilution_id": id, "factor": factor.to_string(),
            "test_code": test_code.as_ref().map(|t| t.as_str()), "diluent": diluent});
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "dilution",
                next: &s.status,
                details,
                location: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Whether the tube, or the tube it was poured from, was spun (or arrived spun).
    pub(crate) async fn separated(
        &self,
        tx: &mut Box<dyn Tx>,
        s: &SpecimenRecord,
    ) -> AppResult<bool> {
        if !tx.centrifugations(s.id).await?.is_empty() {
            return Ok(true);
        }
        if let Some(p) = tx.specimen_parent(s.id).await?
            && !tx.centrifugations(p.id).await?.is_empty()
        {
            return Ok(true);
        }
        Ok(self.specimen_history(s).await?.separated_at.is_some())
    }

    /// The first spin of a serum or plasma tube must come within each test's unspun
    /// stability (CLSI GP44: 2 h for most; 15–30 min for lactate): a later spin is refused
    /// (422 `separation_late`, naming the tests); reject the tube, or mark those tests not
    /// performed.
    async fn check_separation_in_time(
        &self,
        s: &SpecimenRecord,
        collected_at: Timestamp,
        started_at: Timestamp,
    ) -> AppResult<()> {
        let history = self.specimen_history(s).await?;
        let mut late = Vec::new();
        for (test_code, rule) in self.test_rules(s).await? {
            let findings = judge(
                collected_at,
                Some(started_at),
                &history.segments,
                started_at,
                &rule,
            );
            let too_late = findings.iter().any(|f| {
                matches!(
                    f,
                    StabilityFinding::Exceeded {
                        phase: Phase::Unspun,
                        ..
                    } | StabilityFinding::TemperatureNotAllowed {
                        phase: Phase::Unspun,
                        ..
                    }
                )
            });
            if too_late {
                late.push(test_code.as_str().to_owned());
            }
        }
        if late.is_empty() {
            return Ok(());
        }
        Err(AppError::invalid(
            "started_at",
            "separation_late",
            format!(
                "spun {} after the draw: too late for {} (unspun stability, CLSI GP44); reject \
                 the tube or mark those tests not performed",
                aliquot_domain::duration::human(&started_at.duration_since(collected_at)),
                late.join(", ")
            ),
        ))
    }

    /// The children poured from a specimen (for the specimen detail and the lineage).
    pub(crate) async fn children_of(&self, specimen_id: i64) -> AppResult<Vec<AliquotChildView>> {
        Ok(self
            .store
            .specimen_children(specimen_id)
            .await?
            .into_iter()
            .map(|c| AliquotChildView {
                accession: c.accession,
                volume_ul: c.volume_ul,
                status: c.status,
            })
            .collect())
    }

    /// A specimen's parent and children, centrifugations and dilutions. Access-logged.
    pub async fn specimen_lineage(&self, actor: &Actor, accession: &str) -> AppResult<LineageView> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let s = self
            .store
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let parent = self.store.specimen_parent(s.id).await?.map(|p| p.accession);
        let children = self.children_of(s.id).await?;
        let centrifugations = self
            .store
            .centrifugations(s.id)
            .await?
            .into_iter()
            .map(|c| CentrifugationView {
                id: c.id,
                centrifuge_id: c.centrifuge_id,
                rcf_g: c.rcf_g,
                minutes: c.minutes,
                temperature_c: c.temperature_c,
                started_at: c.started_at,
                operator_name: c.operator_name,
                recorded_at: c.recorded_at,
            })
            .collect();
        let dilutions = self
            .store
            .dilutions(s.id)
            .await?
            .into_iter()
            .map(|d| DilutionView {
                id: d.id,
                factor: d.factor,
                test_code: d.test_code,
                diluent: d.diluent,
                recorded_at: d.recorded_at,
                actor_name: d.actor_name,
            })
            .collect();
        self.store
            .record_access(&self.access(
                actor,
                "specimen.lineage",
                "specimen",
                acc.as_str(),
                vec![s.patient_id],
            ))
            .await?;
        Ok(LineageView {
            accession: s.accession,
            status: s.status,
            volume_ul: s.volume_ul,
            parent,
            children,
            centrifugations,
            dilutions,
        })
    }

    /// The sorting view: received (`status` = `received`), in-process (`in_process`) or both
    /// (default) specimens with the departments their tests go to and the aliquots to pour,
    /// STAT first, then ASAP, timed, routine, oldest receipt first. At most `limit` (default
    /// and maximum 1000). Access-logged.
    pub async fn sorting_view(
        &self,
        actor: &Actor,
        status: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<Vec<SortingEntry>> {
        actor.require(Permission::SpecimenProcess)?;
        let (a, b) = match status.map(str::trim) {
            None => (SORTING_STATUSES[0], SORTING_STATUSES[1]),
            Some(s) if SORTING_STATUSES.contains(&s) => (s, s),
            Some(_) => {
                return Err(AppError::invalid(
                    "status",
                    "sorting_status",
                    "received or in_process",
                ));
            }
        };
        let limit = limit.unwrap_or(MAX_SORTING);
        if !(1..=MAX_SORTING).contains(&limit) {
            return Err(AppError::invalid(
                "limit",
                "limit_range",
                format!("1 to {MAX_SORTING}"),
            ));
        }
        let mut catalog: HashMap<String, (Department, u32)> = HashMap::new();
        for entry in self.store.list_catalog(true).await? {
            let def = definition(&entry)?;
            if def.is_panel() {
                continue;
            }
            if let Ok(t) = def.ordered_test() {
                catalog.insert(def.code.clone(), (t.department, t.min_volume_ul));
            }
        }
        let rows = self.store.sorting_list(a, b, limit).await?;
        let policy = SharingPolicy::default();
        let mut keyed = Vec::with_capacity(rows.len());
        let mut patients = BTreeSet::new();
        for r in rows {
            patients.insert(r.patient_id);
            let internal =
                |what: &str| AppError::Internal(format!("specimen {}: {what}", r.specimen_id));
            let priority = Priority::parse(&r.priority).map_err(|_| internal("priority"))?;
            let accession =
                AccessionNumber::parse(&r.accession).map_err(|_| internal("accession"))?;
            let routed: Vec<RoutedTest> = r
                .tests
                .iter()
                .filter_map(|code| {
                    let (department, _) = catalog.get(code)?;
                    Some(RoutedTest {
                        test_code: TestCode::parse(code).ok()?,
                        department: *department,
                    })
                })
                .collect();
            let mut entry = SortingEntry {
                accession: r.accession.clone(),
                status: r.status,
                priority: r.priority,
                received_at: r.received_at,
                container: r.container,
                specimen_type: r.specimen_type,
                volume_ul: r.volume_ul,
                departments: Vec::new(),
                primary: Vec::new(),
                primary_tests: Vec::new(),
                aliquots: Vec::new(),
            };
            // A specimen without tests (e.g. an aliquot poured for storage) goes nowhere.
            if let Ok(plan) = plan_routing(&routed, &policy) {
                entry.departments = plan
                    .departments
                    .iter()
                    .map(|d| d.as_str().to_owned())
                    .collect();
                entry.primary = names(&plan.primary);
                entry.primary_tests = codes(&plan.primary_tests);
                entry.aliquots = plan
                    .aliquots
                    .iter()
                    .map(|a| AliquotPlanView {
                        departments: names(&a.departments),
                        tests: codes(&a.tests),
                        volume_ul: a
                            .tests
                            .iter()
                            .filter_map(|t| catalog.get(t.as_str()))
                            .map(|(_, v)| i64::from(*v))
                            .sum(),
                    })
                    .collect();
            }
            keyed.push((sort_key(priority, r.received_at, &accession), entry));
        }
        keyed.sort_by(|x, y| x.0.cmp(&y.0));
        self.store
            .record_access(&self.access(
                actor,
                "specimen.sorting",
                "sorting",
                a,
                patients.into_iter().collect(),
            ))
            .await?;
        Ok(keyed.into_iter().map(|(_, e)| e).collect())
    }
}
