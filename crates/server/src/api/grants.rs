//! Separation of duties: the administrator and director roles are granted by two
//! administrators — one requests, another approves (see `aliquot_app::security::grants`).

use aliquot_app::{Actor, RoleGrantView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

#[derive(Serialize, ToSchema)]
pub struct RoleGrantDto {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    /// `admin` or `director`.
    pub role: String,
    pub reason: String,
    /// The administrator who requested it.
    pub requested_by: String,
    pub requested_at: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The second administrator who decided it.
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_reason: Option<String>,
}

impl From<RoleGrantView> for RoleGrantDto {
    fn from(g: RoleGrantView) -> Self {
        let RoleGrantView {
            id,
            user_id,
            username,
            role,
            reason,
            requested_by,
            requested_at,
            status,
            decided_by,
            decided_at,
            decision_reason,
        } = g;
        RoleGrantDto {
            id,
            user_id,
            username,
            role,
            reason,
            requested_by,
            requested_at: requested_at.to_string(),
            status,
            decided_by,
            decided_at: decided_at.map(|t| t.to_string()),
            decision_reason,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    /// Only grants waiting for a decision (default false).
    pub pending: Option<bool>,
}

/// Role grants, newest first.
#[utoipa::path(get, path = "/api/v1/role-grants", tag = "users", params(GrantQuery),
    responses((status = 200, body = [RoleGrantDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<GrantQuery>,
) -> ApiResult<Json<Vec<RoleGrantDto>>> {
    let list = state
        .app
        .role_grants(&actor, q.pending.unwrap_or(false))
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub user_id: i64,
    /// `admin` or `director` (other roles are changed directly).
    pub role: String,
    /// Why (required).
    pub reason: String,
}

/// Request the administrator or director role for a user (never oneself). The role changes
/// only when another administrator approves; 409 `grant_pending` when one is waiting.
#[utoipa::path(post, path = "/api/v1/role-grants", tag = "users", request_body = GrantRequest,
    responses((status = 201, body = RoleGrantDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 400, body = ErrorBody)))]
pub async fn request(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> ApiResult<(StatusCode, Json<RoleGrantDto>)> {
    let GrantRequest {
        user_id,
        role,
        reason,
    } = req;
    let grant = state
        .app
        .request_role_grant(&actor, user_id, &role, Some(&reason))
        .await?;
    Ok((StatusCode::CREATED, Json(grant.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantDecision {
    /// Optional when approving; required when rejecting.
    pub reason: Option<String>,
}

/// Approve a pending grant: the role changes and the user's tokens are revoked. Only an
/// administrator other than the requester (403), never for oneself; 409 `grant_decided`
/// when it was decided already.
#[utoipa::path(post, path = "/api/v1/role-grants/{id}/approve", tag = "users", request_body = GrantDecision,
    params(("id" = i64, Path, description = "role grant id")),
    responses((status = 200, body = RoleGrantDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<GrantDecision>,
) -> ApiResult<Json<RoleGrantDto>> {
    Ok(Json(
        state
            .app
            .decide_role_grant(&actor, id, true, req.reason.as_deref())
            .await?
            .into(),
    ))
}

/// Reject a pending grant, with a reason. The same rules as approving.
#[utoipa::path(post, path = "/api/v1/role-grants/{id}/reject", tag = "users", request_body = GrantDecision,
    params(("id" = i64, Path, description = "role grant id")),
    responses((status = 200, body = RoleGrantDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 400, body = ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<GrantDecision>,
) -> ApiResult<Json<RoleGrantDto>> {
    Ok(Json(
        state
            .app
            .decide_role_grant(&actor, id, false, req.reason.as_deref())
            .await?
            .into(),
    ))
}
