//! Storage, transport, send-out and disposal (issue 4, items 6 and 7).
//!
//! - **Holders** are registered top-down (room → refrigerator/freezer → rack → box), each with
//!   a kind that fits its level and an optional grid; occupancy counts every specimen stored
//!   in a holder or below it.
//! - **Store** (processed → stored) needs a registered holder and, for a gridded holder, a cell
//!   inside the grid; the position is taken by inserting a placement, and a partial unique
//!   index on the occupied positions makes sure a position holds one specimen even when two
//!   requests (or two servers) race. **Retrieve** (stored → processed) and **dispose** end the
//!   placement; the placement rows stay as the storage history.
//! - **Retention** by specimen type and use (issue 10 item 8): the domain's defaults,
//!   overridden by configured periods per type and per (type, department or test), audited with
//!   old and new value and a reason; a specimen is kept for the longest period of its type and
//!   uses (`aliquot_domain::storage::retention`). Types without a period, and irreplaceable
//!   specimens (CSF, tissue, bone marrow, body fluids), are never due: a person decides.
//! - **Disposal** (processed/stored/rejected → disposed) records the method. A lab must not
//!   discard a specimen it may still need for add-on tests or repeat testing (CAP retention,
//!   DOMAIN §7.2), but it must also be able to discard a broken, leaking or contaminated tube
//!   at once. So: a processed or stored specimen may be disposed of without comment once the
//!   retention since its latest storage has elapsed, a rejected one once it has elapsed since
//!   the rejection (the rejection may be disputed); before that, or when it was never stored,
//!   or it has no retention period, disposal needs a reason (409 `retention_not_elapsed`, field
//!   `reason`), and an irreplaceable specimen always does (409
//!   `disposal_decision_required`): the reason is kept in the chain of custody and the audit
//!   trail.
//! - **Dispatch** (collected → in transit) is the courier pickup: courier, from where, to
//!   where. Several tubes can be dispatched together under one manifest number, all or none.
//!   Delivery is the receipt in the lab (`receive`).
//! - **Send-out** (received/processed → sent out) hands the specimen to a registered
//!   reference lab that performs the tests sent and opens a `send_outs` row until its results
//!   come back; it is then packed into a shipment (`sendouts.rs`).
//!
//! Every status change writes a custody event and an audit entry in its transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{Department, SpecimenType, Stability, Temperature};
use aliquot_domain::order::TestCode;
use aliquot_domain::specimen::processing::check_storage_temperature;
use aliquot_domain::specimen::{
    Event, SendOutScope, SpecimenState, TestStatus, check_dispose, send_out_scope, transition,
};
use aliquot_domain::storage::retention::{Retention, RetentionRules, RetentionUse};
use aliquot_domain::storage::{
    HolderKind, HolderPath, RetentionTable, StorageLocation, check_fits, check_grid,
};
use aliquot_store::{
    PlacementRecord, RetentionPolicyRecord, RetentionUseRecord, SendOutRecord, SpecimenRecord,
    StorageUnitRecord, StoreError, StoredSpecimenRecord, Tx,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::patients::invalid;
use crate::processing::processing_error;
use crate::shown::ShowsPatient;
use crate::specimens::{
    SpecimenDetail, Transition, changed_meanwhile, free_text, not_found, parse_accession,
    parse_temperature, required_text, state_of, transition_conflict,
};
use crate::{Actor, App, AppError, AppResult, require_reason};

/// Ways a specimen is disposed of.
pub const DISPOSAL_METHODS: &[&str] = &["biohazard", "autoclave", "incineration", "chemical"];

/// The longest retention period that can be configured: ten years.
const MAX_RETENTION_HOURS: i64 = 24 * 365 * 10;
const LIST_LIMIT: i64 = 500;

#[derive(Debug, Clone, Default)]
pub struct NewStorageUnitInput {
    /// `room[/unit[/rack[/box]]]`.
    pub path: String,
    /// `room`, `refrigerator`, `freezer`, `rack`, `box`.
    pub kind: String,
    pub name: Option<String>,
    /// `room`, `refrigerated`, `frozen`; inherited from the enclosing holder when absent.
    pub temperature: Option<String>,
    pub rows: Option<i64>,
    pub cols: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUnitView {
    pub id: i64,
    pub path: String,
    pub parent_id: Option<i64>,
    pub kind: String,
    pub name: Option<String>,
    pub temperature: Option<String>,
    pub rows: Option<i64>,
    pub cols: Option<i64>,
    /// Positions of the grid; `None` without a grid.
    pub capacity: Option<i64>,
    /// Specimens stored in this holder or below it.
    pub used: i64,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// A specimen in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSpecimenView {
    pub accession: String,
    pub specimen_type: String,
    pub status: String,
    pub unit_id: i64,
    /// Full location path, e.g. `LAB1/FRZ-02/R3/B12/A7`.
    pub location: String,
    pub stored_at: Timestamp,
    pub stored_by: String,
}

/// Where a specimen is: its current storage location, if stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecimenLocationView {
    pub accession: String,
    pub status: String,
    pub location: Option<String>,
    pub unit_id: Option<i64>,
    pub stored_at: Option<Timestamp>,
    pub stored_by: Option<String>,
}

/// The retention period of a specimen type, or of a specimen type for one use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionView {
    pub specimen_type: String,
    /// The department the rule is for (a use rule), if any.
    pub department: Option<String>,
    /// The test the rule is for (a use rule), if any.
    pub test: Option<String>,
    /// Irreplaceable specimens of this type are kept until a person decides, whatever the
    /// period says.
    pub until_decided: bool,
    /// `None`: never due for disposal.
    pub hours: Option<i64>,
    /// `configured`, `default` or `none`.
    pub source: &'static str,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueView {
    pub stored: StoredSpecimenView,
    pub due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedView {
    pub accession: String,
    pub specimen_type: String,
    pub rejected_at: Option<Timestamp>,
    /// When it may be disposed of without a reason; `None`: kept until a person decides
    /// (irreplaceable, or no period).
    pub due_at: Option<Timestamp>,
}

/// What may be disposed of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisposalDueView {
    /// Stored specimens past their retention, oldest first.
    pub due: Vec<DueView>,
    /// Rejected specimens awaiting disposal, oldest rejection first.
    pub rejected: Vec<RejectedView>,
}

#[derive(Debug, Clone, Default)]
pub struct DisposeInput {
    pub method: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DispatchInput {
    pub courier: String,
    pub from_location: String,
    pub destination: String,
    /// The transport temperature; starts a `transport` segment of the temperature history.
    pub temperature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestView {
    pub manifest: String,
    pub accessions: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SendOutInput {
    /// The code of a registered reference laboratory that performs every test sent.
    pub reference_lab: String,
    /// A subset of the specimen's tests; all of them when absent.
    pub tests: Option<Vec<String>>,
    pub tracking: Option<String>,
    pub temperature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutView {
    pub id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub reference_lab: String,
    pub tests: Vec<String>,
    pub tracking: Option<String>,
    pub temperature: String,
    pub sent_at: Timestamp,
    pub sent_by: String,
    pub resulted_at: Option<Timestamp>,
    /// The shipment it was packed into, once packed.
    pub shipment_id: Option<i64>,
}

fn unit_view(u: StorageUnitRecord, used: i64) -> StorageUnitView {
    StorageUnitView {
        id: u.id,
        capacity: u.grid_rows.zip(u.grid_cols).map(|(r, c)| r * c),
        path: u.path,
        parent_id: u.parent_id,
        kind: u.kind,
        name: u.name,
        temperature: u.temperature,
        rows: u.grid_rows,
        cols: u.grid_cols,
        used,
        created_at: u.created_at,
        created_by: u.created_by,
    }
}

fn stored_view(r: StoredSpecimenRecord) -> StoredSpecimenView {
    StoredSpecimenView {
        accession: r.accession,
        specimen_type: r.specimen_type,
        status: r.status,
        unit_id: r.unit_id,
        location: format!("{}/{}", r.unit_path, r.position),
        stored_at: r.stored_at,
        stored_by: r.stored_by,
    }
}

/// The domain's type and use defaults overridden by the configured periods.
fn retention_rules(
    policies: &[RetentionPolicyRecord],
    uses: &[RetentionUseRecord],
) -> AppResult<RetentionRules> {
    let mut rules = RetentionRules::defaults();
    rules.by_type = effective_retention(policies)?;
    for u in uses {
        let bad = || AppError::Internal(format!("retention use policy {u:?}"));
        let t = SpecimenType::parse(&u.specimen_type).map_err(|_| bad())?;
        let usage = parse_use(&u.use_kind, &u.use_code).ok_or_else(bad)?;
        rules
            .set_use(t, usage, SignedDuration::from_hours(u.hours))
            .map_err(|_| bad())?;
    }
    Ok(rules)
}

fn parse_use(kind: &str, code: &str) -> Option<RetentionUse> {
    match kind {
        "department" => Department::parse(code).ok().map(RetentionUse::Department),
        "test" => TestCode::parse(code).ok().map(RetentionUse::Test),
        _ => None,
    }
}

/// The domain defaults overridden by the configured periods.
fn effective_retention(policies: &[RetentionPolicyRecord]) -> AppResult<RetentionTable> {
    let mut table = RetentionTable::defaults();
    for p in policies {
        let t = SpecimenType::parse(&p.specimen_type).map_err(|_| {
            AppError::Internal(format!("retention policy for {:?}", p.specimen_type))
        })?;
        table
            .set(t, SignedDuration::from_hours(p.hours))
            .map_err(|e| AppError::Internal(format!("retention policy: {e}")))?;
    }
    Ok(table)
}

pub(crate) fn placement_path(p: &PlacementRecord) -> String {
    format!("{}/{}", p.unit_path, p.position)
}

impl App {
    /// Registers a storage holder under its (already registered) enclosing holder.
    pub async fn register_storage_unit(
        &self,
        actor: &Actor,
        input: NewStorageUnitInput,
    ) -> AppResult<StorageUnitView> {
        actor.require(Permission::SpecimenProcess)?;
        let path = HolderPath::parse(input.path.trim())
            .map_err(|e| invalid(&e, "", "path").with_field("path"))?;
        let kind = HolderKind::parse(input.kind.trim())
            .map_err(|e| AppError::invalid("kind", "unknown_holder_kind", e.to_string()))?;
        path.check_kind(kind).map_err(|e| invalid(&e, "", "kind"))?;
        let grid = check_grid(input.rows, input.cols)
            .map_err(|e| invalid(&e, "", "rows").with_field("rows"))?;
        if grid.is_some() && !matches!(kind, HolderKind::Rack | HolderKind::Box) {
            return Err(AppError::invalid(
                "rows",
                "storage_grid",
                "only racks and boxes have a grid of positions",
            ));
        }
        let temperature = parse_temperature(input.temperature.as_deref())?;
        let name = free_text("name", input.name.as_deref(), 100)?;

        let mut tx = self.store.begin().await?;
        let parent = match path.parent() {
            None => None,
            Some(p) => Some(tx.storage_unit_by_path(&p).await?.ok_or_else(|| {
                AppError::invalid(
                    "path",
                    "storage_parent_unknown",
                    format!("register the enclosing holder {p} first"),
                )
            })?),
        };
        let exists = || AppError::Conflict {
            field: Some("path".into()),
            code: "storage_unit_exists",
            message: format!("a holder is already registered at {path}"),
        };
        if tx.storage_unit_by_path(&path.to_string()).await?.is_some() {
            return Err(exists());
        }
        let mut unit = StorageUnitRecord {
            id: 0,
            path: path.to_string(),
            parent_id: parent.as_ref().map(|p| p.id),
            kind: kind.as_str().to_owned(),
            name,
            temperature: temperature
                .map(|t| t.as_str().to_owned())
                .or_else(|| parent.and_then(|p| p.temperature)),
            grid_rows: grid.map(|g| i64::from(g.0)),
            grid_cols: grid.map(|g| i64::from(g.1)),
            created_at: self.now(),
            created_by: actor.username.clone(),
        };
        unit.id = match tx.insert_storage_unit(&unit).await {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => return Err(exists()),
            Err(e) => return Err(e.into()),
        };
        tx.audit(self.entry(
            actor,
            "storage.unit_register",
            "storage_unit",
            &unit.path,
            None,
            Some(json!({"id": unit.id, "kind": unit.kind, "name": unit.name,
                "temperature": unit.temperature, "rows": unit.grid_rows, "cols": unit.grid_cols})),
            None,
        ));
        tx.commit().await?;
        Ok(unit_view(unit, 0))
    }

    /// Every holder with its occupancy (specimens in it or below it), by path.
    pub async fn storage_units(&self, actor: &Actor) -> AppResult<Vec<StorageUnitView>> {
        actor.require(Permission::SpecimenProcess)?;
        let units = self.store.storage_units().await?;
        let parents: HashMap<i64, Option<i64>> =
            units.iter().map(|u| (u.id, u.parent_id)).collect();
        let mut used: HashMap<i64, i64> = HashMap::new();
        for (unit_id, n) in self.store.placement_counts().await? {
            let mut at = Some(unit_id);
            while let Some(id) = at {
                *used.entry(id).or_default() += n;
                at = parents.get(&id).copied().flatten();
            }
        }
        Ok(units
            .into_iter()
            .map(|u| {
                let n = used.get(&u.id).copied().unwrap_or(0);
                unit_view(u, n)
            })
            .collect())
    }

    /// The specimens stored in a holder or below it, by location (at most 1000). Recorded in
    /// the access log.
    pub async fn storage_contents(
        &self,
        actor: &Actor,
        unit_id: i64,
    ) -> AppResult<Vec<StoredSpecimenView>> {
        actor.require(Permission::SpecimenProcess)?;
        let units = self.store.storage_units().await?;
        let unit = units
            .iter()
            .find(|u| u.id == unit_id)
            .ok_or(AppError::NotFound {
                entity: "storage unit",
            })?;
        let prefix = format!("{}/", unit.path);
        let ids: Vec<i64> = units
            .iter()
            .filter(|u| u.id == unit_id || u.path.starts_with(&prefix))
            .map(|u| u.id)
            .collect();
        let stored = self.store.stored_in(&ids, 1000).await?;
        Ok(self
            .worklist(actor, "storage.contents", "storage_unit", unit_id, stored)
            .await?
            .into_iter()
            .map(stored_view)
            .collect())
    }

    /// Where a specimen is stored. Recorded in the access log.
    pub async fn specimen_location(
        &self,
        actor: &Actor,
        accession: &str,
    ) -> AppResult<SpecimenLocationView> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let s = self
            .store
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let current = self
            .store
            .latest_placement(s.id)
            .await?
            .filter(|p| p.removed_at.is_none());
        self.store
            .record_access(&self.access(
                actor,
                "specimen.locate",
                "specimen",
                acc.as_str(),
                vec![s.patient_id],
            ))
            .await?;
        Ok(SpecimenLocationView {
            accession: s.accession,
            status: s.status,
            location: current.as_ref().map(placement_path),
            unit_id: current.as_ref().map(|p| p.unit_id),
            stored_at: current.as_ref().map(|p| p.stored_at),
            stored_by: current.map(|p| p.stored_by),
        })
    }

    /// Stores a processed specimen at `location` (`room/unit/rack[/box]/position`).
    pub async fn store_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        location: &str,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "store",
            accession,
            self.store_specimen_inner(actor, accession, location),
        )
        .await
    }

    async fn store_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        location: &str,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let loc = StorageLocation::parse(location.trim())
            .map_err(|e| invalid(&e, "", "location").with_field("location"))?;

        let mut tx = self.store.begin().await?;
        let holder = tx
            .storage_unit_by_path(&loc.holder_path())
            .await?
            .ok_or_else(|| {
                AppError::invalid(
                    "location",
                    "storage_unit_unknown",
                    format!("no holder is registered at {}", loc.holder_path()),
                )
            })?;
        let grid = match (holder.grid_rows, holder.grid_cols) {
            (Some(r), Some(c)) => Some((
                u16::try_from(r).unwrap_or(u16::MAX),
                u16::try_from(c).unwrap_or(u16::MAX),
            )),
            _ => None,
        };
        check_fits(&loc, grid).map_err(|e| invalid(&e, "", "location"))?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let next = transition(state_of(&s)?, &Event::Store).map_err(transition_conflict)?;
        // Not at a temperature a test on it does not allow (EDTA whole blood in a freezer).
        if let Some(t) = holder.temperature.as_deref() {
            let temperature = Temperature::parse(t)
                .map_err(|_| AppError::Internal(format!("holder {}: temperature", holder.id)))?;
            let specimen_type = SpecimenType::parse(&s.specimen_type)
                .map_err(|_| AppError::Internal(format!("specimen {}: type", s.id)))?;
            let tests: Vec<(TestCode, Stability)> = self
                .test_rules(&s)
                .await?
                .into_iter()
                .map(|(code, rule)| (code, rule.stability))
                .collect();
            check_storage_temperature(specimen_type, temperature, &tests)
                .map_err(processing_error)?;
        }
        self.change_status(&mut tx, &s, next, holder.temperature.clone())
            .await?;
        let position = loc.position().to_string();
        let placement = PlacementRecord {
            id: 0,
            specimen_id: s.id,
            unit_id: holder.id,
            unit_path: holder.path.clone(),
            position,
            stored_at: self.now(),
            stored_by: actor.username.clone(),
            removed_at: None,
            removed_by: None,
            removal: None,
            removal_reason: None,
        };
        let placement_id = match tx.insert_placement(&placement).await {
            Ok(id) => id,
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::Conflict {
                    field: Some("location".into()),
                    code: "storage_position_occupied",
                    message: format!("{loc} already holds a specimen"),
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "store",
                next: next.as_str(),
                details: json!({"location": loc.to_string(), "unit_id": holder.id,
                    "placement_id": placement_id, "temperature": holder.temperature}),
                location: Some(loc.to_string()),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Takes a stored specimen out of storage (stored → processed), freeing its position.
    pub async fn retrieve_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        reason: Option<&str>,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "retrieve",
            accession,
            self.retrieve_specimen_inner(actor, accession, reason),
        )
        .await
    }

    async fn retrieve_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        reason: Option<&str>,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let reason = free_text("reason", reason, 500)?;
        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let next = transition(state_of(&s)?, &Event::Retrieve).map_err(transition_conflict)?;
        self.change_status(&mut tx, &s, next, None).await?;
        let from = self
            .end_placement(&mut tx, actor, &s, "retrieve", reason.as_deref())
            .await?;
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "retrieve",
                next: next.as_str(),
                details: json!({"from": from, "reason": reason}),
                location: from.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Ends the specimen's current placement, if any; returns where it was.
    async fn end_placement(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        s: &SpecimenRecord,
        removal: &str,
        reason: Option<&str>,
    ) -> AppResult<Option<String>> {
        let Some(p) = tx
            .latest_placement(s.id)
            .await?
            .filter(|p| p.removed_at.is_none())
        else {
            return Ok(None);
        };
        if !tx
            .close_placement(p.id, self.now(), &actor.username, removal, reason)
            .await?
        {
            return Err(changed_meanwhile());
        }
        Ok(Some(placement_path(&p)))
    }

    /// Disposes of a specimen (processed/stored/rejected → disposed); see the module doc for
    /// when a reason is required.
    pub async fn dispose_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: DisposeInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "dispose",
            accession,
            self.dispose_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn dispose_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: DisposeInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let method = input.method.trim();
        if !DISPOSAL_METHODS.contains(&method) {
            return Err(AppError::invalid(
                "method",
                "unknown_disposal_method",
                format!("the method must be one of {}", DISPOSAL_METHODS.join(", ")),
            ));
        }
        let reason = free_text("reason", input.reason.as_deref(), 500)?;

        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let state = state_of(&s)?;
        let next = transition(state, &Event::Dispose).map_err(transition_conflict)?;
        // Tests must not vanish with the tube (issue 10 item 11).
        let tests = tx.tests_of_order(s.order_id).await?;
        let on_tube = statuses_on(&tests, s.id);
        check_dispose(&on_tube).map_err(|e| AppError::Conflict {
            field: None,
            code: e.code(),
            message: e.to_string(),
        })?;
        let now = self.now();
        let rules = retention_rules(
            &tx.retention_policies().await?,
            &tx.retention_use_policies().await?,
        )?;
        let specimen_type = SpecimenType::parse(&s.specimen_type)
            .map_err(|_| AppError::Internal(format!("specimen {}: type", s.id)))?;
        let (departments, tests) = self.uses_of(&s, &mut HashMap::new()).await?;
        let retention = rules.retention(specimen_type, &departments, &tests);
        // The period runs from the rejection for a rejected specimen, else from its storage.
        let since = if state == SpecimenState::Rejected {
            self.store
                .specimen_events(s.id)
                .await?
                .iter()
                .rfind(|e| e.kind == "reject")
                .map(|e| e.at)
        } else {
            tx.latest_placement(s.id).await?.map(|p| p.stored_at)
        };
        let due_at = match retention {
            Retention::Period(p) => since.and_then(|at| at.checked_add(p).ok()),
            Retention::UntilDecided => None,
        };
        let early = due_at.is_none_or(|due| now < due);
        if early && reason.is_none() {
            let (code, why) = match (retention, since, due_at) {
                (Retention::UntilDecided, _, _) if specimen_type.is_irreplaceable() => (
                    "disposal_decision_required",
                    format!(
                        "a {specimen_type} specimen can't be collected again: it is kept until \
                         a person decides"
                    ),
                ),
                (Retention::UntilDecided, _, _) => (
                    "retention_not_elapsed",
                    format!("no retention period is configured for {specimen_type}: it is kept"),
                ),
                (_, None, _) | (_, _, None) => (
                    "retention_not_elapsed",
                    "the specimen was never stored, so its retention period has not started"
                        .to_owned(),
                ),
                (_, _, Some(due)) => (
                    "retention_not_elapsed",
                    format!("its retention period ends at {due}"),
                ),
            };
            return Err(AppError::Conflict {
                field: Some("reason".into()),
                code,
                message: format!("{why}; give a reason to dispose of it now"),
            });
        }
        self.change_status(&mut tx, &s, next, None).await?;
        let from = self
            .end_placement(&mut tx, actor, &s, "dispose", reason.as_deref())
            .await?;
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "dispose",
                next: next.as_str(),
                details: json!({"method": method, "reason": reason, "before_retention": early,
                    "from": from}),
                location: from,
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Retention periods for every specimen type: configured, the domain default, or none.
    pub async fn retention(&self, actor: &Actor) -> AppResult<Vec<RetentionView>> {
        actor.require(Permission::SettingsRead)?;
        let policies = self.store.retention_policies().await?;
        let uses = self.store.retention_use_policies().await?;
        let mut views = retention_views(&policies);
        let rules = retention_rules(&policies, &uses)?;
        for (t, usage, period) in rules.uses() {
            let configured = uses.iter().find(|u| {
                u.specimen_type == t.as_str()
                    && u.use_kind == usage.kind()
                    && u.use_code == usage.code()
            });
            views.push(use_view(
                t,
                usage,
                period.as_hours(),
                if configured.is_some() {
                    "configured"
                } else {
                    "default"
                },
                configured.map(|u| u.updated_at),
                configured.map(|u| u.updated_by.clone()),
            ));
        }
        Ok(views)
    }

    /// Sets the retention period of a specimen type (or, with `usage`, of a specimen type for
    /// one department or test: `("department", "blood_bank")`). Audited with old and new value.
    pub async fn set_retention(
        &self,
        actor: &Actor,
        specimen_type: &str,
        usage: Option<(&str, &str)>,
        hours: i64,
        reason: Option<&str>,
    ) -> AppResult<RetentionView> {
        actor.require(Permission::SettingsWrite)?;
        let t = SpecimenType::parse(specimen_type.trim())
            .map_err(|e| invalid(&e, "", "specimen_type"))?;
        if let Some((kind, code)) = usage {
            return self
                .set_retention_use(actor, t, kind, code, hours, reason)
                .await;
        }
        if hours > MAX_RETENTION_HOURS {
            return Err(AppError::invalid(
                "hours",
                "retention_too_long",
                format!("at most {MAX_RETENTION_HOURS} hours (ten years)"),
            ));
        }
        RetentionTable::empty()
            .set(t, SignedDuration::from_hours(hours))
            .map_err(|e| invalid(&e, "", "hours").with_field("hours"))?;
        let reason = require_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let before = retention_views(&tx.retention_policies().await?);
        let old = before
            .iter()
            .find(|v| v.specimen_type == t.as_str())
            .map(|v| json!({"hours": v.hours, "source": v.source}));
        let now = self.now();
        tx.put_retention_policy(&RetentionPolicyRecord {
            specimen_type: t.as_str().to_owned(),
            hours,
            updated_at: now,
            updated_by: actor.username.clone(),
        })
        .await?;
        tx.audit(self.entry(
            actor,
            "storage.retention_set",
            "retention_policy",
            t.as_str(),
            old,
            Some(json!({"hours": hours})),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(RetentionView {
            specimen_type: t.as_str().to_owned(),
            department: None,
            test: None,
            until_decided: t.is_irreplaceable(),
            hours: Some(hours),
            source: "configured",
            updated_at: Some(now),
            updated_by: Some(actor.username.clone()),
        })
    }

    async fn set_retention_use(
        &self,
        actor: &Actor,
        t: SpecimenType,
        kind: &str,
        code: &str,
        hours: i64,
        reason: Option<&str>,
    ) -> AppResult<RetentionView> {
        let usage = match kind {
            "department" => RetentionUse::Department(
                Department::parse(code.trim()).map_err(|e| invalid(&e, "", "department"))?,
            ),
            _ => RetentionUse::Test(
                TestCode::parse(code.trim())
                    .map_err(|e| invalid(&e, "", "test").with_field("test"))?,
            ),
        };
        if hours > MAX_RETENTION_HOURS {
            return Err(AppError::invalid(
                "hours",
                "retention_too_long",
                format!("at most {MAX_RETENTION_HOURS} hours (ten years)"),
            ));
        }
        RetentionRules::defaults()
            .set_use(t, usage.clone(), SignedDuration::from_hours(hours))
            .map_err(|e| invalid(&e, "", "hours").with_field("hours"))?;
        let reason = require_reason(reason)?;
        let mut tx = self.store.begin().await?;
        let rules = retention_rules(
            &tx.retention_policies().await?,
            &tx.retention_use_policies().await?,
        )?;
        let old = rules
            .get_use(t, &usage)
            .map(|p| json!({"hours": p.as_hours()}));
        let now = self.now();
        tx.put_retention_use_policy(&RetentionUseRecord {
            specimen_type: t.as_str().to_owned(),
            use_kind: usage.kind().to_owned(),
            use_code: usage.code().to_owned(),
            hours,
            updated_at: now,
            updated_by: actor.username.clone(),
        })
        .await?;
        let entity = format!("{}/{}/{}", t.as_str(), usage.kind(), usage.code());
        tx.audit(self.entry(
            actor,
            "storage.retention_set",
            "retention_policy",
            &entity,
            old,
            Some(json!({"hours": hours})),
            Some(&reason),
        ));
        tx.commit().await?;
        Ok(use_view(
            t,
            &usage,
            hours,
            "configured",
            Some(now),
            Some(actor.username.clone()),
        ))
    }

    /// The departments and tests a specimen serves (its tests' catalogue departments);
    /// `defs` caches catalogue entries across calls.
    async fn uses_of(
        &self,
        s: &SpecimenRecord,
        defs: &mut HashMap<String, Option<Department>>,
    ) -> AppResult<(Vec<Department>, Vec<TestCode>)> {
        let mut departments = Vec::new();
        let mut tests = Vec::new();
        for t in self.store.tests_of_order(s.order_id).await? {
            if t.specimen_id != s.id {
                continue;
            }
            if !defs.contains_key(&t.test_code) {
                let department = match self.store.catalog_by_code(&t.test_code).await? {
                    Some(entry) => crate::catalog::definition(&entry)?
                        .department
                        .and_then(|d| Department::parse(&d).ok()),
                    None => None,
                };
                defs.insert(t.test_code.clone(), department);
            }
            if let Some(Some(d)) = defs.get(&t.test_code)
                && !departments.contains(d)
            {
                departments.push(*d);
            }
            if let Ok(code) = TestCode::parse(&t.test_code) {
                tests.push(code);
            }
        }
        Ok((departments, tests))
    }

    /// Stored specimens past their retention (oldest first) and rejected specimens awaiting
    /// disposal, at most 500 of each. Recorded in the access log.
    pub async fn disposal_due(&self, actor: &Actor) -> AppResult<DisposalDueView> {
        actor.require(Permission::SpecimenProcess)?;
        let rules = retention_rules(
            &self.store.retention_policies().await?,
            &self.store.retention_use_policies().await?,
        )?;
        let now = self.now();
        // The shortest period of each type selects candidates; each is then judged with its
        // own uses.
        let periods: BTreeMap<SpecimenType, SignedDuration> = SpecimenType::ALL
            .iter()
            .filter_map(|&t| rules.shortest(t).map(|p| (t, p)))
            .collect();
        let mut defs = HashMap::new();
        let cutoffs: Vec<(String, Timestamp)> = periods
            .iter()
            .filter_map(|(t, p)| now.checked_sub(*p).ok().map(|c| (t.as_str().to_owned(), c)))
            .collect();
        let mut due = Vec::new();
        let mut shown = Vec::new();
        for r in self.store.stored_before(&cutoffs, LIST_LIMIT).await? {
            let Ok(t) = SpecimenType::parse(&r.specimen_type) else {
                continue;
            };
            let Some(s) = self.store.specimen_by_accession(&r.accession).await? else {
                continue;
            };
            let (departments, tests) = self.uses_of(&s, &mut defs).await?;
            let Retention::Period(period) = rules.retention(t, &departments, &tests) else {
                continue;
            };
            let Ok(due_at) = r.stored_at.checked_add(period) else {
                continue;
            };
            if now < due_at {
                continue;
            }
            shown.push(r.subject());
            due.push(DueView {
                stored: stored_view(r),
                due_at,
            });
        }
        let rejected = self.store.rejected_specimens(LIST_LIMIT).await?;
        shown.extend(rejected.iter().map(ShowsPatient::subject));
        self.log_shown(
            actor,
            "storage.disposal_due",
            "storage",
            "disposal_due",
            shown,
        )
        .await?;
        let mut views = Vec::new();
        for r in rejected {
            let retention = match (
                SpecimenType::parse(&r.specimen_type),
                self.store.specimen_by_accession(&r.accession).await?,
            ) {
                (Ok(t), Some(s)) => {
                    let (departments, tests) = self.uses_of(&s, &mut defs).await?;
                    rules.retention(t, &departments, &tests)
                }
                _ => Retention::UntilDecided,
            };
            let due_at = match retention {
                Retention::Period(p) => r.rejected_at.and_then(|at| at.checked_add(p).ok()),
                Retention::UntilDecided => None,
            };
            views.push(RejectedView {
                accession: r.accession,
                specimen_type: r.specimen_type,
                rejected_at: r.rejected_at,
                due_at,
            });
        }
        let rejected = views;
        Ok(DisposalDueView { due, rejected })
    }

    async fn dispatch_in(
        &self,
        tx: &mut Box<dyn Tx>,
        actor: &Actor,
        accession: &str,
        input: &DispatchInput,
        manifest: Option<&str>,
    ) -> AppResult<()> {
        let s = tx
            .specimen_by_accession(accession)
            .await?
            .ok_or_else(not_found)?;
        let next = transition(state_of(&s)?, &Event::Dispatch).map_err(transition_conflict)?;
        self.change_status(tx, &s, next, None).await?;
        self.record_transition(
            tx,
            actor,
            &s,
            Transition {
                kind: "dispatch",
                next: next.as_str(),
                details: json!({"courier": input.courier, "from": input.from_location,
                    "destination": input.destination, "manifest": manifest,
                    "temperature": input.temperature}),
                location: Some(input.from_location.clone()),
            },
        )
        .await
    }

    fn dispatch_input(input: DispatchInput) -> AppResult<DispatchInput> {
        Ok(DispatchInput {
            courier: required_text("courier", &input.courier, 100)?,
            from_location: required_text("from_location", &input.from_location, 200)?,
            destination: required_text("destination", &input.destination, 200)?,
            temperature: parse_temperature(input.temperature.as_deref())?
                .map(|t| t.as_str().to_owned()),
        })
    }

    /// Courier pickup (collected → in transit): the first transport event of the chain of
    /// custody; the receipt in the lab is the delivery.
    pub async fn dispatch_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: DispatchInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "dispatch",
            accession,
            self.dispatch_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn dispatch_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: DispatchInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenCollect)?;
        let acc = parse_accession(accession)?;
        let input = Self::dispatch_input(input)?;
        let mut tx = self.store.begin().await?;
        self.dispatch_in(&mut tx, actor, acc.as_str(), &input, None)
            .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Dispatches several specimens under one manifest number: all of them or none.
    pub async fn dispatch_manifest(
        &self,
        actor: &Actor,
        accessions: &[String],
        input: DispatchInput,
    ) -> AppResult<ManifestView> {
        actor.require(Permission::SpecimenCollect)?;
        if accessions.is_empty() || accessions.len() > 200 {
            return Err(AppError::invalid(
                "accessions",
                "manifest_size",
                "a manifest holds 1 to 200 specimens",
            ));
        }
        let mut parsed = Vec::with_capacity(accessions.len());
        let mut seen = HashSet::new();
        for (i, a) in accessions.iter().enumerate() {
            let field = format!("accessions[{i}]");
            let acc = parse_accession(a).map_err(|e| e.with_field(&field))?;
            if !seen.insert(acc.as_str().to_owned()) {
                return Err(AppError::invalid(
                    &field,
                    "duplicate_accession",
                    "the accession is listed twice",
                ));
            }
            parsed.push(acc.as_str().to_owned());
        }
        let input = Self::dispatch_input(input)?;
        let mut tx = self.store.begin().await?;
        let n = tx.next_counter("transport_manifest").await?;
        let manifest = format!("M{n:06}");
        for (i, acc) in parsed.iter().enumerate() {
            let field = format!("accessions[{i}]");
            match self
                .dispatch_in(&mut tx, actor, acc, &input, Some(&manifest))
                .await
            {
                Ok(()) => {}
                Err(AppError::NotFound { .. }) => {
                    return Err(AppError::invalid(
                        &field,
                        "specimen_unknown",
                        format!("no specimen {acc}"),
                    ));
                }
                Err(AppError::Conflict { code, message, .. }) => {
                    return Err(AppError::Conflict {
                        field: Some(field),
                        code,
                        message: format!("{acc}: {message}"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        tx.audit(self.entry(
            actor,
            "transport.manifest",
            "manifest",
            &manifest,
            None,
            Some(json!({"accessions": parsed, "courier": input.courier,
                "from": input.from_location, "destination": input.destination})),
            None,
        ));
        tx.commit().await?;
        Ok(ManifestView {
            manifest,
            accessions: parsed,
        })
    }

    /// Hands a specimen to a reference laboratory (received/processed → sent out) and opens a
    /// send-out until its results come back.
    pub async fn send_out_specimen(
        &self,
        actor: &Actor,
        accession: &str,
        input: SendOutInput,
    ) -> AppResult<SpecimenDetail> {
        self.attempt(
            actor,
            "send_out",
            accession,
            self.send_out_specimen_inner(actor, accession, input),
        )
        .await
    }

    async fn send_out_specimen_inner(
        &self,
        actor: &Actor,
        accession: &str,
        input: SendOutInput,
    ) -> AppResult<SpecimenDetail> {
        actor.require(Permission::SpecimenProcess)?;
        let acc = parse_accession(accession)?;
        let lab_code = required_text("reference_lab", &input.reference_lab, 200)?;
        let tracking = free_text("tracking", input.tracking.as_deref(), 100)?;
        let temperature = parse_temperature(input.temperature.as_deref())?.ok_or_else(|| {
            AppError::invalid(
                "temperature",
                "required",
                "the transport temperature is required",
            )
        })?;
        if input.tests.as_ref().is_some_and(Vec::is_empty) {
            return Err(AppError::invalid(
                "tests",
                "send_out_tests_empty",
                "leave tests out to send all of the specimen's tests",
            ));
        }
        let mut tx = self.store.begin().await?;
        let s = tx
            .specimen_by_accession(acc.as_str())
            .await?
            .ok_or_else(not_found)?;
        let order_tests = tx.tests_of_order(s.order_id).await?;
        let on_specimen: Vec<String> = order_tests
            .iter()
            .filter(|t| t.specimen_id == s.id)
            .map(|t| t.test_code.clone())
            .collect();
        let tests = match input.tests {
            None => on_specimen,
            Some(list) => {
                let mut out = Vec::new();
                for (i, t) in list.iter().enumerate() {
                    let t = t.trim().to_owned();
                    if !on_specimen.contains(&t) {
                        return Err(AppError::invalid(
                            &format!("tests[{i}]"),
                            "send_out_test_not_on_specimen",
                            "the test is not ordered on this specimen",
                        ));
                    }
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                out
            }
        };
        // A registered reference laboratory that performs every test sent.
        let lab = self.reference_lab_for(&mut tx, &lab_code, &tests).await?;
        let reference_lab = lab.name.clone();
        let next = transition(state_of(&s)?, &Event::SendOut).map_err(transition_conflict)?;
        // A partial send-out leaves the tube in house while in-house tests are pending on it
        // (issue 10 item 11): the send-out is recorded, the status stays.
        let sent: Vec<&str> = tests.iter().map(String::as_str).collect();
        let scope = send_out_scope(&statuses_on(&order_tests, s.id), &sent);
        let (next_status, staying) = match scope {
            SendOutScope::Whole => {
                self.change_status(&mut tx, &s, next, Some(temperature.as_str().to_owned()))
                    .await?;
                (next.as_str().to_owned(), Vec::new())
            }
            SendOutScope::Partial { staying } => {
                if !self.guard_unchanged(&mut tx, &s).await? {
                    return Err(changed_meanwhile());
                }
                (s.status.clone(), staying)
            }
        };
        let id = tx
            .insert_send_out(&SendOutRecord {
                id: 0,
                specimen_id: s.id,
                accession: s.accession.clone(),
                reference_lab: reference_lab.clone(),
                tests: json!(tests).to_string(),
                tracking: tracking.clone(),
                temperature: temperature.as_str().to_owned(),
                sent_at: self.now(),
                sent_by: actor.username.clone(),
                resulted_at: None,
                reference_lab_id: Some(lab.id),
                shipment_id: None,
            })
            .await?;
        self.record_transition(
            &mut tx,
            actor,
            &s,
            Transition {
                kind: "send_out",
                next: &next_status,
                details: json!({"send_out_id": id, "reference_lab": reference_lab,
                    "reference_lab_code": lab.code,
                    "tests": tests, "tracking": tracking, "temperature": temperature.as_str(),
                    "partial": !staying.is_empty(), "staying": staying}),
                location: Some(reference_lab),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload(acc.as_str()).await
    }

    /// Send-outs (only those whose results are not back with `open_only`), oldest first.
    /// Recorded in the access log.
    pub async fn send_outs(&self, actor: &Actor, open_only: bool) -> AppResult<Vec<SendOutView>> {
        actor.require(Permission::SpecimenProcess)?;
        let send_outs = self.store.send_outs(open_only, LIST_LIMIT).await?;
        let which = if open_only { "open" } else { "all" };
        Ok(self
            .worklist(actor, "send_out.list", "send_out", which, send_outs)
            .await?
            .into_iter()
            .map(|o| SendOutView {
                id: o.id,
                specimen_id: o.specimen_id,
                accession: o.accession,
                reference_lab: o.reference_lab,
                tests: serde_json::from_str(&o.tests).unwrap_or_default(),
                tracking: o.tracking,
                temperature: o.temperature,
                sent_at: o.sent_at,
                sent_by: o.sent_by,
                resulted_at: o.resulted_at,
                shipment_id: o.shipment_id,
            })
            .collect())
    }
}

fn use_view(
    t: SpecimenType,
    usage: &RetentionUse,
    hours: i64,
    source: &'static str,
    updated_at: Option<Timestamp>,
    updated_by: Option<String>,
) -> RetentionView {
    let (department, test) = match usage {
        RetentionUse::Department(d) => (Some(d.as_str().to_owned()), None),
        RetentionUse::Test(c) => (None, Some(c.as_str().to_owned())),
    };
    RetentionView {
        specimen_type: t.as_str().to_owned(),
        department,
        test,
        until_decided: t.is_irreplaceable(),
        hours: Some(hours),
        source,
        updated_at,
        updated_by,
    }
}

fn retention_views(policies: &[RetentionPolicyRecord]) -> Vec<RetentionView> {
    let defaults = RetentionTable::defaults();
    SpecimenType::ALL
        .iter()
        .map(
            |t| match policies.iter().find(|p| p.specimen_type == t.as_str()) {
                Some(p) => RetentionView {
                    specimen_type: t.as_str().to_owned(),
                    department: None,
                    test: None,
                    until_decided: t.is_irreplaceable(),
                    hours: Some(p.hours),
                    source: "configured",
                    updated_at: Some(p.updated_at),
                    updated_by: Some(p.updated_by.clone()),
                },
                None => RetentionView {
                    specimen_type: t.as_str().to_owned(),
                    department: None,
                    test: None,
                    until_decided: t.is_irreplaceable(),
                    hours: defaults.get(*t).map(|d| d.as_hours()),
                    source: if defaults.get(*t).is_some() {
                        "default"
                    } else {
                        "none"
                    },
                    updated_at: None,
                    updated_by: None,
                },
            },
        )
        .collect()
}

/// `(code, status)` of the tests on tube `specimen_id`.
fn statuses_on(
    tests: &[aliquot_store::OrderTestRecord],
    specimen_id: i64,
) -> Vec<(&str, TestStatus)> {
    tests
        .iter()
        .filter(|t| t.specimen_id == specimen_id)
        .filter_map(|t| Some((t.test_code.as_str(), TestStatus::parse(&t.status).ok()?)))
        .collect()
}
