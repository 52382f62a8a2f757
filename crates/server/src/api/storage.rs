//! Storage (holders, store, retrieve, find, contents), retention and disposal, transport
//! (dispatch, manifests) and send-outs to reference laboratories.

use aliquot_app::{
    Actor, DispatchInput, DisposalDueView, DisposeInput, NewStorageUnitInput, RetentionView,
    SendOutInput, SendOutView, SpecimenLocationView, StorageUnitView, StoredSpecimenView,
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStorageUnit {
    /// `room[/unit[/rack[/box]]]`, e.g. `LAB1/FRZ-02/R3/B12`; the enclosing holder must exist.
    pub path: String,
    /// `room`, `refrigerator`, `freezer`, `rack` or `box` (levels 1, 2, 2, 3, 4).
    pub kind: String,
    pub name: Option<String>,
    /// `room`, `refrigerated` or `frozen`; inherited from the enclosing holder when absent.
    pub temperature: Option<String>,
    /// Grid rows (1–26, A–Z) of a rack or box; with `cols`.
    pub rows: Option<i64>,
    /// Grid columns (1–999); with `rows`.
    pub cols: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct StorageUnitDto {
    pub id: i64,
    pub path: String,
    pub parent_id: Option<i64>,
    pub kind: String,
    pub name: Option<String>,
    pub temperature: Option<String>,
    pub rows: Option<i64>,
    pub cols: Option<i64>,
    /// Positions of the grid; null without a grid.
    pub capacity: Option<i64>,
    /// Specimens stored in this holder or below it.
    pub used: i64,
    pub created_at: String,
    pub created_by: String,
}

impl From<StorageUnitView> for StorageUnitDto {
    fn from(u: StorageUnitView) -> Self {
        StorageUnitDto {
            id: u.id,
            path: u.path,
            parent_id: u.parent_id,
            kind: u.kind,
            name: u.name,
            temperature: u.temperature,
            rows: u.rows,
            cols: u.cols,
            capacity: u.capacity,
            used: u.used,
            created_at: u.created_at.to_string(),
            created_by: u.created_by,
        }
    }
}

/// Register a storage holder (room, refrigerator/freezer, rack, box). Audited.
#[utoipa::path(post, path = "/api/v1/storage/units", tag = "storage", request_body = NewStorageUnit,
    responses((status = 201, body = StorageUnitDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_unit(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<NewStorageUnit>,
) -> ApiResult<(StatusCode, Json<StorageUnitDto>)> {
    let input = NewStorageUnitInput {
        path: req.path,
        kind: req.kind,
        name: req.name,
        temperature: req.temperature,
        rows: req.rows,
        cols: req.cols,
    };
    let u = state.app.register_storage_unit(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(u.into())))
}

/// Every storage holder with its occupancy (used / capacity), by path.
#[utoipa::path(get, path = "/api/v1/storage/units", tag = "storage",
    responses((status = 200, body = [StorageUnitDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_units(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<StorageUnitDto>>> {
    let list = state.app.storage_units(&actor).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct StoredSpecimenDto {
    pub accession: String,
    pub specimen_type: String,
    pub status: String,
    pub unit_id: i64,
    /// e.g. `LAB1/FRZ-02/R3/B12/A7`.
    pub location: String,
    pub stored_at: String,
    pub stored_by: String,
}

impl From<StoredSpecimenView> for StoredSpecimenDto {
    fn from(s: StoredSpecimenView) -> Self {
        StoredSpecimenDto {
            accession: s.accession,
            specimen_type: s.specimen_type,
            status: s.status,
            unit_id: s.unit_id,
            location: s.location,
            stored_at: s.stored_at.to_string(),
            stored_by: s.stored_by,
        }
    }
}

/// The specimens stored in a holder or below it, by location.
#[utoipa::path(get, path = "/api/v1/storage/units/{id}/contents", tag = "storage",
    params(("id" = i64, Path, description = "storage unit id")),
    responses((status = 200, body = [StoredSpecimenDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn contents(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<StoredSpecimenDto>>> {
    let list = state.app.storage_contents(&actor, id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct SpecimenLocationDto {
    pub accession: String,
    pub status: String,
    /// Null when the specimen is not in storage.
    pub location: Option<String>,
    pub unit_id: Option<i64>,
    pub stored_at: Option<String>,
    pub stored_by: Option<String>,
}

impl From<SpecimenLocationView> for SpecimenLocationDto {
    fn from(l: SpecimenLocationView) -> Self {
        SpecimenLocationDto {
            accession: l.accession,
            status: l.status,
            location: l.location,
            unit_id: l.unit_id,
            stored_at: l.stored_at.map(|t| t.to_string()),
            stored_by: l.stored_by,
        }
    }
}

/// Find a specimen: its current storage location. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/storage/specimens/{accession}", tag = "storage",
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenLocationDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn locate(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
) -> ApiResult<Json<SpecimenLocationDto>> {
    Ok(Json(
        state
            .app
            .specimen_location(&actor, &accession)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// `room/unit/rack[/box]/position`, e.g. `LAB1/FRZ-02/R3/B12/A7`.
    pub location: String,
}

/// Store a processed specimen (processed → stored). A position holds one specimen. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/store", tag = "storage", request_body = Store,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn store(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Store>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    Ok(Json(
        state
            .app
            .store_specimen(&actor, &accession, &req.location)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrieve {
    /// Why it is taken out (e.g. add-on test).
    pub reason: Option<String>,
}

/// Retrieve a stored specimen (stored → processed), freeing its position. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/retrieve", tag = "storage", request_body = Retrieve,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Retrieve>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    Ok(Json(
        state
            .app
            .retrieve_specimen(&actor, &accession, req.reason.as_deref())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispose {
    /// `biohazard`, `autoclave`, `incineration` or `chemical`.
    pub method: String,
    /// Required before the retention period has passed (409 `retention_not_elapsed`), and
    /// always for irreplaceable specimens (409 `disposal_decision_required`).
    pub reason: Option<String>,
}

/// Dispose of a specimen (processed/stored/rejected → disposed), freeing its position. One past
/// its retention (since storage, or since rejection) needs no reason; otherwise a reason is
/// required, and an irreplaceable specimen (CSF…) always needs one. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/dispose", tag = "storage", request_body = Dispose,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dispose(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Dispose>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = DisposeInput {
        method: req.method,
        reason: req.reason,
    };
    Ok(Json(
        state
            .app
            .dispose_specimen(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct RetentionDto {
    pub specimen_type: String,
    /// A rule for this department only (keeps the specimens it uses longer).
    pub department: Option<String>,
    /// A rule for this test only.
    pub test: Option<String>,
    /// Irreplaceable specimens (CSF, tissue, bone marrow, body fluids) are kept until a person
    /// decides, whatever the period.
    pub until_decided: bool,
    /// Null: never due for disposal.
    pub hours: Option<i64>,
    /// `configured`, `default` or `none`.
    pub source: String,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

impl From<RetentionView> for RetentionDto {
    fn from(r: RetentionView) -> Self {
        RetentionDto {
            specimen_type: r.specimen_type,
            department: r.department,
            test: r.test,
            until_decided: r.until_decided,
            hours: r.hours,
            source: r.source.to_owned(),
            updated_at: r.updated_at.map(|t| t.to_string()),
            updated_by: r.updated_by,
        }
    }
}

/// Retention periods for every specimen type (configured, default, or none = kept).
#[utoipa::path(get, path = "/api/v1/storage/retention", tag = "storage",
    responses((status = 200, body = [RetentionDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn retention(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<RetentionDto>>> {
    let list = state.app.retention(&actor).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRetention {
    /// 1 to 87600 hours.
    pub hours: i64,
    /// Set the period of this specimen type for one department only (e.g. `blood_bank`); a
    /// specimen is kept for the longest period of its type and uses.
    pub department: Option<String>,
    /// Set the period of this specimen type for one test only (not with `department`).
    pub test: Option<String>,
    /// Why (3 to 500 characters).
    pub reason: Option<String>,
}

/// Set the retention period of a specimen type, or of a specimen type for one department or
/// test (retention by use). Audited with old and new value.
#[utoipa::path(put, path = "/api/v1/storage/retention/{specimen_type}", tag = "storage", request_body = PutRetention,
    params(("specimen_type" = String, Path, description = "specimen type code, e.g. serum")),
    responses((status = 200, body = RetentionDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn put_retention(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(specimen_type): ApiPath<String>,
    ApiJson(req): ApiJson<PutRetention>,
) -> ApiResult<Json<RetentionDto>> {
    let usage = match (req.department.as_deref(), req.test.as_deref()) {
        (None, None) => None,
        (Some(d), None) => Some(("department", d)),
        (None, Some(t)) => Some(("test", t)),
        (Some(_), Some(_)) => {
            return Err(aliquot_app::AppError::invalid(
                "test",
                "retention_use_twice",
                "a rule is for a department or for a test, not both",
            )
            .into());
        }
    };
    Ok(Json(
        state
            .app
            .set_retention(
                &actor,
                &specimen_type,
                usage,
                req.hours,
                req.reason.as_deref(),
            )
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct DueDto {
    pub accession: String,
    pub specimen_type: String,
    pub location: String,
    pub stored_at: String,
    pub due_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct RejectedDto {
    pub accession: String,
    pub specimen_type: String,
    pub rejected_at: Option<String>,
    /// From when it may be disposed of without a reason; null: kept until a person decides
    /// (irreplaceable specimens, or no retention period).
    pub due_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DisposalDueDto {
    /// Stored specimens past their retention period, oldest first.
    pub due: Vec<DueDto>,
    /// Rejected specimens awaiting disposal, oldest rejection first.
    pub rejected: Vec<RejectedDto>,
}

impl From<DisposalDueView> for DisposalDueDto {
    fn from(v: DisposalDueView) -> Self {
        DisposalDueDto {
            due: v
                .due
                .into_iter()
                .map(|d| DueDto {
                    accession: d.stored.accession,
                    specimen_type: d.stored.specimen_type,
                    location: d.stored.location,
                    stored_at: d.stored.stored_at.to_string(),
                    due_at: d.due_at.to_string(),
                })
                .collect(),
            rejected: v
                .rejected
                .into_iter()
                .map(|r| RejectedDto {
                    accession: r.accession,
                    specimen_type: r.specimen_type,
                    rejected_at: r.rejected_at.map(|t| t.to_string()),
                    due_at: r.due_at.map(|t| t.to_string()),
                })
                .collect(),
        }
    }
}

/// The disposal list: stored specimens past their retention and rejected specimens.
#[utoipa::path(get, path = "/api/v1/storage/disposal-due", tag = "storage",
    responses((status = 200, body = DisposalDueDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn disposal_due(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<DisposalDueDto>> {
    Ok(Json(state.app.disposal_due(&actor).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dispatch {
    /// Courier or driver.
    pub courier: String,
    /// Where it is picked up (free text, e.g. a clinic or draw station).
    pub from_location: String,
    /// Where it goes (e.g. the core lab).
    pub destination: String,
    /// The transport temperature (`room`, `refrigerated`, `frozen`; e.g. the courier's cooled
    /// box): a segment of the temperature history from the pickup. Absent: as before.
    pub temperature: Option<String>,
}

/// Courier pickup (collected → in transit): a transport event in the chain of custody; the
/// receipt in the lab is the delivery. Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/dispatch", tag = "storage", request_body = Dispatch,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dispatch(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<Dispatch>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = DispatchInput {
        courier: req.courier,
        from_location: req.from_location,
        destination: req.destination,
        temperature: req.temperature,
    };
    Ok(Json(
        state
            .app
            .dispatch_specimen(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// 1 to 200 accession numbers, each collected and not yet dispatched.
    pub accessions: Vec<String>,
    pub courier: String,
    pub from_location: String,
    pub destination: String,
    /// The transport temperature, as for a single dispatch.
    pub temperature: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ManifestDto {
    /// The manifest number, e.g. `M000001`.
    pub manifest: String,
    pub accessions: Vec<String>,
}

/// Dispatch several specimens under one manifest number: all of them or none (an error
/// names `accessions[i]`). Audited.
#[utoipa::path(post, path = "/api/v1/transport/manifests", tag = "storage", request_body = Manifest,
    responses((status = 201, body = ManifestDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn manifest(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<Manifest>,
) -> ApiResult<(StatusCode, Json<ManifestDto>)> {
    let input = DispatchInput {
        courier: req.courier,
        from_location: req.from_location,
        destination: req.destination,
        temperature: req.temperature,
    };
    let m = state
        .app
        .dispatch_manifest(&actor, &req.accessions, input)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ManifestDto {
            manifest: m.manifest,
            accessions: m.accessions,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendOut {
    /// The code of a registered reference laboratory (`GET /api/v1/reference-labs`) whose
    /// test codes map every test sent.
    pub reference_lab: String,
    /// A subset of the specimen's tests; all of them when absent.
    pub tests: Option<Vec<String>>,
    /// Courier tracking number.
    pub tracking: Option<String>,
    /// Transport temperature: `room`, `refrigerated` or `frozen`.
    pub temperature: Option<String>,
}

/// Hand a specimen to a reference laboratory (received/processed → sent out). Audited.
#[utoipa::path(post, path = "/api/v1/specimens/{accession}/send-out", tag = "storage", request_body = SendOut,
    params(("accession" = String, Path, description = "accession number")),
    responses((status = 200, body = SpecimenDetailDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn send_out(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(accession): ApiPath<String>,
    ApiJson(req): ApiJson<SendOut>,
) -> ApiResult<Json<SpecimenDetailDto>> {
    let input = SendOutInput {
        reference_lab: req.reference_lab,
        tests: req.tests,
        tracking: req.tracking,
        temperature: req.temperature,
    };
    Ok(Json(
        state
            .app
            .send_out_specimen(&actor, &accession, input)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SendOutQuery {
    /// Only send-outs whose results are not back (default false).
    pub open: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct SendOutDto {
    pub id: i64,
    pub specimen_id: i64,
    pub accession: String,
    pub reference_lab: String,
    pub tests: Vec<String>,
    pub tracking: Option<String>,
    pub temperature: String,
    pub sent_at: String,
    pub sent_by: String,
    pub resulted_at: Option<String>,
    /// The shipment it was packed into (`GET /api/v1/shipments/{id}`), once packed.
    pub shipment_id: Option<i64>,
}

impl From<SendOutView> for SendOutDto {
    fn from(o: SendOutView) -> Self {
        SendOutDto {
            id: o.id,
            specimen_id: o.specimen_id,
            accession: o.accession,
            reference_lab: o.reference_lab,
            tests: o.tests,
            tracking: o.tracking,
            temperature: o.temperature,
            sent_at: o.sent_at.to_string(),
            sent_by: o.sent_by,
            resulted_at: o.resulted_at.map(|t| t.to_string()),
            shipment_id: o.shipment_id,
        }
    }
}

/// Send-outs to reference laboratories, oldest first.
#[utoipa::path(get, path = "/api/v1/send-outs", tag = "storage", params(SendOutQuery),
    responses((status = 200, body = [SendOutDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn send_outs(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<SendOutQuery>,
) -> ApiResult<Json<Vec<SendOutDto>>> {
    let list = state.app.send_outs(&actor, q.open.unwrap_or(false)).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
