//! The one place where errors become HTTP: `{"error": {"code", "message", "field"?}}` with a
//! fitting status. A 5xx is a bug; its details go to the log (never patient data), not to
//! the client.

use aliquot_app::AppError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid_json`, `forbidden`, `username_taken`.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The request field at fault, when there is one (`username`, `reason`, `role`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `possible_duplicate`: the existing patients the registration resembles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<DuplicateCandidateDto>>,
    /// For `receipt_problems`: what the receipt check found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<ReceiptProblemDto>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReceiptProblemDto {
    /// e.g. `receipt_stability_exceeded`, `receipt_wrong_container`.
    pub code: String,
    pub message: String,
    /// The rejection reason this problem maps to, e.g. `stability_exceeded`.
    pub rejection_reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DuplicateCandidateDto {
    pub patient_id: i64,
    /// `exact_name`, `swapped_given_family`, `near_miss_name` or `birth_day_month_transposed`.
    pub reason: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
    /// Lists some errors carry (boxed: errors stay small on the happy path).
    pub extra: Option<Box<ErrorExtra>>,
}

/// A list carried by an error body.
#[derive(Debug)]
pub enum ErrorExtra {
    Candidates(Vec<DuplicateCandidateDto>),
    Problems(Vec<ReceiptProblemDto>),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            field: None,
            retry_after: None,
            extra: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn unauthorized(code: &str, message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unauthorized { code, message } => ApiError::unauthorized(code, &message),
            AppError::Forbidden { message } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AppError::NotFound { entity } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{entity} not found"),
            ),
            AppError::Invalid {
                field,
                code,
                message,
            } => ApiError {
                field,
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            },
            AppError::Conflict {
                field,
                code,
                message,
            } => ApiError {
                field,
                ..ApiError::new(StatusCode::CONFLICT, code, message)
            },
            AppError::Locked { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!(
                        "too many failed attempts; try again in {retry_after_secs} s (Retry-After)"
                    ),
                )
            },
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (candidates, problems) = match self.extra.map(|e| *e) {
            Some(ErrorExtra::Candidates(c)) => (Some(c), None),
            Some(ErrorExtra::Problems(p)) => (None, Some(p)),
            None => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                candidates,
                problems,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
