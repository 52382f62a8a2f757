//! Processing and routing: start/complete processing, centrifugation, aliquots, lineage,
//! dilutions and the sorting view.

use aliquot_app::{
    Actor, AliquotInput, CentrifugationInput, DilutionInput, LineageView, SortingEntry,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::specimens::SpecimenDetailDto;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

/// Start processing a received specimen (received → in_process). Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/start-processing", tag = "specimens",
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start_processing(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    Ok(Json(
        state.app.start_processing(&actor, &accession).await?.into(),
    ))
}

/// Complete processing (in_process → processed). Serum and plasma need a centrifugation
/// record first: 409 `centrifugation_required`. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/complete-processing", tag = "specimens",
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn complete_processing(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    Ok(Json(
        state
            .app
            .complete_processing(&actor, &accession)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Centrifugation {
    /// The centrifuge's identifier.
    pub centrifuge_id: String,
    /// Relative centrifugal force, g (give this, or `rpm` with `radius_cm`).
    pub rcf_g: Option<i64>,
    pub rpm: Option<i64>,
    /// Rotor radius, cm.
    pub radius_cm: Option<f64>,
    /// Spin time, 1 to 60 minutes.
    pub minutes: i64,
    /// Centrifuge temperature, °C.
    pub temperature_c: f64,
    /// Start of the spin (RFC 3339; default now). Serum tubes must have clotted first.
    pub started_at: Option<String>,
}

/// Record a centrifugation (stored as RCF; the operator is the caller). Allowed while received
/// or in process; the status stays, a custody event is written. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/centrifugations", tag = "specimens",
    request_body = Centrifugation,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn centrifuge(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Centrifugation>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = CentrifugationInput {
        centrifuge_id: req.centrifuge_id,
        rcf_g: req.rcf_g,
        rpm: req.rpm,
        radius_cm: req.radius_cm,
        minutes: req.minutes,
        temperature_c: req.temperature_c,
        started_at: req.started_at,
    };
    Ok(Json(
        state
            .app
            .centrifuge_specimen(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Aliquot {
    /// Volume poured into the child, µL; all children together never exceed the parent.
    pub volume_ul: i64,
    /// Container code of the child (default: the parent's).
    pub container: Option<String>,
    /// Tests of the parent that move to the child (e.g. another department's).
    pub tests: Option<Vec<String>>,
}

/// Pour an aliquot: a child specimen `<accession>-NN` (same patient and order, status
/// received); its label prints through the label route. Audited on parent and child.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/aliquots", tag = "specimens",
    request_body = Aliquot,
    params(("accession" = String, Path, description = "accession number of the parent")),
    responses((status = 201, body = SpecimenDetailDto, description = "the child specimen"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn aliquot(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Aliquot>,
) -> ApiResult<(StatusCode, Json<SpecimenDetailDto>)> {
    let input = AliquotInput {
        volume_ul: req.volume_ul,
        container: req.container,
        tests: req.tests,
    };
    let child = state
        .app
        .aliquot_specimen(&actor, &accession, input)
        .await?;
    Ok((StatusCode::CREATED, Json(child.into())))
}

#[derive(Serialize, ToSchema)]
pub struct AliquotChildDto {
    pub accession: String,
    pub volume_ul: i64,
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct CentrifugationDto {
    pub id: i64,
    pub centrifuge_id: String,
    pub rcf_g: i64,
    pub minutes: i64,
    pub temperature_c: String,
    pub started_at: String,
    pub operator_name: String,
    pub recorded_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DilutionDto {
    pub id: i64,
    /// `1:N`: results measured on this dilution are multiplied by N.
    pub factor: String,
    pub test_code: Option<String>,
    pub diluent: Option<String>,
    pub recorded_at: String,
    pub actor_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct LineageDto {
    pub specimen: String,
    pub status: String,
    pub volume_ul: i64,
    /// The accession this aliquot was poured from, if any.
    pub parent: Option<String>,
    pub children: Vec<AliquotChildDto>,
    pub centrifugations: Vec<CentrifugationDto>,
    pub dilutions: Vec<DilutionDto>,
}

impl From<LineageView> for LineageDto {
    fn from(l: LineageView) -> Self {
        LineageDto {
            specimen: l.accession,
            status: l.status,
            volume_ul: l.volume_ul,
            parent: l.parent,
            children: l
                .children
                .into_iter()
                .map(|c| AliquotChildDto {
                    accession: c.accession,
                    volume_ul: c.volume_ul,
                    status: c.status,
                })
                .collect(),
            centrifugations: l
                .centrifugations
                .into_iter()
                .map(|c| CentrifugationDto {
                    id: c.id,
                    centrifuge_id: c.centrifuge_id,
                    rcf_g: c.rcf_g,
                    minutes: c.minutes,
                    temperature_c: c.temperature_c,
                    started_at: c.started_at.to_string(),
                    operator_name: c.operator_name,
                    recorded_at: c.recorded_at.to_string(),
                })
                .collect(),
            dilutions: l
                .dilutions
                .into_iter()
                .map(|d| DilutionDto {
                    id: d.id,
                    factor: d.factor,
                    test_code: d.test_code,
                    diluent: d.diluent,
                    recorded_at: d.recorded_at.to_string(),
                    actor_name: d.actor_name,
                })
                .collect(),
        }
    }
}

/// A specimen's parent and aliquots, centrifugations and dilutions. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/specimens/{accession}/lineage", tag = "specimens",
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = LineageDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn lineage(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
) -> ApiResult<Json<LineageDto>> {
    Ok(Json(
        state.app.specimen_lineage(&actor, &accession).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dilution {
    /// `1:10` or `10`.
    pub factor: String,
    /// One of the specimen's tests, when the dilution is for one test.
    pub test_code: Option<String>,
    pub diluent: Option<String>,
}

/// Record a dilution, applied to results later. The status stays. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/dilutions", tag = "specimens",
    request_body = Dilution,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dilute(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Dilution>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = DilutionInput {
        factor: req.factor,
        test_code: req.test_code,
        diluent: req.diluent,
    };
    Ok(Json(
        state
            .app
            .dilute_specimen(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SortingQuery {
    /// `received` or `in_process` (default: both).
    pub status: Option<String>,
    /// At most this many specimens (1 to 1000, default 1000).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AliquotPlanDto {
    pub departments: Vec<String>,
    pub tests: Vec<String>,
    /// Sum of the tests' minimum volumes, µL.
    pub volume_ul: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SortingEntryDto {
    pub accession: String,
    pub status: String,
    pub priority: String,
    pub received_at: String,
    pub container: String,
    pub specimen_type: String,
    pub volume_ul: i64,
    /// Every department (workstation) that needs the specimen.
    pub departments: Vec<String>,
    /// Departments working from the primary tube; the first keeps it.
    pub primary: Vec<String>,
    pub primary_tests: Vec<String>,
    /// Aliquots to pour for the other departments.
    pub aliquots: Vec<AliquotPlanDto>,
}

impl From<SortingEntry> for SortingEntryDto {
    fn from(e: SortingEntry) -> Self {
        SortingEntryDto {
            accession: e.accession,
            status: e.status,
            priority: e.priority,
            received_at: e.received_at.to_string(),
            container: e.container,
            specimen_type: e.specimen_type,
            volume_ul: e.volume_ul,
            departments: e.departments,
            primary: e.primary,
            primary_tests: e.primary_tests,
            aliquots: e
                .aliquots
                .into_iter()
                .map(|a| AliquotPlanDto {
                    departments: a.departments,
                    tests: a.tests,
                    volume_ul: a.volume_ul,
                })
                .collect(),
        }
    }
}

/// The sorting view: what goes where, STAT first, then ASAP, timed, routine, oldest receipt
/// first; a tube needed by departments that can't share it comes with an aliquot plan.
/// Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/sorting", tag = "specimens", params(SortingQuery),
    responses((status = 200, body = [SortingEntryDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn sorting(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<SortingQuery>,
) -> ApiResult<Json<Vec<SortingEntryDto>>> {
    let list = state
        .app
        .sorting_view(&actor, q.status.as_deref(), q.limit)
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
