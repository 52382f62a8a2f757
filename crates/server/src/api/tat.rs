//! Turnaround time: per-test milestones and status, and the overdue list.

use aliquot_app::{Actor, TatIntervalView, TestTatView};
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiPath;

#[derive(Serialize, ToSchema)]
pub struct TatIntervalDto {
    /// `not_started`, `no_target`, `on_time`, `at_risk` (≥ 80 % of the target used),
    /// `overdue`, `met` or `missed`.
    pub status: &'static str,
    pub elapsed_minutes: Option<i64>,
    pub target_minutes: Option<i64>,
    /// Negative once the target is breached.
    pub remaining_minutes: Option<i64>,
}

impl From<TatIntervalView> for TatIntervalDto {
    fn from(v: TatIntervalView) -> Self {
        TatIntervalDto {
            status: v.status,
            elapsed_minutes: v.elapsed_minutes,
            target_minutes: v.target_minutes,
            remaining_minutes: v.remaining_minutes,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MilestoneDto {
    /// `ordered`, `collected`, `received`, `in_process`, `resulted`, `verified`, `reported`.
    pub milestone: &'static str,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TestTatDto {
    pub order_id: i64,
    pub test_code: String,
    pub accession: String,
    pub priority: String,
    /// The milestones recorded so far, in lifecycle order.
    pub milestones: Vec<MilestoneDto>,
    /// Received → verified, against the catalog's target for the priority.
    pub in_lab: TatIntervalDto,
    /// Ordered → reported, against the same target.
    pub total: TatIntervalDto,
}

impl From<TestTatView> for TestTatDto {
    fn from(v: TestTatView) -> Self {
        TestTatDto {
            order_id: v.order_id,
            test_code: v.test_code,
            accession: v.accession,
            priority: v.priority,
            milestones: v
                .milestones
                .into_iter()
                .map(|(milestone, at)| MilestoneDto {
                    milestone,
                    at: at.to_string(),
                })
                .collect(),
            in_lab: v.in_lab.into(),
            total: v.total.into(),
        }
    }
}

/// Turnaround time of every test of an order: milestones and status against its target.
#[utoipa::path(get, path = "/api/v1/orders/{id}/tat", tag = "orders",
    params(("id" = i64, Path, description = "order id")),
    responses((status = 200, body = [TestTatDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn order_tat(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<TestTatDto>>> {
    let list = state.app.order_tat(&actor, id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Tests at risk of missing, or past, their in-lab TAT target: STAT first, then the least
/// time remaining.
#[utoipa::path(get, path = "/api/v1/tat/overdue", tag = "specimens",
    responses((status = 200, body = [TestTatDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn overdue(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<TestTatDto>>> {
    let list = state.app.overdue_tests(&actor).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
