use aliquot_app::{Actor, SecondFactor, Source};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::access::BearerToken;
use crate::api::users::UserDto;
use crate::client::ClientAddr;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub username: String,
    pub password: String,
    /// The six-digit code of the user's authenticator app, when one is enrolled (401
    /// `mfa_required` without it).
    #[serde(default)]
    pub totp: Option<String>,
    /// Instead of `totp`: one of the recovery codes shown at enrolment (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    pub user: UserDto,
}

/// Log in: exchange a username and password for a bearer token. Repeated failures from one
/// address, on one account from one address, or on one account from many addresses make
/// the next attempt wait, longer with every failure (429 `too_many_attempts` with
/// `Retry-After` in seconds); the owner of an account attacked from elsewhere is not locked out.
/// A user with an authenticator app enrolled also gives its code (`totp`) or a recovery
/// code: 401 `mfa_required` without, `invalid_second_factor` when wrong, `totp_replayed`
/// for a code already used; 401 `mfa_enrolment_required` when the lab requires a second
/// factor of the user's role and none is enrolled.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(()),
    request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 400, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn token(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let second = match (req.totp, req.recovery_code) {
        (Some(_), Some(_)) => {
            return Err(aliquot_app::AppError::invalid(
                "recovery_code",
                "one_second_factor",
                "give either totp or recovery_code, not both",
            )
            .into());
        }
        (Some(code), None) => Some(SecondFactor::Totp(code)),
        (None, Some(code)) => Some(SecondFactor::RecoveryCode(code)),
        (None, None) => None,
    };
    let issued = state
        .app
        .login_with(&req.username, &req.password, second, Source::Api, client)
        .await?;
    Ok(Json(TokenResponse {
        token: issued.token,
        expires_at: issued.expires_at.to_string(),
        user: UserDto::from(issued.user),
    }))
}

/// Log out: the token stops working at once, on every server sharing the database.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Extension(BearerToken(token)): Extension<BearerToken>,
) -> ApiResult<StatusCode> {
    state.app.logout(&actor, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody)))]
pub async fn me(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<UserDto>> {
    Ok(Json(state.app.me(&actor).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Change the caller's password; the caller's other tokens are revoked. A wrong current
/// password counts as a failed login of the account from the caller's address, throttled
/// the same way (429 `too_many_attempts` with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    state
        .app
        .change_own_password(&actor, &req.current_password, &req.new_password, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
