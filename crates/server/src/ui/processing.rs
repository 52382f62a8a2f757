//! Processing and storage: centrifuge runs (many tubes scanned into one run), aliquots with
//! their child labels, finishing processing, the sorting view; storing and retrieving by
//! scanning the location and the tube; the disposal list.

use aliquot_app::{AliquotInput, CentrifugationInput};
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::registration::strip_xml_prolog;
use super::session::WebSession;
use super::{FormData, Nav, app_error_page, is_htmx, message, nav, render, status_label, when};
use crate::AppState;

/// One line of a station's running list.
pub(crate) struct ResultRow {
    pub ok: bool,
    pub accession: String,
    pub text: String,
    /// A child label to print (SVG from the label use case).
    pub label: Option<String>,
}

#[derive(Template)]
#[template(path = "result_row.html")]
struct ResultFragment {
    row: ResultRow,
}

pub(crate) struct SortRow {
    pub accession: String,
    pub stat: bool,
    pub priority: String,
    pub status: String,
    pub received: String,
    pub container: String,
    pub departments: String,
    pub aliquots: String,
}

#[derive(Template)]
#[template(path = "process.html")]
struct ProcessPage {
    nav: Nav,
    rows: Vec<ResultRow>,
    sorting: Vec<SortRow>,
    sorting_error: Option<String>,
}

async fn process_page_with(state: &AppState, s: &WebSession, rows: Vec<ResultRow>) -> Response {
    let (nav, lab) = nav(state, s, "/process").await;
    let (sorting, sorting_error) = match state.app.sorting_view(&s.actor, None, Some(200)).await {
        Ok(list) => (
            list.iter()
                .map(|e| SortRow {
                    accession: e.accession.clone(),
                    stat: e.priority == "stat",
                    priority: e.priority.clone(),
                    status: status_label(&e.status),
                    received: when(e.received_at, &lab.tz),
                    container: e.container.clone(),
                    departments: e.departments.join(", ").replace('_', " "),
                    aliquots: e
                        .aliquots
                        .iter()
                        .map(|a| format!("{} µL for {}", a.volume_ul, a.departments.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                        .replace('_', " "),
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(message(&e))),
    };
    render(
        StatusCode::OK,
        &ProcessPage {
            nav,
            rows,
            sorting,
            sorting_error,
        },
    )
}

pub async fn process_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    process_page_with(&state, &s, Vec::new()).await
}

fn int(form: &FormData, name: &str) -> Option<i64> {
    form.get(name).parse().ok()
}

/// One tube scanned into a centrifuge run: a received tube starts processing, then the run's
/// centrifugation is recorded on it (both through their use cases, which check the rules:
/// clotting time, RCF range).
pub async fn centrifuge(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let accession = form.get("accession").to_uppercase();
    let mut row = ResultRow {
        ok: false,
        accession: accession.clone(),
        text: String::new(),
        label: None,
    };
    let started = match state.app.specimen(&s.actor, &accession).await {
        Ok(d) if d.status == "received" => state
            .app
            .start_processing(&s.actor, &accession)
            .await
            .map(|_| ()),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    let input = CentrifugationInput {
        centrifuge_id: form.get("centrifuge_id").to_owned(),
        rcf_g: int(&form, "rcf_g"),
        rpm: None,
        radius_cm: None,
        minutes: int(&form, "minutes").unwrap_or(0),
        temperature_c: form.get("temperature_c").parse().unwrap_or(f64::NAN),
        started_at: None,
    };
    let result = match started {
        Ok(()) => state
            .app
            .centrifuge_specimen(&s.actor, &accession, input)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            row.ok = true;
            row.text = format!(
                "In run {}: {} g, {} min",
                form.get("centrifuge_id"),
                form.get("rcf_g"),
                form.get("minutes")
            );
        }
        Err(e) => row.text = message(&e),
    }
    if !is_htmx(&headers) {
        return process_page_with(&state, &s, vec![row]).await;
    }
    render(StatusCode::OK, &ResultFragment { row })
}

/// Pours an aliquot (or finishes processing with `action=complete`); the child's label is
/// printed through the label use case.
pub async fn aliquot(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let accession = form.get("accession").to_uppercase();
    let mut row = ResultRow {
        ok: false,
        accession: accession.clone(),
        text: String::new(),
        label: None,
    };
    if form.get("action") == "complete" {
        match state.app.complete_processing(&s.actor, &accession).await {
            Ok(d) => {
                row.ok = true;
                row.text = format!("Processing finished: {}", status_label(&d.status));
            }
            Err(e) => row.text = message(&e),
        }
    } else {
        let input = AliquotInput {
            volume_ul: int(&form, "volume_ul").unwrap_or(0),
            container: None,
            tests: None,
        };
        match state
            .app
            .aliquot_specimen(&s.actor, &accession, input)
            .await
        {
            Ok(child) => {
                row.ok = true;
                row.text = format!(
                    "Aliquot {} poured ({} µL)",
                    child.accession, child.volume_ul
                );
                match state
                    .app
                    .specimen_label(&s.actor, &child.accession, "svg")
                    .await
                {
                    Ok(l) => row.label = Some(strip_xml_prolog(&l.body)),
                    Err(e) => row
                        .text
                        .push_str(&format!("; label not printed: {}", message(&e))),
                }
                row.accession = child.accession;
            }
            Err(e) => row.text = message(&e),
        }
    }
    if !is_htmx(&headers) {
        return process_page_with(&state, &s, vec![row]).await;
    }
    render(StatusCode::OK, &ResultFragment { row })
}

// ── storage ──

pub(crate) struct DueRow {
    pub accession: String,
    pub specimen_type: String,
    pub location: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "storage.html")]
struct StoragePage {
    nav: Nav,
    rows: Vec<ResultRow>,
    due: Vec<DueRow>,
    rejected: Vec<DueRow>,
}

async fn storage_page_with(state: &AppState, s: &WebSession, rows: Vec<ResultRow>) -> Response {
    let (nav, lab) = nav(state, s, "/storage").await;
    let due = match state.app.disposal_due(&s.actor).await {
        Ok(d) => d,
        Err(e) => return app_error_page(&e),
    };
    render(
        StatusCode::OK,
        &StoragePage {
            nav,
            rows,
            due: due
                .due
                .iter()
                .map(|d| DueRow {
                    accession: d.stored.accession.clone(),
                    specimen_type: d.stored.specimen_type.replace('_', " "),
                    location: d.stored.location.clone(),
                    since: when(d.due_at, &lab.tz),
                })
                .collect(),
            rejected: due
                .rejected
                .iter()
                .map(|r| DueRow {
                    accession: r.accession.clone(),
                    specimen_type: r.specimen_type.replace('_', " "),
                    location: String::new(),
                    since: r.rejected_at.map(|t| when(t, &lab.tz)).unwrap_or_default(),
                })
                .collect(),
        },
    )
}

pub async fn storage_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    storage_page_with(&state, &s, Vec::new()).await
}

/// Stores a scanned tube at the scanned location.
pub async fn store(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let accession = form.get("accession").to_uppercase();
    let location = form.get("location").to_uppercase();
    let mut row = ResultRow {
        ok: false,
        accession: accession.clone(),
        text: String::new(),
        label: None,
    };
    match state
        .app
        .store_specimen(&s.actor, &accession, &location)
        .await
    {
        Ok(d) => {
            row.ok = true;
            row.text = format!("Stored at {}", d.storage_location.unwrap_or(location));
        }
        Err(e) => row.text = message(&e),
    }
    if !is_htmx(&headers) {
        return storage_page_with(&state, &s, vec![row]).await;
    }
    render(StatusCode::OK, &ResultFragment { row })
}

/// Takes a scanned tube out of storage.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let accession = form.get("accession").to_uppercase();
    let mut row = ResultRow {
        ok: false,
        accession: accession.clone(),
        text: String::new(),
        label: None,
    };
    match state
        .app
        .retrieve_specimen(&s.actor, &accession, form.opt("reason").as_deref())
        .await
    {
        Ok(_) => {
            row.ok = true;
            row.text = "Retrieved: take it from its position".into();
        }
        Err(e) => row.text = message(&e),
    }
    if !is_htmx(&headers) {
        return storage_page_with(&state, &s, vec![row]).await;
    }
    render(StatusCode::OK, &ResultFragment { row })
}
