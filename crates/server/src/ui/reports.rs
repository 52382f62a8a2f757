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
