//! Control lots, targets, the instrument's names for its controls, and per instrument and test
//! how QC is judged.

use aliquot_domain::auth::Permission;
use aliquot_domain::qc::sigma::{recommend, sigma};
use aliquot_domain::qc::stats::Accumulator;
use aliquot_store::{
    InstrumentRecord, QcConfigRecord, QcLotRecord, QcTargetRecord, RunRange, StoreError,
};
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    decimal, level, mode_str, new_rule_set, opt_time, parse_mode, parse_rules, rule_set,
    rules_text, text,
};
use crate::catalog::catalog_key;
use crate::{Actor, App, AppError, AppResult, require_reason};

/// A control lot: one level of one material.
#[derive(Debug, Clone)]
pub struct LotInput {
    pub material: String,
    pub manufacturer: String,
    pub lot: String,
    pub level: i64,
    /// The last day it may be used, `YYYY-MM-DD`.
    pub expires_on: String,
    /// How instruments name this control in their messages: `(instrument code, sample id)`.
    pub control_ids: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotView {
    pub material: String,
    pub manufacturer: String,
    pub lot: String,
    pub level: i64,
    pub expires_on: String,
    pub created_at: Timestamp,
    pub created_by: String,
}

impl From<QcLotRecord> for LotView {
    fn from(r: QcLotRecord) -> Self {
        LotView {
            material: r.material,
            manufacturer: r.manufacturer,
            lot: r.lot,
            level: r.level,
            expires_on: r.expires_on,
            created_at: r.created_at,
            created_by: r.created_by,
        }
    }
}

/// A lot's target mean and SD on an instrument and test, from the manufacturer's insert.
#[derive(Debug, Clone)]
pub struct TargetInput {
    pub instrument: String,
    pub test: String,
    pub lot: String,
    pub level: i64,
    pub mean: String,
    pub sd: String,
    /// From when it applies, RFC 3339 (default now). Limits change prospectively: a target
    /// never applies before the one it replaces took effect.
    pub effective_at: Option<String>,
    /// Required when it replaces a target.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    pub instrument: String,
    pub test: String,
    pub lot: String,
    pub level: i64,
    pub mean: String,
    pub sd: String,
    /// `manufacturer` or `lab`.
    pub source: String,
    pub points: Option<i64>,
    pub effective_at: Timestamp,
    pub set_at: Timestamp,
    pub set_by: String,
    pub reason: Option<String>,
}

/// How QC of one instrument and test is judged.
#[derive(Debug, Clone)]
pub struct ConfigInput {
    /// Rule codes (`1-3s`, `2-2s`, …), chosen by hand; `None` picks them from the sigma metric
    /// (Westgard Sigma Rules), which needs `tea_pct` and `bias_pct`.
    pub rules: Option<Vec<String>>,
    /// The method's bias in % (from proficiency testing or peer data): with the allowable
    /// total error and the lab's CV, the sigma metric (shown in the statistics).
    pub bias_pct: Option<String>,
    /// `classic` or `modern` (default modern).
    pub mode: Option<String>,
    pub calibration_interval_hours: Option<i64>,
    /// Allowable total error in % (e.g. the CLIA proficiency-testing limit).
    pub tea_pct: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigView {
    pub instrument: String,
    pub test: String,
    pub rules: Vec<String>,
    pub mode: String,
    pub calibration_interval_hours: Option<i64>,
    pub tea_pct: Option<String>,
    pub bias_pct: Option<String>,
    /// The sigma metric the rules were chosen from, when they were.
    pub sigma: Option<String>,
    pub version: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

fn config_view(c: QcConfigRecord, instrument: &str, sigma: Option<String>) -> ConfigView {
    ConfigView {
        instrument: instrument.to_owned(),
        test: c.test_code,
        rules: c.rules.split(',').map(str::to_owned).collect(),
        mode: c.mode,
        calibration_interval_hours: c.calibration_interval_hours,
        tea_pct: c.tea_pct,
        bias_pct: c.bias_pct,
        sigma,
        version: c.version,
        updated_at: c.updated_at,
        updated_by: c.updated_by,
    }
}

pub(crate) fn target_view(t: QcTargetRecord, instrument: &str, lot: &QcLotRecord) -> TargetView {
    TargetView {
        instrument: instrument.to_owned(),
        test: t.test_code,
        lot: lot.lot.clone(),
        level: lot.level,
        mean: t.mean,
        sd: t.sd,
        source: t.source,
        points: t.points,
        effective_at: t.effective_at,
        set_at: t.set_at,
        set_by: t.set_by,
        reason: t.reason,
    }
}

/// At least this many accepted control values establish a lab target (CLSI C24: 20 over
/// 20 days).
pub const MIN_POINTS_FOR_LAB_TARGET: usize = 20;

impl App {
    /// A registered, active instrument by code.
    pub(crate) async fn qc_instrument(&self, code: &str) -> AppResult<InstrumentRecord> {
        self.store
            .instrument_by_code(code.trim())
            .await?
            .filter(|i| i.retired_at.is_none())
            .ok_or_else(|| {
                AppError::invalid(
                    "instrument",
                    "unknown_instrument",
                    "no active instrument with this code",
                )
            })
    }

    /// A catalogue test's code.
    pub(crate) async fn qc_test(&self, test: &str) -> AppResult<String> {
        Ok(self
            .store
            .catalog_by_code(&catalog_key(test))
            .await?
            .ok_or_else(|| {
                AppError::invalid("test", "unknown_test", "no such test in the catalogue")
            })?
            .code)
    }

    /// Registers a control lot (`qc.manage`).
    pub async fn create_qc_lot(&self, actor: &Actor, input: LotInput) -> AppResult<LotView> {
        actor.require(Permission::QcManage)?;
        let expires: Date =
            input.expires_on.trim().parse().map_err(|_| {
                AppError::invalid("expires_on", "invalid_date", "a date, YYYY-MM-DD")
            })?;
        let mut record = QcLotRecord {
            id: 0,
            material: text("material", &input.material, 100)?,
            manufacturer: text("manufacturer", &input.manufacturer, 100)?,
            lot: text("lot", &input.lot, 40)?,
            level: level("level", input.level)?,
            expires_on: expires.to_string(),
            created_at: self.now(),
            created_by: actor.username.clone(),
        };
        let mut names = Vec::new();
        for (i, (instrument, id)) in input.control_ids.iter().enumerate() {
            let inst = self
                .qc_instrument(instrument)
                .await
                .map_err(|e| e.with_field(&format!("control_ids[{i}].instrument")))?;
            names.push((inst, text(&format!("control_ids[{i}].id"), id, 50)?));
        }
        let mut tx = self.store.begin().await?;
        record.id = tx.insert_qc_lot(&record).await.map_err(|e| match e {
            StoreError::Conflict(_) => AppError::Conflict {
                field: Some("lot".into()),
                code: "qc_lot_exists",
                message: "this lot and level are registered already".into(),
            },
            other => other.into(),
        })?;
        for (inst, id) in &names {
            tx.put_qc_control_id(inst.id, id, record.id).await?;
        }
        let view = LotView::from(record.clone());
        tx.audit(self.entry(
            actor,
            "qc_lot.create",
            "qc_lot",
            record.id,
            None,
            Some(json!({
                "material": view.material, "manufacturer": view.manufacturer, "lot": view.lot,
                "level": view.level, "expires_on": view.expires_on,
                "control_ids": names.iter().map(|(i, id)| json!([i.code, id])).collect::<Vec<_>>(),
            })),
            None,
        ));
        tx.commit().await?;
        Ok(view)
    }

    /// Every control lot, newest first (`qc.read`).
    pub async fn list_qc_lots(&self, actor: &Actor) -> AppResult<Vec<LotView>> {
        actor.require(Permission::QcRead)?;
        Ok(self
            .store
            .qc_lots()
            .await?
            .into_iter()
            .map(LotView::from)
            .collect())
    }

    pub(crate) async fn qc_lot_record(
        &self,
        field: &str,
        lot: &str,
        lvl: i64,
    ) -> AppResult<QcLotRecord> {
        self.store.qc_lot(lot.trim(), lvl).await?.ok_or_else(|| {
            AppError::invalid(
                field,
                "unknown_qc_lot",
                "no control lot with this number and level",
            )
        })
    }

    /// Sets a lot's target from the manufacturer (`qc.manage`). Replacing a target needs a
    /// reason; it applies from `effective_at` on and never re-judges earlier runs.
    pub async fn set_qc_target(&self, actor: &Actor, input: TargetInput) -> AppResult<TargetView> {
        actor.require(Permission::QcManage)?;
        let inst = self.qc_instrument(&input.instrument).await?;
        let test = self.qc_test(&input.test).await?;
        let lvl = level("level", input.level)?;
        let lot = self.qc_lot_record("lot", &input.lot, lvl).await?;
        let mean = decimal("mean", &input.mean)?;
        let sd = decimal("sd", &input.sd)?;
        if sd <= Decimal::ZERO {
            return Err(AppError::invalid(
                "sd",
                "invalid_sd",
                "the SD must be above zero",
            ));
        }
        let now = self.now();
        let effective_at = opt_time("effective_at", input.effective_at.as_deref())?.unwrap_or(now);
        self.write_target(
            actor,
            &inst,
            &lot,
            QcTargetRecord {
                id: 0,
                lot_id: lot.id,
                instrument_id: inst.id,
                test_code: test,
                mean: mean.normalize().to_string(),
                sd: sd.normalize().to_string(),
                source: "manufacturer".into(),
                points: None,
                effective_at,
                set_at: now,
                set_by: actor.username.clone(),
                reason: None,
            },
            input.reason.as_deref(),
        )
        .await
    }

    /// Establishes a lot's target from the lab's own accepted control values on the instrument
    /// and test (at least 20; mean and SD with n − 1), from now on (`qc.manage`, with a
    /// reason): the documented switch-over from the manufacturer's range.
    pub async fn establish_qc_target(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
        lot: &str,
        lvl: i64,
        reason: Option<&str>,
    ) -> AppResult<TargetView> {
        actor.require(Permission::QcManage)?;
        let reason = require_reason(reason)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        let lvl = level("level", lvl)?;
        let lot = self.qc_lot_record("lot", lot, lvl).await?;
        let runs = self
            .store
            .qc_runs(
                inst.id,
                &test,
                RunRange::Between {
                    from: None,
                    to: None,
                    limit: 100_000,
                },
            )
            .await?;
        let mut acc = Accumulator::new();
        for r in runs.iter().filter(|r| r.status != "rejected") {
            for c in r.controls.iter().filter(|c| c.lot_id == lot.id) {
                let v = decimal("value", &c.value)?;
                acc.push(v).map_err(|e| AppError::Internal(e.to_string()))?;
            }
        }
        let n = acc.n();
        let (Some(mean), Some(sd)) = (acc.mean(), acc.sd()) else {
            return Err(too_few(n));
        };
        if (n as usize) < MIN_POINTS_FOR_LAB_TARGET || sd <= Decimal::ZERO {
            return Err(too_few(n));
        }
        let now = self.now();
        self.write_target(
            actor,
            &inst,
            &lot,
            QcTargetRecord {
                id: 0,
                lot_id: lot.id,
                instrument_id: inst.id,
                test_code: test,
                mean: mean.round_dp(4).normalize().to_string(),
                sd: sd.round_dp(4).normalize().to_string(),
                source: "lab".into(),
                points: Some(n as i64),
                effective_at: now,
                set_at: now,
                set_by: actor.username.clone(),
                reason: None,
            },
            Some(&reason),
        )
        .await
    }

    async fn write_target(
        &self,
        actor: &Actor,
        inst: &InstrumentRecord,
        lot: &QcLotRecord,
        mut record: QcTargetRecord,
        reason: Option<&str>,
    ) -> AppResult<TargetView> {
        let mut tx = self.store.begin().await?;
        let before = tx
            .qc_target_at(lot.id, inst.id, &record.test_code, Timestamp::MAX)
            .await?;
        let reason = match &before {
            Some(_) => Some(require_reason(reason)?),
            None => reason
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        };
        if let Some(b) = &before
            && record.effective_at < b.effective_at
        {
            return Err(AppError::invalid(
                "effective_at",
                "target_not_prospective",
                "a new target applies from the time the one it replaces took effect or later",
            ));
        }
        record.reason = reason.clone();
        record.id = tx.insert_qc_target(&record).await?;
        let view = target_view(record.clone(), &inst.code, lot);
        let value = |t: &QcTargetRecord| {
            json!({"mean": t.mean, "sd": t.sd, "source": t.source, "points": t.points,
                   "effective_at": t.effective_at.to_string()})
        };
        tx.audit(self.entry(
            actor,
            "qc_target.set",
            "qc_target",
            format!(
                "{}/{}/{}/{}",
                inst.code, record.test_code, lot.lot, lot.level
            ),
            before.as_ref().map(value),
            Some(value(&record)),
            reason.as_deref(),
        ));
        tx.commit().await?;
        Ok(view)
    }

    /// Every target of an instrument and test, in the order they took effect (`qc.read`).
    pub async fn list_qc_targets(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
    ) -> AppResult<Vec<TargetView>> {
        actor.require(Permission::QcRead)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        let lots = self.store.qc_lots().await?;
        Ok(self
            .store
            .qc_targets(inst.id, &test)
            .await?
            .into_iter()
            .filter_map(|t| {
                let lot = lots.iter().find(|l| l.id == t.lot_id)?;
                Some(target_view(t, &inst.code, lot))
            })
            .collect())
    }

    /// Sets how QC of an instrument and test is judged (`qc.manage`; a change needs a reason
    /// and the version it replaces).
    pub async fn put_qc_config(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
        input: ConfigInput,
        expected_version: Option<i64>,
        reason: Option<&str>,
    ) -> AppResult<ConfigView> {
        actor.require(Permission::QcManage)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        let mode = parse_mode("mode", input.mode.as_deref().unwrap_or("modern"))?;
        let tea = input
            .tea_pct
            .as_deref()
            .map(|t| {
                let v = decimal("tea_pct", t)?;
                if v <= Decimal::ZERO || v > Decimal::ONE_HUNDRED {
                    return Err(AppError::invalid(
                        "tea_pct",
                        "invalid_tea",
                        "the allowable total error is a percentage above 0 and at most 100",
                    ));
                }
                Ok(v)
            })
            .transpose()?;
        if let Some(h) = input.calibration_interval_hours
            && !(1..=24 * 366).contains(&h)
        {
            return Err(AppError::invalid(
                "calibration_interval_hours",
                "invalid_interval",
                "1 hour to 366 days",
            ));
        }
        let bias = input
            .bias_pct
            .as_deref()
            .map(|b| decimal("bias_pct", b))
            .transpose()?;
        let (rules, sigma_text) = match (&input.rules, bias) {
            (Some(r), _) => (parse_rules("rules", r.iter().map(String::as_str))?, None),
            (None, Some(bias)) => {
                let tea = tea.ok_or_else(|| {
                    AppError::invalid(
                        "tea_pct",
                        "tea_required",
                        "the sigma metric needs the allowable total error",
                    )
                })?;
                let (s, rules) = self.sigma_rules(&inst, &test, tea, bias).await?;
                (rules, Some(s.round_dp(2).to_string()))
            }
            (None, None) => {
                return Err(AppError::invalid(
                    "rules",
                    "rules_or_sigma",
                    "give the rules, or the bias (and TEa) to choose them from the sigma metric",
                ));
            }
        };
        let set = new_rule_set(mode, &rules)?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let before = tx.qc_config(inst.id, &test).await?;
        let reason = match &before {
            None => None,
            Some(b) => {
                if expected_version != Some(b.version) {
                    return Err(AppError::Conflict {
                        field: Some("version".into()),
                        code: "version_mismatch",
                        message: format!(
                            "the configuration is at version {}; reload it and send that version",
                            b.version
                        ),
                    });
                }
                Some(require_reason(reason)?)
            }
        };
        let record = QcConfigRecord {
            instrument_id: inst.id,
            test_code: test.clone(),
            rules: rules_text(&set),
            mode: mode_str(mode).into(),
            calibration_interval_hours: input.calibration_interval_hours,
            tea_pct: tea.map(|t| t.normalize().to_string()),
            bias_pct: bias.map(|b| b.normalize().to_string()),
            version: before.as_ref().map_or(1, |b| b.version + 1),
            updated_at: now,
            updated_by: actor.username.clone(),
        };
        if !tx.put_qc_config(&record).await? {
            return Err(AppError::Conflict {
                field: Some("version".into()),
                code: "version_mismatch",
                message: "the configuration was changed meanwhile; reload it".into(),
            });
        }
        let value = |c: &QcConfigRecord| {
            json!({"rules": c.rules, "mode": c.mode,
                   "calibration_interval_hours": c.calibration_interval_hours,
                   "tea_pct": c.tea_pct, "bias_pct": c.bias_pct})
        };
        tx.audit(self.entry(
            actor,
            "qc_config.put",
            "qc_config",
            format!("{}/{}", inst.code, test),
            before.as_ref().map(value),
            Some(value(&record)),
            reason.as_deref(),
        ));
        tx.commit().await?;
        Ok(config_view(record, &inst.code, sigma_text))
    }

    /// How QC of an instrument and test is judged (`qc.read`); the default when none is set.
    pub async fn get_qc_config(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
    ) -> AppResult<ConfigView> {
        actor.require(Permission::QcRead)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        self.store
            .qc_config(inst.id, &test)
            .await?
            .map(|c| config_view(c, &inst.code, None))
            .ok_or(AppError::NotFound {
                entity: "QC configuration",
            })
    }

    /// The sigma metric of the worst level (lowest sigma: the lab's cumulative CV of the
    /// current lots, at least 20 values) and the Westgard Sigma Rules for it.
    async fn sigma_rules(
        &self,
        inst: &InstrumentRecord,
        test: &str,
        tea: Decimal,
        bias: Decimal,
    ) -> AppResult<(Decimal, Vec<aliquot_domain::qc::westgard::Rule>)> {
        let runs = self
            .store
            .qc_runs(
                inst.id,
                test,
                RunRange::Between {
                    from: None,
                    to: None,
                    limit: 100_000,
                },
            )
            .await?;
        let mut per_lot: Vec<(i64, Accumulator)> = Vec::new();
        let mut levels = 0;
        for r in runs.iter().filter(|r| r.status != "rejected") {
            levels = levels.max(r.controls.len());
            for c in &r.controls {
                let v = decimal("value", &c.value)?;
                let i = match per_lot.iter().position(|(l, _)| *l == c.lot_id) {
                    Some(i) => i,
                    None => {
                        per_lot.push((c.lot_id, Accumulator::new()));
                        per_lot.len() - 1
                    }
                };
                per_lot[i]
                    .1
                    .push(v)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
            }
        }
        let mut worst: Option<Decimal> = None;
        for (_, acc) in &per_lot {
            if (acc.n() as usize) < MIN_POINTS_FOR_LAB_TARGET {
                continue;
            }
            let Some(cv) = acc.cv_pct() else { continue };
            if let Ok(s) = sigma(tea, bias, cv) {
                worst = Some(worst.map_or(s, |w| w.min(s)));
            }
        }
        let s = worst.ok_or_else(|| {
            AppError::invalid(
                "bias_pct",
                "too_few_qc_values",
                "the sigma metric needs the lab's CV from at least 20 accepted values of a lot",
            )
        })?;
        let rec = recommend(s, if levels >= 3 { 3 } else { 2 })
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok((s, rec.rules.rules().collect()))
    }
}

fn too_few(n: u64) -> AppError {
    AppError::invalid(
        "lot",
        "too_few_qc_values",
        format!(
            "a lab target needs at least {MIN_POINTS_FOR_LAB_TARGET} accepted values of this lot \
             with some spread; there are {n}"
        ),
    )
}

/// The rule set a stored configuration names (for reports).
pub(crate) fn stored_rules(c: &QcConfigRecord) -> AppResult<aliquot_domain::qc::westgard::RuleSet> {
    rule_set(&c.rules, &c.mode)
}
