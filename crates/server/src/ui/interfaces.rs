//! The interfaces station, for the interface analyst: the error queue (each message with
//! what went wrong, where) and its replay, the recent message log, and the registered
//! instruments with their test-code mappings. Every action is the REST API's use case.

use aliquot_app::connections::{InstrumentView, InterfaceMessageView, MessageQuery};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::session::WebSession;
use super::{FormData, Lab, Nav, message, nav, render, when};
use crate::AppState;

pub(crate) struct MessageRow {
    pub id: i64,
    pub received: String,
    pub connection: String,
    pub kind: String,
    pub status: String,
    pub posted: i64,
    /// `(location, what went wrong)`.
    pub errors: Vec<(String, String)>,
}

pub(crate) struct InstrumentRow {
    pub code: String,
    pub name: String,
    pub protocol: String,
    pub sender: String,
    pub department: String,
    pub codes: String,
    pub retired: bool,
}

#[derive(Template)]
#[template(path = "interfaces.html")]
struct InterfacesPage {
    nav: Nav,
    notice: Option<String>,
    error: Option<String>,
    queue: Vec<MessageRow>,
    recent: Vec<MessageRow>,
    instruments: Vec<InstrumentRow>,
}

fn message_row(m: InterfaceMessageView, lab: &Lab) -> MessageRow {
    MessageRow {
        id: m.id,
        received: when(m.received_at, &lab.tz),
        connection: m.connection,
        kind: format!("{} {}", m.protocol.to_uppercase(), m.message_type),
        status: m.status,
        posted: m.posted,
        errors: m
            .errors
            .into_iter()
            .map(|e| (e.location, format!("{} ({})", e.message, e.code)))
            .collect(),
    }
}

fn instrument_row(i: InstrumentView) -> InstrumentRow {
    InstrumentRow {
        codes: i
            .test_codes
            .iter()
            .map(|(code, test, _)| {
                if code == test {
                    code.clone()
                } else {
                    format!("{code} → {test}")
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        code: i.code,
        name: i.name,
        protocol: i.protocol.to_uppercase(),
        sender: i.sender,
        department: i.department,
        retired: i.retired,
    }
}

async fn page(
    state: &AppState,
    s: &WebSession,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let (nav, lab) = nav(state, s, "/interfaces").await;
    let app = &state.app;
    let list = |status: Option<&str>, limit| MessageQuery {
        status: status.map(str::to_owned),
        limit: Some(limit),
        ..MessageQuery::default()
    };
    let loaded = async {
        let queue = app
            .list_messages(&s.actor, list(Some("error"), 200))
            .await?;
        let recent = app.list_messages(&s.actor, list(None, 20)).await?;
        let instruments = app.list_instruments(&s.actor).await?;
        Ok::<_, aliquot_app::AppError>((queue, recent, instruments))
    }
    .await;
    match loaded {
        Ok((queue, recent, instruments)) => render(
            StatusCode::OK,
            &InterfacesPage {
                nav,
                notice,
                error,
                queue: queue.into_iter().map(|m| message_row(m, &lab)).collect(),
                recent: recent.into_iter().map(|m| message_row(m, &lab)).collect(),
                instruments: instruments.into_iter().map(instrument_row).collect(),
            },
        ),
        Err(e) => super::app_error_page(&e),
    }
}

/// The station.
pub async fn interfaces_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    page(&state, &s, None, None).await
}

/// Replays a message of the error queue with today's mappings.
pub async fn replay(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    _form: FormData,
) -> Response {
    let (notice, error) = match state
        .app
        .replay_message(&s.actor, id, aliquot_connect::read_stored)
        .await
    {
        Ok(o) if o.status == "replayed" => (
            Some(format!(
                "Message {id} replayed: {} result(s) or order(s) posted; it has left the error \
                 queue.",
                o.posted
            )),
            None,
        ),
        Ok(o) => (
            None,
            Some(format!(
                "Message {id} replayed, still in error: {}.",
                o.errors
                    .iter()
                    .map(|e| format!("{} {}", e.location, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        ),
        Err(e) => (None, Some(message(&e))),
    };
    page(&state, &s, notice, error).await
}
