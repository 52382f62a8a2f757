//! The outbox page, for the interface analyst (issue 12): each outbound destination with its
//! address, whether it is retired and how many of its messages wait or were refused too
//! often; the messages, newest first, narrowed by destination and status, with their
//! attempts, refusals and the reason of the last failure; one message with its raw HL7 and
//! the acknowledgement received (only for roles that may read patients, access-logged by the
//! use case), and its retry or skip. Every action is the REST API's use case
//! (`GET /api/v1/outbox`, `…/{id}`, `POST …/{id}/retry`, `…/{id}/skip`).

use aliquot_app::connections::{OutboxQuery, OutboxView};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::session::WebSession;
use super::{FormData, Lab, Nav, message, nav, render, when};
use crate::AppState;

pub(crate) struct DestinationRow {
    pub code: String,
    pub name: String,
    pub address: String,
    pub version: i64,
    pub retired: bool,
    pub pending: i64,
    pub failed: i64,
    pub chosen: bool,
}

pub(crate) struct OutboxRow {
    pub id: i64,
    pub destination: String,
    pub order_id: i64,
    pub status: String,
    pub status_text: String,
    pub attempts: i64,
    pub refusals: i64,
    pub created: String,
    pub next: String,
    pub sent: String,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    nav: Nav,
    destinations: Vec<DestinationRow>,
    rows: Vec<OutboxRow>,
    /// The filter as chosen (`""` = all).
    status: String,
    statuses: Vec<(&'static str, &'static str, bool)>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "outbox_message.html")]
struct MessagePage {
    nav: Nav,
    row: OutboxRow,
    can_retry: bool,
    can_skip: bool,
    /// `None` for a role that may not read patients.
    control_id: Option<String>,
    message: Option<String>,
    ack: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

const STATUSES: [(&str, &str); 4] = [
    ("pending", "Pending"),
    ("failed", "Refused (waits for you)"),
    ("sent", "Sent"),
    ("skipped", "Skipped"),
];

fn status_text(status: &str) -> String {
    STATUSES
        .iter()
        .find(|(s, _)| *s == status)
        .map_or_else(|| status.to_owned(), |(_, t)| (*t).to_owned())
}

fn row(v: &OutboxView, lab: &Lab) -> OutboxRow {
    OutboxRow {
        id: v.id,
        destination: v.destination.clone(),
        order_id: v.order_id,
        status: v.status.clone(),
        status_text: status_text(&v.status),
        attempts: v.attempts,
        refusals: v.refusals,
        created: when(v.created_at, &lab.tz),
        next: if v.status == "pending" {
            when(v.next_attempt_at, &lab.tz)
        } else {
            String::new()
        },
        sent: v.sent_at.map(|t| when(t, &lab.tz)).unwrap_or_default(),
        last_error: v.last_error.clone().unwrap_or_default(),
    }
}

#[derive(Deserialize)]
pub struct OutboxFilter {
    destination: Option<String>,
    status: Option<String>,
}

/// The destinations and the messages.
pub async fn outbox_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<OutboxFilter>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/interfaces").await;
    let destination = q
        .destination
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let status = q
        .status
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let queues = match state.app.destination_queues(&s.actor).await {
        Ok(q) => q,
        Err(e) => return super::app_error_page(&e),
    };
    let (rows, error) = match state
        .app
        .list_outbox(
            &s.actor,
            OutboxQuery {
                destination: destination.clone(),
                status: status.clone(),
                before: None,
                limit: Some(200),
            },
        )
        .await
    {
        Ok(list) => (list.iter().map(|v| row(v, &lab)).collect(), None),
        Err(e) => (Vec::new(), Some(message(&e))),
    };
    let status = status.unwrap_or_default();
    render(
        StatusCode::OK,
        &OutboxPage {
            nav,
            destinations: queues
                .into_iter()
                .map(|(d, pending, failed)| DestinationRow {
                    chosen: destination.as_deref() == Some(d.code.as_str()),
                    address: format!("{}:{}", d.host, d.port),
                    code: d.code,
                    name: d.name,
                    version: d.version,
                    retired: d.retired,
                    pending,
                    failed,
                })
                .collect(),
            rows,
            statuses: STATUSES
                .iter()
                .map(|(s, t)| (*s, *t, *s == status))
                .collect(),
            status,
            error,
        },
    )
}

async fn message_page(
    state: &AppState,
    s: &WebSession,
    id: i64,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let (nav, lab) = nav(state, s, "/interfaces").await;
    let v = match state.app.get_outbox(&s.actor, id).await {
        Ok(v) => v,
        Err(e) => return super::app_error_page(&e),
    };
    let (control_id, message, ack) = match &v.content {
        Some(c) => (
            Some(c.control_id.clone()),
            // Segments end with CR: shown one per line.
            c.message.as_ref().map(|m| m.replace('\r', "\n")),
            c.ack.as_ref().map(|a| a.replace('\r', "\n")),
        ),
        None => (None, None, None),
    };
    render(
        StatusCode::OK,
        &MessagePage {
            nav,
            can_retry: v.status == "failed",
            can_skip: matches!(v.status.as_str(), "pending" | "failed"),
            row: row(&v, &lab),
            control_id,
            message,
            ack,
            notice,
            error,
        },
    )
}

/// One message with its raw HL7 and acknowledgement.
pub async fn outbox_message(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
) -> Response {
    message_page(&state, &s, id, None, None).await
}

/// Puts a refused message back at the head of its queue.
pub async fn retry(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let (notice, error) = match state
        .app
        .retry_outbox(&s.actor, id, form.opt("reason").as_deref())
        .await
    {
        Ok(_) => (
            Some(format!(
                "Message {id} is back at the head of its queue and will be sent again now."
            )),
            None,
        ),
        Err(e) => (None, Some(message(&e))),
    };
    message_page(&state, &s, id, notice, error).await
}

/// Takes a message out of its queue for good, with a reason.
pub async fn skip(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let (notice, error) = match state
        .app
        .skip_outbox(&s.actor, id, form.opt("reason").as_deref())
        .await
    {
        Ok(_) => (
            Some(format!(
                "Message {id} was skipped: it will not be sent, and the messages behind it go."
            )),
            None,
        ),
        Err(e) => (None, Some(message(&e))),
    };
    message_page(&state, &s, id, notice, error).await
}
