//! Corrective actions (what was done about a rejected run) and calibration events.

use aliquot_domain::auth::Permission;
use aliquot_store::{QcCalibrationRecord, QcCorrectiveActionRecord, RunRange};
use jiff::Timestamp;
use serde_json::json;

use super::{not_future, opt_time, text};
use crate::{Actor, App, AppError, AppResult, require_reason};

#[derive(Debug, Clone)]
pub struct CorrectiveActionInput {
    pub instrument: String,
    pub test: String,
    /// What was done (e.g. "replaced the reagent pack, recalibrated, re-ran both levels").
    pub action: String,
    /// Why the run failed, as far as known.
    pub reason: Option<String>,
    /// When it was done, RFC 3339 (default now); not before the rejected run.
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectiveActionView {
    pub id: i64,
    pub instrument: String,
    pub test: String,
    pub rejected_run: i64,
    pub action: String,
    pub reason: String,
    pub performed_at: Timestamp,
    pub performed_by: String,
    /// Whether the lock is still open (it lifts with an accepted run after the rejection).
    pub locked: bool,
}

#[derive(Debug, Clone)]
pub struct CalibrationInput {
    pub instrument: String,
    pub test: String,
    /// `calibration` or `verification` (calibration verification / AMR check).
    pub kind: String,
    pub calibrator_lot: String,
    /// `passed` or `failed`.
    pub outcome: String,
    /// RFC 3339 (default now).
    pub at: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationView {
    pub id: i64,
    pub instrument: String,
    pub test: String,
    pub kind: String,
    pub calibrator_lot: String,
    pub outcome: String,
    pub performed_at: Timestamp,
    pub performed_by: String,
    pub notes: Option<String>,
}

pub(crate) fn calibration_view(c: QcCalibrationRecord, instrument: &str) -> CalibrationView {
    CalibrationView {
        id: c.id,
        instrument: instrument.to_owned(),
        test: c.test_code,
        kind: c.kind,
        calibrator_lot: c.calibrator_lot,
        outcome: c.outcome,
        performed_at: c.performed_at,
        performed_by: c.performed_by,
        notes: c.notes,
    }
}

impl App {
    /// Documents a corrective action on a locked instrument and test (`qc.manage`, with a
    /// reason). When a run was accepted after the rejection already, the lock lifts now;
    /// otherwise it lifts with the next accepted run.
    pub async fn document_corrective_action(
        &self,
        actor: &Actor,
        input: CorrectiveActionInput,
    ) -> AppResult<CorrectiveActionView> {
        actor.require(Permission::QcManage)?;
        let inst = self.qc_instrument(&input.instrument).await?;
        let test = self.qc_test(&input.test).await?;
        let action = text("action", &input.action, 1000)?;
        let reason = require_reason(input.reason.as_deref())?;
        let now = self.now();
        let at = not_future(
            "time",
            opt_time("time", input.at.as_deref())?.unwrap_or(now),
            now,
        )?;
        let mut tx = self.store.begin().await?;
        let lock = tx.qc_open_lock(inst.id, &test).await?.ok_or_else(|| {
            AppError::invalid(
                "test",
                "qc_not_locked",
                "this instrument and test are not locked by a rejected QC run",
            )
        })?;
        let mut record = QcCorrectiveActionRecord {
            id: 0,
            lock_id: lock.id,
            action,
            reason,
            performed_at: at,
            performed_by: actor.username.clone(),
        };
        if at < lock.locked_at {
            return Err(AppError::invalid(
                "time",
                "before_rejection",
                "a corrective action is done after the run it answers",
            ));
        }
        record.id = tx.insert_qc_corrective_action(&record).await?;
        tx.audit(self.entry(
            actor,
            "qc_corrective_action.create",
            "qc_lock",
            lock.id,
            None,
            Some(
                json!({"instrument": inst.code, "test": test, "action": record.action,
                        "rejected_run": lock.rejected_run_id}),
            ),
            Some(&record.reason),
        ));
        let accepted_after = tx
            .qc_runs(
                inst.id,
                &test,
                RunRange::After {
                    at: lock.locked_at,
                    id: lock.rejected_run_id,
                },
            )
            .await?
            .into_iter()
            .rfind(|r| r.status != "rejected" && r.run_at > lock.locked_at);
        let mut locked = true;
        if let Some(run) = accepted_after {
            self.lift(actor, &mut *tx, &lock, run.id, &inst.code)
                .await?;
            locked = false;
        }
        tx.commit().await?;
        Ok(CorrectiveActionView {
            id: record.id,
            instrument: inst.code,
            test,
            rejected_run: lock.rejected_run_id,
            action: record.action,
            reason: record.reason,
            performed_at: record.performed_at,
            performed_by: record.performed_by,
            locked,
        })
    }

    /// Records a calibration or a calibration verification (`qc.enter`). A passed
    /// calibration restarts the QC history the rules look back over.
    pub async fn record_calibration(
        &self,
        actor: &Actor,
        input: CalibrationInput,
    ) -> AppResult<CalibrationView> {
        actor.require(Permission::QcEnter)?;
        let inst = self.qc_instrument(&input.instrument).await?;
        let test = self.qc_test(&input.test).await?;
        let kind = match input.kind.trim() {
            k @ ("calibration" | "verification") => k.to_owned(),
            _ => {
                return Err(AppError::invalid(
                    "kind",
                    "invalid_calibration_kind",
                    "`calibration` or `verification`",
                ));
            }
        };
        let outcome = match input.outcome.trim() {
            o @ ("passed" | "failed") => o.to_owned(),
            _ => {
                return Err(AppError::invalid(
                    "outcome",
                    "invalid_outcome",
                    "`passed` or `failed`",
                ));
            }
        };
        let now = self.now();
        let at = not_future(
            "time",
            opt_time("time", input.at.as_deref())?.unwrap_or(now),
            now,
        )?;
        let notes = match input.notes.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(n) => Some(text("notes", n, 1000)?),
        };
        let mut record = QcCalibrationRecord {
            id: 0,
            instrument_id: inst.id,
            test_code: test,
            kind,
            calibrator_lot: text("calibrator_lot", &input.calibrator_lot, 40)?,
            outcome,
            performed_at: at,
            performed_by: actor.username.clone(),
            notes,
        };
        let mut tx = self.store.begin().await?;
        record.id = tx.insert_qc_calibration(&record).await?;
        tx.audit(self.entry(
            actor,
            "qc_calibration.create",
            "qc_calibration",
            record.id,
            None,
            Some(
                json!({"instrument": inst.code, "test": record.test_code, "kind": record.kind,
                        "calibrator_lot": record.calibrator_lot, "outcome": record.outcome,
                        "at": record.performed_at.to_string()}),
            ),
            None,
        ));
        tx.commit().await?;
        Ok(calibration_view(record, &inst.code))
    }

    /// An instrument and test's calibration events, newest first (`qc.read`).
    pub async fn list_calibrations(
        &self,
        actor: &Actor,
        instrument: &str,
        test: &str,
    ) -> AppResult<Vec<CalibrationView>> {
        actor.require(Permission::QcRead)?;
        let inst = self.qc_instrument(instrument).await?;
        let test = self.qc_test(test).await?;
        Ok(self
            .store
            .qc_calibrations(inst.id, &test, 500)
            .await?
            .into_iter()
            .map(|c| calibration_view(c, &inst.code))
            .collect())
    }
}
