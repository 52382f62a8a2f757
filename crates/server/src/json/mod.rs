//! A strict JSON body extractor: `application/json` only, size-limited by the router, read
//! as the OpenAPI document describes it (`strict`: an object only from an object, `563.0` is
//! an integer), and every deserialisation error reported with the path of the offending
//! field, in JSON's words rather than Rust's.

mod strict;

pub use strict::Strict;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        // A body announced as too large is refused before a byte of it is read.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > crate::MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    "the request body could not be read",
                )
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(Strict(de)) {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let (code, status) = match inner.classify() {
                    serde_json::error::Category::Data => {
                        ("invalid_field", StatusCode::UNPROCESSABLE_ENTITY)
                    }
                    _ => ("invalid_json", StatusCode::BAD_REQUEST),
                };
                // serde's message names the problem (unknown field, wrong type, missing field)
                // without echoing values.
                let mut err = ApiError::new(status, code, inner.to_string());
                err.field = field_of(&path, &inner.to_string());
                Err(err)
            }
        }
    }
}

/// The field an error is about: the path serde_path_to_error followed, without the segments
/// it could not name (`?`, where the JSON itself is malformed); a missing, unknown or
/// duplicate field is reported at its parent's path, so its name is taken from the message.
/// No field at all when none can be named (malformed JSON at the top), never `"?"`.
pub(crate) fn field_of(path: &str, message: &str) -> Option<String> {
    let known: Vec<&str> = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect();
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next())
        .filter(|name| !name.is_empty());
    let mut parts = known;
    // serde_path_to_error ends the path at an unknown field already; a missing one is not
    // in it.
    if let Some(name) = named
        && parts.last() != Some(&name)
    {
        parts.push(name);
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("."))
    }
}

/// Query-string extractor whose errors are JSON like every other error.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let _ = state;
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = field_of(&path, &message);
                // The message names the parameter too (a person reads the message).
                let text = match &field {
                    Some(f) if !message.contains(f.as_str()) => {
                        format!("invalid query parameter `{f}`: {message}")
                    }
                    _ => format!("invalid query string: {message}"),
                };
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", text);
                err.field = field;
                err
            })
    }
}

/// Path-parameter extractor whose errors are JSON like every other error.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(ApiPath(p.0)),
            Err(e) => {
                // The route's placeholders, to name the parameter when the error does not.
                let placeholders: Vec<String> = parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .map(|m| {
                        m.as_str()
                            .split('/')
                            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                Err(path_error(e, &placeholders))
            }
        }
    }
}

/// A path parameter that does not parse, said in the API's words (`an integer`), with the
/// parameter's name as the field; never Rust's type names.
fn path_error(e: axum::extract::rejection::PathRejection, placeholders: &[String]) -> ApiError {
    use axum::extract::path::ErrorKind;
    use axum::extract::rejection::PathRejection;
    let describe = |expected: &str| match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "f32" | "f64" => "a number",
        "bool" => "true or false",
        _ => "valid",
    };
    let only = (placeholders.len() == 1).then(|| placeholders[0].clone());
    let (field, message) = match e {
        PathRejection::FailedToDeserializePathParams(e) => match e.into_kind() {
            ErrorKind::ParseErrorAtKey {
                key, expected_type, ..
            } => (
                Some(key.clone()),
                format!(
                    "the path parameter `{key}` must be {}",
                    describe(expected_type)
                ),
            ),
            ErrorKind::ParseError { expected_type, .. } => (
                only.clone(),
                format!(
                    "the path parameter{} must be {}",
                    only.as_ref().map(|k| format!(" `{k}`")).unwrap_or_default(),
                    describe(expected_type)
                ),
            ),
            ErrorKind::ParseErrorAtIndex {
                index,
                expected_type,
                ..
            } => {
                let key = placeholders.get(index).cloned();
                (
                    key.clone(),
                    format!(
                        "the path parameter{} must be {}",
                        key.as_ref().map(|k| format!(" `{k}`")).unwrap_or_default(),
                        describe(expected_type)
                    ),
                )
            }
            ErrorKind::InvalidUtf8InPathParam { key } => (
                Some(key.clone()),
                format!("the path parameter `{key}` is not valid UTF-8"),
            ),
            ErrorKind::DeserializeError { key, .. } => (
                Some(key.clone()),
                format!("the path parameter `{key}` is not valid"),
            ),
            _ => (only, "the path is not valid".to_owned()),
        },
        _ => (only, "the path is not valid".to_owned()),
    };
    let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message);
    err.field = field;
    err
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is larger than {} bytes",
            crate::MAX_BODY_BYTES
        ),
    )
}
