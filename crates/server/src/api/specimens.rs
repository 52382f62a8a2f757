//! The specimen lifecycle: read with chain of custody, tube labels, collection, receipt,
//! rejection, the problem log and recollection tasks.

use aliquot_app::{
    Actor, CollectInput, CollectionCorrectionInput, ProblemView, ReceiveInput, RecollectTaskView,
    SpecimenDetail,
};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::orders::PatientIdentifiersDto;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorExtra, ReceiptProblemDto};
use crate::json::{ApiJson, ApiPath, ApiQuery};

#[derive(Serialize, ToSchema)]
pub struct SpecimenEventDto {
    pub at: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    /// `collect`, `receive`, `reject`, `label_print`.
    pub kind: String,
    pub from_status: String,
    pub to_status: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub location: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SpecimenDetailDto {
    pub id: i64,
    pub accession: String,
    pub status: String,
    pub order_id: i64,
    pub patient_id: i64,
    pub container: String,
    pub container_name: String,
    /// The specimen type tested: the one the received container stands for.
    pub specimen_type: String,
    /// Measured specimen content, µL (0 before receipt).
    pub volume_ul: i64,
    /// The planned demand of the tube's tests, µL.
    pub demand_ul: i64,
    /// The container recorded at receipt.
    pub received_container: Option<String>,
    pub collected_at: Option<String>,
    pub temperature: Option<String>,
    pub tests: Vec<String>,
    /// The chain of custody, oldest first.
    pub events: Vec<SpecimenEventDto>,
    // processing (issue 4): aliquot lineage.
    /// The accession this aliquot was poured from.
    pub parent: Option<String>,
    /// The aliquots poured from this specimen.
    pub children: Vec<crate::api::processing::AliquotChildDto>,
    /// Where it is stored now (`room/unit/rack[/box]/position`), if it is.
    pub storage_location: Option<String>,
}

impl From<SpecimenDetail> for SpecimenDetailDto {
    fn from(s: SpecimenDetail) -> Self {
        SpecimenDetailDto {
            id: s.id,
            accession: s.accession,
            status: s.status,
            order_id: s.order_id,
            patient_id: s.patient_id,
            container: s.container,
            container_name: s.container_name,
            specimen_type: s.specimen_type,
            volume_ul: s.volume_ul,
            demand_ul: s.demand_ul,
            received_container: s.received_container,
            collected_at: s.collected_at.map(|t| t.to_string()),
            temperature: s.temperature,
            tests: s.tests,
            events: s
                .events
                .into_iter()
                .map(|e| SpecimenEventDto {
                    at: e.at.to_string(),
                    actor_id: e.actor_id,
                    actor_name: e.actor_name,
                    kind: e.kind,
                    from_status: e.from_status,
                    to_status: e.to_status,
                    details: e.details,
                    location: e.location,
                })
                .collect(),
            // processing (issue 4): aliquot lineage.
            parent: s.parent,
            children: s
                .children
                .into_iter()
                .map(|c| crate::api::processing::AliquotChildDto {
                    accession: c.accession,
                    volume_ul: c.volume_ul,
                    status: c.status,
                })
                .collect(),
            storage_location: s.storage_location,
        }
    }
}

/// A specimen with its status, tests and chain of custody. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/specimens/{accession}", tag = "specimens",
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    Ok(Json(state.app.specimen(&actor, &accession).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LabelQuery {
    /// `zpl` (default) or `svg`.
    pub format: Option<String>,
}

/// The tube label as ZPL II or SVG. Every print is counted and audited; reprints say `Rn`.
#[utoipa::path(get, path = "/api/v1/specimens/{accession}/label", tag = "specimens",
    params(("accession" = String, Path, description = "accession number"), LabelQuery),
    responses((status = 200, description = "ZPL II (`format=zpl`) or SVG (`format=svg`)",
               content((String = "text/plain; charset=utf-8"), (String = "image/svg+xml"))),
              (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`no_label_for_cancelled`: the tube or its order is cancelled, or the tube was disposed of"),
              (status = 422, body = ErrorBody)))]
pub async fn label(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiQuery(q): ApiQuery<LabelQuery>,
) -> ApiResult<Response> {
    let l = state
        .app
        .specimen_label(&actor, &accession, q.format.as_deref().unwrap_or("zpl"))
        .await?;
    Ok(([(header::CONTENT_TYPE, l.media_type)], l.body).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionCorrection {
    /// The corrected draw time (RFC 3339), within the same bounds as at collection.
    pub collected_at: String,
    /// Why (e.g. "time on the requisition was 07:40, typed 17:40"); required.
    pub reason: String,
}

/// Correct a recorded collection time, with a reason. The old and new times are audited and
/// written to the chain of custody; stability and turnaround time use the corrected time.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/collection-time", tag = "specimens",
    request_body = CollectionCorrection,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn correct_collection_time(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<CollectionCorrection>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = CollectionCorrectionInput {
        collected_at: req.collected_at,
        reason: req.reason,
    };
    Ok(Json(
        state
            .app
            .correct_collection_time(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// When the specimen was really drawn (RFC 3339): at most 5 minutes ahead of the server's
    /// clock and at most `specimen.collection_lookback_hours` (default a week) back; it may
    /// precede the order's entry.
    pub collected_at: String,
    /// Who drew it, when not the user recording it (default: the user).
    pub collector: Option<String>,
    /// Where it was drawn (e.g. ward, room, draw station).
    pub site: Option<String>,
    /// Two identifiers, as when ordering.
    pub patient: PatientIdentifiersDto,
    /// `room` (default), `refrigerated` or `frozen`.
    pub temperature: Option<String>,
}

/// Record the collection (planned → collected) after positive identification. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/collect", tag = "specimens", request_body = Collect,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn collect(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Collect>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = CollectInput {
        collected_at: req.collected_at,
        collector: req.collector,
        site: req.site,
        patient: req.patient.into(),
        temperature: req.temperature,
    };
    Ok(Json(
        state
            .app
            .collect_specimen(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receive {
    /// Required: `ok`, `missing` or `illegible` (no default; `receive {}` is refused with 422
    /// `receipt_attestation_required` naming every missing field).
    pub label: Option<String>,
    /// Required: the container that arrived (catalogue code, e.g. `SST`, or `PST` for a
    /// test that also accepts lithium-heparin plasma); a container a test does not accept is
    /// a receipt problem (`receipt_wrong_container`).
    pub container: Option<String>,
    /// The measured specimen content, µL: required for tubes without a fill line.
    pub volume_ul: Option<i64>,
    /// For a tube with a fill line (sodium citrate): `to_line`, `under` or `over`, judged by
    /// eye; required there instead of `volume_ul`.
    pub fill: Option<String>,
    /// The temperature the tube arrives in (default: as last recorded). It adds a segment to
    /// the tube's temperature history; the time before counts at the temperatures recorded
    /// then (collection, dispatch).
    pub temperature: Option<String>,
    /// The order on the requisition scanned with the tube: a tube of another order is refused
    /// (422 `specimen_order_mismatch`).
    pub order_id: Option<i64>,
    /// The patient on the requisition (two identifiers): another patient is refused
    /// (422 `patient_mismatch`). Required when the lab setting
    /// `specimen.receipt_identification_required` is `true`.
    pub patient: Option<PatientIdentifiersDto>,
    /// The draw time on an outreach requisition (RFC 3339), for a tube without a recorded
    /// collection: recorded first (needs `patient`), and stability is judged from it.
    pub collected_at: Option<String>,
    /// Who drew it (with `collected_at`).
    pub collector: Option<String>,
    /// RFC 3339: the draw site spun the tube at this time (serum or plasma arrived
    /// separated); unspun stability is judged up to it (CLSI GP44).
    pub separated_at: Option<String>,
}

/// Receive a specimen in the lab after the receipt check. With problems nothing changes:
/// 422 `receipt_problems` lists them with their rejection-reason codes (the attempt is audited).
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/receive", tag = "specimens", request_body = Receive,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Receive>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = ReceiveInput {
        volume_ul: req.volume_ul,
        fill: req.fill,
        container: req.container,
        temperature: req.temperature,
        label: req.label,
        order_id: req.order_id,
        patient: req.patient.map(Into::into),
        collected_at: req.collected_at,
        collector: req.collector,
        separated_at: req.separated_at,
    };
    match state
        .app
        .receive_specimen(&actor, &accession, input)
        .await?
    {
        Ok(s) => Ok(Json(s.into())),
        Err(problems) => {
            let mut e = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "receipt_problems",
                "the specimen failed the receipt check; reject it or resolve the problems",
            );
            e.extra = Some(Box::new(ErrorExtra::Problems(
                problems
                    .into_iter()
                    .map(|p| ReceiptProblemDto {
                        code: p.code,
                        message: p.message,
                        rejection_reason: p.rejection_reason,
                    })
                    .collect(),
            )));
            Err(e)
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    /// A rejection reason code, e.g. `hemolyzed`, `qns`, `unlabeled`.
    pub reason: String,
    pub comment: Option<String>,
}

/// Reject a specimen: problem-log entry and a recollection task for the ordering location.
/// Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/reject", tag = "specimens", request_body = Reject,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Reject>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    Ok(Json(
        state
            .app
            .reject_specimen(&actor, &accession, &req.reason, req.comment.as_deref())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OpenQuery {
    /// Only open entries (default false).
    pub open: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct ProblemDto {
    pub id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub reason: String,
    pub comment: Option<String>,
    pub opened_at: String,
    pub opened_by: String,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    /// What was done about it.
    pub resolution: Option<String>,
}

impl From<ProblemView> for ProblemDto {
    fn from(p: ProblemView) -> Self {
        ProblemDto {
            id: p.id,
            specimen_id: p.specimen_id,
            accession: p.accession,
            reason: p.reason,
            comment: p.comment,
            opened_at: p.opened_at.to_string(),
            opened_by: p.opened_by,
            resolved_at: p.resolved_at.map(|t| t.to_string()),
            resolved_by: p.resolved_by,
            resolution: p.resolution,
        }
    }
}

/// The problem log of rejected specimens, oldest first.
#[utoipa::path(get, path = "/api/v1/problem-log", tag = "specimens", params(OpenQuery),
    responses((status = 200, body = [ProblemDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn problem_log(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<OpenQuery>,
) -> ApiResult<Json<Vec<ProblemDto>>> {
    let list = state
        .app
        .problem_log(&actor, q.open.unwrap_or(false))
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct RecollectTaskDto {
    pub id: i64,
    pub order_id: i64,
    /// The ordering client location that recollects.
    pub location_id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub reason: String,
    pub created_at: String,
    pub done_at: Option<String>,
    pub done_by: Option<String>,
    /// The specimen collected instead.
    pub replacement_accession: Option<String>,
}

impl From<RecollectTaskView> for RecollectTaskDto {
    fn from(t: RecollectTaskView) -> Self {
        RecollectTaskDto {
            id: t.id,
            order_id: t.order_id,
            location_id: t.location_id,
            specimen_id: t.specimen_id,
            accession: t.accession,
            reason: t.reason,
            created_at: t.created_at.to_string(),
            done_at: t.done_at.map(|t| t.to_string()),
            done_by: t.done_by,
            replacement_accession: t.replacement_accession,
        }
    }
}

/// Recollection tasks for ordering locations, oldest first.
#[utoipa::path(get, path = "/api/v1/recollect-tasks", tag = "specimens", params(OpenQuery),
    responses((status = 200, body = [RecollectTaskDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn recollect_tasks(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<OpenQuery>,
) -> ApiResult<Json<Vec<RecollectTaskDto>>> {
    let list = state
        .app
        .recollect_tasks(&actor, q.open.unwrap_or(false))
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// What was done (e.g. "recollected as L26…", "reported with disclaimer"); required.
    pub resolution: String,
}

/// Resolve a problem-log entry, saying what was done. Audited; an entry is resolved once.
#[utoipa::path(post, path = "/api/v1/problem-log/{id}/resolve", tag = "specimens", request_body = Resolve,
    params(("id" = i64, Path, description = "problem-log entry id")),
    responses((status = 200, body = ProblemDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn resolve_problem(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<Resolve>,
) -> ApiResult<Json<ProblemDto>> {
    Ok(Json(
        state
            .app
            .resolve_problem(&actor, id, &req.resolution)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTask {
    /// The accession of the specimen collected instead: same patient, already collected.
    pub replacement_accession: String,
}

/// Complete a recollection task with the replacement specimen. Audited.
#[utoipa::path(post, path = "/api/v1/recollect-tasks/{id}/complete", tag = "specimens", request_body = CompleteTask,
    params(("id" = i64, Path, description = "recollection task id")),
    responses((status = 200, body = RecollectTaskDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn complete_task(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CompleteTask>,
) -> ApiResult<Json<RecollectTaskDto>> {
    Ok(Json(
        state
            .app
            .complete_recollect_task(&actor, id, &req.replacement_accession)
            .await?
            .into(),
    ))
}
