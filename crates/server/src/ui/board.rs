//! The dashboard (issue 15 item 10): a live TAT and workload board — tests in the lab by
//! department and priority, STAT tests at risk of their target, tubes received per hour, open
//! critical calls — refreshed by htmx polling without a reload. The board's fragment is
//! fetched as a *passive* request (`X-Aliquot-Passive`): it does not count as the user's
//! activity, so a board left open still logs its user off after the idle timeout.

use aliquot_app::DashboardView;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::session::WebSession;
use super::{Nav, message, nav, render, when};
use crate::AppState;

/// Seconds between two refreshes of the board.
pub const POLL_SECONDS: u32 = 15;

pub(crate) struct PendingRow {
    pub department: String,
    pub priority: String,
    pub stat: bool,
    pub pending: usize,
    pub held: usize,
}

pub(crate) struct StatRow {
    pub accession: String,
    pub test: String,
    pub department: String,
    pub overdue: bool,
    pub age: String,
}

pub(crate) struct HourBar {
    pub hour: String,
    pub count: usize,
    /// Bar width, percent of the busiest hour.
    pub width: usize,
}

pub(crate) struct Board {
    pub at: String,
    pub pending: Vec<PendingRow>,
    pub total_pending: usize,
    pub total_held: usize,
    pub stats: Vec<StatRow>,
    pub hours: Vec<HourBar>,
    pub received: usize,
    pub calls: Option<(usize, usize)>,
    pub error: Option<String>,
}

fn board(v: DashboardView, tz: &jiff::tz::TimeZone) -> Board {
    let max = v
        .received_per_hour
        .iter()
        .map(|h| h.1)
        .max()
        .unwrap_or(0)
        .max(1);
    Board {
        at: when(v.at, tz),
        total_pending: v.pending.iter().map(|p| p.pending).sum(),
        total_held: v.pending.iter().map(|p| p.held).sum(),
        pending: v
            .pending
            .into_iter()
            .map(|p| PendingRow {
                stat: p.priority == "stat",
                department: p.department,
                priority: p.priority,
                pending: p.pending,
                held: p.held,
            })
            .collect(),
        stats: v
            .stats_at_risk
            .into_iter()
            .map(|s| StatRow {
                accession: s.accession,
                test: s.test_code,
                department: s.department.unwrap_or_default(),
                overdue: s.tat_status == "overdue",
                age: format!("{} min", s.age_minutes),
            })
            .collect(),
        received: v.received_per_hour.iter().map(|h| h.1).sum(),
        hours: v
            .received_per_hour
            .into_iter()
            .map(|(start, count)| HourBar {
                hour: start.to_zoned(tz.clone()).strftime("%H:00").to_string(),
                count,
                width: count * 100 / max,
            })
            .collect(),
        calls: v.open_calls,
        error: None,
    }
}

async fn load(state: &AppState, s: &WebSession, tz: &jiff::tz::TimeZone) -> Board {
    match state.app.dashboard(&s.actor).await {
        Ok(v) => board(v, tz),
        Err(e) => Board {
            at: when(state.app.now(), tz),
            pending: Vec::new(),
            total_pending: 0,
            total_held: 0,
            stats: Vec::new(),
            hours: Vec::new(),
            received: 0,
            calls: None,
            error: Some(message(&e)),
        },
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    board: Board,
    poll: u32,
}

#[derive(Template)]
#[template(path = "dashboard_board.html")]
struct BoardFragment {
    board: Board,
}

/// `GET /dashboard`: the board in its page.
pub async fn dashboard(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/dashboard").await;
    let board = load(&state, &s, &lab.tz).await;
    render(
        StatusCode::OK,
        &DashboardPage {
            nav,
            board,
            poll: POLL_SECONDS,
        },
    )
}

/// `GET /dashboard/board`: the board alone, for the page's polling.
pub async fn board_fragment(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    let lab = super::lab(&state).await;
    let board = load(&state, &s, &lab.tz).await;
    render(StatusCode::OK, &BoardFragment { board })
}
