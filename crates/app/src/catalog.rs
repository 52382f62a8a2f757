//! The test catalogue: tests and panels, versioned (every change bumps the version and keeps
//! the previous definition) and audited. Entries are retired, never deleted.

use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::{
    ContainerCode, ContainerType, Department, ResultType, SpecialHandling, SpecimenType, Stability,
    TatTargets, Ucum,
};
use aliquot_domain::ids::LoincCode;
use aliquot_domain::order::{OrderedTest, TestCode};
use aliquot_domain::specimen::AcceptedSpecimen;
use aliquot_domain::specimen::stability::{StabilityRule, gp44_default_unspun};
use aliquot_store::{CatalogTestRecord, Tx};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::patients::invalid;
use crate::{Actor, App, AppError, AppResult, require_reason};

/// Storage limits from collection, per temperature; absent = not allowed at it. In minutes
/// (lactate, ammonia and blood gases need 15–30 minutes); the `_hours` fields of earlier
/// definitions are still read and become minutes when a definition is validated.
/// The `unspun_` limits are those of unspun whole blood before separation (serum and plasma
/// tests, CLSI GP44); a serum or plasma test without any has GP44's 2 hours at room
/// temperature or refrigerated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StabilityLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refrigerated_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refrigerated_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unspun_room_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unspun_refrigerated_minutes: Option<u32>,
}

impl StabilityLimits {
    /// Room, refrigerated and frozen in minutes (hours converted).
    fn minutes(&self) -> [Option<u32>; 3] {
        let either = |m: Option<u32>, h: Option<u32>| m.or(h.map(|h| h.saturating_mul(60)));
        [
            either(self.room_minutes, self.room_hours),
            either(self.refrigerated_minutes, self.refrigerated_hours),
            either(self.frozen_minutes, self.frozen_hours),
        ]
    }

    /// The limits from collection.
    fn stability(&self) -> Result<Stability, aliquot_domain::catalog::CatalogError> {
        let [room, fridge, frozen] = self.minutes();
        Stability::new(mins(room), mins(fridge), mins(frozen))
    }

    /// The unspun limits, when any is given.
    fn unspun(&self) -> Option<Result<Stability, aliquot_domain::catalog::CatalogError>> {
        (self.unspun_room_minutes.is_some() || self.unspun_refrigerated_minutes.is_some()).then(
            || {
                Stability::new(
                    mins(self.unspun_room_minutes),
                    mins(self.unspun_refrigerated_minutes),
                    None,
                )
            },
        )
    }

    /// Checks and rewrites the limits in minutes only.
    fn normalise(self, separated: bool) -> AppResult<Self> {
        let pairs = [
            ("room", self.room_minutes, self.room_hours),
            (
                "refrigerated",
                self.refrigerated_minutes,
                self.refrigerated_hours,
            ),
            ("frozen", self.frozen_minutes, self.frozen_hours),
        ];
        for (name, m, h) in pairs {
            if m.is_some() && h.is_some() {
                return Err(AppError::invalid(
                    &format!("stability.{name}_minutes"),
                    "stability_twice",
                    format!("give {name}_minutes or {name}_hours, not both"),
                ));
            }
        }
        self.stability()
            .map_err(|e| invalid(&e, "", "stability").with_field("stability"))?;
        if let Some(unspun) = self.unspun() {
            if !separated {
                return Err(AppError::invalid(
                    "stability.unspun_room_minutes",
                    "unspun_not_applicable",
                    "unspun limits are for serum and plasma tests (separated from the cells)",
                ));
            }
            unspun.map_err(|e| invalid(&e, "", "stability").with_field("stability"))?;
        }
        let [room, fridge, frozen] = self.minutes();
        Ok(Self {
            room_minutes: room,
            refrigerated_minutes: fridge,
            frozen_minutes: frozen,
            unspun_room_minutes: self.unspun_room_minutes,
            unspun_refrigerated_minutes: self.unspun_refrigerated_minutes,
            ..Self::default()
        })
    }
}

/// Turnaround targets (minutes) per priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TatMinutes {
    pub stat: Option<u32>,
    pub asap: Option<u32>,
    pub timed: Option<u32>,
    pub routine: Option<u32>,
}

/// Another (specimen type, container) pair a test accepts beside its planned one (issue 10
/// item 5), e.g. lithium-heparin plasma in a PST for a serum test.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecimenAlternative {
    pub specimen_type: String,
    pub container: String,
}

/// A test or panel definition, as entered and as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestDefinition {
    pub code: String,
    pub name: String,
    /// `test` (default) or `panel`.
    #[serde(default)]
    pub kind: Option<String>,
    pub loinc: Option<String>,
    /// Panel members (test codes).
    #[serde(default)]
    pub components: Vec<String>,
    pub department: Option<String>,
    pub specimen_type: Option<String>,
    pub container: Option<String>,
    /// Other (specimen type, container) pairs the test accepts at receipt.
    #[serde(default)]
    pub alternatives: Vec<SpecimenAlternative>,
    pub min_volume_ul: Option<u32>,
    #[serde(default)]
    pub stability: StabilityLimits,
    #[serde(default)]
    pub special_handling: Vec<String>,
    /// `numeric`, `coded` or `text`.
    pub result_type: Option<String>,
    pub precision: Option<u8>,
    #[serde(default)]
    pub answers: Vec<String>,
    pub units: Option<String>,
    pub reportable_low: Option<f64>,
    pub reportable_high: Option<f64>,
    #[serde(default)]
    pub tat_minutes: TatMinutes,
    pub performing_lab: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntryView {
    pub id: i64,
    pub version: i64,
    pub retired_at: Option<jiff::Timestamp>,
    pub updated_at: jiff::Timestamp,
    pub definition: TestDefinition,
}

impl CatalogEntryView {
    fn from_record(r: &CatalogTestRecord) -> AppResult<CatalogEntryView> {
        Ok(CatalogEntryView {
            id: r.id,
            version: r.version,
            retired_at: r.retired_at,
            updated_at: r.updated_at,
            definition: definition(r)?,
        })
    }
}

/// The key a requisition's test name is looked up by: a LOINC code (digits, a dash, a check
/// digit) as written, a local code upper-cased.
pub(crate) fn catalog_key(name: &str) -> String {
    let name = name.trim();
    if name.contains('-') && name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        name.to_owned()
    } else {
        name.to_ascii_uppercase()
    }
}

pub(crate) fn definition(r: &CatalogTestRecord) -> AppResult<TestDefinition> {
    serde_json::from_str(&r.definition)
        .map_err(|e| AppError::Internal(format!("catalog definition {}: {e}", r.id)))
}

fn mins(m: Option<u32>) -> Option<SignedDuration> {
    m.map(|m| SignedDuration::from_mins(i64::from(m)))
}

impl TestDefinition {
    /// The turnaround-time targets per priority.
    pub fn tat_targets(&self) -> AppResult<TatTargets> {
        let t = &self.tat_minutes;
        TatTargets::new(mins(t.stat), mins(t.asap), mins(t.timed), mins(t.routine))
            .map_err(|e| AppError::Internal(format!("catalog TAT targets: {e}")))
    }

    pub fn is_panel(&self) -> bool {
        self.kind.as_deref() == Some("panel")
    }

    /// The limits from collection per temperature.
    pub(crate) fn stability_rule(&self) -> Stability {
        self.stability.stability().unwrap_or_default()
    }

    /// The whole stability rule: limits from collection, unspun limits for serum and plasma
    /// (GP44's default when none are given) and the special-handling flags.
    pub(crate) fn full_stability_rule(&self) -> StabilityRule {
        let separated = SpecimenType::parse(self.specimen_type.as_deref().unwrap_or(""))
            .is_ok_and(SpecimenType::requires_centrifugation);
        let unspun = match self.stability.unspun() {
            Some(limits) => Some(limits.unwrap_or_default()),
            None => separated.then(gp44_default_unspun),
        };
        StabilityRule {
            stability: self.stability_rule(),
            unspun: unspun.filter(|_| separated),
            handling: self
                .special_handling
                .iter()
                .filter_map(|h| SpecialHandling::parse(h).ok())
                .collect(),
        }
    }

    /// The specimen requirement of a (non-panel) test, for tube planning.
    pub(crate) fn ordered_test(&self) -> AppResult<OrderedTest> {
        let bad = || AppError::Internal(format!("catalog entry {} is incomplete", self.code));
        Ok(OrderedTest {
            test_code: TestCode::parse(&self.code).map_err(|_| bad())?,
            specimen_type: SpecimenType::parse(self.specimen_type.as_deref().unwrap_or(""))
                .map_err(|_| bad())?,
            container: ContainerCode::parse(self.container.as_deref().unwrap_or(""))
                .map_err(|_| bad())?,
            min_volume_ul: self.min_volume_ul.ok_or_else(bad)?,
            department: Department::parse(self.department.as_deref().unwrap_or(""))
                .map_err(|_| bad())?,
        })
    }

    /// The (specimen type, container) pairs the test accepts, the planned one first.
    pub(crate) fn accepted_specimens(&self) -> AppResult<Vec<AcceptedSpecimen>> {
        let ordered = self.ordered_test()?;
        let mut out = vec![AcceptedSpecimen {
            specimen_type: ordered.specimen_type,
            container: ordered.container,
        }];
        for a in &self.alternatives {
            let pair = AcceptedSpecimen {
                specimen_type: SpecimenType::parse(&a.specimen_type).map_err(|_| {
                    AppError::Internal(format!("catalog entry {}: alternatives", self.code))
                })?,
                container: ContainerCode::parse(&a.container).map_err(|_| {
                    AppError::Internal(format!("catalog entry {}: alternatives", self.code))
                })?,
            };
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        Ok(out)
    }

    /// Validates and normalises the definition (domain rules for every coded field).
    pub fn validate(mut self) -> AppResult<TestDefinition> {
        let code = TestCode::parse(self.code.trim())
            .map_err(|e| invalid(&e, "", "code").with_field("code"))?;
        self.code = code.as_str().to_owned();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "name",
                "name_format",
                "1 to 200 characters",
            ));
        }
        self.name = name.to_owned();
        if let Some(l) = &self.loinc {
            self.loinc = Some(
                LoincCode::parse(l.trim())
                    .map_err(|e| invalid(&e, "", "loinc").with_field("loinc"))?
                    .as_str()
                    .to_owned(),
            );
        }
        let need = |field: &str| {
            AppError::invalid(field, "required", format!("{field} is required for a test"))
        };
        match self.kind.as_deref() {
            Some("panel") => {
                if self.components.is_empty() {
                    return Err(AppError::invalid(
                        "components",
                        "panel_empty",
                        "a panel lists at least one test",
                    ));
                }
                let mut seen = Vec::new();
                for (i, c) in self.components.iter_mut().enumerate() {
                    let tc = TestCode::parse(c.trim()).map_err(|e| {
                        invalid(&e, "", "components").with_field(&format!("components[{i}]"))
                    })?;
                    if seen.contains(&tc) {
                        return Err(AppError::invalid(
                            &format!("components[{i}]"),
                            "component_duplicate",
                            "a test is listed twice",
                        ));
                    }
                    *c = tc.as_str().to_owned();
                    seen.push(tc);
                }
                return Ok(self);
            }
            None | Some("test") => self.kind = Some("test".into()),
            Some(_) => return Err(AppError::invalid("kind", "kind", "test or panel")),
        }
        if !self.components.is_empty() {
            return Err(AppError::invalid(
                "components",
                "components_on_test",
                "only panels have components",
            ));
        }
        for (i, a) in self.alternatives.iter_mut().enumerate() {
            let field = |f: &str| format!("alternatives[{i}].{f}");
            let t = SpecimenType::parse(a.specimen_type.trim()).map_err(|e| {
                invalid(&e, "", "specimen_type").with_field(&field("specimen_type"))
            })?;
            let c = ContainerCode::parse(a.container.trim())
                .map_err(|e| invalid(&e, "", "container").with_field(&field("container")))?;
            if !ContainerType::defaults().iter().any(|k| k.code == c) {
                return Err(AppError::invalid(
                    &field("container"),
                    "unknown_container",
                    "not in the container catalogue",
                ));
            }
            a.specimen_type = t.as_str().to_owned();
            a.container = c.as_str().to_owned();
        }
        Department::parse(
            self.department
                .as_deref()
                .ok_or_else(|| need("department"))?,
        )
        .map_err(|e| invalid(&e, "", "department").with_field("department"))?;
        SpecimenType::parse(
            self.specimen_type
                .as_deref()
                .ok_or_else(|| need("specimen_type"))?,
        )
        .map_err(|e| invalid(&e, "", "specimen_type").with_field("specimen_type"))?;
        let container =
            ContainerCode::parse(self.container.as_deref().ok_or_else(|| need("container"))?)
                .map_err(|e| invalid(&e, "", "container").with_field("container"))?;
        let Some(tube) = ContainerType::defaults()
            .into_iter()
            .find(|c| c.code == container)
        else {
            return Err(AppError::invalid(
                "container",
                "unknown_container",
                "not in the container catalogue",
            ));
        };
        self.container = Some(container.as_str().to_owned());
        let volume = self.min_volume_ul.ok_or_else(|| need("min_volume_ul"))?;
        if volume == 0 || volume > tube.usable_volume_ul {
            return Err(AppError::invalid(
                "min_volume_ul",
                "min_volume_range",
                format!(
                    "1 to {} µL (the container's usable volume)",
                    tube.usable_volume_ul
                ),
            ));
        }
        let separated = SpecimenType::parse(self.specimen_type.as_deref().unwrap_or(""))
            .is_ok_and(SpecimenType::requires_centrifugation);
        self.stability = std::mem::take(&mut self.stability).normalise(separated)?;
        for (i, s) in self.special_handling.iter().enumerate() {
            SpecialHandling::parse(s).map_err(|e| {
                invalid(&e, "", "special_handling").with_field(&format!("special_handling[{i}]"))
            })?;
        }
        match self
            .result_type
            .as_deref()
            .ok_or_else(|| need("result_type"))?
        {
            "numeric" => {
                ResultType::numeric(self.precision.ok_or_else(|| need("precision"))?)
                    .map_err(|e| invalid(&e, "", "precision").with_field("precision"))?;
            }
            "coded" => {
                if let Ok(ResultType::Coded { answers }) = ResultType::coded(&self.answers) {
                    self.answers = answers;
                } else {
                    return Err(AppError::invalid(
                        "answers",
                        "answers",
                        "a coded result needs a list of distinct answers",
                    ));
                }
            }
            "text" => {}
            _ => {
                return Err(AppError::invalid(
                    "result_type",
                    "result_type",
                    "numeric, coded or text",
                ));
            }
        }
        if let Some(u) = &self.units {
            self.units = Some(
                Ucum::parse(u)
                    .map_err(|e| invalid(&e, "", "units").with_field("units"))?
                    .as_str()
                    .to_owned(),
            );
        }
        if let (Some(lo), Some(hi)) = (self.reportable_low, self.reportable_high)
            && lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less)
        {
            return Err(AppError::invalid(
                "reportable_high",
                "reportable_range",
                "low must be below high",
            ));
        }
        let t = &self.tat_minutes;
        TatTargets::new(mins(t.stat), mins(t.asap), mins(t.timed), mins(t.routine))
            .map_err(|e| invalid(&e, "", "tat_minutes").with_field("tat_minutes"))?;
        Ok(self)
    }
}

fn to_json(d: &TestDefinition) -> AppResult<String> {
    serde_json::to_string(d).map_err(|e| AppError::Internal(e.to_string()))
}

/// Panels name only active, non-panel tests.
async fn check_components(tx: &mut Box<dyn Tx>, d: &TestDefinition) -> AppResult<()> {
    for (i, c) in d.components.iter().enumerate() {
        let field = format!("components[{i}]");
        let Some(r) = tx.catalog_by_code(c).await? else {
            return Err(AppError::invalid(
                &field,
                "unknown_test",
                "no such test in the catalogue",
            ));
        };
        if r.retired_at.is_some() {
            return Err(AppError::invalid(
                &field,
                "test_retired",
                "this test is retired",
            ));
        }
        if r.kind == "panel" || r.code != *c {
            return Err(AppError::invalid(
                &field,
                "component_not_test",
                "a panel lists tests by local code",
            ));
        }
    }
    Ok(())
}

impl App {
    pub async fn catalog(
        &self,
        actor: &Actor,
        include_retired: bool,
    ) -> AppResult<Vec<CatalogEntryView>> {
        actor.require(Permission::CatalogRead)?;
        self.store
            .list_catalog(include_retired)
            .await?
            .iter()
            .map(CatalogEntryView::from_record)
            .collect()
    }

    pub async fn catalog_entry(&self, actor: &Actor, code: &str) -> AppResult<CatalogEntryView> {
        actor.require(Permission::CatalogRead)?;
        let r = self
            .store
            .catalog_by_code(&code.to_ascii_uppercase())
            .await?
            .filter(|r| r.code.eq_ignore_ascii_case(code))
            .ok_or(AppError::NotFound {
                entity: "catalog entry",
            })?;
        CatalogEntryView::from_record(&r)
    }

    /// Every version of an entry, oldest first (the retirement is a version too).
    pub async fn catalog_history(
        &self,
        actor: &Actor,
        code: &str,
    ) -> AppResult<Vec<(i64, jiff::Timestamp, String, TestDefinition)>> {
        let entry = self.catalog_entry(actor, code).await?;
        self.store
            .catalog_versions(entry.id)
            .await?
            .into_iter()
            .map(|v| {
                let d = serde_json::from_str(&v.definition)
                    .map_err(|e| AppError::Internal(format!("catalog version: {e}")))?;
                Ok((v.version, v.changed_at, v.changed_by, d))
            })
            .collect()
    }

    pub async fn create_catalog_entry(
        &self,
        actor: &Actor,
        def: TestDefinition,
    ) -> AppResult<CatalogEntryView> {
        actor.require(Permission::CatalogWrite)?;
        let def = def.validate()?;
        let mut tx = self.store.begin().await?;
        if let Some(existing) = tx.catalog_by_code(&def.code).await?
            && existing.code == def.code
        {
            return Err(AppError::Conflict {
                field: Some("code".into()),
                code: "code_taken",
                message: "a catalogue entry with this code exists (edit or retire it)".into(),
            });
        }
        check_components(&mut tx, &def).await?;
        let now = self.now();
        let mut r = CatalogTestRecord {
            id: 0,
            code: def.code.clone(),
            loinc: def.loinc.clone(),
            kind: def.kind.clone().unwrap_or_else(|| "test".into()),
            name: def.name.clone(),
            version: 1,
            definition: to_json(&def)?,
            updated_at: now,
            retired_at: None,
        };
        r.id = tx.insert_catalog(&r).await?;
        tx.insert_catalog_version(&r, &actor.username).await?;
        tx.audit(self.entry(
            actor,
            "catalog.create",
            "catalog_test",
            &r.code,
            None,
            Some(json!({"version": 1, "definition": def})),
            None,
        ));
        tx.commit().await?;
        CatalogEntryView::from_record(&r)
    }

    /// Adds the entries whose code is not in the catalogue yet (tests before the panels that
    /// name them); returns how many were added. Each is its own audited change.
    pub async fn import_catalog(
        &self,
        actor: &Actor,
        defs: Vec<TestDefinition>,
    ) -> AppResult<usize> {
        actor.require(Permission::CatalogWrite)?;
        let (panels, tests): (Vec<_>, Vec<_>) =
            defs.into_iter().partition(TestDefinition::is_panel);
        let mut added = 0;
        for def in tests.into_iter().chain(panels) {
            let code = def.code.trim().to_ascii_uppercase();
            if self
                .store
                .catalog_by_code(&code)
                .await?
                .is_some_and(|r| r.code == code)
            {
                continue;
            }
            self.create_catalog_entry(actor, def).await?;
            added += 1;
        }
        Ok(added)
    }

    /// Replaces an entry's definition (a new version; the old one is kept).
    pub async fn update_catalog_entry(
        &self,
        actor: &Actor,
        code: &str,
        def: TestDefinition,
        reason: Option<&str>,
    ) -> AppResult<CatalogEntryView> {
        actor.require(Permission::CatalogWrite)?;
        let reason = require_reason(reason)?;
        let def = def.validate()?;
        if !def.code.eq_ignore_ascii_case(code) {
            return Err(AppError::invalid(
                "code",
                "code_mismatch",
                "the code cannot change; create a new entry",
            ));
        }
        let mut tx = self.store.begin().await?;
        let old = tx
            .catalog_by_code(&def.code)
            .await?
            .filter(|r| r.code == def.code)
            .ok_or(AppError::NotFound {
                entity: "catalog entry",
            })?;
        if old.retired_at.is_some() {
            return Err(AppError::Conflict {
                field: None,
                code: "test_retired",
                message: "a retired entry cannot be edited".into(),
            });
        }
        check_components(&mut tx, &def).await?;
        let old_def = definition(&old)?;
        let r = CatalogTestRecord {
            loinc: def.loinc.clone(),
            kind: def.kind.clone().unwrap_or_else(|| "test".into()),
            name: def.name.clone(),
            version: old.version + 1,
            definition: to_json(&def)?,
            updated_at: self.now(),
            ..old.clone()
        };
        tx.update_catalog(&r).await?;
        tx.insert_catalog_version(&r, &actor.username).await?;
        tx.audit(self.entry(
            actor,
            "catalog.update",
            "catalog_test",
            &r.code,
            Some(json!({"version": old.version, "definition": old_def})),
            Some(json!({"version": r.version, "definition": def})),
            Some(&reason),
        ));
        tx.commit().await?;
        CatalogEntryView::from_record(&r)
    }

    /// Retires an entry: it stays (orders refer to it) but can no longer be ordered.
    pub async fn retire_catalog_entry(
        &self,
        actor: &Actor,
        code: &str,
        reason: Option<&str>,
    ) -> AppResult<CatalogEntryView> {
        actor.require(Permission::CatalogWrite)?;
        let reason = require_reason(reason)?;
        let code = code.to_ascii_uppercase();
        let mut tx = self.store.begin().await?;
        let old = tx
            .catalog_by_code(&code)
            .await?
            .filter(|r| r.code == code)
            .ok_or(AppError::NotFound {
                entity: "catalog entry",
            })?;
        if old.retired_at.is_some() {
            return Err(AppError::Conflict {
                field: None,
                code: "test_retired",
                message: "already retired".into(),
            });
        }
        let now = self.now();
        let r = CatalogTestRecord {
            version: old.version + 1,
            updated_at: now,
            retired_at: Some(now),
            ..old.clone()
        };
        tx.update_catalog(&r).await?;
        tx.insert_catalog_version(&r, &actor.username).await?;
        tx.audit(self.entry(
            actor,
            "catalog.retire",
            "catalog_test",
            &r.code,
            Some(json!({"version": old.version, "retired": false})),
            Some(json!({"version": r.version, "retired": true})),
            Some(&reason),
        ));
        tx.commit().await?;
        CatalogEntryView::from_record(&r)
    }
}
