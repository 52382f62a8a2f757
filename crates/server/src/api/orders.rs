//! Requisitions: place (positive identification, accession numbers, tube plan), read,
//! search by placer order number, cancel, add a test.

use aliquot_app::{Actor, NewOrderInput, OrderView, PatientIdentification, ScanView};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::patients::IdentifierDto;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

/// The patient's identifiers as on the requisition. `id`, `mrn` or a facility `identifier`
/// locates the record; at
/// least two of MRN, name (family + given), birth date and facility identifier must match
/// it, and none may contradict it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientIdentifiersDto {
    pub id: Option<i64>,
    pub mrn: Option<String>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub birth_date: Option<String>,
    pub identifier: Option<IdentifierDto>,
}

impl From<PatientIdentifiersDto> for PatientIdentification {
    fn from(p: PatientIdentifiersDto) -> Self {
        PatientIdentification {
            id: p.id,
            mrn: p.mrn,
            family_name: p.family_name,
            given_name: p.given_name,
            birth_date: p.birth_date,
            identifier: p.identifier.map(Into::into),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub patient: PatientIdentifiersDto,
    pub provider_id: i64,
    pub location_id: i64,
    /// Tests and panels by local code (e.g. `CBC`) or LOINC code (e.g. `2345-7`).
    pub tests: Vec<String>,
    /// `stat`, `asap`, `routine` or `timed`.
    pub priority: String,
    /// For `timed` orders: when to collect (RFC 3339).
    pub timed_at: Option<String>,
    pub clinical_notes: Option<String>,
    /// ICD-10-CM codes.
    #[serde(default)]
    pub diagnosis_codes: Vec<String>,
    /// The EMR's order number, when there is one.
    pub placer_order_number: Option<String>,
    /// The draw will use a winged (butterfly) collection set. With a citrate tube first in
    /// the order of draw, a discard tube is then drawn before it (CLSI GP41). Default false.
    #[serde(default)]
    pub winged_collection_set: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SpecimenDto {
    pub id: i64,
    /// The specimen's accession number (one per tube).
    pub accession: String,
    /// Container code, e.g. `SST`, `LAV`.
    pub container: String,
    pub container_name: String,
    pub cap_colour: String,
    pub additive: String,
    pub specimen_type: String,
    /// Position in the CLSI order of draw (1 = first).
    pub draw_order: i64,
    /// `planned` until collected; `cancelled` with its order.
    pub status: String,
    /// Measured specimen content, µL (0 before receipt).
    pub volume_ul: i64,
    /// The planned demand of the tube's tests, µL (specimen volume, like the capacity).
    pub demand_ul: i64,
    /// Usable specimen volume of the container, µL.
    pub capacity_ul: i64,
    pub collected_at: Option<String>,
    pub tests: Vec<String>,
    /// Draw a discard tube just before this tube: it is the first tube still to draw, a
    /// citrate tube, and the order uses a winged collection set.
    pub discard_tube_before: bool,
}

#[derive(Serialize, ToSchema)]
pub struct OrderTestDto {
    pub test_code: String,
    /// The panel it was ordered in, if any.
    pub panel_code: Option<String>,
    pub accession: String,
    /// `ordered`, `resulted` (a result is held), `released`, `cancelled`.
    pub status: String,
    /// The result, or null while none was posted.
    pub result: Option<crate::api::results::ResultDto>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderDto {
    pub id: i64,
    pub patient_id: i64,
    pub provider_id: i64,
    pub location_id: i64,
    pub priority: String,
    pub timed_at: Option<String>,
    pub placer_order_number: Option<String>,
    pub clinical_notes: Option<String>,
    pub diagnosis_codes: Vec<String>,
    /// `active` or `cancelled`.
    pub status: String,
    pub created_at: String,
    pub cancelled_at: Option<String>,
    pub cancel_reason: Option<String>,
    /// The draw uses a winged (butterfly) collection set.
    pub winged_collection_set: bool,
    /// A discard tube is drawn first: winged set, and the first tube still to draw
    /// (`planned`) is a citrate tube (CLSI GP41). The tube it precedes has
    /// `discard_tube_before`.
    pub discard_tube: bool,
    /// The draw list, in order of draw.
    pub specimens: Vec<SpecimenDto>,
    pub tests: Vec<OrderTestDto>,
}

impl From<OrderView> for OrderDto {
    fn from(o: OrderView) -> Self {
        OrderDto {
            id: o.id,
            patient_id: o.patient_id,
            provider_id: o.provider_id,
            location_id: o.location_id,
            priority: o.priority,
            timed_at: o.timed_at.map(|t| t.to_string()),
            placer_order_number: o.placer_order_number,
            clinical_notes: o.clinical_notes,
            diagnosis_codes: o.diagnosis_codes,
            status: o.status,
            created_at: o.created_at.to_string(),
            cancelled_at: o.cancelled_at.map(|t| t.to_string()),
            cancel_reason: o.cancel_reason,
            winged_collection_set: o.winged_collection_set,
            discard_tube: o.discard_tube,
            specimens: o
                .specimens
                .into_iter()
                .map(|s| SpecimenDto {
                    id: s.id,
                    accession: s.accession,
                    container: s.container,
                    container_name: s.container_name,
                    cap_colour: s.cap_colour,
                    additive: s.additive,
                    specimen_type: s.specimen_type,
                    draw_order: s.draw_order,
                    status: s.status,
                    volume_ul: s.volume_ul,
                    demand_ul: s.demand_ul,
                    capacity_ul: s.capacity_ul,
                    collected_at: s.collected_at.map(|t| t.to_string()),
                    tests: s.tests,
                    discard_tube_before: s.discard_tube_before,
                })
                .collect(),
            tests: o
                .tests
                .into_iter()
                .map(|t| OrderTestDto {
                    test_code: t.test_code,
                    panel_code: t.panel_code,
                    accession: t.accession,
                    status: t.status,
                    result: t.result.map(Into::into),
                })
                .collect(),
        }
    }
}

/// Place an order: the patient is positively identified (two identifiers), tests sharing
/// specimen type and container share a tube, and each tube gets an accession number.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = NewOrder,
    responses((status = 201, body = OrderDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn place(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<NewOrder>,
) -> ApiResult<(StatusCode, Json<OrderDto>)> {
    let input = NewOrderInput {
        patient: req.patient.into(),
        provider_id: req.provider_id,
        location_id: req.location_id,
        tests: req.tests,
        priority: req.priority,
        timed_at: req.timed_at,
        clinical_notes: req.clinical_notes,
        diagnosis_codes: req.diagnosis_codes,
        placer_order_number: req.placer_order_number,
        winged_collection_set: req.winged_collection_set,
    };
    let o = state.app.place_order(&actor, input).await?;
    Ok((StatusCode::CREATED, Json(o.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderSearch {
    pub placer_order_number: Option<String>,
    pub patient_id: Option<i64>,
}

/// Orders by placer order number and/or patient, newest first. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderSearch),
    responses((status = 200, body = [OrderDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<OrderSearch>,
) -> ApiResult<Json<Vec<OrderDto>>> {
    let found = state
        .app
        .find_orders(&actor, q.placer_order_number.as_deref(), q.patient_id)
        .await?;
    Ok(Json(found.into_iter().map(Into::into).collect()))
}

/// One order with its specimens and tests. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(state.app.order(&actor, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    pub reason: String,
}

/// Cancel an order (with its tests and specimens), with a reason. Audited.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", request_body = CancelOrder,
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CancelOrder>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(
        state
            .app
            .cancel_order(&actor, id, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTest {
    /// Local test/panel code or LOINC code.
    pub test: String,
}

/// Add a test (or panel) to an active order: onto an existing tube with room (a collected
/// one only while the test's stability allows), else onto a new planned tube. Audited.
#[utoipa::path(post, path = "/api/v1/orders/{id}/tests", tag = "orders", request_body = AddTest,
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_test(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AddTest>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(
        state
            .app
            .add_order_test(&actor, id, &req.test)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelTest {
    /// The test's code (local or LOINC).
    pub test: String,
    /// Why (required).
    pub reason: String,
}

/// Cancel one test of an order, with a reason: the rest of the order goes on. A test with a
/// released result is corrected instead (409 `test_closed`). The tube's chain of custody
/// records it (`test_cancel`); audited.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel-test", tag = "orders", request_body = CancelTest,
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel_test(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CancelTest>,
) -> ApiResult<Json<OrderDto>> {
    Ok(Json(
        state
            .app
            .cancel_order_test(&actor, id, &req.test, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct ScanDto {
    pub id: i64,
    pub order_id: i64,
    /// SHA-256 of the content (the storage key).
    pub sha256: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub created_at: String,
    pub created_by: String,
}

impl From<ScanView> for ScanDto {
    fn from(s: ScanView) -> Self {
        ScanDto {
            id: s.id,
            order_id: s.order_id,
            sha256: s.sha256,
            media_type: s.media_type,
            size_bytes: s.size_bytes,
            created_at: s.created_at.to_string(),
            created_by: s.created_by,
        }
    }
}

/// Attach a scanned requisition: the raw file as the body, `Content-Type` `application/pdf`,
/// `image/png` or `image/jpeg` (checked against the content's magic bytes), at most 1 MiB.
/// Audited.
#[utoipa::path(post, path = "/api/v1/orders/{id}/scans", tag = "orders",
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "PDF, PNG or JPEG (see `contract::scans`)"),
    params(("id" = i64, Path, description = "order id")),
    responses((status = 201, body = ScanDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn attach_scan(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<ScanDto>)> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the scan is too large (1 MiB at most)",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the request body could not be read",
            )
        }
    })?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let s = state.app.attach_scan(&actor, id, declared, &body).await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// The scans attached to an order.
#[utoipa::path(get, path = "/api/v1/orders/{id}/scans", tag = "orders",
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = [ScanDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn list_scans(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ScanDto>>> {
    Ok(Json(
        state
            .app
            .order_scans(&actor, id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// A scan's content, with its media type. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/scans/{id}", tag = "orders",
    params(("id" = i64, Path, description = "scan id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_scan(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let c = state.app.scan_content(&actor, id).await?;
    Ok(([(header::CONTENT_TYPE, c.media_type)], c.bytes).into_response())
}
