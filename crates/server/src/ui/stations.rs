//! The scanning stations: collection, receiving, and tracking a tube.
//!
//! A barcode scanner is a keyboard wedge: it types the code and Enter. Every station's scan
//! field has focus when the page opens and again after each scan.

use aliquot_app::{CollectInput, PatientIdentification, ReceiveInput, SpecimenDetail};
use aliquot_domain::catalog::ContainerType;
use aliquot_domain::specimen::RejectionReason;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::registration::PatientRow;
use super::session::WebSession;
use super::{
    FormData, Nav, app_error_page, is_htmx, message, nav, now_local, reason_label, render,
    status_label, when,
};
use crate::AppState;

// ── collection ──

pub(crate) struct TubeCard {
    pub accession: String,
    pub container: String,
    pub specimen_type: String,
    pub status: String,
    pub tests: String,
    pub planned: bool,
}

impl From<&SpecimenDetail> for TubeCard {
    fn from(d: &SpecimenDetail) -> Self {
        TubeCard {
            accession: d.accession.clone(),
            container: d.container_name.clone(),
            specimen_type: d.specimen_type.replace('_', " "),
            status: status_label(&d.status),
            tests: d.tests.join(" "),
            planned: d.status == "planned",
        }
    }
}

#[derive(Template)]
#[template(path = "collect.html")]
struct CollectPage {
    nav: Nav,
    done: Option<String>,
    error: Option<String>,
    tube: Option<TubeCard>,
    patient_name: String,
    now: String,
    mrn: String,
    birth_date: String,
    site: String,
    /// The draw list (shown on the plain collection page): the chosen location's code, the
    /// locations to choose from (code, name, chosen) and the tubes still to draw.
    draw_list: Option<DrawList>,
}

pub(crate) struct DrawList {
    pub location: String,
    pub locations: Vec<(String, String, bool)>,
    pub rows: Vec<DrawRow>,
    pub error: Option<String>,
}

pub(crate) struct DrawRow {
    pub accession: String,
    pub stat: bool,
    pub priority: String,
    pub location: String,
    pub tube: String,
    pub cap: String,
    pub cap_class: String,
    pub specimen_type: String,
    pub tests: String,
    pub ordered: String,
    pub patient: String,
    /// Draw a discard tube just before this one (winged set, citrate first).
    pub discard_before: bool,
}

#[derive(Deserialize)]
pub struct CollectQuery {
    location: Option<String>,
}

fn collect_page_with(nav: Nav, now: String) -> CollectPage {
    CollectPage {
        nav,
        done: None,
        error: None,
        tube: None,
        patient_name: String::new(),
        now,
        mrn: String::new(),
        birth_date: String::new(),
        site: String::new(),
        draw_list: None,
    }
}

/// The phlebotomist's draw list of one location (or all), through the draw-list use case.
async fn draw_list(
    state: &AppState,
    s: &WebSession,
    location: Option<&str>,
    tz: &jiff::tz::TimeZone,
) -> DrawList {
    let location = location.map(str::trim).unwrap_or("").to_owned();
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
    let (rows, error) = match state
        .app
        .draw_list(&s.actor, Some(location.as_str()).filter(|l| !l.is_empty()))
        .await
    {
        Ok(items) => (
            items
                .into_iter()
                .map(|d| DrawRow {
                    stat: d.priority == "stat",
                    priority: d.priority,
                    location: d.location,
                    tube: d.container_name,
                    cap_class: super::registration::cap_class(&d.cap_colour),
                    cap: d.cap_colour,
                    specimen_type: d.specimen_type.replace('_', " "),
                    tests: d.tests.join(" "),
                    ordered: when(d.ordered_at, tz),
                    patient: d
                        .patient
                        .map(|(name, mrn)| format!("{name} · MRN {mrn}"))
                        .unwrap_or_default(),
                    accession: d.accession,
                    discard_before: d.discard_tube_before,
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(message(&e))),
    };
    DrawList {
        location,
        locations,
        rows,
        error,
    }
}

pub async fn collect_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<CollectQuery>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/collect").await;
    let now = now_local(state.app.now(), &lab.tz);
    let mut page = collect_page_with(nav, now);
    page.draw_list = Some(draw_list(&state, &s, q.location.as_deref(), &lab.tz).await);
    render(StatusCode::OK, &page)
}

/// A scanned tube: shows what it is and whom it belongs to, and asks for the two identifiers.
pub async fn collect_scan(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/collect").await;
    let mut page = collect_page_with(nav, now_local(state.app.now(), &lab.tz));
    match state.app.specimen(&s.actor, form.get("accession")).await {
        Ok(d) => {
            if let Ok(p) = state.app.patient(&s.actor, d.patient_id).await {
                page.patient_name = PatientRow::from(&p).name;
            }
            let card = TubeCard::from(&d);
            if !card.planned {
                page.error = Some(format!(
                    "Tube {} is already {}; there is nothing to draw.",
                    card.accession, card.status
                ));
            }
            page.tube = Some(card);
        }
        Err(e) => page.error = Some(message(&e)),
    }
    render(StatusCode::OK, &page)
}

/// Records the draw through the collection use case (positive identification, draw time).
pub async fn collect(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(accession): Path<String>,
    form: FormData,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/collect").await;
    let mut page = collect_page_with(nav, now_local(state.app.now(), &lab.tz));
    let input = CollectInput {
        collected_at: super::local_to_rfc3339(form.get("collected_at"), &lab.tz),
        collector: None,
        site: form.opt("site"),
        patient: PatientIdentification {
            mrn: form.opt("mrn"),
            birth_date: form.opt("birth_date"),
            ..PatientIdentification::default()
        },
        temperature: None,
    };
    match state
        .app
        .collect_specimen(&s.actor, &accession, input)
        .await
    {
        Ok(d) => {
            page.done = Some(format!(
                "Draw of {} recorded at {}.",
                d.accession,
                d.collected_at.map(|t| when(t, &lab.tz)).unwrap_or_default()
            ));
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            page.error = Some(message(&e));
            if let Ok(d) = state.app.specimen(&s.actor, &accession).await {
                page.tube = Some(TubeCard::from(&d));
                if let Ok(p) = state.app.patient(&s.actor, d.patient_id).await {
                    page.patient_name = PatientRow::from(&p).name;
                }
            }
            page.mrn = form.get("mrn").into();
            page.birth_date = form.get("birth_date").into();
            page.site = form.get("site").into();
            page.now = form.get("collected_at").into();
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

// ── receiving ──

pub(crate) struct ReasonButton {
    pub key: usize,
    pub code: &'static str,
    pub label: &'static str,
    pub suggested: bool,
}

/// One scan of this bench, as a row of the running list.
pub(crate) struct ScanRow {
    pub accession: String,
    /// `accepted`, `problem`, `rejected`, `refused`.
    pub outcome: &'static str,
    pub stat: bool,
    pub priority: String,
    pub summary: String,
    pub problems: Vec<String>,
    pub reasons: Vec<ReasonButton>,
    pub at: String,
}

#[derive(Template)]
#[template(path = "receive.html")]
struct ReceivePage {
    nav: Nav,
    rows: Vec<ScanRow>,
    /// (code, name) of every container, for the "container received" choice.
    containers: Vec<(String, String)>,
}

fn containers() -> Vec<(String, String)> {
    ContainerType::defaults()
        .into_iter()
        .map(|c| (c.code.as_str().to_owned(), c.name))
        .collect()
}

/// The station's attestations turned into the use case's input. The form's defaults (label
/// OK, the container planned for the tube, filled to the line) are shown beside the scan
/// field and confirmed by the technician with each scan; a tube without a fill line that is
/// "filled" holds its container's usable volume unless a measured volume is typed.
fn receipt_input(form: &FormData, planned_container: Option<&str>) -> ReceiveInput {
    let container = form
        .opt("container")
        .or_else(|| planned_container.map(str::to_owned));
    let kind = container.as_deref().and_then(|c| {
        ContainerType::defaults()
            .into_iter()
            .find(|k| k.code.as_str() == c)
    });
    let volume_ul: Option<i64> = form.get("volume_ul").parse().ok();
    let fill = form.opt("fill");
    let (volume_ul, fill) = match (volume_ul, kind) {
        (Some(v), _) => (Some(v), None),
        (None, Some(k)) if k.min_fill_percent.is_none() && fill.as_deref() == Some("to_line") => {
            (Some(i64::from(k.usable_volume_ul)), None)
        }
        (None, _) => (None, fill),
    };
    ReceiveInput {
        order_id: form.get("order_id").parse().ok(),
        label: form.opt("label"),
        container,
        volume_ul,
        fill,
        ..ReceiveInput::default()
    }
}

#[derive(Template)]
#[template(path = "receive_row.html")]
struct ReceiveRow {
    row: ScanRow,
    csrf: String,
}

pub async fn receive_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    let (nav, _) = nav(&state, &s, "/receive").await;
    render(
        StatusCode::OK,
        &ReceivePage {
            nav,
            rows: Vec::new(),
            containers: containers(),
        },
    )
}

/// Reject buttons: the reasons the receipt check suggests first, then the usual ones.
fn reasons(suggested: &[String]) -> Vec<ReasonButton> {
    const USUAL: &[&str] = &[
        "hemolyzed",
        "clotted",
        "qns",
        "mislabeled",
        "unlabeled",
        "wrong_container",
        "leaked",
        "stability_exceeded",
        "wrong_temperature",
    ];
    let mut codes: Vec<&'static str> = Vec::new();
    for s in suggested {
        if let Some(r) = RejectionReason::ALL.iter().find(|r| r.as_str() == s)
            && !codes.contains(&r.as_str())
        {
            codes.push(r.as_str());
        }
    }
    for u in USUAL {
        if codes.len() < 9 && !codes.contains(u) {
            codes.push(u);
        }
    }
    codes
        .into_iter()
        .take(9)
        .enumerate()
        .map(|(i, code)| ReasonButton {
            key: i + 1,
            code,
            label: reason_label(code),
            suggested: suggested.iter().any(|s| s == code),
        })
        .collect()
}

async fn priority_of(state: &AppState, s: &WebSession, order_id: i64) -> String {
    state
        .app
        .order(&s.actor, order_id)
        .await
        .map(|o| o.priority)
        .unwrap_or_default()
}

fn answer(
    headers: &HeaderMap,
    nav: Nav,
    row: ScanRow,
    csrf: String,
    status: StatusCode,
) -> Response {
    if is_htmx(headers) {
        render(StatusCode::OK, &ReceiveRow { row, csrf })
    } else {
        render(
            status,
            &ReceivePage {
                nav,
                rows: vec![row],
                containers: containers(),
            },
        )
    }
}

/// A scanned tube at receipt: the receipt use case checks it; the row says what happened.
pub async fn receive(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/receive").await;
    let accession = form.get("accession").to_uppercase();
    let at = when(state.app.now(), &lab.tz);
    // The tube's planned container, for the "as planned" choice (read through the use case,
    // access-logged like every read of a tube).
    let planned = if form.opt("container").is_none() {
        state
            .app
            .specimen(&s.actor, &accession)
            .await
            .ok()
            .map(|d| d.container)
    } else {
        None
    };
    let input = receipt_input(&form, planned.as_deref());
    let mut row = ScanRow {
        accession: accession.clone(),
        outcome: "refused",
        stat: false,
        priority: String::new(),
        summary: String::new(),
        problems: Vec::new(),
        reasons: Vec::new(),
        at,
    };
    match state
        .app
        .receive_specimen(&s.actor, &accession, input)
        .await
    {
        Ok(Ok(d)) => {
            row.priority = priority_of(&state, &s, d.order_id).await;
            row.stat = row.priority == "stat";
            row.outcome = "accepted";
            row.summary = format!(
                "Received: {} ({}) for {}",
                d.container_name,
                d.specimen_type.replace('_', " "),
                d.tests.join(" ")
            );
            row.reasons = reasons(&[]);
        }
        Ok(Err(problems)) => {
            row.outcome = "problem";
            row.summary = "Not received: the tube failed the receipt check. Reject it, or set \
                           it aside and ask a technologist."
                .into();
            if let Ok(d) = state.app.specimen(&s.actor, &accession).await {
                row.priority = priority_of(&state, &s, d.order_id).await;
                row.stat = row.priority == "stat";
            }
            let suggested: Vec<String> = problems
                .iter()
                .map(|p| p.rejection_reason.clone())
                .collect();
            row.problems = problems.into_iter().map(|p| sentence(&p.message)).collect();
            row.reasons = reasons(&suggested);
        }
        Err(e) => {
            row.summary = message(&e);
        }
    }
    answer(&headers, nav, row, s.csrf.clone(), StatusCode::OK)
}

fn sentence(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>() + ".",
        None => String::new(),
    }
}

/// Rejects a tube with a reason (one key on the receiving station).
pub async fn reject(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(accession): Path<String>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/receive").await;
    let reason = form.get("reason").to_owned();
    let mut row = ScanRow {
        accession: accession.clone(),
        outcome: "refused",
        stat: false,
        priority: String::new(),
        summary: String::new(),
        problems: Vec::new(),
        reasons: Vec::new(),
        at: when(state.app.now(), &lab.tz),
    };
    match state
        .app
        .reject_specimen(
            &s.actor,
            &accession,
            &reason,
            form.opt("comment").as_deref(),
        )
        .await
    {
        Ok(d) => {
            row.priority = priority_of(&state, &s, d.order_id).await;
            row.stat = row.priority == "stat";
            row.outcome = "rejected";
            row.summary = format!(
                "Rejected: {}. A recollection task went to the ordering location.",
                reason_label(&reason)
            );
        }
        Err(e) => row.summary = message(&e),
    }
    answer(&headers, nav, row, s.csrf.clone(), StatusCode::OK)
}

// ── tracking ──

pub(crate) struct EventRow {
    pub at: String,
    pub who: String,
    pub what: String,
    pub change: String,
    pub location: String,
    pub details: String,
}

pub(crate) struct TrackView {
    pub accession: String,
    pub status: String,
    pub order_id: i64,
    pub patient: String,
    pub container: String,
    pub specimen_type: String,
    /// The measured content after receipt, or the planned demand before it, in words.
    pub volume: String,
    pub collected: String,
    pub tests: String,
    pub parent: Option<String>,
    pub children: Vec<(String, String, i64)>,
    pub storage: Option<String>,
    pub events: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "track.html")]
struct TrackPage {
    nav: Nav,
    accession: String,
    error: Option<String>,
    t: Option<TrackView>,
}

#[derive(Deserialize)]
pub struct TrackQuery {
    #[serde(default)]
    accession: String,
}

/// Details of a custody event in words: its JSON fields as `key: value`, without nesting.
fn details(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("{}: {v}", k.replace('_', " "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn track(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<TrackQuery>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/track").await;
    let accession = q.accession.trim().to_uppercase();
    let mut page = TrackPage {
        nav,
        accession: accession.clone(),
        error: None,
        t: None,
    };
    if accession.is_empty() {
        return render(StatusCode::OK, &page);
    }
    let d = match state.app.specimen(&s.actor, &accession).await {
        Ok(d) => d,
        Err(aliquot_app::AppError::Forbidden { .. }) => {
            return app_error_page(&aliquot_app::AppError::Forbidden {
                message: "your role may not read specimens".into(),
            });
        }
        Err(e) => {
            page.error = Some(message(&e));
            return render(StatusCode::OK, &page);
        }
    };
    let patient = state
        .app
        .patient(&s.actor, d.patient_id)
        .await
        .map(|p| {
            let r = PatientRow::from(&p);
            format!("{} · MRN {} · born {}", r.name, r.mrn, r.birth_date)
        })
        .unwrap_or_default();
    page.t = Some(TrackView {
        accession: d.accession.clone(),
        status: status_label(&d.status),
        order_id: d.order_id,
        patient,
        container: d.container_name.clone(),
        specimen_type: d.specimen_type.replace('_', " "),
        volume: if !matches!(
            d.status.as_str(),
            "planned" | "collected" | "in_transit" | "cancelled"
        ) {
            format!("{} µL", d.volume_ul)
        } else {
            format!("{} µL needed (not yet received)", d.demand_ul)
        },
        collected: d
            .collected_at
            .map(|t| when(t, &lab.tz))
            .unwrap_or_else(|| "not yet".into()),
        tests: d.tests.join(" "),
        parent: d.parent.clone(),
        children: d
            .children
            .iter()
            .map(|c| (c.accession.clone(), status_label(&c.status), c.volume_ul))
            .collect(),
        storage: d.storage_location.clone(),
        events: d
            .events
            .iter()
            .map(|e| EventRow {
                at: when(e.at, &lab.tz),
                who: e.actor_name.clone(),
                what: e.kind.replace('_', " "),
                change: if e.from_status == e.to_status {
                    status_label(&e.to_status)
                } else {
                    format!(
                        "{} → {}",
                        status_label(&e.from_status),
                        status_label(&e.to_status)
                    )
                },
                location: e.location.clone().unwrap_or_default(),
                details: details(&e.details),
            })
            .collect(),
    });
    render(StatusCode::OK, &page)
}
