//! Quality control and calibration (issue 13): control lots and targets, rules per instrument
//! and test, QC runs judged by the Westgard rules, the lock a rejected run puts on patient
//! results, corrective actions, calibrations, statistics and the Levey-Jennings chart.

use aliquot_app::Actor;
use aliquot_app::qc::{
    AffectedResultView, CalibrationInput, CalibrationStatusView, CalibrationView, ChartQuery,
    ConfigInput, ConfigView, ControlInput, ControlView, CorrectiveActionInput,
    CorrectiveActionView, FindingView, LockView, LotInput, LotView, QcStatusView, RunInput,
    RunView, StatisticsView, TargetInput, TargetView,
};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

// ── lots ──

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlIdDto {
    /// The instrument's code.
    pub instrument: String,
    /// The sample id the instrument sends for this control.
    pub id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotDto {
    /// e.g. "Liquichek Chemistry Control".
    pub material: String,
    pub manufacturer: String,
    pub lot: String,
    /// 1, 2 or 3.
    pub level: i64,
    /// The last day the lot may be used (YYYY-MM-DD).
    pub expires_on: String,
    /// How instruments name this control in their messages.
    #[serde(default)]
    pub control_ids: Vec<ControlIdDto>,
}

#[derive(Serialize, ToSchema)]
pub struct LotViewDto {
    pub material: String,
    pub manufacturer: String,
    pub lot: String,
    pub level: i64,
    pub expires_on: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<LotView> for LotViewDto {
    fn from(v: LotView) -> Self {
        LotViewDto {
            material: v.material,
            manufacturer: v.manufacturer,
            lot: v.lot,
            level: v.level,
            expires_on: v.expires_on,
            created_at: v.created_at.to_string(),
            created_by: v.created_by,
        }
    }
}

/// Register a control lot (one level of one control material).
#[utoipa::path(post, path = "/api/v1/qc/lots", tag = "qc", request_body = LotDto,
    responses((status = 201, body = LotViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create_lot(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<LotDto>,
) -> ApiResult<(StatusCode, Json<LotViewDto>)> {
    let input = LotInput {
        material: req.material,
        manufacturer: req.manufacturer,
        lot: req.lot,
        level: req.level,
        expires_on: req.expires_on,
        control_ids: req
            .control_ids
            .into_iter()
            .map(|c| (c.instrument, c.id))
            .collect(),
    };
    let v = state.app.create_qc_lot(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// Every control lot, newest first.
#[utoipa::path(get, path = "/api/v1/qc/lots", tag = "qc",
    responses((status = 200, body = [LotViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_lots(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<LotViewDto>>> {
    Ok(Json(
        state
            .app
            .list_qc_lots(&actor)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

// ── targets ──

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetDto {
    pub instrument: String,
    pub test: String,
    pub lot: String,
    pub level: i64,
    /// Exact decimals as text, e.g. "4.10".
    pub mean: String,
    pub sd: String,
    /// From when it applies (RFC 3339; default now). Never before the target it replaces.
    pub effective_at: Option<String>,
    /// Required when it replaces a target.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TargetViewDto {
    pub instrument: String,
    pub test: String,
    pub lot: String,
    pub level: i64,
    pub mean: String,
    pub sd: String,
    /// `manufacturer` or `lab` (established from the lab's own values).
    pub source: String,
    /// How many values a lab target was established from.
    pub points: Option<i64>,
    pub effective_at: String,
    pub set_at: String,
    pub set_by: String,
    pub reason: Option<String>,
}

impl From<TargetView> for TargetViewDto {
    fn from(v: TargetView) -> Self {
        TargetViewDto {
            instrument: v.instrument,
            test: v.test,
            lot: v.lot,
            level: v.level,
            mean: v.mean,
            sd: v.sd,
            source: v.source,
            points: v.points,
            effective_at: v.effective_at.to_string(),
            set_at: v.set_at.to_string(),
            set_by: v.set_by,
            reason: v.reason,
        }
    }
}

/// Set a lot's target mean and SD on an instrument and test (the manufacturer's values, until
/// the lab's own are established). Limits change prospectively: earlier runs keep theirs.
#[utoipa::path(post, path = "/api/v1/qc/targets", tag = "qc", request_body = TargetDto,
    responses((status = 201, body = TargetViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_target(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<TargetDto>,
) -> ApiResult<(StatusCode, Json<TargetViewDto>)> {
    let input = TargetInput {
        instrument: req.instrument,
        test: req.test,
        lot: req.lot,
        level: req.level,
        mean: req.mean,
        sd: req.sd,
        effective_at: req.effective_at,
        reason: req.reason,
    };
    let v = state.app.set_qc_target(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstablishDto {
    pub instrument: String,
    pub test: String,
    pub lot: String,
    pub level: i64,
    /// Why now (e.g. "20 days of data, CLSI C24"); required.
    pub reason: String,
}

/// Establish a lot's target from the lab's own accepted values (at least 20; SD with n − 1),
/// from now on: the documented switch-over from the manufacturer's range.
#[utoipa::path(post, path = "/api/v1/qc/targets/establish", tag = "qc", request_body = EstablishDto,
    responses((status = 201, body = TargetViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn establish_target(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<EstablishDto>,
) -> ApiResult<(StatusCode, Json<TargetViewDto>)> {
    let v = state
        .app
        .establish_qc_target(
            &actor,
            &req.instrument,
            &req.test,
            &req.lot,
            req.level,
            Some(&req.reason),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PairParams {
    /// The instrument's code.
    pub instrument: String,
    /// The test's code.
    pub test: String,
}

/// Every target of an instrument and test, in the order they took effect.
#[utoipa::path(get, path = "/api/v1/qc/targets", tag = "qc", params(PairParams),
    responses((status = 200, body = [TargetViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_targets(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<PairParams>,
) -> ApiResult<Json<Vec<TargetViewDto>>> {
    Ok(Json(
        state
            .app
            .list_qc_targets(&actor, &q.instrument, &q.test)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

// ── configurations ──

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigDto {
    /// Rule codes chosen by hand: `1-2s` (warning), `1-3s`, `2-2s`, `R-4s`, `4-1s`, `10x`,
    /// `8x`, `12x`, `2of3-2s`, `3-1s`, `6x`, `9x`. Without them the rules are chosen from the
    /// sigma metric (TEa − |bias|) / CV with the lab's CV (Westgard Sigma Rules).
    pub rules: Option<Vec<String>>,
    /// The method's bias in % (proficiency testing or peer data).
    pub bias_pct: Option<String>,
    /// `classic` (rules only after a 1-2s warning) or `modern` (default: every rule, every run).
    pub mode: Option<String>,
    /// Results of the test are held while its calibration is older than this.
    pub calibration_interval_hours: Option<i64>,
    /// Allowable total error in %.
    pub tea_pct: Option<String>,
    /// The version replaced (required when one exists).
    pub version: Option<i64>,
    /// Required when a configuration is replaced.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConfigViewDto {
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
    pub updated_at: String,
    pub updated_by: String,
}

impl From<ConfigView> for ConfigViewDto {
    fn from(v: ConfigView) -> Self {
        ConfigViewDto {
            instrument: v.instrument,
            test: v.test,
            rules: v.rules,
            mode: v.mode,
            calibration_interval_hours: v.calibration_interval_hours,
            tea_pct: v.tea_pct,
            bias_pct: v.bias_pct,
            sigma: v.sigma,
            version: v.version,
            updated_at: v.updated_at.to_string(),
            updated_by: v.updated_by,
        }
    }
}

/// Set how QC of an instrument and test is judged: the rules (by hand or from the sigma
/// metric), the mode, the calibration interval and the allowable total error.
#[utoipa::path(put, path = "/api/v1/qc/configs/{instrument}/{test}", tag = "qc", request_body = ConfigDto,
    params(("instrument" = String, Path, description = "instrument code"),
           ("test" = String, Path, description = "test code")),
    responses((status = 200, body = ConfigViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_config(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath((instrument, test)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ConfigDto>,
) -> ApiResult<Json<ConfigViewDto>> {
    let input = ConfigInput {
        rules: req.rules,
        bias_pct: req.bias_pct,
        mode: req.mode,
        calibration_interval_hours: req.calibration_interval_hours,
        tea_pct: req.tea_pct,
    };
    Ok(Json(
        state
            .app
            .put_qc_config(
                &actor,
                &instrument,
                &test,
                input,
                req.version,
                req.reason.as_deref(),
            )
            .await?
            .into(),
    ))
}

/// How QC of an instrument and test is judged (404 while the defaults apply).
#[utoipa::path(get, path = "/api/v1/qc/configs/{instrument}/{test}", tag = "qc",
    params(("instrument" = String, Path, description = "instrument code"),
           ("test" = String, Path, description = "test code")),
    responses((status = 200, body = ConfigViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn get_config(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath((instrument, test)): ApiPath<(String, String)>,
) -> ApiResult<Json<ConfigViewDto>> {
    Ok(Json(
        state
            .app
            .get_qc_config(&actor, &instrument, &test)
            .await?
            .into(),
    ))
}

// ── runs ──

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlDto {
    pub lot: String,
    pub level: i64,
    /// As measured, an exact decimal, e.g. "3.52".
    pub value: String,
}

/// A QC run: the controls of one instrument and test measured together. Give `controls`, or
/// one control as `lot`, `level` and `value`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunDto {
    pub instrument: String,
    pub test: String,
    /// When the controls were measured (RFC 3339; default now). Runs are judged in this order.
    pub time: Option<String>,
    pub controls: Option<Vec<ControlDto>>,
    pub lot: Option<String>,
    pub level: Option<i64>,
    pub value: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FindingDto {
    /// `1-2s`, `1-3s`, `2-2s`, `R-4s`, `4-1s`, `10x`, `8x`, `12x`, `2of3-2s`, `3-1s`, `6x`, `9x`.
    pub rule: String,
    /// `within_run`, `within_material` or `across_material`.
    pub scope: String,
    pub levels: Vec<u8>,
    pub description: String,
}

impl From<&FindingView> for FindingDto {
    fn from(f: &FindingView) -> Self {
        FindingDto {
            rule: f.rule.clone(),
            scope: f.scope.clone(),
            levels: f.levels.clone(),
            description: f.description.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ControlViewDto {
    pub lot: String,
    pub level: i64,
    pub value: String,
    /// The target mean and SD it was judged with.
    pub mean: String,
    pub sd: String,
    /// (value − mean) / SD, to two decimals (judged unrounded).
    pub z: String,
}

impl From<ControlView> for ControlViewDto {
    fn from(c: ControlView) -> Self {
        ControlViewDto {
            lot: c.lot,
            level: c.level,
            value: c.value,
            mean: c.mean,
            sd: c.sd,
            z: c.z,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunViewDto {
    pub id: i64,
    pub instrument: String,
    pub test: String,
    pub time: String,
    /// `accepted`, `warning` (accepted with a 1-2s warning) or `rejected`.
    pub status: String,
    pub accepted: bool,
    /// Rules broken: the run is rejected.
    pub violations: Vec<FindingDto>,
    /// Warnings (1-2s): shown, never a rejection.
    pub warnings: Vec<FindingDto>,
    pub rules: Vec<String>,
    pub mode: String,
    /// `manual`, `hl7` or `astm`.
    pub source: String,
    pub entered_at: String,
    pub entered_by: String,
    pub controls: Vec<ControlViewDto>,
    /// Whether the instrument and test are locked now: their patient results are held.
    pub locked: bool,
}

impl From<RunView> for RunViewDto {
    fn from(v: RunView) -> Self {
        RunViewDto {
            accepted: v.accepted(),
            violations: v.violations().map(Into::into).collect(),
            warnings: v.warnings().map(Into::into).collect(),
            id: v.id,
            instrument: v.instrument,
            test: v.test,
            time: v.at.to_string(),
            status: v.status,
            rules: v.rules,
            mode: v.mode,
            source: v.source,
            entered_at: v.entered_at.to_string(),
            entered_by: v.entered_by,
            controls: v.controls.into_iter().map(Into::into).collect(),
            locked: v.locked,
        }
    }
}

/// Post a QC run: judged at once by the Westgard rules against the runs before it. A rejected
/// run locks the instrument and test: their patient results are held until a corrective
/// action is documented and a run is accepted.
#[utoipa::path(post, path = "/api/v1/qc/results", tag = "qc", request_body = RunDto,
    responses((status = 201, body = RunViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_run(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<RunDto>,
) -> ApiResult<(StatusCode, Json<RunViewDto>)> {
    let single = req.lot.is_some() || req.level.is_some() || req.value.is_some();
    let controls = match (req.controls, single) {
        (Some(c), false) => c
            .into_iter()
            .map(|c| ControlInput {
                lot: c.lot,
                level: c.level,
                value: c.value,
            })
            .collect(),
        (None, true) => vec![ControlInput {
            lot: req.lot.unwrap_or_default(),
            level: req.level.unwrap_or(0),
            value: req.value.unwrap_or_default(),
        }],
        _ => {
            return Err(aliquot_app::AppError::invalid(
                "controls",
                "invalid_controls",
                "give `controls`, or one control as `lot`, `level` and `value`",
            )
            .into());
        }
    };
    let v = state
        .app
        .post_qc_run(
            &actor,
            RunInput {
                instrument: req.instrument,
                test: req.test,
                at: req.time,
                controls,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsParams {
    pub instrument: String,
    pub test: String,
    /// RFC 3339; default 31 days before `to`.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
}

/// The runs of an instrument and test in a period, oldest first.
#[utoipa::path(get, path = "/api/v1/qc/runs", tag = "qc", params(RunsParams),
    responses((status = 200, body = [RunViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<RunsParams>,
) -> ApiResult<Json<Vec<RunViewDto>>> {
    Ok(Json(
        state
            .app
            .list_qc_runs(
                &actor,
                &q.instrument,
                &q.test,
                q.from.as_deref(),
                q.to.as_deref(),
            )
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

// ── status ──

#[derive(Serialize, ToSchema)]
pub struct CorrectiveActionDto {
    pub id: i64,
    pub instrument: String,
    pub test: String,
    /// The rejected run it answers.
    pub rejected_run: i64,
    pub action: String,
    pub reason: String,
    pub performed_at: String,
    pub performed_by: String,
    /// Whether the lock is still open (it lifts with an accepted run after the rejection).
    pub locked: bool,
}

impl From<CorrectiveActionView> for CorrectiveActionDto {
    fn from(v: CorrectiveActionView) -> Self {
        CorrectiveActionDto {
            id: v.id,
            instrument: v.instrument,
            test: v.test,
            rejected_run: v.rejected_run,
            action: v.action,
            reason: v.reason,
            performed_at: v.performed_at.to_string(),
            performed_by: v.performed_by,
            locked: v.locked,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AffectedResultDto {
    pub result_id: i64,
    pub order_id: i64,
    pub test: String,
    /// `held` (waits for the lock to lift and a re-test) or `released` (released before the
    /// rejection: re-test, and correct it if it changes).
    pub status: String,
    pub resulted_at: String,
}

impl From<AffectedResultView> for AffectedResultDto {
    fn from(v: AffectedResultView) -> Self {
        AffectedResultDto {
            result_id: v.result_id,
            order_id: v.order_id,
            test: v.test,
            status: v.status,
            resulted_at: v.resulted_at.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LockDto {
    pub id: i64,
    pub locked_at: String,
    /// The last accepted run before the rejection: results since then are listed to re-test.
    pub since: Option<String>,
    pub rejected_run: RunViewDto,
    pub corrective_actions: Vec<CorrectiveActionDto>,
    pub affected_results: Vec<AffectedResultDto>,
}

impl From<LockView> for LockDto {
    fn from(v: LockView) -> Self {
        LockDto {
            id: v.id,
            locked_at: v.locked_at.to_string(),
            since: v.since.map(|s| s.to_string()),
            rejected_run: v.rejected_run.into(),
            corrective_actions: v.corrective_actions.into_iter().map(Into::into).collect(),
            affected_results: v.affected_results.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CalibrationStatusDto {
    pub last_at: Option<String>,
    pub interval_hours: Option<i64>,
    pub due_at: Option<String>,
    /// Results of the test are held by autoverification while overdue.
    pub overdue: bool,
}

impl From<CalibrationStatusView> for CalibrationStatusDto {
    fn from(v: CalibrationStatusView) -> Self {
        CalibrationStatusDto {
            last_at: v.last_at.map(|t| t.to_string()),
            interval_hours: v.interval_hours,
            due_at: v.due_at.map(|t| t.to_string()),
            overdue: v.overdue,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QcStatusDto {
    pub instrument: String,
    pub test: String,
    /// A rejected run holds the patient results of this instrument and test.
    pub locked: bool,
    pub lock: Option<LockDto>,
    pub last_run: Option<RunViewDto>,
    pub rules: Vec<String>,
    pub mode: String,
    pub calibration: CalibrationStatusDto,
}

impl From<QcStatusView> for QcStatusDto {
    fn from(v: QcStatusView) -> Self {
        QcStatusDto {
            instrument: v.instrument,
            test: v.test,
            locked: v.locked,
            lock: v.lock.map(Into::into),
            last_run: v.last_run.map(Into::into),
            rules: v.rules,
            mode: v.mode,
            calibration: v.calibration.into(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    pub instrument: Option<String>,
    pub test: Option<String>,
}

/// The QC state of every instrument and test with QC: locked or not, with the violations, the
/// corrective actions and the patient results to re-test; the calibration state.
#[utoipa::path(get, path = "/api/v1/qc/status", tag = "qc", params(StatusParams),
    responses((status = 200, body = [QcStatusDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<StatusParams>,
) -> ApiResult<Json<Vec<QcStatusDto>>> {
    Ok(Json(
        state
            .app
            .qc_status(&actor, q.instrument.as_deref(), q.test.as_deref())
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

// ── corrective actions and calibrations ──

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectiveActionRequest {
    pub instrument: String,
    pub test: String,
    /// What was done, e.g. "new reagent pack, recalibrated, both levels re-run".
    pub action: String,
    /// Why the run failed, as far as known; required.
    pub reason: String,
    /// When it was done (RFC 3339; default now).
    pub time: Option<String>,
}

/// Document a corrective action on a locked instrument and test. The lock lifts with a run
/// accepted after the rejection (now, when one was accepted already).
#[utoipa::path(post, path = "/api/v1/qc/corrective-actions", tag = "qc",
    request_body = CorrectiveActionRequest,
    responses((status = 201, body = CorrectiveActionDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn corrective_action(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<CorrectiveActionRequest>,
) -> ApiResult<(StatusCode, Json<CorrectiveActionDto>)> {
    let v = state
        .app
        .document_corrective_action(
            &actor,
            CorrectiveActionInput {
                instrument: req.instrument,
                test: req.test,
                action: req.action,
                reason: Some(req.reason),
                at: req.time,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationDto {
    pub instrument: String,
    pub test: String,
    /// `calibration` or `verification` (calibration verification / AMR check).
    pub kind: String,
    pub calibrator_lot: String,
    /// `passed` or `failed`.
    pub outcome: String,
    /// RFC 3339; default now.
    pub time: Option<String>,
    pub notes: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CalibrationViewDto {
    pub id: i64,
    pub instrument: String,
    pub test: String,
    pub kind: String,
    pub calibrator_lot: String,
    pub outcome: String,
    pub time: String,
    pub performed_by: String,
    pub notes: Option<String>,
}

impl From<CalibrationView> for CalibrationViewDto {
    fn from(v: CalibrationView) -> Self {
        CalibrationViewDto {
            id: v.id,
            instrument: v.instrument,
            test: v.test,
            kind: v.kind,
            calibrator_lot: v.calibrator_lot,
            outcome: v.outcome,
            time: v.performed_at.to_string(),
            performed_by: v.performed_by,
            notes: v.notes,
        }
    }
}

/// Record a calibration or a calibration verification. A passed calibration restarts the QC
/// history the rules look back over, and the calibration interval from it.
#[utoipa::path(post, path = "/api/v1/qc/calibrations", tag = "qc", request_body = CalibrationDto,
    responses((status = 201, body = CalibrationViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record_calibration(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<CalibrationDto>,
) -> ApiResult<(StatusCode, Json<CalibrationViewDto>)> {
    let v = state
        .app
        .record_calibration(
            &actor,
            CalibrationInput {
                instrument: req.instrument,
                test: req.test,
                kind: req.kind,
                calibrator_lot: req.calibrator_lot,
                outcome: req.outcome,
                at: req.time,
                notes: req.notes,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// An instrument and test's calibrations, newest first.
#[utoipa::path(get, path = "/api/v1/qc/calibrations", tag = "qc", params(PairParams),
    responses((status = 200, body = [CalibrationViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_calibrations(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<PairParams>,
) -> ApiResult<Json<Vec<CalibrationViewDto>>> {
    Ok(Json(
        state
            .app
            .list_calibrations(&actor, &q.instrument, &q.test)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

// ── statistics and chart ──

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatisticsParams {
    pub instrument: String,
    pub test: String,
    /// RFC 3339; default: from the first run.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatisticsRowDto {
    /// `YYYY-MM` (the lab's time zone) or `cumulative`.
    pub period: String,
    pub level: i64,
    pub lot: String,
    /// Values of runs that were not rejected.
    pub n: u64,
    pub mean: Option<String>,
    /// Sample SD (n − 1).
    pub sd: Option<String>,
    pub cv_pct: Option<String>,
    /// (TEa − |bias|) / CV, when TEa and bias are configured.
    pub sigma: Option<String>,
    pub rejected_runs: u64,
}

#[derive(Serialize, ToSchema)]
pub struct StatisticsDto {
    pub instrument: String,
    pub test: String,
    pub rows: Vec<StatisticsRowDto>,
}

impl From<StatisticsView> for StatisticsDto {
    fn from(v: StatisticsView) -> Self {
        StatisticsDto {
            instrument: v.instrument,
            test: v.test,
            rows: v
                .rows
                .into_iter()
                .map(|r| StatisticsRowDto {
                    period: r.period,
                    level: r.level,
                    lot: r.lot,
                    n: r.n,
                    mean: r.mean,
                    sd: r.sd,
                    cv_pct: r.cv_pct,
                    sigma: r.sigma,
                    rejected_runs: r.rejected_runs,
                })
                .collect(),
        }
    }
}

/// Monthly and cumulative QC statistics per level and lot: n, mean, SD (n − 1), CV%, rejected
/// runs. `format=csv` gives the same rows as CSV.
#[utoipa::path(get, path = "/api/v1/qc/statistics", tag = "qc", params(StatisticsParams),
    responses((status = 200, description = "JSON, or CSV with `format=csv`",
               content((StatisticsDto = "application/json"), (String = "text/csv"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn statistics(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<StatisticsParams>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(aliquot_app::AppError::invalid(
                "format",
                "invalid_format",
                "`json` or `csv`",
            )
            .into());
        }
    };
    let v = state
        .app
        .qc_statistics(
            &actor,
            &q.instrument,
            &q.test,
            q.from.as_deref(),
            q.to.as_deref(),
        )
        .await?;
    if !csv {
        return Ok(Json(StatisticsDto::from(v)).into_response());
    }
    let mut out =
        String::from("instrument,test,period,level,lot,n,mean,sd,cv_pct,sigma,rejected_runs\n");
    for r in &v.rows {
        let o = |x: &Option<String>| x.clone().unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&v.instrument),
            csv_field(&v.test),
            r.period,
            r.level,
            csv_field(&r.lot),
            r.n,
            o(&r.mean),
            o(&r.sd),
            o(&r.cv_pct),
            o(&r.sigma),
            r.rejected_runs
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180); a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never runs it as a formula.
pub(crate) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChartParams {
    pub instrument: String,
    pub test: String,
    /// 1, 2 or 3.
    pub level: i64,
    /// Default: the lot of the latest value in the period.
    pub lot: Option<String>,
    /// RFC 3339; default 31 days before `to`.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
}

/// The Levey-Jennings chart of one level and lot as SVG: each value, the target mean and
/// ±1/2/3 SD lines, rejected runs and warnings marked, corrective actions annotated.
#[utoipa::path(get, path = "/api/v1/qc/chart.svg", tag = "qc", params(ChartParams),
    responses((status = 200, description = "SVG", content((String = "image/svg+xml"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn chart(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<ChartParams>,
) -> ApiResult<Response> {
    let data = state
        .app
        .qc_chart(
            &actor,
            ChartQuery {
                instrument: &q.instrument,
                test: &q.test,
                level: q.level,
                lot: q.lot.as_deref(),
                from: q.from.as_deref(),
                to: q.to.as_deref(),
            },
        )
        .await?;
    let tz = state.app.lab_timezone().await?;
    let svg = crate::qc_chart::render(&data, &tz);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        for (input, want) in [
            ("4587-1", "4587-1"),
            ("a,b", "\"a,b\""),
            ("say \"x\"", "\"say \"\"x\"\"\""),
            ("=1+1", "'=1+1"),
            ("-2", "'-2"),
            ("@SUM", "'@SUM"),
        ] {
            assert_eq!(csv_field(input), want, "{input}");
        }
    }
}
