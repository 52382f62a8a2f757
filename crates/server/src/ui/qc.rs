//! The QC station (issue 13): the state of every instrument and test (a locked one first,
//! with what broke, the patient results to re-test and the corrective-action form), a form for
//! a run of controls, and the Levey-Jennings charts of a chosen instrument and test. Every
//! action is the REST API's use case.

use aliquot_app::qc::{ChartQuery, ControlInput, CorrectiveActionInput, QcStatusView, RunInput};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::WebSession;
use super::{
    FormData, Lab, Nav, app_error_page, local_to_rfc3339, message, nav, now_local, render,
    urlencode, when,
};
use crate::AppState;

pub(crate) struct StatusRow {
    pub instrument: String,
    pub test: String,
    pub locked: bool,
    pub last: String,
    pub last_status: String,
    pub findings: String,
    pub rules: String,
    pub calibration: String,
    pub calibration_overdue: bool,
    /// The highest control level of the last run.
    pub levels: i64,
    /// For a locked pair: when, what broke, how many results to re-test, actions so far.
    pub lock: Option<LockRow>,
}

pub(crate) struct LockRow {
    pub since: String,
    pub violations: String,
    pub affected: usize,
    pub held: usize,
    pub actions: Vec<String>,
}

pub(crate) struct ChartRow {
    pub level: i64,
    pub src: String,
    pub alt: String,
}

#[derive(Template)]
#[template(path = "qc.html")]
struct QcPage {
    nav: Nav,
    notice: Option<String>,
    error: Option<String>,
    rows: Vec<StatusRow>,
    instruments: Vec<String>,
    now: String,
    chart_instrument: String,
    chart_test: String,
    charts: Vec<ChartRow>,
}

#[derive(Deserialize, Default)]
pub struct QcQuery {
    #[serde(default)]
    instrument: String,
    #[serde(default)]
    test: String,
}

fn row(v: QcStatusView, lab: &Lab) -> StatusRow {
    let (last, last_status, findings) = match &v.last_run {
        Some(r) => (
            when(r.at, &lab.tz),
            r.status.clone(),
            r.findings
                .iter()
                .map(|f| format!("{} ({})", f.rule, f.kind))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        None => ("—".into(), String::new(), String::new()),
    };
    let calibration = match (&v.calibration.last_at, &v.calibration.due_at) {
        (Some(l), Some(d)) => format!("{} (due {})", when(*l, &lab.tz), when(*d, &lab.tz)),
        (Some(l), None) => when(*l, &lab.tz),
        (None, _) if v.calibration.interval_hours.is_some() => "none recorded".into(),
        (None, _) => "—".into(),
    };
    StatusRow {
        levels: v
            .last_run
            .as_ref()
            .and_then(|r| r.controls.iter().map(|c| c.level).max())
            .unwrap_or(2),
        lock: v.lock.map(|l| LockRow {
            since: when(l.locked_at, &lab.tz),
            violations: l
                .rejected_run
                .violations()
                .map(|f| f.description.clone())
                .collect::<Vec<_>>()
                .join("; "),
            affected: l.affected_results.len(),
            held: l
                .affected_results
                .iter()
                .filter(|a| a.status == "held")
                .count(),
            actions: l
                .corrective_actions
                .iter()
                .map(|a| {
                    format!(
                        "{} — {} ({}; {})",
                        when(a.performed_at, &lab.tz),
                        a.action,
                        a.reason,
                        a.performed_by
                    )
                })
                .collect(),
        }),
        instrument: v.instrument,
        test: v.test,
        locked: v.locked,
        last,
        last_status,
        findings,
        rules: format!("{} ({})", v.rules.join(" "), v.mode),
        calibration,
        calibration_overdue: v.calibration.overdue,
    }
}

async fn page(
    state: &AppState,
    s: &WebSession,
    q: &QcQuery,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let (nav, lab) = nav(state, s, "/qc").await;
    let status = match state.app.qc_status(&s.actor, None, None).await {
        Ok(v) => v,
        Err(e) => return app_error_page(&e),
    };
    let instruments = state
        .app
        .store()
        .instruments()
        .await
        .map(|l| {
            l.into_iter()
                .filter(|i| i.retired_at.is_none())
                .map(|i| i.code)
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<StatusRow> = status.into_iter().map(|v| row(v, &lab)).collect();
    // Locked first, then by instrument and test.
    rows.sort_by(|a, b| {
        (!a.locked, &a.instrument, &a.test).cmp(&(!b.locked, &b.instrument, &b.test))
    });
    let (ci, ct) = (q.instrument.trim(), q.test.trim().to_uppercase());
    let charts = if ci.is_empty() || ct.is_empty() {
        Vec::new()
    } else {
        let levels = rows
            .iter()
            .find(|r| r.instrument == ci && r.test == ct)
            .map_or(2, |r| r.levels.max(2));
        (1..=levels)
            .map(|lvl| ChartRow {
                level: lvl,
                src: format!(
                    "/qc/chart.svg?instrument={}&test={}&level={lvl}",
                    urlencode(ci),
                    urlencode(&ct)
                ),
                alt: format!("Levey-Jennings chart of {ct} on {ci}, level {lvl}"),
            })
            .collect()
    };
    render(
        StatusCode::OK,
        &QcPage {
            nav,
            notice,
            error,
            rows,
            instruments,
            now: now_local(state.app.now(), &lab.tz),
            chart_instrument: ci.to_owned(),
            chart_test: ct,
            charts,
        },
    )
}

/// The station.
pub async fn qc_page(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<QcQuery>,
) -> Response {
    page(&state, &s, &q, None, None).await
}

/// Posts a run of controls.
pub async fn post_run(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let lab = super::lab(&state).await;
    let controls = (1..=3)
        .filter_map(|lvl| {
            let lot = form.get(&format!("lot{lvl}"));
            let value = form.get(&format!("value{lvl}"));
            (!lot.is_empty() || !value.is_empty()).then(|| ControlInput {
                lot: lot.to_owned(),
                level: lvl,
                value: value.to_owned(),
            })
        })
        .collect();
    let input = RunInput {
        instrument: form.get("instrument").to_owned(),
        test: form.get("test").to_owned(),
        at: form.opt("time").map(|t| local_to_rfc3339(&t, &lab.tz)),
        controls,
    };
    let q = QcQuery {
        instrument: input.instrument.clone(),
        test: input.test.clone(),
    };
    let (notice, error) = match state.app.post_qc_run(&s.actor, input).await {
        Ok(r) if r.accepted() => {
            let warnings: Vec<String> = r.warnings().map(|f| f.description.clone()).collect();
            (
                Some(format!(
                    "{} on {}: run accepted{}{}.",
                    r.test,
                    r.instrument,
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(" with a warning ({})", warnings.join("; "))
                    },
                    if r.locked {
                        " — still locked until a corrective action is documented"
                    } else {
                        ""
                    }
                )),
                None,
            )
        }
        Ok(r) => (
            None,
            Some(format!(
                "{} on {}: run REJECTED — {}. Patient results of {} on {} are held until a \
                 corrective action is documented and a run is accepted.",
                r.test,
                r.instrument,
                r.violations()
                    .map(|f| f.description.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
                r.test,
                r.instrument
            )),
        ),
        Err(e) => (None, Some(message(&e))),
    };
    page(&state, &s, &q, notice, error).await
}

/// Documents a corrective action on a locked instrument and test.
pub async fn corrective_action(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let input = CorrectiveActionInput {
        instrument: form.get("instrument").to_owned(),
        test: form.get("test").to_owned(),
        action: form.get("action").to_owned(),
        reason: form.opt("reason"),
        at: None,
    };
    let q = QcQuery {
        instrument: input.instrument.clone(),
        test: input.test.clone(),
    };
    let (notice, error) = match state.app.document_corrective_action(&s.actor, input).await {
        Ok(a) if a.locked => (
            Some(format!(
                "Corrective action recorded for {} on {}. Run QC again: an accepted run lifts \
                 the lock.",
                a.test, a.instrument
            )),
            None,
        ),
        Ok(a) => (
            Some(format!(
                "Corrective action recorded for {} on {}; a run was accepted after the \
                 rejection, so the lock is lifted.",
                a.test, a.instrument
            )),
            None,
        ),
        Err(e) => (None, Some(message(&e))),
    };
    page(&state, &s, &q, notice, error).await
}

#[derive(Deserialize)]
pub struct ChartParams {
    instrument: String,
    test: String,
    level: i64,
}

/// A Levey-Jennings chart as SVG (the last 31 days).
pub async fn chart(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<ChartParams>,
) -> Response {
    let lab = super::lab(&state).await;
    match state
        .app
        .qc_chart(
            &s.actor,
            ChartQuery {
                instrument: &q.instrument,
                test: &q.test,
                level: q.level,
                lot: None,
                from: None,
                to: None,
            },
        )
        .await
    {
        Ok(data) => (
            [(header::CONTENT_TYPE, "image/svg+xml")],
            crate::qc_chart::render(&data, &lab.tz),
        )
            .into_response(),
        Err(e) => app_error_page(&e),
    }
}
