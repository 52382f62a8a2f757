//! Outbound destinations and the outbox of results sent to them (issue 12). The sender itself
//! is `aliquot_connect::outbox`.

use aliquot_app::Actor;
use aliquot_app::connections::{
    DestinationInput, DestinationView, OutboxContent, OutboxQuery, OutboxView,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationDto {
    /// The lab's name for it (letters, digits, `-`, `_`; at most 20); MSH-5 and MSH-6.
    pub code: String,
    pub name: String,
    /// Where its MLLP listener is.
    pub host: String,
    pub port: u16,
}

#[derive(Serialize, ToSchema)]
pub struct DestinationViewDto {
    pub code: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    /// Retired: no new message is queued for it and nothing is sent; its queued messages
    /// stay listed in the outbox.
    pub retired: bool,
}

impl From<DestinationView> for DestinationViewDto {
    fn from(v: DestinationView) -> Self {
        let DestinationView {
            code,
            name,
            host,
            port,
            version,
            created_at,
            created_by,
            updated_at,
            updated_by,
            retired,
        } = v;
        DestinationViewDto {
            code,
            name,
            host,
            port,
            version,
            created_at: created_at.to_string(),
            created_by,
            updated_at: updated_at.to_string(),
            updated_by,
            retired,
        }
    }
}

/// Register a destination: from now on every result released or corrected is sent to it as
/// an HL7 ORU^R01 over MLLP.
#[utoipa::path(post, path = "/api/v1/destinations", tag = "connections", request_body = DestinationDto,
    responses((status = 201, body = DestinationViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn register_destination(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<DestinationDto>,
) -> ApiResult<(StatusCode, Json<DestinationViewDto>)> {
    let DestinationDto {
        code,
        name,
        host,
        port,
    } = req;
    let v = state
        .app
        .register_destination(
            &actor,
            DestinationInput {
                code,
                name,
                host,
                port,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// Every outbound destination.
#[utoipa::path(get, path = "/api/v1/destinations", tag = "connections",
    responses((status = 200, body = [DestinationViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_destinations(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<DestinationViewDto>>> {
    Ok(Json(
        state
            .app
            .list_destinations(&actor)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// One outbound destination.
#[utoipa::path(get, path = "/api/v1/destinations/{code}", tag = "connections",
    params(("code" = String, Path, description = "the destination's code")),
    responses((status = 200, body = DestinationViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_destination(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<DestinationViewDto>> {
    Ok(Json(state.app.get_destination(&actor, &code).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationChangeDto {
    pub name: String,
    /// Where its MLLP listener is.
    pub host: String,
    pub port: u16,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceDestination {
    /// The version being replaced.
    pub version: i64,
    /// Why (3 to 500 characters).
    pub reason: Option<String>,
    /// Retire it: no new message is queued for it and its sender stops; the messages already
    /// queued stay (listed in the outbox) and are sent if it is brought back (`false`).
    #[serde(default)]
    pub retired: bool,
    pub destination: DestinationChangeDto,
}

/// Change a destination's name, host and port, retire it or bring it back (its code stays),
/// with a reason; versioned, audited with the old and new values. The sender reconnects to
/// the new address.
#[utoipa::path(put, path = "/api/v1/destinations/{code}", tag = "connections",
    request_body = ReplaceDestination,
    params(("code" = String, Path, description = "the destination's code")),
    responses((status = 200, body = DestinationViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace_destination(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<ReplaceDestination>,
) -> ApiResult<Json<DestinationViewDto>> {
    let ReplaceDestination {
        version,
        reason,
        retired,
        destination: DestinationChangeDto { name, host, port },
    } = req;
    let v = state
        .app
        .replace_destination(
            &actor,
            &code,
            version,
            DestinationInput {
                code: code.clone(),
                name,
                host,
                port,
            },
            retired,
            reason.as_deref(),
        )
        .await?;
    Ok(Json(v.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    /// A destination's code.
    pub destination: Option<String>,
    /// `pending`, `sent`, `failed` (refused too often: waits for an analyst) or `skipped`.
    pub status: Option<String>,
    /// Only rows with a smaller id (paging, newest first).
    pub before: Option<i64>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxContentDto {
    /// MSH-10 of the message; the acknowledgement must name it in MSA-2.
    pub control_id: String,
    /// The message as last sent (segments end with `\r`), once an attempt was made.
    pub message: Option<String>,
    /// The acknowledgement last received.
    pub ack: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxDto {
    pub id: i64,
    pub destination: String,
    pub order_id: i64,
    pub result_id: i64,
    pub result_version: i64,
    /// `pending`, `sent`, `failed` or `skipped`.
    pub status: String,
    pub attempts: i64,
    /// Attempts the destination refused (AE/AR/CE/CR).
    pub refusals: i64,
    pub next_attempt_at: String,
    /// Why the last attempt did not succeed.
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
    pub updated_at: String,
    pub updated_by: String,
    /// Only for a caller who may read patients (the read is access-logged).
    pub content: Option<OutboxContentDto>,
}

impl From<OutboxView> for OutboxDto {
    fn from(v: OutboxView) -> Self {
        let OutboxView {
            id,
            destination,
            order_id,
            result_id,
            result_version,
            status,
            attempts,
            refusals,
            next_attempt_at,
            last_error,
            created_at,
            sent_at,
            updated_at,
            updated_by,
            content,
        } = v;
        OutboxDto {
            id,
            destination,
            order_id,
            result_id,
            result_version,
            status,
            attempts,
            refusals,
            next_attempt_at: next_attempt_at.to_string(),
            last_error,
            created_at: created_at.to_string(),
            sent_at: sent_at.map(|t| t.to_string()),
            updated_at: updated_at.to_string(),
            updated_by,
            content: content.map(|c| {
                let OutboxContent {
                    control_id,
                    message,
                    ack,
                } = c;
                OutboxContentDto {
                    control_id,
                    message,
                    ack,
                }
            }),
        }
    }
}

/// The outbox, newest first (`status=failed`: what a destination keeps refusing, with the
/// reason). Without the messages' content.
#[utoipa::path(get, path = "/api/v1/outbox", tag = "connections", params(OutboxParams),
    responses((status = 200, body = [OutboxDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<OutboxParams>,
) -> ApiResult<Json<Vec<OutboxDto>>> {
    let OutboxParams {
        destination,
        status,
        before,
        limit,
    } = q;
    let list = state
        .app
        .list_outbox(
            &actor,
            OutboxQuery {
                destination,
                status,
                before,
                limit,
            },
        )
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One outbox row; the message and acknowledgement for a caller who may read patients.
#[utoipa::path(get, path = "/api/v1/outbox/{id}", tag = "connections",
    params(("id" = i64, Path, description = "outbox row id")),
    responses((status = 200, body = OutboxDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<OutboxDto>> {
    Ok(Json(state.app.get_outbox(&actor, id).await?.into()))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct OutboxActionDto {
    /// Why (required to skip, 3 to 500 characters).
    pub reason: Option<String>,
}

/// Send a failed row again: it goes back to the head of its destination's queue, due now,
/// its refusals counted afresh (audited).
#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "connections",
    request_body = OutboxActionDto,
    params(("id" = i64, Path, description = "outbox row id")),
    responses((status = 200, body = OutboxDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<OutboxActionDto>,
) -> ApiResult<Json<OutboxDto>> {
    let OutboxActionDto { reason } = req;
    Ok(Json(
        state
            .app
            .retry_outbox(&actor, id, reason.as_deref())
            .await?
            .into(),
    ))
}

/// Take a pending or failed row out of its queue for good, with a reason, so the rows behind
/// it are sent (audited).
#[utoipa::path(post, path = "/api/v1/outbox/{id}/skip", tag = "connections",
    request_body = OutboxActionDto,
    params(("id" = i64, Path, description = "outbox row id")),
    responses((status = 200, body = OutboxDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn skip(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<OutboxActionDto>,
) -> ApiResult<Json<OutboxDto>> {
    let OutboxActionDto { reason } = req;
    Ok(Json(
        state
            .app
            .skip_outbox(&actor, id, reason.as_deref())
            .await?
            .into(),
    ))
}
