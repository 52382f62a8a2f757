//! Who may call which route: one table, checked by one middleware before any body is read.
//!
//! Every route of the router has exactly one row here (a test walks the OpenAPI document
//! against this table, and every route × every role against the server). A route without a
//! row is refused: the default is deny.

use aliquot_app::{Actor, Source};
use aliquot_domain::auth::Permission;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No login: health check, login itself, and the API description.
    Public,
    /// Any logged-in user (their own account, logout).
    Authenticated,
    /// A logged-in user whose role holds this permission.
    Permission(Permission),
}

#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

use Access::{Authenticated, Permission as Perm, Public};
use Permission as P;

/// The route table.
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/healthz", Public),
    r("GET", "/metrics", Perm(P::MetricsRead)),
    r("GET", "/api/v1/openapi.json", Public),
    r("POST", "/api/v1/auth/token", Public),
    r("POST", "/api/v1/auth/logout", Authenticated),
    r("GET", "/api/v1/auth/me", Authenticated),
    r("POST", "/api/v1/auth/password", Authenticated),
    r("POST", "/api/v1/auth/mfa/enroll", Public),
    r("POST", "/api/v1/auth/mfa/confirm", Public),
    r("GET", "/api/v1/auth/mfa", Authenticated),
    r("POST", "/api/v1/users/{id}/mfa/reset", Perm(P::UserManage)),
    r("GET", "/api/v1/role-grants", Perm(P::UserRead)),
    r("POST", "/api/v1/role-grants", Perm(P::UserManage)),
    r(
        "POST",
        "/api/v1/role-grants/{id}/approve",
        Perm(P::UserManage),
    ),
    r(
        "POST",
        "/api/v1/role-grants/{id}/reject",
        Perm(P::UserManage),
    ),
    r("GET", "/api/v1/users", Perm(P::UserRead)),
    r("POST", "/api/v1/users", Perm(P::UserManage)),
    r("PUT", "/api/v1/users/{id}/role", Perm(P::UserManage)),
    r("PUT", "/api/v1/users/{id}/disabled", Perm(P::UserManage)),
    r("PUT", "/api/v1/users/{id}/provider", Perm(P::UserManage)),
    r("GET", "/api/v1/settings", Perm(P::SettingsRead)),
    r("PUT", "/api/v1/settings/{key}", Perm(P::SettingsWrite)),
    r("GET", "/api/v1/audit/events", Perm(P::AuditRead)),
    r("GET", "/api/v1/audit/verify", Perm(P::AuditRead)),
    r("GET", "/api/v1/audit/access-log", Perm(P::AuditRead)),
    r("POST", "/api/v1/patients", Perm(P::PatientWrite)),
    r("GET", "/api/v1/patients", Perm(P::PatientRead)),
    r("GET", "/api/v1/patients/{id}", Perm(P::PatientRead)),
    r("PATCH", "/api/v1/patients/{id}", Perm(P::PatientWrite)),
    r(
        "GET",
        "/api/v1/patients/{id}/versions",
        Perm(P::PatientRead),
    ),
    r("POST", "/api/v1/patients/{id}/merge", Perm(P::PatientMerge)),
    r(
        "POST",
        "/api/v1/patient-merges/{id}/undo",
        Perm(P::PatientMerge),
    ),
    r("POST", "/api/v1/providers", Perm(P::CatalogWrite)),
    r("GET", "/api/v1/providers", Perm(P::CatalogRead)),
    r("POST", "/api/v1/locations", Perm(P::CatalogWrite)),
    r("GET", "/api/v1/locations", Perm(P::CatalogRead)),
    r("GET", "/api/v1/catalog/tests", Perm(P::CatalogRead)),
    r("POST", "/api/v1/catalog/tests", Perm(P::CatalogWrite)),
    r("GET", "/api/v1/catalog/tests/{code}", Perm(P::CatalogRead)),
    r("PUT", "/api/v1/catalog/tests/{code}", Perm(P::CatalogWrite)),
    r(
        "POST",
        "/api/v1/catalog/tests/{code}/retire",
        Perm(P::CatalogWrite),
    ),
    r(
        "GET",
        "/api/v1/catalog/tests/{code}/versions",
        Perm(P::CatalogRead),
    ),
    r("POST", "/api/v1/orders", Perm(P::OrderWrite)),
    r("GET", "/api/v1/orders", Perm(P::OrderRead)),
    r("GET", "/api/v1/orders/{id}", Perm(P::OrderRead)),
    r("POST", "/api/v1/orders/{id}/cancel", Perm(P::OrderWrite)),
    r("POST", "/api/v1/orders/{id}/tests", Perm(P::OrderWrite)),
    r(
        "POST",
        "/api/v1/orders/{id}/cancel-test",
        Perm(P::OrderWrite),
    ),
    r("POST", "/api/v1/orders/{id}/scans", Perm(P::OrderWrite)),
    r("GET", "/api/v1/orders/{id}/scans", Perm(P::OrderRead)),
    r("GET", "/api/v1/scans/{id}", Perm(P::OrderRead)),
    r("GET", "/api/v1/specimens/{accession}", Perm(P::OrderRead)),
    r(
        "POST",
        "/api/v1/problem-log/{id}/resolve",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/recollect-tasks/{id}/complete",
        Perm(P::SpecimenProcess),
    ),
    r(
        "GET",
        "/api/v1/specimens/{accession}/label",
        Perm(P::SpecimenCollect),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/collect",
        Perm(P::SpecimenCollect),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/collection-time",
        Perm(P::SpecimenCollect),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/receive",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/reject",
        Perm(P::SpecimenProcess),
    ),
    r("GET", "/api/v1/problem-log", Perm(P::SpecimenProcess)),
    r("GET", "/api/v1/recollect-tasks", Perm(P::SpecimenProcess)),
    // processing (issue 4)
    r(
        "POST",
        "/api/v1/specimens/{accession}/start-processing",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/centrifugations",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/complete-processing",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/aliquots",
        Perm(P::SpecimenProcess),
    ),
    r(
        "GET",
        "/api/v1/specimens/{accession}/lineage",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/dilutions",
        Perm(P::SpecimenProcess),
    ),
    r("GET", "/api/v1/sorting", Perm(P::SpecimenProcess)),
    // storage, transport, send-out, disposal (issue 4)
    r("POST", "/api/v1/storage/units", Perm(P::SpecimenProcess)),
    r("GET", "/api/v1/storage/units", Perm(P::SpecimenProcess)),
    r(
        "GET",
        "/api/v1/storage/units/{id}/contents",
        Perm(P::SpecimenProcess),
    ),
    r(
        "GET",
        "/api/v1/storage/specimens/{accession}",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/store",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/retrieve",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/dispose",
        Perm(P::SpecimenProcess),
    ),
    r("GET", "/api/v1/storage/retention", Perm(P::SettingsRead)),
    r(
        "PUT",
        "/api/v1/storage/retention/{specimen_type}",
        Perm(P::SettingsWrite),
    ),
    r(
        "GET",
        "/api/v1/storage/disposal-due",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/dispatch",
        Perm(P::SpecimenCollect),
    ),
    r(
        "POST",
        "/api/v1/transport/manifests",
        Perm(P::SpecimenCollect),
    ),
    r(
        "POST",
        "/api/v1/specimens/{accession}/send-out",
        Perm(P::SpecimenProcess),
    ),
    r("GET", "/api/v1/send-outs", Perm(P::SpecimenProcess)),
    // reference laboratories, shipments, outstanding send-outs (issue 14 item 4)
    r(
        "GET",
        "/api/v1/send-outs/outstanding",
        Perm(P::SpecimenProcess),
    ),
    r("POST", "/api/v1/reference-labs", Perm(P::CatalogWrite)),
    r("GET", "/api/v1/reference-labs", Perm(P::SpecimenProcess)),
    r(
        "GET",
        "/api/v1/reference-labs/{code}",
        Perm(P::SpecimenProcess),
    ),
    r(
        "PUT",
        "/api/v1/reference-labs/{code}",
        Perm(P::CatalogWrite),
    ),
    r("POST", "/api/v1/shipments", Perm(P::SpecimenProcess)),
    r("GET", "/api/v1/shipments", Perm(P::SpecimenProcess)),
    r("GET", "/api/v1/shipments/{id}", Perm(P::SpecimenProcess)),
    r(
        "POST",
        "/api/v1/shipments/{id}/ship",
        Perm(P::SpecimenProcess),
    ),
    r(
        "POST",
        "/api/v1/shipments/{id}/receive",
        Perm(P::SpecimenProcess),
    ),
    r(
        "GET",
        "/api/v1/shipments/{id}/manifest",
        Perm(P::SpecimenProcess),
    ),
    r(
        "GET",
        "/api/v1/shipments/{id}/manifest.pdf",
        Perm(P::SpecimenProcess),
    ),
    // results (issue 11)
    r("POST", "/api/v1/results", Perm(P::ResultEnter)),
    r("GET", "/api/v1/results/{id}", Perm(P::OrderRead)),
    r("POST", "/api/v1/results/{id}/verify", Perm(P::ResultVerify)),
    r(
        "POST",
        "/api/v1/results/{id}/correct",
        Perm(P::ResultVerify),
    ),
    r(
        "POST",
        "/api/v1/results/{id}/critical-call",
        Perm(P::ResultVerify),
    ),
    r("GET", "/api/v1/critical-calls", Perm(P::ResultVerify)),
    r("POST", "/api/v1/orders/{id}/verify", Perm(P::ResultVerify)),
    r(
        "POST",
        "/api/v1/orders/{id}/not-performed",
        Perm(P::ResultVerify),
    ),
    r(
        "GET",
        "/api/v1/worklists/{department}",
        Perm(P::ResultEnter),
    ),
    r("GET", "/api/v1/patients/{id}/results", Perm(P::OrderRead)),
    // reports (issue 14)
    r("GET", "/api/v1/orders/{id}/report.pdf", Perm(P::OrderRead)),
    r(
        "GET",
        "/api/v1/patients/{id}/cumulative.pdf",
        Perm(P::OrderRead),
    ),
    r("GET", "/api/v1/reports/batch.pdf", Perm(P::OrderRead)),
    r("GET", "/api/v1/result-rules/{test}", Perm(P::CatalogRead)),
    r(
        "PUT",
        "/api/v1/result-rules/{test}",
        Perm(P::ResultRulesWrite),
    ),
    r(
        "GET",
        "/api/v1/result-rules/{test}/versions",
        Perm(P::CatalogRead),
    ),
    // instrument and EMR connections (issue 12)
    r("POST", "/api/v1/instruments", Perm(P::InterfaceManage)),
    r("GET", "/api/v1/instruments", Perm(P::InterfaceManage)),
    r(
        "GET",
        "/api/v1/instruments/{code}",
        Perm(P::InterfaceManage),
    ),
    r(
        "PUT",
        "/api/v1/instruments/{code}",
        Perm(P::InterfaceManage),
    ),
    r(
        "GET",
        "/api/v1/interface/messages",
        Perm(P::InterfaceManage),
    ),
    r(
        "GET",
        "/api/v1/interface/messages/{id}",
        Perm(P::InterfaceManage),
    ),
    r(
        "POST",
        "/api/v1/interface/messages/{id}/replay",
        Perm(P::InterfaceManage),
    ),
    r("POST", "/api/v1/destinations", Perm(P::InterfaceManage)),
    r("GET", "/api/v1/destinations", Perm(P::InterfaceManage)),
    r(
        "GET",
        "/api/v1/destinations/{code}",
        Perm(P::InterfaceManage),
    ),
    r(
        "PUT",
        "/api/v1/destinations/{code}",
        Perm(P::InterfaceManage),
    ),
    r("GET", "/api/v1/outbox", Perm(P::InterfaceManage)),
    r("GET", "/api/v1/outbox/{id}", Perm(P::InterfaceManage)),
    r(
        "POST",
        "/api/v1/outbox/{id}/retry",
        Perm(P::InterfaceManage),
    ),
    r("POST", "/api/v1/outbox/{id}/skip", Perm(P::InterfaceManage)),
    // quality control and calibration (issue 13)
    r("POST", "/api/v1/qc/lots", Perm(P::QcManage)),
    r("GET", "/api/v1/qc/lots", Perm(P::QcRead)),
    r("POST", "/api/v1/qc/targets", Perm(P::QcManage)),
    r("GET", "/api/v1/qc/targets", Perm(P::QcRead)),
    r("POST", "/api/v1/qc/targets/establish", Perm(P::QcManage)),
    r(
        "PUT",
        "/api/v1/qc/configs/{instrument}/{test}",
        Perm(P::QcManage),
    ),
    r(
        "GET",
        "/api/v1/qc/configs/{instrument}/{test}",
        Perm(P::QcRead),
    ),
    r("POST", "/api/v1/qc/results", Perm(P::QcEnter)),
    r("GET", "/api/v1/qc/runs", Perm(P::QcRead)),
    r("GET", "/api/v1/qc/status", Perm(P::QcRead)),
    r("POST", "/api/v1/qc/corrective-actions", Perm(P::QcManage)),
    r("POST", "/api/v1/qc/calibrations", Perm(P::QcEnter)),
    r("GET", "/api/v1/qc/calibrations", Perm(P::QcRead)),
    r("GET", "/api/v1/qc/statistics", Perm(P::QcRead)),
    r("GET", "/api/v1/qc/chart.svg", Perm(P::QcRead)),
    // turnaround time (issue 4)
    r("GET", "/api/v1/orders/{id}/tat", Perm(P::OrderRead)),
    r("GET", "/api/v1/tat/overdue", Perm(P::SpecimenProcess)),
];

pub fn lookup(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
}

/// The caller's bearer token, kept for logout.
#[derive(Clone)]
pub struct BearerToken(pub String);

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Authenticates and authorises the request against [`ROUTES`].
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(spec) = path.as_deref().and_then(|p| lookup(req.method(), p)) else {
        return ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "this route has no access rule",
        )
        .into_response();
    };
    if spec.access == Access::Public {
        return next.run(req).await;
    }
    let Some(token) = bearer(&req).map(str::to_owned) else {
        return ApiError::unauthorized(
            "unauthenticated",
            "log in and send Authorization: Bearer <token>",
        )
        .into_response();
    };
    let actor: Actor = match state.app.authenticate(&token, Source::Api).await {
        Ok(a) => a,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Access::Permission(p) = spec.access
        && let Err(e) = actor.require(p)
    {
        return ApiError::from(e).into_response();
    }
    req.extensions_mut().insert(actor);
    req.extensions_mut().insert(BearerToken(token));
    next.run(req).await
}
