//! Reports from the bench (issue 14): an order's report and a patient's cumulative report as
//! PDF, through the same use cases and renderer as the REST API.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::app_error_page;
use super::session::WebSession;
use crate::AppState;
use crate::api::reports::pdf_response;

/// `GET /orders/{id}/report.pdf`: the order's current report (issued when it changed).
pub async fn order_report(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
) -> Response {
    match state.app.order_report(&s.actor, id, None).await {
        Ok(doc) => {
            let name = format!("report-order-{id}-v{}.pdf", doc.version);
            match pdf_response(doc, name).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        Err(e) => app_error_page(&e),
    }
}

/// `GET /patients/{id}/cumulative.pdf`: the patient's cumulative report.
pub async fn cumulative_report(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
) -> Response {
    match state.app.cumulative_report(&s.actor, id).await {
        Ok(doc) => match pdf_response(doc, format!("cumulative-patient-{id}.pdf")).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => app_error_page(&e),
    }
}

// ── the reports page: order reports and the batch print of a location ──

#[derive(askama::Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    nav: super::Nav,
    /// Location code, name, chosen.
    locations: Vec<(String, String, bool)>,
    since: String,
    order: String,
    /// An error next to its field (`location`, `since`, `order`) or above the forms.
    error_field: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct BatchForm {
    location: Option<String>,
    since: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct OrderForm {
    order: Option<String>,
}

async fn reports_page(
    state: &AppState,
    s: &WebSession,
    location: &str,
    since: Option<String>,
    order: &str,
    error: Option<(String, String)>,
) -> Response {
    let (nav, lab) = super::nav(state, s, "/reports").await;
    let locations = state
        .app
        .locations(&s.actor)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            let chosen = l.code == location;
            (l.code, l.name, chosen)
        })
        .collect();
    // By default, what was released since the start of today in the lab.
    let since = since.unwrap_or_else(|| {
        let now = super::now_local(state.app.now(), &lab.tz);
        format!("{}T00:00", &now[..10])
    });
    let (error_field, error) = error.unzip();
    super::render(
        if error.is_some() {
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        } else {
            axum::http::StatusCode::OK
        },
        &ReportsPage {
            nav,
            locations,
            since,
            order: order.to_owned(),
            error_field: error_field.unwrap_or_default(),
            error,
        },
    )
}

/// `GET /reports`: an order's report by its number, and the batch print of a location.
pub async fn reports(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    reports_page(&state, &s, "", None, "", None).await
}

/// `GET /reports/order?order=N`: to the order's report PDF.
pub async fn order_lookup(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    axum::extract::Query(q): axum::extract::Query<OrderForm>,
) -> Response {
    let text = q.order.unwrap_or_default();
    let digits = text.trim().trim_start_matches('#');
    match digits.parse::<i64>() {
        Ok(id) if id > 0 => {
            let mut r = axum::http::StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!("/orders/{id}/report.pdf")) {
                r.headers_mut().insert(axum::http::header::LOCATION, v);
            }
            r
        }
        _ => {
            reports_page(
                &state,
                &s,
                "",
                None,
                &text,
                Some(("order".into(), "An order number is digits, e.g. 42.".into())),
            )
            .await
        }
    }
}

/// `GET /reports/batch.pdf?location=&since=`: the batch print (since in the lab's time), the
/// same use case as the API's; refused input comes back to the form, next to its field.
pub async fn batch(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    axum::extract::Query(q): axum::extract::Query<BatchForm>,
) -> Response {
    let location = q.location.unwrap_or_default();
    let since_text = q.since.unwrap_or_default();
    let lab = super::lab(&state).await;
    let since = super::local_to_rfc3339(&since_text, &lab.tz);
    match state.app.batch_reports(&s.actor, &location, &since).await {
        Ok(doc) => match pdf_response(doc, "reports-batch.pdf".into()).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Err(e) => {
            let field = match &e {
                aliquot_app::AppError::Invalid { field, .. } => field.clone().unwrap_or_default(),
                aliquot_app::AppError::NotFound { entity } if *entity == "location" => {
                    "location".into()
                }
                _ => String::new(),
            };
            reports_page(
                &state,
                &s,
                &location,
                Some(since_text),
                "",
                Some((field, super::message(&e))),
            )
            .await
        }
    }
}
