//! Patient reports as PDF (issue 14): an order's report (current or an earlier version), a
//! patient's cumulative report and a client location's batch print. The app builds and
//! versions the document; this edge renders it with `aliquot-report` (typst) off the async
//! runtime.

use aliquot_app::{Actor, ReportDocument};
use aliquot_report::{PdfMeta, render_pdf};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, http::StatusCode};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::{ApiPath, ApiQuery};

/// Renders a report document (off the async runtime).
pub async fn render(doc: &ReportDocument) -> ApiResult<Vec<u8>> {
    let document = doc.document.clone();
    let meta = PdfMeta {
        ident: doc.ident.clone(),
        created: doc.created,
    };
    tokio::task::spawn_blocking(move || render_pdf(document.as_bytes(), &meta))
        .await
        .map_err(|e| internal(&e.to_string()))?
        .map_err(|e| internal(&e.to_string()))
}

/// The size and SHA-1 (base64, as FHIR's `Attachment.hash`) of a report document's PDF.
///
/// The PDF is rendered once per distinct document and metadata: rendering is deterministic
/// (the same document and metadata give the same bytes), so the digest is kept in a small
/// process-wide map keyed by the SHA-256 of both. The map holds no patient data, only hashes
/// and sizes, and is cleared when it grows past [`DIGESTS_KEPT`].
pub async fn pdf_digest(doc: &ReportDocument) -> ApiResult<(u64, String)> {
    use base64::Engine as _;
    use sha1::Digest as _;
    let key: [u8; 32] = {
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, doc.ident.as_bytes());
        sha2::Digest::update(&mut h, [0]);
        sha2::Digest::update(&mut h, doc.created.as_microsecond().to_be_bytes());
        sha2::Digest::update(&mut h, doc.document.as_bytes());
        sha2::Digest::finalize(h).into()
    };
    if let Some(d) = digests().lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(d);
    }
    let pdf = render(doc).await?;
    let digest = (
        pdf.len() as u64,
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&pdf)),
    );
    if let Ok(mut m) = digests().lock() {
        if m.len() >= DIGESTS_KEPT {
            m.clear();
        }
        m.insert(key, digest.clone());
    }
    Ok(digest)
}

/// At most this many PDF digests are kept in memory.
const DIGESTS_KEPT: usize = 10_000;

type Digests = std::sync::Mutex<std::collections::HashMap<[u8; 32], (u64, String)>>;

fn digests() -> &'static Digests {
    static DIGESTS: std::sync::OnceLock<Digests> = std::sync::OnceLock::new();
    DIGESTS.get_or_init(Default::default)
}

/// Renders a report document as a PDF response (`inline`, never cached).
pub async fn pdf_response(doc: ReportDocument, filename: String) -> ApiResult<Response> {
    let pdf = render(&doc).await?;
    let ReportDocument {
        version, status, ..
    } = doc;
    let mut response = (StatusCode::OK, pdf).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if version > 0 {
        h.insert("x-report-version", HeaderValue::from(version));
    }
    if let Ok(v) = HeaderValue::from_str(&status) {
        h.insert("x-report-status", v);
    }
    Ok(response)
}

fn internal(detail: &str) -> ApiError {
    // The detail names template keys, never the report's values.
    tracing::error!(%detail, "report rendering failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

/// A PDF document (binary).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Pdf(pub Vec<u8>);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// An earlier issued version (1, 2, …); default the current report, issued now when its
    /// content changed since the latest version.
    pub version: Option<i64>,
}

/// An order's patient report as PDF: the lab, the patient, the ordering provider, the
/// specimens (collection, receipt, condition), every test by department with its result,
/// units, flags, the reference interval in force at collection, comments, critical-value
/// calls and corrections, marked preliminary, final or corrected, with page numbers. The
/// same version always gives the same bytes (`X-Report-Version`, `X-Report-Status`).
/// Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/orders/{id}/report.pdf", tag = "reports",
    params(("id" = i64, Path, description = "order id"), ReportQuery),
    responses((status = 200, description = "the report (PDF)", content((Pdf = "application/pdf"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn order_report(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    if let Some(v) = q.version
        && v < 1
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_version",
            "version must be 1 or more",
        )
        .with_field("version"));
    }
    let doc = state.app.order_report(&actor, id, q.version).await?;
    let name = format!("report-order-{id}-v{}.pdf", doc.version);
    pdf_response(doc, name).await
}

/// A patient's cumulative report as PDF: each test's released results across orders over
/// time (trend), each with the interval in force at its collection. Recorded in the access
/// log.
#[utoipa::path(get, path = "/api/v1/patients/{id}/cumulative.pdf", tag = "reports",
    params(("id" = i64, Path, description = "patient id")),
    responses((status = 200, description = "the cumulative report (PDF)", content((Pdf = "application/pdf"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cumulative_report(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let doc = state.app.cumulative_report(&actor, id).await?;
    pdf_response(doc, format!("cumulative-patient-{id}.pdf")).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// The client location's code.
    pub location: String,
    /// RFC 3339: reports with a result released or corrected at or after this time.
    pub since: String,
}

/// The batch print of a client location as one PDF: the current report of every order there
/// with a result released or corrected since `since` (oldest order first, at most 200), each
/// starting on a new page with its own page numbers. Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/reports/batch.pdf", tag = "reports",
    params(BatchQuery),
    responses((status = 200, description = "the reports (PDF)", content((Pdf = "application/pdf"))),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn batch_reports(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<BatchQuery>,
) -> ApiResult<Response> {
    let doc = state
        .app
        .batch_reports(&actor, &q.location, &q.since)
        .await?;
    pdf_response(doc, "reports-batch.pdf".into()).await
}
