//! What QC shows: the lock state per instrument and test with the patient results a rejected
//! run puts in doubt, the runs, statistics (monthly and cumulative), and the data of a
//! Levey-Jennings chart.

use std::collections::BTreeMap;

use aliquot_domain::auth::Permission;
use aliquot_domain::qc::stats::Accumulator;
use aliquot_store::{InstrumentRecord, QcLockRecord, QcLotRecord, QcRunRecord, RunRange};
use jiff::{SignedDuration, Timestamp};

use super::actions::CorrectiveActionView;
use super::runs::{RunView, run_view};
use super::{decimal, level, opt_time};
use crate::{Actor, App, AppError, AppResult};

/// A patient result measured on a locked instrument since its last accepted QC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedResultView {
    pub result_id: i64,
    pub order_id: i64,
    pub test: String,
    /// `held` (waits for the lock to lift and a re-test), `released` (released before the
    /// rejection: re-test and correct if needed), …
    pub status: String,
    pub resulted_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockView {
    pub id: i64,
    pub locked_at: Timestamp,
    /// The last accepted run before the rejection.
    pub since: Option<Timestamp>,
    pub rejected_run: RunView,
    pub corrective_actions: Vec<CorrectiveActionView>,
    /// Patient results measured since the last accepted run: to re-test.
    pub affected_results: Vec<AffectedResultView>,
    pub lifted_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationStatusView {
    pub last_at: Option<Timestamp>,
    pub interval_hours: Option<i64>,
    pub due_at: Option<Timestamp>,
    /// Results of this test are held by autoverification while overdue.
    pub overdue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QcStatusView {
    pub instrument: String,
    pub test: String,
    pub locked: bool,
    pub lock: Option<LockView>,
    pub last_run: Option<RunView>,
    pub rules: Vec<String>,
    pub mode: String,
    pub calibration: CalibrationStatusView,
}

/// One line of the statistics: a level and lot over a month, or over everything (`period` =
/// `cumulative`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsRow {
    /// `YYYY-MM` (the lab's time zone) or `cumulative`.
    pub period: String,
    pub level: i64,
    pub lot: String,
    /// Values of runs that were not rejected.
    pub n: u64,
    pub mean: Option<String>,
    /// With n − 1.
    pub sd: Option<String>,
    pub cv_pct: Option<String>,
    /// (TEa − |bias|) / CV, when the instrument and test have TEa and bias configured.
    pub sigma: Option<String>,
    /// Runs with this level and lot that were rejected.
    pub rejected_runs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsView {
    pub instrument: String,
    pub test: String,
    pub rows: Vec<StatisticsRow>,
}

/// One control value on the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartPoint {
    pub run_id: i64,
    pub at: Timestamp,
    pub value: String,
    pub mean: String,
    pub sd: String,
    /// `accepted`, `warning` or `rejected`.
    pub status: String,
    /// The rules the run broke or warned on that involve this level.
    pub rules: Vec<String>,
}

/// Which chart: an instrument, test and level, a lot (default: the lot of the latest value in
/// the period), and a period (RFC 3339; default the last 31 days).
#[derive(Debug, Clone, Copy)]
pub struct ChartQuery<'a> {
    pub instrument: &'a str,
    pub test: &'a str,
    pub level: i64,
    pub lot: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

/// The data of a Levey-Jennings chart: one instrument, test, level and lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartData {
    pub instrument: String,
    pub test: String,
    pub level: i64,
    pub lot: Option<String>,
    pub material: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub points: Vec<ChartPoint>,
    /// Corrective actions in the period (time, what was done).
    pub actions: Vec<(Timestamp, String)>,
}

/// The period a chart or a statistic covers by default: the last 31 days.
const DEFAULT_DAYS: i64 = 31;
/// At most this many runs are read for a report.
const REPORT_RUNS: i64 = 20_000;

impl App {
    /// The QC state of every instrument and test with QC (or one of them): locked or not, the
    /// rejected run, its corrective actions and the patient results to re-test, the last run,
    /// the rules, and the calibration state (`qc.read`).
    pub async fn qc_status(
        &self,
        actor: &Actor,
        instrument: Option<&str>,
        test: Option<&str>,
    ) -> AppResult<Vec<QcStatusView>> {
        actor.require(Permission::QcRead)?;
        let want_inst = match instrument {
            Some(i) => Some(self.qc_instrument(i).await?),
            None => None,
        };
        let want_test = match test {
            Some(t) => Some(self.qc_test(t).await?),
            None => None,
        };
        let instruments = self.store.instruments().await?;
        let lots = self.store.qc_lots().await?;
        let now = self.now();
        let mut out = Vec::new();
        for (inst_id, test_code) in self.store.qc_pairs().await? {
            if want_inst.as_ref().is_some_and(|i| i.id != inst_id)
                || want_test.as_ref().is_some_and(|t| *t != test_code)
            {
                continue;
            }
            let Some(inst) = instruments.iter().find(|i| i.id == inst_id) else {
                continue;
            };
            out.push(self.status_of(inst, &test_code, &lots, now).await?);
        }
        Ok(out)
    }

    async fn status_of(
        &self,
        inst: &InstrumentRecord,
        test: &str,
        lots: &[QcLotRecord],
        now: Timestamp,
    ) -> AppResult<QcStatusView> {
        let open = self.store.qc_open_lock(inst.id, test).await?;
        let lock = match &open {
            Some(l) => Some(self.lock_view(inst, l, lots).await?),
            None => None,
        };
        let last_run = self
            .store
            .qc_runs(
                inst.id,
                test,
                RunRange::LastBefore {
                    at: Timestamp::MAX,
                    id: i64::MAX,
                    limit: 1,
                },
            )
            .await?
            .pop()
            .map(|r| run_view(&r, &inst.code, lots, open.is_some()));
        let config = self.store.qc_config(inst.id, test).await?;
        let (rules, mode) = match &config {
            Some(c) => (
                c.rules.split(',').map(str::to_owned).collect(),
                c.mode.clone(),
            ),
            None => {
                let levels = last_run.as_ref().map_or(2, |r| r.controls.len());
                let set = super::default_rule_set(levels);
                (
                    set.rules().map(|r| r.code().to_owned()).collect(),
                    super::mode_str(set.mode()).to_owned(),
                )
            }
        };
        let interval = config.as_ref().and_then(|c| c.calibration_interval_hours);
        let last_cal = self
            .store
            .qc_calibrations(inst.id, test, 50)
            .await?
            .into_iter()
            .find(|c| c.kind == "calibration" && c.outcome == "passed")
            .map(|c| c.performed_at);
        let calibration = calibration_status(interval, last_cal, now);
        Ok(QcStatusView {
            instrument: inst.code.clone(),
            test: test.to_owned(),
            locked: open.is_some(),
            lock,
            last_run,
            rules,
            mode,
            calibration,
        })
    }

    async fn lock_view(
        &self,
        inst: &InstrumentRecord,
        l: &QcLockRecord,
        lots: &[QcLotRecord],
    ) -> AppResult<LockView> {
        let rejected = self
            .store
            .qc_runs(
                inst.id,
                &l.test_code,
                RunRange::Between {
                    from: Some(l.locked_at),
                    to: Some(
                        l.locked_at
                            .checked_add(SignedDuration::from_micros(1))
                            .unwrap_or(Timestamp::MAX),
                    ),
                    limit: 100,
                },
            )
            .await?
            .into_iter()
            .find(|r| r.id == l.rejected_run_id)
            .ok_or_else(|| AppError::Internal("a lock's run is missing".into()))?;
        let actions = self
            .store
            .qc_corrective_actions(l.id)
            .await?
            .into_iter()
            .map(|a| CorrectiveActionView {
                id: a.id,
                instrument: inst.code.clone(),
                test: l.test_code.clone(),
                rejected_run: l.rejected_run_id,
                action: a.action,
                reason: a.reason,
                performed_at: a.performed_at,
                performed_by: a.performed_by,
                locked: l.lifted_at.is_none(),
            })
            .collect();
        let affected = self
            .store
            .results_on_instrument(&inst.code, &l.test_code, l.since, 1000)
            .await?
            .into_iter()
            .map(|r| AffectedResultView {
                result_id: r.id,
                order_id: r.order_id,
                test: r.test_code,
                status: r.status,
                resulted_at: r.resulted_at,
            })
            .collect();
        Ok(LockView {
            id: l.id,
            locked_at: l.locked_at,
            since: l.since,
            rejected_run: run_view(&rejected, &inst.code, lots, l.lifted_at.is_none()),
            corrective_actions: actions,
            affected_results: affected,
            lifted_at: l.lifted_at,
        })
    }

    /// The runs of an instrument and test in a period, oldest first (`qc.read`).
    pub async fn list_qc_runs(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> AppResult<Vec<RunView>> {
        actor.require(Permission::QcRead)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        let (from, to) = self.period(opt_time("from", from)?, opt_time("to", to)?)?;
        let lots = self.store.qc_lots().await?;
        let open = self.store.qc_open_lock(inst.id, &test).await?.is_some();
        Ok(self
            .runs_in(&inst, &test, from, to)
            .await?
            .iter()
            .map(|r| run_view(r, &inst.code, &lots, open))
            .collect())
    }

    fn period(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> AppResult<(Timestamp, Timestamp)> {
        let to = to.unwrap_or_else(|| {
            self.now()
                .checked_add(SignedDuration::from_secs(1))
                .unwrap_or(Timestamp::MAX)
        });
        let from = from.unwrap_or_else(|| {
            to.checked_sub(SignedDuration::from_hours(24 * DEFAULT_DAYS))
                .unwrap_or(Timestamp::MIN)
        });
        if from >= to {
            return Err(AppError::invalid(
                "from",
                "invalid_period",
                "`from` must lie before `to`",
            ));
        }
        Ok((from, to))
    }

    async fn runs_in(
        &self,
        inst: &InstrumentRecord,
        test: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> AppResult<Vec<QcRunRecord>> {
        Ok(self
            .store
            .qc_runs(
                inst.id,
                test,
                RunRange::Between {
                    from: Some(from),
                    to: Some(to),
                    limit: REPORT_RUNS,
                },
            )
            .await?)
    }

    /// Monthly and cumulative statistics per level and lot of an instrument and test in a
    /// period (default: everything): n, mean, SD (n − 1), CV% and rejected runs (`qc.read`).
    /// Values of rejected runs are counted as rejections, not in the mean and SD.
    pub async fn qc_statistics(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> AppResult<StatisticsView> {
        actor.require(Permission::QcRead)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        let from = opt_time("from", from)?.unwrap_or(Timestamp::MIN);
        let (from, to) = self.period(Some(from), opt_time("to", to)?)?;
        let tz = self.lab_timezone().await?;
        let lots = self.store.qc_lots().await?;
        let runs = self.runs_in(&inst, &test, from, to).await?;
        let config = self.store.qc_config(inst.id, &test).await?;
        let tea_bias = config.as_ref().and_then(|c| {
            let tea = decimal("tea_pct", c.tea_pct.as_deref()?).ok()?;
            let bias = decimal("bias_pct", c.bias_pct.as_deref()?).ok()?;
            Some((tea, bias))
        });
        // (level, lot id, period) → (accumulator, rejected runs); period "" = cumulative.
        let mut groups: BTreeMap<(i64, i64, String), (Accumulator, u64)> = BTreeMap::new();
        for r in &runs {
            let month = r.run_at.to_zoned(tz.clone()).strftime("%Y-%m").to_string();
            for c in &r.controls {
                for period in [month.clone(), String::new()] {
                    let g = groups.entry((c.level, c.lot_id, period)).or_default();
                    if r.status == "rejected" {
                        g.1 += 1;
                    } else if let Ok(v) = decimal("value", &c.value) {
                        // A sum beyond 28 digits cannot come from real control values.
                        g.0.push(v).map_err(|e| AppError::Internal(e.to_string()))?;
                    }
                }
            }
        }
        let rows = groups
            .into_iter()
            .map(|((lvl, lot_id, period), (acc, rejected))| StatisticsRow {
                period: if period.is_empty() {
                    "cumulative".into()
                } else {
                    period
                },
                level: lvl,
                lot: lots
                    .iter()
                    .find(|l| l.id == lot_id)
                    .map_or_else(String::new, |l| l.lot.clone()),
                n: acc.n(),
                mean: acc.mean().map(|m| m.round_dp(4).normalize().to_string()),
                sd: acc.sd().map(|s| s.round_dp(4).normalize().to_string()),
                cv_pct: acc.cv_pct().map(|c| c.round_dp(2).normalize().to_string()),
                sigma: tea_bias.and_then(|(tea, bias)| {
                    let s = aliquot_domain::qc::sigma::sigma(tea, bias, acc.cv_pct()?).ok()?;
                    Some(s.round_dp(2).normalize().to_string())
                }),
                rejected_runs: rejected,
            })
            .collect();
        Ok(StatisticsView {
            instrument: inst.code,
            test,
            rows,
        })
    }

    /// The points of a Levey-Jennings chart: one level of an instrument and test, one lot
    /// (default: the lot of the latest value in the period), with the mean and SD each value
    /// was judged with, the rules broken, and the corrective actions (`qc.read`).
    pub async fn qc_chart(&self, actor: &Actor, q: ChartQuery<'_>) -> AppResult<ChartData> {
        let ChartQuery {
            instrument,
            test,
            level: lvl,
            lot,
            from,
            to,
        } = q;
        actor.require(Permission::QcRead)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        let lvl = level("level", lvl)?;
        let (from, to) = self.period(opt_time("from", from)?, opt_time("to", to)?)?;
        let lot = match lot {
            Some(l) => Some(self.qc_lot_record("lot", l, lvl).await?),
            None => None,
        };
        let runs = self.runs_in(&inst, &test, from, to).await?;
        let lots = self.store.qc_lots().await?;
        let lot_id = lot.as_ref().map(|l| l.id).or_else(|| {
            runs.iter()
                .rev()
                .flat_map(|r| r.controls.iter())
                .find(|c| c.level == lvl)
                .map(|c| c.lot_id)
        });
        let lot = lot_id.and_then(|id| lots.iter().find(|l| l.id == id).cloned());
        let points = runs
            .iter()
            .filter_map(|r| {
                let c = r
                    .controls
                    .iter()
                    .find(|c| c.level == lvl && Some(c.lot_id) == lot_id)?;
                let findings: Vec<super::FindingView> =
                    serde_json::from_str(&r.findings).unwrap_or_default();
                Some(ChartPoint {
                    run_id: r.id,
                    at: r.run_at,
                    value: c.value.clone(),
                    mean: c.mean.clone(),
                    sd: c.sd.clone(),
                    status: r.status.clone(),
                    rules: findings
                        .into_iter()
                        .filter(|f| f.levels.contains(&u8::try_from(lvl).unwrap_or(0)))
                        .map(|f| f.rule)
                        .collect(),
                })
            })
            .collect();
        let actions = self
            .store
            .qc_corrective_actions_between(inst.id, &test, from, to)
            .await?
            .into_iter()
            .map(|a| (a.performed_at, a.action))
            .collect();
        Ok(ChartData {
            instrument: inst.code,
            test,
            level: lvl,
            lot: lot.as_ref().map(|l| l.lot.clone()),
            material: lot.map(|l| l.material),
            from,
            to,
            points,
            actions,
        })
    }
}

/// Overdue when an interval is set and no passed calibration lies within it.
pub(crate) fn calibration_status(
    interval_hours: Option<i64>,
    last: Option<Timestamp>,
    now: Timestamp,
) -> CalibrationStatusView {
    let due_at = match (interval_hours, last) {
        (Some(h), Some(l)) => l.checked_add(SignedDuration::from_hours(h)).ok(),
        _ => None,
    };
    CalibrationStatusView {
        last_at: last,
        interval_hours,
        due_at,
        overdue: interval_hours.is_some() && due_at.is_none_or(|d| now > d),
    }
}
