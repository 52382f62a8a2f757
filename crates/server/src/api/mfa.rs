//! The second factor (TOTP) over the API: enrolment (public: a user who must enrol cannot
//! log in yet, so the password is checked again, throttled like a login), the caller's
//! state, and the reset of another user's factor by an administrator.

use aliquot_app::{Actor, MfaStatus, Source};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::client::ClientAddr;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentDto {
    /// The shared secret, Base32 (shown once).
    pub secret: String,
    /// `otpauth://totp/…` for the authenticator app (shown once).
    pub otpauth_uri: String,
}

/// Start enrolling an authenticator app (TOTP, RFC 6238: SHA-1, 6 digits, 30 s). The secret
/// is shown once; the enrolment counts only after `/auth/mfa/confirm`. A wrong password is a
/// failed login (throttled, 429 `too_many_attempts`). 409 `mfa_already_enrolled` when one is
/// confirmed: another administrator must reset it first.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enroll", tag = "auth", security(()),
    request_body = EnrolRequest,
    responses((status = 200, body = EnrolmentDto), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 400, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<Json<EnrolmentDto>> {
    let e = state
        .app
        .start_mfa_enrolment(&req.username, &req.password, Source::Api, client)
        .await?;
    Ok(Json(EnrolmentDto {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub username: String,
    pub password: String,
    /// The current six-digit code from the app.
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesDto {
    /// Ten one-time recovery codes (shown once; each logs in once without the app).
    pub recovery_codes: Vec<String>,
}

/// Confirm an enrolment with the first code from the app; answers the recovery codes, once.
/// From then on every login of the user needs a code (or a recovery code).
#[utoipa::path(post, path = "/api/v1/auth/mfa/confirm", tag = "auth", security(()),
    request_body = ConfirmRequest,
    responses((status = 200, body = RecoveryCodesDto), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> ApiResult<Json<RecoveryCodesDto>> {
    let recovery_codes = state
        .app
        .confirm_mfa_enrolment(&req.username, &req.password, &req.code, Source::Api, client)
        .await?;
    Ok(Json(RecoveryCodesDto { recovery_codes }))
}

#[derive(Serialize, ToSchema)]
pub struct MfaStatusDto {
    /// A confirmed authenticator app: logins need its code.
    pub enrolled: bool,
    /// An enrolment waiting for its first code.
    pub pending: bool,
    /// The lab requires a second factor of the caller's role (`auth.mfa_required`).
    pub required: bool,
    pub recovery_codes_left: i64,
}

impl From<MfaStatus> for MfaStatusDto {
    fn from(s: MfaStatus) -> Self {
        let MfaStatus {
            enrolled,
            pending,
            required,
            recovery_codes_left,
        } = s;
        MfaStatusDto {
            enrolled,
            pending,
            required,
            recovery_codes_left,
        }
    }
}

/// The caller's second factor.
#[utoipa::path(get, path = "/api/v1/auth/mfa", tag = "auth",
    responses((status = 200, body = MfaStatusDto), (status = 401, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<MfaStatusDto>> {
    Ok(Json(state.app.mfa_status(&actor).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaReset {
    /// Why (required), e.g. "phone lost".
    pub reason: String,
}

/// Remove another user's second factor (never one's own), with a reason; audited
/// `user.mfa_reset`, the user's tokens are revoked and they enrol again.
#[utoipa::path(post, path = "/api/v1/users/{id}/mfa/reset", tag = "users", request_body = MfaReset,
    params(("id" = i64, Path, description = "user id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn reset(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MfaReset>,
) -> ApiResult<StatusCode> {
    state
        .app
        .reset_user_mfa(&actor, id, Some(&req.reason))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
