//! A QC run: posted, judged at once in collection-time order, locking the instrument and test
//! when rejected and lifting an open lock when accepted after a corrective action.

use aliquot_domain::auth::Permission;
use aliquot_domain::qc::westgard::{Evaluator, Observation, RuleSet, Target, Verdict};
use aliquot_domain::results::autoverify::QcStatus;
use aliquot_store::{QcLockRecord, QcLotRecord, QcResultRecord, QcRunRecord, RunRange, Tx};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::reports::calibration_status;
use super::{
    SOURCE_MANUAL, decimal, default_rule_set, level, mode_str, not_future, opt_time, rules_text,
};
use crate::{Actor, App, AppError, AppResult};

/// One control of a run.
#[derive(Debug, Clone)]
pub struct ControlInput {
    pub lot: String,
    pub level: i64,
    /// As measured, an exact decimal (`"3.52"`).
    pub value: String,
}

/// The controls of one instrument and test measured together.
#[derive(Debug, Clone)]
pub struct RunInput {
    pub instrument: String,
    pub test: String,
    /// When the controls were measured, RFC 3339 (default now).
    pub at: Option<String>,
    pub controls: Vec<ControlInput>,
}

/// A rule a run broke or warned on, as stored with the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingView {
    /// `1-2s`, `1-3s`, `2-2s`, `R-4s`, …
    pub rule: String,
    /// `within_run`, `within_material` or `across_material`.
    pub scope: String,
    /// The levels involved.
    pub levels: Vec<u8>,
    /// `warning` (1-2s) or `rejection`.
    pub kind: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlView {
    pub lot: String,
    pub level: i64,
    pub value: String,
    pub mean: String,
    pub sd: String,
    /// (value − mean) / SD, unrounded, shown to two decimals.
    pub z: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub id: i64,
    pub instrument: String,
    pub test: String,
    pub at: Timestamp,
    /// `accepted`, `warning` (accepted with a 1-2s warning) or `rejected`.
    pub status: String,
    pub findings: Vec<FindingView>,
    pub rules: Vec<String>,
    pub mode: String,
    pub source: String,
    pub entered_at: Timestamp,
    pub entered_by: String,
    pub controls: Vec<ControlView>,
    /// Whether the instrument and test are locked after this run.
    pub locked: bool,
}

impl RunView {
    pub fn accepted(&self) -> bool {
        self.status != "rejected"
    }
    /// The rules broken (rejections).
    pub fn violations(&self) -> impl Iterator<Item = &FindingView> {
        self.findings.iter().filter(|f| f.kind == "rejection")
    }
    /// The warnings (1-2s).
    pub fn warnings(&self) -> impl Iterator<Item = &FindingView> {
        self.findings.iter().filter(|f| f.kind == "warning")
    }
}

pub(crate) fn run_view(
    r: &QcRunRecord,
    instrument: &str,
    lots: &[aliquot_store::QcLotRecord],
    locked: bool,
) -> RunView {
    RunView {
        id: r.id,
        instrument: instrument.to_owned(),
        test: r.test_code.clone(),
        at: r.run_at,
        status: r.status.clone(),
        findings: serde_json::from_str(&r.findings).unwrap_or_default(),
        rules: r.rules.split(',').map(str::to_owned).collect(),
        mode: r.mode.clone(),
        source: r.source.clone(),
        entered_at: r.entered_at,
        entered_by: r.entered_by.clone(),
        controls: r
            .controls
            .iter()
            .map(|c| ControlView {
                lot: lots
                    .iter()
                    .find(|l| l.id == c.lot_id)
                    .map_or_else(String::new, |l| l.lot.clone()),
                level: c.level,
                value: c.value.clone(),
                mean: c.mean.clone(),
                sd: c.sd.clone(),
                z: z_text(c),
            })
            .collect(),
        locked,
    }
}

fn z_text(c: &QcResultRecord) -> String {
    match observation(c) {
        Some(o) => format!("{:.2}", o.z()),
        None => String::new(),
    }
}

/// A stored control value as the evaluator sees it.
pub(crate) fn observation(c: &QcResultRecord) -> Option<Observation> {
    let value = decimal("value", &c.value).ok()?;
    let mean = decimal("mean", &c.mean).ok()?;
    let sd = decimal("sd", &c.sd).ok()?;
    Some(Observation::new(
        u8::try_from(c.level).ok()?,
        value,
        Target::new(mean, sd).ok()?,
    ))
}

fn findings(v: &Verdict) -> Vec<FindingView> {
    let view = |f: &aliquot_domain::qc::westgard::Finding, kind: &str| FindingView {
        rule: f.rule.code().to_owned(),
        scope: f.scope.code().to_owned(),
        levels: {
            let mut l: Vec<u8> = f.observations.iter().map(|o| o.level).collect();
            l.sort_unstable();
            l.dedup();
            l
        },
        kind: kind.to_owned(),
        description: f.description(),
    };
    v.violations
        .iter()
        .map(|f| view(f, "rejection"))
        .chain(v.warnings.iter().map(|f| view(f, "warning")))
        .collect()
}

fn status_of(v: &Verdict) -> &'static str {
    if !v.accepted {
        "rejected"
    } else if v.warnings.is_empty() {
        "accepted"
    } else {
        "warning"
    }
}

/// A run checked against the registries, ready to be judged in a transaction.
pub(crate) struct PreparedRun {
    pub instrument: aliquot_store::InstrumentRecord,
    pub test: String,
    pub at: jiff::Timestamp,
    /// Each control's lot and value (an exact decimal, as text).
    pub controls: Vec<(QcLotRecord, String)>,
    /// The instrument message it came in (`protocol:sender:control id`): posted once.
    pub message_key: Option<String>,
}

/// How many earlier runs the rules may look back over (12x within one level, plus rejected
/// runs that are skipped).
const HISTORY_RUNS: i64 = 40;

impl App {
    /// Posts a QC run and judges it (`qc.enter`). Bad input (unknown instrument, test or lot,
    /// an expired lot, a level twice, a value that is not a number, no target for the lot)
    /// writes nothing. A run whose time lies before runs already judged is judged against the
    /// runs before it, and the later runs are judged again; a later run that becomes rejected
    /// opens a lock (re-judging never lifts one).
    pub async fn post_qc_run(&self, actor: &Actor, input: RunInput) -> AppResult<RunView> {
        actor.require(Permission::QcEnter)?;
        self.post_qc_run_from(actor, input, SOURCE_MANUAL).await
    }

    pub(crate) async fn post_qc_run_from(
        &self,
        actor: &Actor,
        input: RunInput,
        source: &str,
    ) -> AppResult<RunView> {
        let prepared = self.prepare_qc_run(&input).await?;
        let code = prepared.instrument.code.clone();
        let mut tx = self.store.begin().await?;
        let (run, locked) = self
            .post_qc_run_in(&mut *tx, actor, prepared, source)
            .await?;
        let run = run.ok_or_else(|| AppError::Internal("a run without a message".into()))?;
        tx.commit().await?;
        let lots = self.store.qc_lots().await?;
        Ok(run_view(&run, &code, &lots, locked))
    }

    /// Checks a run's input against the registries (instrument, test, lots, expiry, values):
    /// everything that needs no transaction.
    pub(crate) async fn prepare_qc_run(&self, input: &RunInput) -> AppResult<PreparedRun> {
        let instrument = self.qc_instrument(&input.instrument).await?;
        let test = self.qc_test(&input.test).await?;
        let now = self.now();
        let at = not_future(
            "time",
            opt_time("time", input.at.as_deref())?.unwrap_or(now),
            now,
        )?;
        if input.controls.is_empty() || input.controls.len() > 3 {
            return Err(AppError::invalid(
                "controls",
                "invalid_controls",
                "a run has one to three controls, one per level",
            ));
        }
        let tz = self.lab_timezone().await?;
        let day = at.to_zoned(tz).date();
        let mut controls: Vec<(QcLotRecord, String)> = Vec::with_capacity(input.controls.len());
        for (i, c) in input.controls.iter().enumerate() {
            let field = |f: &str| format!("controls[{i}].{f}");
            let lvl = level(&field("level"), c.level)?;
            if controls.iter().any(|(l, _)| l.level == lvl) {
                return Err(AppError::invalid(
                    &field("level"),
                    "duplicate_level",
                    "each level once per run",
                ));
            }
            let lot = self.qc_lot_record(&field("lot"), &c.lot, lvl).await?;
            let expires: jiff::civil::Date = lot
                .expires_on
                .parse()
                .map_err(|_| AppError::Internal("stored lot expiry".into()))?;
            if day > expires {
                return Err(AppError::invalid(
                    &field("lot"),
                    "qc_lot_expired",
                    format!("lot {} expired on {}", lot.lot, lot.expires_on),
                ));
            }
            let value = decimal(&field("value"), &c.value)?;
            controls.push((lot, value.to_string()));
        }
        Ok(PreparedRun {
            instrument,
            test,
            at,
            controls,
            message_key: None,
        })
    }

    /// Judges and stores a prepared run inside `tx` (`qc.enter`): the lock it opens or lifts,
    /// and the later runs judged again. Returns the run (`None` when its message posted it
    /// before: a replay) and whether the instrument and test are locked after it.
    pub(crate) async fn post_qc_run_in(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        prepared: PreparedRun,
        source: &str,
    ) -> AppResult<(Option<QcRunRecord>, bool)> {
        actor.require(Permission::QcEnter)?;
        let PreparedRun {
            instrument: inst,
            test,
            at,
            controls: prepared,
            message_key,
        } = prepared;
        if let Some(key) = &message_key
            && tx.qc_run_of_message(inst.id, &test, key).await?.is_some()
        {
            let locked = tx.qc_open_lock(inst.id, &test).await?.is_some();
            return Ok((None, locked));
        }
        let now = self.now();
        let mut controls = Vec::with_capacity(prepared.len());
        for (i, (lot, value)) in prepared.into_iter().enumerate() {
            let target = tx
                .qc_target_at(lot.id, inst.id, &test, at)
                .await?
                .ok_or_else(|| {
                    AppError::invalid(
                        &format!("controls[{i}].lot"),
                        "no_qc_target",
                        format!(
                            "lot {} level {} has no target mean and SD on {} for {} at that time",
                            lot.lot, lot.level, inst.code, test
                        ),
                    )
                })?;
            controls.push(QcResultRecord {
                lot_id: lot.id,
                level: lot.level,
                value,
                mean: target.mean,
                sd: target.sd,
            });
        }
        controls.sort_by_key(|c| c.level);
        let mut run = QcRunRecord {
            id: 0,
            instrument_id: inst.id,
            test_code: test.clone(),
            run_at: at,
            status: String::new(),
            findings: String::new(),
            rules: String::new(),
            mode: String::new(),
            source: source.to_owned(),
            entered_at: now,
            entered_by: actor.username.clone(),
            evaluated_at: now,
            message_key,
            controls,
        };
        let rules = self
            .qc_rules_in(tx, inst.id, &test, run.controls.len())
            .await?;
        let verdict = judge(tx, &run, &rules, i64::MAX).await?;
        set_verdict(&mut run, &verdict, &rules);
        run.id = tx.insert_qc_run(&run).await?;
        tx.audit(self.entry(
            actor,
            "qc_run.post",
            "qc_run",
            run.id,
            None,
            Some(run_audit(&run, &inst.code)),
            None,
        ));
        self.apply_lock(actor, tx, &run, &inst.code).await?;
        // Runs after this one in time were judged without it: judge them again, in order.
        let later = tx
            .qc_runs(inst.id, &test, RunRange::After { at, id: run.id })
            .await?;
        for mut l in later {
            // Each run is judged again with the rules it was judged with.
            let own = super::rule_set(&l.rules, &l.mode).unwrap_or(rules);
            let v = judge(tx, &l, &own, l.id).await?;
            let before = (l.status.clone(), l.findings.clone());
            set_verdict(&mut l, &v, &own);
            l.evaluated_at = now;
            if (l.status.as_str(), l.findings.as_str()) != (before.0.as_str(), before.1.as_str()) {
                tx.update_qc_run_verdict(&l).await?;
                tx.audit(self.entry(
                    actor,
                    "qc_run.rejudge",
                    "qc_run",
                    l.id,
                    Some(json!({"status": before.0, "findings": serde_json::from_str::<serde_json::Value>(&before.1).unwrap_or_default()})),
                    Some(run_audit(&l, &inst.code)),
                    Some("a run measured earlier was posted later"),
                ));
                if l.status == "rejected" {
                    self.apply_lock(actor, tx, &l, &inst.code).await?;
                }
            }
        }
        let locked = tx.qc_open_lock(inst.id, &test).await?.is_some();
        Ok((Some(run), locked))
    }

    /// The rule set of an instrument and test: its configuration, or the default for the
    /// number of levels run.
    pub(crate) async fn qc_rules_in(
        &self,
        tx: &mut dyn Tx,
        instrument_id: i64,
        test: &str,
        levels: usize,
    ) -> AppResult<RuleSet> {
        Ok(match tx.qc_config(instrument_id, test).await? {
            Some(c) => super::setup::stored_rules(&c)?,
            None => default_rule_set(levels),
        })
    }

    /// A rejected run opens a lock (unless one is open); an accepted run after the rejection
    /// lifts an open lock once a corrective action is documented.
    async fn apply_lock(
        &self,
        actor: &Actor,
        tx: &mut dyn Tx,
        run: &QcRunRecord,
        instrument_code: &str,
    ) -> AppResult<()> {
        let open = tx.qc_open_lock(run.instrument_id, &run.test_code).await?;
        match (run.status.as_str(), open) {
            ("rejected", None) => {
                let since = tx
                    .qc_last_good_run_before(run.instrument_id, &run.test_code, run.run_at)
                    .await?;
                let mut lock = QcLockRecord {
                    id: 0,
                    instrument_id: run.instrument_id,
                    test_code: run.test_code.clone(),
                    rejected_run_id: run.id,
                    locked_at: run.run_at,
                    since,
                    lifted_at: None,
                    lifting_run_id: None,
                };
                lock.id = tx.insert_qc_lock(&lock).await?;
                tx.audit(self.entry(
                    actor,
                    "qc_lock.open",
                    "qc_lock",
                    lock.id,
                    None,
                    Some(json!({"instrument": instrument_code, "test": run.test_code,
                                "rejected_run": run.id,
                                "since": since.map(|s| s.to_string())})),
                    None,
                ));
            }
            ("accepted" | "warning", Some(lock)) if run.run_at > lock.locked_at => {
                let actions = tx.qc_corrective_actions(lock.id).await?;
                if !actions.is_empty() {
                    self.lift(actor, tx, &lock, run.id, instrument_code).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) async fn lift(
        &self,
        actor: &Actor,
        tx: &mut dyn Tx,
        lock: &QcLockRecord,
        run_id: i64,
        instrument_code: &str,
    ) -> AppResult<()> {
        let now = self.now();
        if tx.lift_qc_lock(lock.id, now, run_id).await? {
            tx.audit(self.entry(
                actor,
                "qc_lock.lift",
                "qc_lock",
                lock.id,
                None,
                Some(
                    json!({"instrument": instrument_code, "test": lock.test_code,
                            "accepted_run": run_id}),
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// Judges `run` against the history before it (see the module's history policy). `id` orders
/// runs of the same time: the history is the runs before (`run.run_at`, `id`).
async fn judge(tx: &mut dyn Tx, run: &QcRunRecord, rules: &RuleSet, id: i64) -> AppResult<Verdict> {
    let history = tx
        .qc_runs(
            run.instrument_id,
            &run.test_code,
            RunRange::LastBefore {
                at: run.run_at,
                id,
                limit: HISTORY_RUNS,
            },
        )
        .await?;
    let reset = tx
        .qc_calibrations(run.instrument_id, &run.test_code, 20)
        .await?
        .into_iter()
        .filter(|c| c.kind == "calibration" && c.outcome == "passed" && c.performed_at < run.run_at)
        .map(|c| c.performed_at)
        .max();
    let lot_of_level = |lvl: i64| {
        run.controls
            .iter()
            .find(|c| c.level == lvl)
            .map(|c| c.lot_id)
    };
    let mut evaluator = Evaluator::new(*rules);
    for h in history
        .iter()
        .filter(|h| h.status != "rejected" && reset.is_none_or(|r| h.run_at > r))
    {
        let obs: Vec<Observation> = h
            .controls
            .iter()
            .filter(|c| lot_of_level(c.level).is_none_or(|l| l == c.lot_id))
            .filter_map(observation)
            .collect();
        if !obs.is_empty() {
            evaluator
                .push_history(&obs)
                .map_err(|e| AppError::Internal(e.to_string()))?;
        }
    }
    let current: Vec<Observation> = run.controls.iter().filter_map(observation).collect();
    if current.len() != run.controls.len() {
        return Err(AppError::Internal(
            "a stored control value is not a number".into(),
        ));
    }
    evaluator
        .evaluate_run(&current)
        .map_err(|e| AppError::Internal(e.to_string()))
}

fn set_verdict(run: &mut QcRunRecord, v: &Verdict, rules: &RuleSet) {
    run.status = status_of(v).to_owned();
    run.findings = serde_json::to_string(&findings(v)).unwrap_or_else(|_| "[]".into());
    run.rules = rules_text(rules);
    run.mode = mode_str(rules.mode()).to_owned();
}

fn run_audit(run: &QcRunRecord, instrument: &str) -> serde_json::Value {
    json!({
        "instrument": instrument,
        "test": run.test_code,
        "at": run.run_at.to_string(),
        "status": run.status,
        "findings": serde_json::from_str::<serde_json::Value>(&run.findings).unwrap_or_default(),
        "rules": run.rules,
        "mode": run.mode,
        "source": run.source,
        "controls": run.controls.iter().map(|c| json!({
            "lot_id": c.lot_id, "level": c.level, "value": c.value, "mean": c.mean, "sd": c.sd,
        })).collect::<Vec<_>>(),
    })
}

impl App {
    /// What autoverification needs to know about QC of a result measured on `instrument`
    /// (the lab's code): whether the instrument and test are locked by a rejected run, and
    /// whether their calibration is overdue. Two indexed lookups.
    pub(crate) async fn qc_facts(
        &self,
        tx: &mut dyn Tx,
        instrument: &str,
        test: &str,
        now: Timestamp,
    ) -> AppResult<(QcStatus, bool)> {
        let qc = if tx.qc_locked(instrument, test).await? {
            QcStatus::Rejected
        } else {
            QcStatus::NotEvaluated
        };
        let overdue = match tx.qc_calibration_state(instrument, test, now).await? {
            Some((Some(hours), last)) => calibration_status(Some(hours), last, now).overdue,
            _ => false,
        };
        Ok((qc, overdue))
    }
}
