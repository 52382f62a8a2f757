use aliquot_app::{Actor, SettingView};
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath};

#[derive(Serialize, ToSchema)]
pub struct SettingDto {
    pub key: String,
    pub value: String,
    pub updated_at: String,
    pub updated_by: Option<i64>,
}

impl From<SettingView> for SettingDto {
    fn from(s: SettingView) -> Self {
        SettingDto {
            key: s.key,
            value: s.value,
            updated_at: s.updated_at.to_string(),
            updated_by: s.updated_by,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSetting {
    pub value: String,
    /// Required when the setting already has a value.
    pub reason: Option<String>,
}

/// All lab settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, body = [SettingDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<SettingDto>>> {
    Ok(Json(
        state
            .app
            .settings(&actor)
            .await?
            .into_iter()
            .map(SettingDto::from)
            .collect(),
    ))
}

/// Set a lab setting: `lab.name`, `lab.timezone` (IANA) or `lab.accession_prefix`.
#[utoipa::path(put, path = "/api/v1/settings/{key}", tag = "settings", request_body = PutSetting,
    params(("key" = String, Path, description = "setting key")),
    responses((status = 200, body = SettingDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(key): ApiPath<String>,
    ApiJson(req): ApiJson<PutSetting>,
) -> ApiResult<Json<SettingDto>> {
    Ok(Json(
        state
            .app
            .put_setting(&actor, &key, &req.value, req.reason.as_deref())
            .await?
            .into(),
    ))
}
