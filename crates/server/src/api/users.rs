use aliquot_app::{Actor, NewUserInput, UserView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath};

#[derive(Serialize, ToSchema)]
pub struct UserDto {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// admin, director, technologist, technician, phlebotomist, physician or interface.
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
}

impl From<UserView> for UserDto {
    fn from(u: UserView) -> Self {
        UserDto {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role.as_str().to_owned(),
            disabled: u.disabled,
            created_at: u.created_at.to_string(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub display_name: String,
    pub role: String,
    /// At least 12 characters; common passwords are refused.
    pub password: String,
}

/// All users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [UserDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<UserDto>>> {
    Ok(Json(
        state
            .app
            .list_users(&actor)
            .await?
            .into_iter()
            .map(UserDto::from)
            .collect(),
    ))
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserDto>)> {
    let user = state
        .app
        .create_user(
            &actor,
            NewUserInput {
                username: req.username,
                display_name: req.display_name,
                role: req.role,
                password: req.password,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: String,
    /// Why the role changes (required).
    pub reason: String,
}

/// Change a user's role (never one's own). The user's tokens are revoked.
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "users", request_body = RoleChange,
    params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_role(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RoleChange>,
) -> ApiResult<Json<UserDto>> {
    Ok(Json(
        state
            .app
            .set_user_role(&actor, id, &req.role, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisabledChange {
    pub disabled: bool,
    /// Why (required).
    pub reason: String,
}

/// Disable or re-enable a user (accounts are never deleted). Disabling revokes their tokens.
#[utoipa::path(put, path = "/api/v1/users/{id}/disabled", tag = "users", request_body = DisabledChange,
    params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_disabled(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DisabledChange>,
) -> ApiResult<Json<UserDto>> {
    Ok(Json(
        state
            .app
            .set_user_disabled(&actor, id, req.disabled, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderLink {
    /// The provider (directory id) this user orders as; `null` unlinks.
    pub provider_id: Option<i64>,
    /// Why (required).
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderLinkDto {
    pub user_id: i64,
    pub provider_id: Option<i64>,
}

/// Link a user to a provider of the directory (or unlink with `null`). A user in the
/// physician role reads only the patients of orders where their linked provider is the
/// ordering provider; with no provider linked, none. Audited as `user.provider`.
#[utoipa::path(put, path = "/api/v1/users/{id}/provider", tag = "users", request_body = ProviderLink,
    params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = ProviderLinkDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_provider(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ProviderLink>,
) -> ApiResult<Json<ProviderLinkDto>> {
    let provider_id = state
        .app
        .set_user_provider(&actor, id, req.provider_id, Some(&req.reason))
        .await?;
    Ok(Json(ProviderLinkDto {
        user_id: id,
        provider_id,
    }))
}
