//! Instruments and their test codes, the interface message log and its error queue, replay
//! (issue 12). The listeners themselves are in `aliquot-connect`.

use aliquot_app::Actor;
use aliquot_app::connections::{
    InboundError, InstrumentInput, InstrumentView, InterfaceMessageView, MessageContent,
    MessageQuery, TestCodeInput,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCodeDto {
    /// The instrument's own code (HL7 OBX-3.1, ASTM R-3 local code).
    pub code: String,
    /// The catalogue test (code or LOINC).
    pub test: String,
    /// The UCUM unit it reports in when a message leaves the unit out.
    pub units: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstrumentDto {
    /// The lab's name for it (letters, digits, `-`, `_`; at most 20).
    pub code: String,
    pub name: String,
    /// `hl7` or `astm`.
    pub protocol: String,
    /// How its messages name it: HL7 MSH-3 (namespace id), ASTM H-5 (sender name).
    pub sender: String,
    pub department: String,
    pub test_codes: Vec<TestCodeDto>,
    /// `host:port` of an instrument that listens: the laboratory system connects out to it.
    /// Absent for an instrument that connects in to the listeners.
    #[serde(default)]
    pub connect_to: Option<String>,
}

impl From<InstrumentDto> for InstrumentInput {
    fn from(d: InstrumentDto) -> Self {
        let InstrumentDto {
            code,
            name,
            protocol,
            sender,
            department,
            test_codes,
            connect_to,
        } = d;
        InstrumentInput {
            connect_to,
            code,
            name,
            protocol,
            sender,
            department,
            test_codes: test_codes
                .into_iter()
                .map(|t| {
                    let TestCodeDto { code, test, units } = t;
                    TestCodeInput { code, test, units }
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InstrumentViewDto {
    pub code: String,
    pub name: String,
    pub protocol: String,
    pub sender: String,
    pub department: String,
    pub version: i64,
    pub updated_at: String,
    pub updated_by: String,
    pub retired: bool,
    pub test_codes: Vec<TestCodeDto>,
    pub connect_to: Option<String>,
}

impl From<InstrumentView> for InstrumentViewDto {
    fn from(v: InstrumentView) -> Self {
        let InstrumentView {
            code,
            name,
            protocol,
            sender,
            department,
            version,
            updated_at,
            updated_by,
            retired,
            test_codes,
            connect_to,
        } = v;
        InstrumentViewDto {
            connect_to,
            code,
            name,
            protocol,
            sender,
            department,
            version,
            updated_at: updated_at.to_string(),
            updated_by,
            retired,
            test_codes: test_codes
                .into_iter()
                .map(|(code, test, units)| TestCodeDto { code, test, units })
                .collect(),
        }
    }
}

/// Register an instrument (or middleware) with its test codes. Its messages are matched by
/// protocol and sender.
#[utoipa::path(post, path = "/api/v1/instruments", tag = "connections", request_body = InstrumentDto,
    responses((status = 201, body = InstrumentViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<InstrumentDto>,
) -> ApiResult<(StatusCode, Json<InstrumentViewDto>)> {
    let v = state.app.register_instrument(&actor, req.into()).await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// Every instrument with its test codes.
#[utoipa::path(get, path = "/api/v1/instruments", tag = "connections",
    responses((status = 200, body = [InstrumentViewDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<InstrumentViewDto>>> {
    Ok(Json(
        state
            .app
            .list_instruments(&actor)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// One instrument with its test codes.
#[utoipa::path(get, path = "/api/v1/instruments/{code}", tag = "connections",
    params(("code" = String, Path, description = "the instrument's code")),
    responses((status = 200, body = InstrumentViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<InstrumentViewDto>> {
    Ok(Json(state.app.get_instrument(&actor, &code).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceInstrument {
    /// The version being replaced.
    pub version: i64,
    /// Why (3 to 500 characters).
    pub reason: Option<String>,
    /// Retire it: its messages are then refused (`unknown_sender`).
    #[serde(default)]
    pub retired: bool,
    pub instrument: InstrumentDto,
}

/// Replace an instrument's name, sender, department and whole test-code mapping (its code
/// and protocol stay), with a reason; audited with the old and new mapping.
#[utoipa::path(put, path = "/api/v1/instruments/{code}", tag = "connections",
    request_body = ReplaceInstrument,
    params(("code" = String, Path, description = "the instrument's code")),
    responses((status = 200, body = InstrumentViewDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<ReplaceInstrument>,
) -> ApiResult<Json<InstrumentViewDto>> {
    let ReplaceInstrument {
        version,
        reason,
        retired,
        instrument,
    } = req;
    Ok(Json(
        state
            .app
            .replace_instrument(
                &actor,
                &code,
                version,
                instrument.into(),
                retired,
                reason.as_deref(),
            )
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    /// `accepted`, `error` (the interface error queue) or `replayed`.
    pub status: Option<String>,
    /// An instrument's code.
    pub connection: Option<String>,
    /// Only messages with a smaller id (paging, newest first).
    pub before: Option<i64>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct InboundErrorDto {
    /// Where in the message, e.g. `OBX[2]-3`.
    pub location: String,
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct MessageContentDto {
    pub sender: String,
    pub control_id: String,
    /// The message as received (segments end with `\r`).
    pub raw: String,
    /// The acknowledgement as sent (MLLP framing included).
    pub ack: String,
}

#[derive(Serialize, ToSchema)]
pub struct InterfaceMessageDto {
    pub id: i64,
    pub protocol: String,
    /// The instrument's code, or the sender as named when it is not registered.
    pub connection: String,
    pub message_type: String,
    pub received_at: String,
    /// `accepted`, `error` or `replayed`.
    pub status: String,
    /// Results posted (or found already stored).
    pub posted: i64,
    pub errors: Vec<InboundErrorDto>,
    pub updated_at: String,
    pub updated_by: String,
    /// Only for a caller who may read patients (the read is access-logged).
    pub content: Option<MessageContentDto>,
}

fn errors_dto(errors: Vec<InboundError>) -> Vec<InboundErrorDto> {
    errors
        .into_iter()
        .map(|e| {
            let InboundError {
                location,
                code,
                message,
            } = e;
            InboundErrorDto {
                location,
                code,
                message,
            }
        })
        .collect()
}

impl From<InterfaceMessageView> for InterfaceMessageDto {
    fn from(v: InterfaceMessageView) -> Self {
        let InterfaceMessageView {
            id,
            protocol,
            connection,
            message_type,
            received_at,
            status,
            posted,
            errors,
            updated_at,
            updated_by,
            content,
        } = v;
        InterfaceMessageDto {
            id,
            protocol,
            connection,
            message_type,
            received_at: received_at.to_string(),
            status,
            posted,
            errors: errors_dto(errors),
            updated_at: updated_at.to_string(),
            updated_by,
            content: content.map(|c| {
                let MessageContent {
                    sender,
                    control_id,
                    raw,
                    ack,
                } = c;
                MessageContentDto {
                    sender,
                    control_id,
                    raw,
                    ack,
                }
            }),
        }
    }
}

/// The interface message log, newest first (`status=error` is the error queue). Without the
/// messages' content.
#[utoipa::path(get, path = "/api/v1/interface/messages", tag = "connections", params(MessageParams),
    responses((status = 200, body = [InterfaceMessageDto]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn messages(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<MessageParams>,
) -> ApiResult<Json<Vec<InterfaceMessageDto>>> {
    let MessageParams {
        status,
        connection,
        before,
        limit,
    } = q;
    let list = state
        .app
        .list_messages(
            &actor,
            MessageQuery {
                status,
                connection,
                before,
                limit,
            },
        )
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// One message with what happened to it; its content for a caller who may read patients.
#[utoipa::path(get, path = "/api/v1/interface/messages/{id}", tag = "connections",
    params(("id" = i64, Path, description = "message id")),
    responses((status = 200, body = InterfaceMessageDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn message(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<InterfaceMessageDto>> {
    Ok(Json(state.app.get_message(&actor, id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct ReplayDto {
    pub id: i64,
    /// `replayed` when everything is now posted, else still `error`.
    pub status: String,
    pub posted: i64,
    pub errors: Vec<InboundErrorDto>,
}

/// Replay a message from the error queue with today's instruments and test codes. Results
/// already stored come back as duplicates and change nothing.
#[utoipa::path(post, path = "/api/v1/interface/messages/{id}/replay", tag = "connections",
    params(("id" = i64, Path, description = "message id")),
    responses((status = 200, body = ReplayDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReplayDto>> {
    let o = state
        .app
        .replay_message(&actor, id, aliquot_connect::read_stored)
        .await?;
    Ok(Json(ReplayDto {
        id: o.message_id,
        status: o.status,
        posted: o.posted,
        errors: errors_dto(o.errors),
    }))
}
