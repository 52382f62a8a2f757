//! The bench web UI: server-rendered HTML (askama templates in `crates/server/templates/`)
//! with htmx vendored into the binary (`crates/server/static/`). No front-end build, no CDN.
//!
//! API boundary: the pages call the same use cases (`aliquot_app::App`) as the REST API, with
//! an `Actor` whose source is `web`; they hold no rule of their own. Reads of patient data go
//! through those use cases, so they land in the access log.
//!
//! The UI has its own route table ([`UI_ROUTES`]) and guard ([`session::guard`]): a session
//! cookie instead of a bearer token, CSRF and origin checks on every unsafe request. A page
//! without a row in the table is refused, as for the API. The UI routes are not part of the
//! JSON API and not in its OpenAPI document.

mod admin;
mod auth;
mod board;
mod interfaces;
mod outbox;
mod processing;
mod qc;
mod registration;
mod reports;
mod results;
mod review;
pub mod session;
mod stations;

use aliquot_app::AppError;
use aliquot_domain::auth::{Permission, Role};
use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::AppState;
use crate::access::{Access, RouteSpec};
use session::WebSession;

use Access::{Authenticated, Permission as Perm, Public};
use Permission as P;

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

/// The UI's route table: every page and form, and what it requires. The use case behind each
/// checks the permission again.
pub const UI_ROUTES: &[RouteSpec] = &[
    r("GET", "/static/{file}", Public),
    r("GET", "/login", Public),
    r("POST", "/login", Public),
    r("GET", "/login/mfa", Public),
    r("POST", "/login/mfa", Public),
    r("POST", "/login/mfa/confirm", Public),
    r("POST", "/logout", Authenticated),
    r("GET", "/", Authenticated),
    // registration and order entry
    r("GET", "/patients", Perm(P::PatientRead)),
    r("GET", "/patients/new", Perm(P::PatientWrite)),
    r("POST", "/patients", Perm(P::PatientWrite)),
    r("GET", "/patients/{id}", Perm(P::PatientRead)),
    r("GET", "/patients/{id}/orders/new", Perm(P::OrderWrite)),
    r("POST", "/orders", Perm(P::OrderWrite)),
    r("GET", "/orders/{id}", Perm(P::OrderRead)),
    r("GET", "/orders/{id}/report.pdf", Perm(P::OrderRead)),
    r("GET", "/patients/{id}/cumulative.pdf", Perm(P::OrderRead)),
    r("POST", "/orders/{id}/labels", Perm(P::SpecimenCollect)),
    // collection
    r("GET", "/collect", Perm(P::SpecimenCollect)),
    r("POST", "/collect/scan", Perm(P::SpecimenCollect)),
    r("POST", "/collect/{accession}", Perm(P::SpecimenCollect)),
    // receiving
    r("GET", "/receive", Perm(P::SpecimenProcess)),
    r("POST", "/receive", Perm(P::SpecimenProcess)),
    r(
        "POST",
        "/receive/{accession}/reject",
        Perm(P::SpecimenProcess),
    ),
    // processing and storage
    r("GET", "/process", Perm(P::SpecimenProcess)),
    r("POST", "/process/centrifuge", Perm(P::SpecimenProcess)),
    r("POST", "/process/aliquot", Perm(P::SpecimenProcess)),
    r("GET", "/storage", Perm(P::SpecimenProcess)),
    r("POST", "/storage/store", Perm(P::SpecimenProcess)),
    r("POST", "/storage/retrieve", Perm(P::SpecimenProcess)),
    // tracking
    r("GET", "/track", Perm(P::OrderRead)),
    // results
    r("GET", "/results", Perm(P::ResultEnter)),
    r("POST", "/results/enter", Perm(P::ResultEnter)),
    r("POST", "/results/{id}/verify", Perm(P::ResultVerify)),
    r("POST", "/results/{id}/call", Perm(P::ResultVerify)),
    r("POST", "/results/preview", Perm(P::ResultEnter)),
    // review and release, corrections
    r("GET", "/review", Perm(P::ResultVerify)),
    r("POST", "/review/results/{id}/verify", Perm(P::ResultVerify)),
    r("POST", "/review/orders/{id}/verify", Perm(P::ResultVerify)),
    r("POST", "/review/rerun", Perm(P::ResultEnter)),
    r("GET", "/results/{id}", Perm(P::OrderRead)),
    r("POST", "/results/{id}/correct", Perm(P::ResultVerify)),
    // the dashboard
    r("GET", "/dashboard", Perm(P::SpecimenProcess)),
    r("GET", "/dashboard/board", Perm(P::SpecimenProcess)),
    // reports
    r("GET", "/reports", Perm(P::OrderRead)),
    r("GET", "/reports/order", Perm(P::OrderRead)),
    r("GET", "/reports/batch.pdf", Perm(P::OrderRead)),
    // administration
    r("GET", "/admin", Perm(P::UserRead)),
    r("POST", "/admin/users", Perm(P::UserManage)),
    r("POST", "/admin/users/{id}/role", Perm(P::UserManage)),
    r("POST", "/admin/users/{id}/disabled", Perm(P::UserManage)),
    r("POST", "/admin/grants/{id}/approve", Perm(P::UserManage)),
    r("POST", "/admin/grants/{id}/reject", Perm(P::UserManage)),
    r("GET", "/admin/settings", Perm(P::SettingsRead)),
    r("POST", "/admin/settings", Perm(P::SettingsWrite)),
    r("GET", "/admin/catalog", Perm(P::CatalogRead)),
    r("GET", "/admin/audit", Perm(P::AuditRead)),
    r("GET", "/admin/access-log", Perm(P::AuditRead)),
    // interfaces
    r("GET", "/interfaces", Perm(P::InterfaceManage)),
    r("POST", "/interfaces/{id}/replay", Perm(P::InterfaceManage)),
    r("GET", "/outbox", Perm(P::InterfaceManage)),
    r("GET", "/outbox/{id}", Perm(P::InterfaceManage)),
    r("POST", "/outbox/{id}/retry", Perm(P::InterfaceManage)),
    r("POST", "/outbox/{id}/skip", Perm(P::InterfaceManage)),
    // quality control
    r("GET", "/qc", Perm(P::QcRead)),
    r("POST", "/qc/run", Perm(P::QcEnter)),
    r("POST", "/qc/corrective-action", Perm(P::QcManage)),
    r("GET", "/qc/chart.svg", Perm(P::QcRead)),
];

/// The UI router (state-less until merged into the server's router).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(static_file))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/login/mfa", get(auth::mfa_page).post(auth::mfa_start))
        .route("/login/mfa/confirm", post(auth::mfa_confirm))
        .route("/logout", post(auth::logout))
        .route("/", get(auth::home))
        .route(
            "/patients",
            get(registration::search).post(registration::register),
        )
        .route("/patients/new", get(registration::new_patient))
        .route("/patients/{id}", get(registration::patient))
        .route("/patients/{id}/orders/new", get(registration::new_order))
        .route("/orders", post(registration::place_order))
        .route("/orders/{id}", get(registration::order))
        .route("/orders/{id}/report.pdf", get(reports::order_report))
        .route(
            "/patients/{id}/cumulative.pdf",
            get(reports::cumulative_report),
        )
        .route("/orders/{id}/labels", post(registration::labels))
        .route("/collect", get(stations::collect_page))
        .route("/collect/scan", post(stations::collect_scan))
        .route("/collect/{accession}", post(stations::collect))
        .route(
            "/receive",
            get(stations::receive_page).post(stations::receive),
        )
        .route("/receive/{accession}/reject", post(stations::reject))
        .route("/process", get(processing::process_page))
        .route("/process/centrifuge", post(processing::centrifuge))
        .route("/process/aliquot", post(processing::aliquot))
        .route("/storage", get(processing::storage_page))
        .route("/storage/store", post(processing::store))
        .route("/storage/retrieve", post(processing::retrieve))
        .route("/track", get(stations::track))
        .route("/results", get(results::results_page))
        .route("/results/enter", post(results::enter))
        .route("/results/{id}/verify", post(results::verify))
        .route("/results/{id}/call", post(results::document_call))
        .route("/results/preview", post(results::preview))
        .route("/review", get(review::review))
        .route("/review/results/{id}/verify", post(review::verify))
        .route("/review/orders/{id}/verify", post(review::verify_order))
        .route("/review/rerun", post(review::rerun))
        .route("/results/{id}", get(review::result))
        .route("/results/{id}/correct", post(review::correct))
        .route("/dashboard", get(board::dashboard))
        .route("/dashboard/board", get(board::board_fragment))
        .route("/reports", get(reports::reports))
        .route("/reports/order", get(reports::order_lookup))
        .route("/reports/batch.pdf", get(reports::batch))
        .route("/admin", get(admin::users))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/users/{id}/role", post(admin::set_role))
        .route("/admin/users/{id}/disabled", post(admin::set_disabled))
        .route("/admin/grants/{id}/approve", post(admin::approve_grant))
        .route("/admin/grants/{id}/reject", post(admin::reject_grant))
        .route(
            "/admin/settings",
            get(admin::settings).post(admin::put_setting),
        )
        .route("/admin/catalog", get(admin::catalog))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/access-log", get(admin::access_log))
        .route("/interfaces", get(interfaces::interfaces_page))
        .route("/interfaces/{id}/replay", post(interfaces::replay))
        .route("/outbox", get(outbox::outbox_page))
        .route("/outbox/{id}", get(outbox::outbox_message))
        .route("/outbox/{id}/retry", post(outbox::retry))
        .route("/outbox/{id}/skip", post(outbox::skip))
        .route("/qc", get(qc::qc_page))
        .route("/qc/run", post(qc::post_run))
        .route("/qc/corrective-action", post(qc::corrective_action))
        .route("/qc/chart.svg", get(qc::chart))
        .route_layer(axum::middleware::from_fn_with_state(state, session::guard))
}

// ── static assets, compiled into the binary ──

/// htmx 2.0.11 from the npm package `htmx.org` (Zero-Clause BSD licence, `static/htmx.LICENSE`).
const HTMX: &[u8] = include_bytes!("../../static/htmx-2.0.11.min.js");
const APP_JS: &[u8] = include_bytes!("../../static/app.js");
const APP_CSS: &[u8] = include_bytes!("../../static/app.css");

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such file."),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Assets hold no patient data; the security layer keeps `no-store` on everything else.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

// ── rendering ──

/// The pages' content security policy: scripts, styles and forms from this site only; no
/// inline script (htmx runs without `eval`).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // The browser then sends this site's `Origin` on forms (with `no-referrer` it sends
    // `null`); other sites still learn nothing (URLs may hold patient identifiers).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The page could not be shown.</p>".into(),
            )
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &ErrorPage { title, message })
}

/// A use case's error as a page (internal details go to the log, never to the page).
pub(crate) fn app_error_page(e: &AppError) -> Response {
    let (status, title) = match e {
        AppError::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "Not logged in"),
        AppError::Forbidden { .. } => (StatusCode::FORBIDDEN, "Not allowed"),
        AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found"),
        AppError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Check the input"),
        AppError::Conflict { .. } => (StatusCode::CONFLICT, "Not possible now"),
        AppError::Locked { .. } => (StatusCode::TOO_MANY_REQUESTS, "Locked"),
        AppError::Internal(detail) => {
            tracing::error!(detail = %detail, "internal error on a page");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not complete this. Nothing was changed unless a page said so.",
            );
        }
    };
    error_page(status, title, &message(e))
}

/// An error in words for the person at the bench.
pub(crate) fn message(e: &AppError) -> String {
    match e {
        AppError::NotFound { entity } => format!("No such {entity}."),
        AppError::Internal(_) => "The server could not complete this.".into(),
        other => {
            let m = other.to_string();
            let mut chars = m.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
                None => m,
            }
        }
    }
}

// ── the frame of every page ──

pub(crate) struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub key: &'static str,
    pub current: bool,
}

/// Who is logged in and where they may go: the page header.
pub(crate) struct Nav {
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub lab_name: String,
    pub idle_seconds: i64,
    pub links: Vec<NavLink>,
}

/// The stations and what each needs; a link is shown only to roles holding it.
const STATIONS: &[(&str, &str, &str, Permission)] = &[
    ("/patients", "Registration", "r", P::PatientRead),
    ("/collect", "Collection", "c", P::SpecimenCollect),
    ("/receive", "Receiving", "v", P::SpecimenProcess),
    ("/process", "Processing", "p", P::SpecimenProcess),
    ("/storage", "Storage", "s", P::SpecimenProcess),
    ("/track", "Tracking", "t", P::OrderRead),
    ("/results", "Results", "e", P::ResultEnter),
    ("/review", "Review", "w", P::ResultVerify),
    ("/reports", "Reports", "o", P::OrderRead),
    ("/interfaces", "Interfaces", "i", P::InterfaceManage),
    ("/qc", "QC", "q", P::QcRead),
    ("/dashboard", "Dashboard", "b", P::SpecimenProcess),
    ("/admin", "Administration", "m", P::UserManage),
];

pub(crate) fn stations_for(
    role: Role,
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str, Permission)> {
    STATIONS.iter().filter(move |s| role.allows(s.3))
}

/// The lab's name and time zone (settings, not patient data).
pub(crate) struct Lab {
    pub name: String,
    pub tz: TimeZone,
}

pub(crate) async fn lab(state: &AppState) -> Lab {
    let settings = state.app.store().list_settings().await.unwrap_or_default();
    let get = |k: &str| {
        settings
            .iter()
            .find(|s| s.key == k)
            .map(|s| s.value.clone())
    };
    Lab {
        name: get("lab.name").unwrap_or_else(|| "Aliquot".into()),
        tz: get("lab.timezone")
            .and_then(|z| TimeZone::get(&z).ok())
            .unwrap_or(TimeZone::UTC),
    }
}

pub(crate) async fn nav(state: &AppState, s: &WebSession, current: &str) -> (Nav, Lab) {
    let lab = lab(state).await;
    let nav = Nav {
        username: s.actor.username.clone(),
        role: s.actor.role.as_str().to_owned(),
        csrf: s.csrf.clone(),
        lab_name: lab.name.clone(),
        idle_seconds: state.app.config().idle_timeout.as_secs(),
        links: stations_for(s.actor.role)
            .map(|(href, label, key, _)| NavLink {
                href,
                label,
                key,
                current: *href == current,
            })
            .collect(),
    };
    (nav, lab)
}

/// Text as one URL query value.
pub(crate) fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)])
        .map(|s| s.trim_start_matches("x=").to_owned())
        .unwrap_or_default()
}

/// A time in the lab's zone, to the minute.
pub(crate) fn when(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// `datetime-local` value of now in the lab's zone.
pub(crate) fn now_local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

/// A `datetime-local` value (lab time) as RFC 3339 for the use cases; other text is passed on
/// unchanged, for the use case to refuse in its own words.
pub(crate) fn local_to_rfc3339(text: &str, tz: &TimeZone) -> String {
    let text = text.trim();
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(tz.clone()).ok())
        .map(|z| z.timestamp().to_string())
        .unwrap_or_else(|| text.to_owned())
}

/// A submitted form: name/value pairs in order (repeated names kept).
pub(crate) struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|_| {
                error_page(
                    StatusCode::BAD_REQUEST,
                    "Bad form",
                    "The form could not be read.",
                )
            })?;
        Ok(FormData(pairs))
    }
}

/// Whether the request came from htmx (answer with a fragment).
pub(crate) fn is_htmx(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A human name for a rejection reason code.
pub(crate) fn reason_label(code: &str) -> &'static str {
    match code {
        "unlabeled" => "Unlabeled",
        "mislabeled" => "Mislabeled",
        "illegible_label" => "Label illegible",
        "suspected_wrong_blood_in_tube" => "Wrong blood in tube?",
        "qns" => "Not enough specimen (QNS)",
        "hemolyzed" => "Hemolyzed",
        "clotted" => "Clotted",
        "wrong_container" => "Wrong container",
        "wrong_specimen_type" => "Wrong specimen type",
        "stability_exceeded" => "Too old (stability exceeded)",
        "wrong_temperature" => "Wrong temperature",
        "leaked" => "Leaked",
        "contaminated_exterior" => "Outside contaminated",
        "needle_attached" => "Needle attached",
        "iv_contamination" => "IV contamination",
        "no_specimen_received" => "No specimen received",
        _ => "Other",
    }
}

/// A human name for a specimen status.
pub(crate) fn status_label(code: &str) -> String {
    code.replace('_', " ")
}

/// The electronic signature typed into a form's `signature` field: six digits are an
/// authenticator code, anything else the password (passwords are at least 12 characters).
pub(crate) fn signature_from(
    form: &FormData,
    client: std::net::IpAddr,
) -> Option<aliquot_app::SignatureInput> {
    let typed = form.get("signature");
    if typed.is_empty() {
        return None;
    }
    let totp = typed.len() == 6 && typed.bytes().all(|b| b.is_ascii_digit());
    Some(aliquot_app::SignatureInput {
        password: (!totp).then(|| typed.to_owned()),
        totp: totp.then(|| typed.to_owned()),
        address: Some(client),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_routes_are_not_api_routes_and_are_unique() {
        for (i, a) in UI_ROUTES.iter().enumerate() {
            assert!(!a.path.starts_with("/api/"), "{}", a.path);
            assert!(
                crate::access::ROUTES
                    .iter()
                    .all(|b| (b.method, b.path) != (a.method, a.path)),
                "{} {} is in both tables",
                a.method,
                a.path
            );
            assert!(
                UI_ROUTES[i + 1..]
                    .iter()
                    .all(|b| (b.method, b.path) != (a.method, a.path)),
                "{} {} twice",
                a.method,
                a.path
            );
        }
    }

    #[test]
    fn every_rejection_reason_has_words() {
        for r in aliquot_domain::specimen::RejectionReason::ALL {
            assert_ne!(reason_label(r.as_str()), "Other", "{}", r.as_str());
        }
    }

    #[test]
    fn navigation_follows_the_permission_matrix() {
        let hrefs = |role| stations_for(role).map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(
            hrefs(Role::Phlebotomist),
            ["/patients", "/collect", "/track", "/reports"]
        );
        assert_eq!(hrefs(Role::Physician), ["/patients", "/track", "/reports"]);
        // The administrator runs the interfaces and the administration, without patient data.
        assert_eq!(hrefs(Role::Admin), ["/interfaces", "/admin"]);
        // A technician neither releases results nor runs interfaces or the system.
        assert_eq!(
            hrefs(Role::Technician),
            [
                "/patients",
                "/collect",
                "/receive",
                "/process",
                "/storage",
                "/track",
                "/results",
                "/reports",
                "/qc",
                "/dashboard"
            ]
        );
        assert_eq!(hrefs(Role::Technologist).len(), STATIONS.len() - 1);
        assert_eq!(hrefs(Role::Director).len(), STATIONS.len() - 1);
    }

    #[test]
    fn lab_time_round_trips() {
        let tz = TimeZone::get("America/Chicago").unwrap();
        let t: Timestamp = "2026-03-02T14:05:00Z".parse().unwrap();
        assert_eq!(now_local(t, &tz), "2026-03-02T08:05");
        assert_eq!(
            local_to_rfc3339("2026-03-02T08:05", &tz),
            "2026-03-02T14:05:00Z"
        );
        assert_eq!(local_to_rfc3339("garbage", &tz), "garbage");
    }
}
