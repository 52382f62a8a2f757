//! Send-outs to reference laboratories (issue 14 item 4): the reference-laboratory registry,
//! shipments with their manifests (JSON, CSV or PDF) and tracking, and the outstanding list. The
//! send-out of a tube itself is `POST /specimens/{accession}/send-out` (`storage.rs`); results
//! as received are posted to `POST /results` with `reference_lab`.

use aliquot_app::{
    Actor, AppError, ManifestDocument, OutstandingView, ReferenceLabInput, ReferenceLabView,
    ReferenceTestCodeInput, ShipmentInput, ShipmentStepInput, ShipmentView,
};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::qc::csv_field;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

// ── the registry ──

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceTestCodeDto {
    /// The reference laboratory's own code (its test menu).
    pub code: String,
    /// The catalogue test (code or LOINC).
    pub test: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceLabDto {
    /// The lab's name for it (letters, digits, `-`, `_`; at most 20), e.g. `MAYO`.
    pub code: String,
    pub name: String,
    /// Printed on reports beside the results it performed.
    pub address: String,
    /// CLIA certificate number: two digits, `D`, seven digits.
    pub clia: String,
    pub phone: Option<String>,
    /// Hours within which its results are expected (1 to 2,160); later ones are overdue.
    pub expected_tat_hours: i64,
    pub test_codes: Vec<ReferenceTestCodeDto>,
}

impl From<ReferenceLabDto> for ReferenceLabInput {
    fn from(d: ReferenceLabDto) -> Self {
        let ReferenceLabDto {
            code,
            name,
            address,
            clia,
            phone,
            expected_tat_hours,
            test_codes,
        } = d;
        ReferenceLabInput {
            code,
            name,
            address,
            clia,
            phone,
            expected_tat_hours,
            test_codes: test_codes
                .into_iter()
                .map(|t| {
                    let ReferenceTestCodeDto { code, test } = t;
                    ReferenceTestCodeInput { code, test }
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReferenceLabViewDto {
    pub code: String,
    pub name: String,
    pub address: String,
    pub clia: String,
    pub phone: Option<String>,
    pub expected_tat_hours: i64,
    pub version: i64,
    pub updated_at: String,
    pub updated_by: String,
    pub retired: bool,
    pub test_codes: Vec<ReferenceTestCodeDto>,
}

impl From<ReferenceLabView> for ReferenceLabViewDto {
    fn from(v: ReferenceLabView) -> Self {
        let ReferenceLabView {
            code,
            name,
            address,
            clia,
            phone,
            expected_tat_hours,
            version,
            updated_at,
            updated_by,
            retired,
            test_codes,
        } = v;
        ReferenceLabViewDto {
            code,
            name,
            address,
            clia,
            phone,
            expected_tat_hours,
            version,
            updated_at: updated_at.to_string(),
            updated_by,
            retired,
            test_codes: test_codes
                .into_iter()
                .map(|(code, test)| ReferenceTestCodeDto { code, test })
                .collect(),
        }
    }
}

/// Register a reference laboratory with its test codes (`catalog.write`). Audited.
#[utoipa::path(post, path = "/api/v1/reference-labs", tag = "send-outs",
    request_body = ReferenceLabDto,
    responses((status = 201, body = ReferenceLabViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn register_lab(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ReferenceLabDto>,
) -> ApiResult<(StatusCode, Json<ReferenceLabViewDto>)> {
    let v = state.app.register_reference_lab(&actor, req.into()).await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// Every reference laboratory with its test codes.
#[utoipa::path(get, path = "/api/v1/reference-labs", tag = "send-outs",
    responses((status = 200, body = [ReferenceLabViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_labs(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<ReferenceLabViewDto>>> {
    let list = state.app.list_reference_labs(&actor).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One reference laboratory with its test codes.
#[utoipa::path(get, path = "/api/v1/reference-labs/{code}", tag = "send-outs",
    params(("code" = String, Path, description = "the reference laboratory's code")),
    responses((status = 200, body = ReferenceLabViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_lab(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<ReferenceLabViewDto>> {
    Ok(Json(
        state.app.get_reference_lab(&actor, &code).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceReferenceLab {
    /// The version being replaced.
    pub version: i64,
    /// Why (3 to 500 characters).
    pub reason: Option<String>,
    /// Retire it: nothing more is sent out to it.
    #[serde(default)]
    pub retired: bool,
    pub reference_lab: ReferenceLabDto,
}

/// Replace a reference laboratory's details and whole test-code mapping (its code stays), with
/// a reason; audited with the old and new values. Results already received keep the
/// laboratory as it was.
#[utoipa::path(put, path = "/api/v1/reference-labs/{code}", tag = "send-outs",
    request_body = ReplaceReferenceLab,
    params(("code" = String, Path, description = "the reference laboratory's code")),
    responses((status = 200, body = ReferenceLabViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace_lab(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<ReplaceReferenceLab>,
) -> ApiResult<Json<ReferenceLabViewDto>> {
    let ReplaceReferenceLab {
        version,
        reason,
        retired,
        reference_lab,
    } = req;
    Ok(Json(
        state
            .app
            .replace_reference_lab(
                &actor,
                &code,
                version,
                reference_lab.into(),
                retired,
                reason.as_deref(),
            )
            .await?
            .into(),
    ))
}

// ── shipments ──

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackShipment {
    /// The reference laboratory's code.
    pub reference_lab: String,
    /// `room`, `refrigerated` or `frozen`; every send-out packed travels so.
    pub temperature: String,
    /// The tubes to pack; every send-out to this laboratory at this temperature waiting to be
    /// packed when absent.
    pub accessions: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentItemDto {
    pub send_out_id: i64,
    pub accession: String,
    pub tests: Vec<String>,
    /// When every result of this tube was back.
    pub resulted_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentEventDto {
    pub at: String,
    pub by: String,
    /// `pack`, `ship`, `receive`, `results_back`.
    pub kind: String,
    pub from: String,
    pub to: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentDto {
    pub id: i64,
    /// The manifest number, e.g. `SO000012`.
    pub manifest: String,
    pub reference_lab: String,
    pub reference_lab_name: String,
    /// `created`, `shipped`, `received`, `resulted`.
    pub status: String,
    pub temperature: String,
    pub packed_at: String,
    pub packed_by: String,
    pub courier: Option<String>,
    pub tracking: Option<String>,
    pub shipped_at: Option<String>,
    pub received_at: Option<String>,
    pub resulted_at: Option<String>,
    /// Send it back with the next step.
    pub version: i64,
    pub items: Vec<ShipmentItemDto>,
    pub events: Vec<ShipmentEventDto>,
}

impl From<ShipmentView> for ShipmentDto {
    fn from(v: ShipmentView) -> Self {
        let ShipmentView {
            id,
            manifest,
            reference_lab,
            reference_lab_name,
            status,
            temperature,
            packed_at,
            packed_by,
            courier,
            tracking,
            shipped_at,
            received_at,
            resulted_at,
            version,
            items,
            events,
        } = v;
        let t = |x: Option<jiff::Timestamp>| x.map(|t| t.to_string());
        ShipmentDto {
            id,
            manifest,
            reference_lab,
            reference_lab_name,
            status,
            temperature,
            packed_at: packed_at.to_string(),
            packed_by,
            courier,
            tracking,
            shipped_at: t(shipped_at),
            received_at: t(received_at),
            resulted_at: t(resulted_at),
            version,
            items: items
                .into_iter()
                .map(|i| ShipmentItemDto {
                    send_out_id: i.send_out_id,
                    accession: i.accession,
                    tests: i.tests,
                    resulted_at: t(i.resulted_at),
                })
                .collect(),
            events: events
                .into_iter()
                .map(|e| ShipmentEventDto {
                    at: e.at.to_string(),
                    by: e.by,
                    kind: e.kind,
                    from: e.from,
                    to: e.to,
                    details: e.details,
                })
                .collect(),
        }
    }
}

/// Pack the send-outs to one reference laboratory at one temperature into a shipment with a
/// manifest number (all of them, or the tubes listed: all or nothing). Audited.
#[utoipa::path(post, path = "/api/v1/shipments", tag = "send-outs", request_body = PackShipment,
    responses((status = 201, body = ShipmentDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn pack(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<PackShipment>,
) -> ApiResult<(StatusCode, Json<ShipmentDto>)> {
    let PackShipment {
        reference_lab,
        temperature,
        accessions,
    } = req;
    let v = state
        .app
        .pack_shipment(
            &actor,
            ShipmentInput {
                reference_lab,
                temperature,
                accessions,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShipmentQuery {
    /// Only shipments in this state: `created`, `shipped`, `received`, `resulted`.
    pub status: Option<String>,
}

/// Shipments, newest first (at most 500).
#[utoipa::path(get, path = "/api/v1/shipments", tag = "send-outs", params(ShipmentQuery),
    responses((status = 200, body = [ShipmentDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<ShipmentQuery>,
) -> ApiResult<Json<Vec<ShipmentDto>>> {
    let list = state.app.shipments(&actor, q.status.as_deref()).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One shipment with its tubes and its steps.
#[utoipa::path(get, path = "/api/v1/shipments/{id}", tag = "send-outs",
    params(("id" = i64, Path, description = "shipment id")),
    responses((status = 200, body = ShipmentDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ShipmentDto>> {
    Ok(Json(state.app.shipment(&actor, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipShipment {
    /// The version read.
    pub version: i64,
    pub courier: String,
    /// The courier's tracking number.
    pub tracking: String,
    pub note: Option<String>,
}

/// Hand a packed shipment to the courier (created → shipped). Audited.
#[utoipa::path(post, path = "/api/v1/shipments/{id}/ship", tag = "send-outs",
    request_body = ShipShipment,
    params(("id" = i64, Path, description = "shipment id")),
    responses((status = 200, body = ShipmentDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn ship(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ShipShipment>,
) -> ApiResult<Json<ShipmentDto>> {
    let ShipShipment {
        version,
        courier,
        tracking,
        note,
    } = req;
    let input = ShipmentStepInput {
        version,
        courier: Some(courier),
        tracking: Some(tracking),
        received_at: None,
        note,
    };
    Ok(Json(
        state.app.ship_shipment(&actor, id, input).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveShipment {
    /// The version read.
    pub version: i64,
    /// RFC 3339: when the reference laboratory received it (default now); not before it
    /// left, not in the future.
    pub received_at: Option<String>,
    pub note: Option<String>,
}

/// Record the reference laboratory's delivery (shipped → received). Audited.
#[utoipa::path(post, path = "/api/v1/shipments/{id}/receive", tag = "send-outs",
    request_body = ReceiveShipment,
    params(("id" = i64, Path, description = "shipment id")),
    responses((status = 200, body = ShipmentDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReceiveShipment>,
) -> ApiResult<Json<ShipmentDto>> {
    let ReceiveShipment {
        version,
        received_at,
        note,
    } = req;
    let received_at = received_at
        .map(|t| {
            t.trim().parse::<jiff::Timestamp>().map_err(|_| {
                AppError::invalid(
                    "received_at",
                    "invalid_time",
                    "an RFC 3339 time, e.g. 2026-11-21T09:30:00Z",
                )
            })
        })
        .transpose()?;
    let input = ShipmentStepInput {
        version,
        courier: None,
        tracking: None,
        received_at,
        note,
    };
    Ok(Json(
        state.app.receive_shipment(&actor, id, input).await?.into(),
    ))
}

// ── the manifest ──

#[derive(Serialize, ToSchema)]
pub struct LabIdentityDto {
    pub name: String,
    pub address: String,
    pub clia: String,
}

#[derive(Serialize, ToSchema)]
pub struct ManifestTestDto {
    /// The catalogue's code.
    pub code: String,
    pub name: String,
    /// The reference laboratory's code for it.
    pub reference_code: String,
}

#[derive(Serialize, ToSchema)]
pub struct ManifestItemDto {
    pub accession: String,
    pub specimen_type: String,
    pub container: String,
    pub collected_at: Option<String>,
    pub family_name: String,
    pub given_name: String,
    pub mrn: String,
    pub birth_date: String,
    pub sex: String,
    pub tests: Vec<ManifestTestDto>,
}

#[derive(Serialize, ToSchema)]
pub struct ManifestDto {
    pub manifest: String,
    pub status: String,
    /// The sending laboratory.
    pub sender: LabIdentityDto,
    pub reference_lab: LabIdentityDto,
    pub reference_lab_code: String,
    pub temperature: String,
    pub packed_at: String,
    pub packed_by: String,
    pub courier: Option<String>,
    pub tracking: Option<String>,
    /// When the courier took it (absent before it was shipped).
    pub shipped_at: Option<String>,
    pub items: Vec<ManifestItemDto>,
}

impl From<ManifestDocument> for ManifestDto {
    fn from(d: ManifestDocument) -> Self {
        let ManifestDocument {
            manifest,
            status,
            sender,
            reference_lab,
            temperature,
            packed_at,
            packed_by,
            courier,
            tracking,
            shipped_at,
            items,
        } = d;
        ManifestDto {
            manifest,
            status,
            sender: LabIdentityDto {
                name: sender.name,
                address: sender.address,
                clia: sender.clia,
            },
            reference_lab_code: reference_lab.code,
            reference_lab: LabIdentityDto {
                name: reference_lab.name,
                address: reference_lab.address,
                clia: reference_lab.clia,
            },
            temperature,
            packed_at: packed_at.to_string(),
            packed_by,
            courier,
            tracking,
            shipped_at: shipped_at.map(|t| t.to_string()),
            items: items
                .into_iter()
                .map(|i| ManifestItemDto {
                    accession: i.accession,
                    specimen_type: i.specimen_type,
                    container: i.container,
                    collected_at: i.collected_at.map(|t| t.to_string()),
                    family_name: i.family_name,
                    given_name: i.given_name,
                    mrn: i.mrn,
                    birth_date: i.birth_date,
                    sex: i.sex,
                    tests: i
                        .tests
                        .into_iter()
                        .map(|t| ManifestTestDto {
                            code: t.code,
                            name: t.name,
                            reference_code: t.reference_code,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ManifestQuery {
    /// `json` (default) or `csv` (one line per test).
    pub format: Option<String>,
}

/// A shipment's manifest: each tube with its patient's demographics, type, container,
/// collection time and tests (the catalogue's and the reference laboratory's codes). Reading
/// it is access-logged. `format=csv` gives one line per test.
#[utoipa::path(get, path = "/api/v1/shipments/{id}/manifest", tag = "send-outs",
    params(("id" = i64, Path, description = "shipment id"), ManifestQuery),
    responses((status = 200, description = "JSON, or CSV with `format=csv`",
               content((ManifestDto = "application/json"), (String = "text/csv"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn manifest(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ManifestQuery>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(AppError::invalid("format", "invalid_format", "`json` or `csv`").into());
        }
    };
    let d = state.app.shipment_manifest(&actor, id).await?;
    if !csv {
        return Ok(Json(ManifestDto::from(d)).into_response());
    }
    let mut out = String::from(
        "manifest,reference_lab,temperature,packed_at,packed_by,accession,family_name,\
         given_name,mrn,birth_date,sex,specimen_type,container,collected_at,test,test_name,\
         reference_code\n",
    );
    for i in &d.items {
        for t in &i.tests {
            let fields = [
                d.manifest.clone(),
                d.reference_lab.code.clone(),
                d.temperature.clone(),
                d.packed_at.to_string(),
                d.packed_by.clone(),
                i.accession.clone(),
                i.family_name.clone(),
                i.given_name.clone(),
                i.mrn.clone(),
                i.birth_date.clone(),
                i.sex.clone(),
                i.specimen_type.clone(),
                i.container.clone(),
                i.collected_at.map(|t| t.to_string()).unwrap_or_default(),
                t.code.clone(),
                t.name.clone(),
                t.reference_code.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.csv\"", d.manifest),
            ),
        ],
        out,
    )
        .into_response())
}

/// A shipment's manifest as PDF, to print and put in the box: the sending and the reference
/// laboratory, temperature, courier and tracking, and each tube with its patient's
/// demographics, type, container, collection time and tests (the catalogue's code and name
/// and the reference laboratory's code), with "page X of Y" and signature lines. Reading it is
/// access-logged like the JSON manifest.
#[utoipa::path(get, path = "/api/v1/shipments/{id}/manifest.pdf", tag = "send-outs",
    params(("id" = i64, Path, description = "shipment id")),
    responses((status = 200, description = "the manifest (PDF)",
               content((crate::api::reports::Pdf = "application/pdf"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn manifest_pdf(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let doc = state.app.shipment_manifest_document(&actor, id).await?;
    let name = format!("manifest-shipment-{id}.pdf");
    crate::api::reports::pdf_response(doc, name).await
}

// ── outstanding ──

#[derive(Serialize, ToSchema)]
pub struct OutstandingDto {
    pub send_out_id: i64,
    pub accession: String,
    pub test: String,
    pub reference_lab: String,
    pub manifest: Option<String>,
    pub shipment_status: Option<String>,
    pub tracking: Option<String>,
    pub sent_at: String,
    /// Minutes since it was sent out.
    pub age_minutes: i64,
    /// Sent out plus the reference laboratory's expected turnaround time.
    pub due_at: String,
    pub overdue: bool,
}

impl From<OutstandingView> for OutstandingDto {
    fn from(v: OutstandingView) -> Self {
        let OutstandingView {
            send_out_id,
            specimen_id: _,
            accession,
            test,
            reference_lab,
            manifest,
            shipment_status,
            tracking,
            sent_at,
            age_minutes,
            due_at,
            overdue,
        } = v;
        OutstandingDto {
            send_out_id,
            accession,
            test,
            reference_lab,
            manifest,
            shipment_status,
            tracking,
            sent_at: sent_at.to_string(),
            age_minutes,
            due_at: due_at.to_string(),
            overdue,
        }
    }
}

/// Sent-out tests whose results are not back, overdue ones first (beyond their reference
/// laboratory's expected turnaround time), then oldest first. Access-logged.
#[utoipa::path(get, path = "/api/v1/send-outs/outstanding", tag = "send-outs",
    responses((status = 200, body = [OutstandingDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn outstanding(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<OutstandingDto>>> {
    let list = state.app.outstanding_send_outs(&actor).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
