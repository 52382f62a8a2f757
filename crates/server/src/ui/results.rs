//! The results station: a department's worklist with keyboard-driven entry (type the value,
//! Enter), the held results with their reasons, verification for those who may release, and
//! the critical-call form a critical value forces. Every action is the REST API's use case.

use aliquot_app::{CriticalCallInput, EntryHint, OpenCallView, ResultInput, WorklistItem};
use aliquot_domain::auth::Permission;
use aliquot_domain::catalog::Department;
use aliquot_domain::results::rules::Flag;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::session::WebSession;
use super::{FormData, Nav, html, message, nav, render, when};
use crate::AppState;
use crate::client::ClientAddr;

pub(crate) struct Row {
    pub accession: String,
    pub test: String,
    pub priority: String,
    pub stat: bool,
    pub age: String,
    pub held: bool,
    pub result_id: i64,
    pub value: String,
    pub flags: String,
    pub critical: bool,
    pub reasons: Vec<String>,
    /// The reference interval in force at the tube's collection, with the test's units.
    pub interval: String,
    pub units: String,
    /// The patient's previous released result of the test: value and flags, and when.
    pub previous: Option<(String, String)>,
}

pub(crate) struct Call {
    pub result_id: i64,
    pub test: String,
    pub value: String,
    pub flags: String,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "results.html")]
struct ResultsPage {
    nav: Nav,
    departments: Vec<(&'static str, bool)>,
    department: String,
    notice: Option<String>,
    error: Option<String>,
    rows: Vec<Row>,
    /// Pending and held tests in all (the page lists the first [`ENTRY_ROWS`]).
    total: usize,
    calls: Vec<Call>,
    can_verify: bool,
}

/// How many rows the entry page lists: the most urgent first; the rest follow as these are
/// done.
pub const ENTRY_ROWS: usize = 100;

fn row(i: WorklistItem, h: EntryHint, tz: &jiff::tz::TimeZone) -> Row {
    Row {
        stat: i.priority == "stat",
        accession: i.accession,
        test: i.test_code,
        priority: i.priority,
        age: format!("{} min", i.age_minutes),
        held: i.status == "held",
        result_id: i.result_id.unwrap_or_default(),
        value: i.value.unwrap_or_default(),
        critical: i
            .flags
            .iter()
            .any(|f| Flag::parse(f).is_some_and(Flag::is_critical)),
        flags: i.flags.join(" "),
        reasons: i.hold_reasons.into_iter().map(|r| r.message).collect(),
        interval: h.reference_interval.map(|r| r.text).unwrap_or_default(),
        units: h.units.unwrap_or_default(),
        previous: h.previous.map(|p| {
            (
                format!(
                    "{} {} {}",
                    p.value,
                    p.units.unwrap_or_default(),
                    p.flags.join(" ")
                )
                .trim()
                .to_owned(),
                p.collected_at.map(|c| when(c, tz)).unwrap_or_default(),
            )
        }),
    }
}

fn call(c: OpenCallView) -> Call {
    Call {
        result_id: c.call.result_id,
        test: c.test_code,
        value: c.value,
        flags: c.flags.join(" "),
        overdue: c.call.overdue,
    }
}

async fn page(
    state: &AppState,
    s: &WebSession,
    department: &str,
    notice: Option<String>,
    mut error: Option<String>,
) -> Response {
    let (nav, lab) = nav(state, s, "/results").await;
    let department = Department::parse(department)
        .map(|d| d.as_str().to_owned())
        .unwrap_or_else(|_| "chemistry".into());
    let (rows, total) = match state
        .app
        .results_entry_list(&s.actor, &department, ENTRY_ROWS)
        .await
    {
        Ok(w) => (
            w.items
                .into_iter()
                .map(|(i, h)| row(i, h, &lab.tz))
                .collect(),
            w.total,
        ),
        Err(e) => {
            error.get_or_insert(message(&e));
            (Vec::new(), 0)
        }
    };
    let can_verify = s.actor.role.allows(Permission::ResultVerify);
    let calls = if can_verify {
        match state.app.open_critical_calls(&s.actor).await {
            Ok(list) => list.into_iter().map(call).collect(),
            Err(e) => {
                error.get_or_insert(message(&e));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    render(
        StatusCode::OK,
        &ResultsPage {
            nav,
            departments: Department::ALL
                .iter()
                .map(|d| (d.as_str(), d.as_str() == department))
                .collect(),
            department,
            notice,
            error,
            rows,
            total,
            calls,
            can_verify,
        },
    )
}

#[derive(Deserialize)]
pub struct DepartmentQuery {
    department: Option<String>,
}

pub async fn results_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<DepartmentQuery>,
) -> Response {
    page(
        &state,
        &s,
        q.department.as_deref().unwrap_or("chemistry"),
        None,
        None,
    )
    .await
}

/// One typed result: posted as a batch of one, answered in words.
pub async fn enter(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let department = form.get("department").to_owned();
    let test = form.get("test").to_owned();
    let item = ResultInput {
        accession: form.get("accession").to_owned(),
        test: test.clone(),
        value: form.get("value").to_owned(),
        units: form.opt("units"),
        ..ResultInput::default()
    };
    let (notice, error) = match state.app.post_results(&s.actor, vec![item]).await {
        Ok(mut out) => match out.pop() {
            Some(o) if o.error.is_none() => {
                let flags = if o.flags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", o.flags.join(" "))
                };
                let text = match o.outcome {
                    "released" => format!("{test}: released{flags}."),
                    "duplicate" => format!("{test}: already stored; nothing changed."),
                    _ => format!(
                        "{test}: held{flags}: {}.",
                        o.hold_reasons
                            .iter()
                            .map(|r| r.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                };
                (Some(text), None)
            }
            Some(o) => (
                None,
                o.error.as_ref().map(|e| format!("{test}: {}", message(e))),
            ),
            None => (None, None),
        },
        Err(e) => (None, Some(message(&e))),
    };
    page(&state, &s, &department, notice, error).await
}

pub async fn verify(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let department = form.get("department").to_owned();
    let version = form.get("version").parse().ok();
    let signature = super::signature_from(&form, client);
    let (notice, error) = match state
        .app
        .verify_result(&s.actor, id, version, None, signature.as_ref())
        .await
    {
        Ok(r) => (
            Some(format!("{}: verified and released.", r.test_code)),
            None,
        ),
        Err(e) => (None, Some(message(&e))),
    };
    page(&state, &s, &department, notice, error).await
}

/// The call of a critical value: whom, their role, read back.
pub async fn document_call(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let department = form.get("department").to_owned();
    let input = CriticalCallInput {
        notified_name: form.get("notified_name").to_owned(),
        notified_role: form.get("notified_role").to_owned(),
        read_back: form.get("read_back") == "yes",
    };
    let (notice, error) = match state.app.document_critical_call(&s.actor, id, input).await {
        Ok(r) => (
            Some(format!("{}: the call is documented.", r.test_code)),
            None,
        ),
        Err(e) => (None, Some(message(&e))),
    };
    page(&state, &s, &department, notice, error).await
}

/// `POST /results/preview`: the flags a value would get, while it is typed (htmx, a
/// fragment). Judged by the entry's own evaluation; nothing is stored.
pub async fn preview(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let value = form.get("value");
    if value.is_empty() {
        return html(StatusCode::OK, String::new());
    }
    let item = ResultInput {
        accession: form.get("accession").to_owned(),
        test: form.get("test").to_owned(),
        value: value.to_owned(),
        ..ResultInput::default()
    };
    let body = match state.app.preview_result(&s.actor, &item).await {
        Ok(p) => PreviewFragment {
            flags: p.flags.join(" "),
            critical: p.critical,
            held: p
                .hold_reasons
                .into_iter()
                .map(|r| r.message)
                .collect::<Vec<_>>()
                .join("; "),
            error: None,
        },
        Err(e) => PreviewFragment {
            flags: String::new(),
            critical: false,
            held: String::new(),
            error: Some(message(&e)),
        },
    };
    render(StatusCode::OK, &body)
}

#[derive(Template)]
#[template(
    source = "{% if let Some(e) = error %}<span class=\"preview-error\">{{ e }}</span>{% else %}{% if critical %}<span class=\"stat\">CRITICAL</span> {% endif %}<strong class=\"preview-flags\">{% if flags.is_empty() %}no flag{% else %}{{ flags }}{% endif %}</strong>{% if !held.is_empty() %} · would be held: {{ held }}{% endif %}{% endif %}",
    ext = "html"
)]
struct PreviewFragment {
    flags: String,
    critical: bool,
    held: String,
    error: Option<String>,
}
