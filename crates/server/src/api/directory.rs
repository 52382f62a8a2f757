//! Ordering providers and client locations.

use aliquot_app::{Actor, NewLocationInput, NewProviderInput};
use aliquot_store::{LocationRecord, ProviderRecord};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiJson;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    /// 10-digit NPI; the Luhn check digit is verified.
    pub npi: String,
    pub family_name: String,
    pub given_name: String,
    /// Telephone for critical-value calls.
    pub phone: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderDto {
    pub id: i64,
    pub npi: String,
    pub family_name: String,
    pub given_name: String,
    pub phone: String,
    pub created_at: String,
}

impl From<ProviderRecord> for ProviderDto {
    fn from(p: ProviderRecord) -> Self {
        ProviderDto {
            id: p.id,
            npi: p.npi,
            family_name: p.family_name,
            given_name: p.given_name,
            phone: p.phone,
            created_at: p.created_at.to_string(),
        }
    }
}

/// Register an ordering provider.
#[utoipa::path(post, path = "/api/v1/providers", tag = "directory", request_body = NewProvider,
    responses((status = 201, body = ProviderDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_provider(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<NewProvider>,
) -> ApiResult<(StatusCode, Json<ProviderDto>)> {
    let p = state
        .app
        .create_provider(
            &actor,
            NewProviderInput {
                npi: req.npi,
                family_name: req.family_name,
                given_name: req.given_name,
                phone: req.phone,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(p.into())))
}

/// All ordering providers.
#[utoipa::path(get, path = "/api/v1/providers", tag = "directory",
    responses((status = 200, body = [ProviderDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_providers(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<ProviderDto>>> {
    Ok(Json(
        state
            .app
            .providers(&actor)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLocation {
    /// 1–20 characters A–Z, 0–9, `-`, `_`.
    pub code: String,
    pub name: String,
    /// `clinic`, `ward`, `outreach`, `emergency` or `other`.
    pub kind: String,
    pub address: String,
    pub phone: Option<String>,
    pub contact_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LocationDto {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub address: String,
    pub phone: Option<String>,
    pub contact_name: Option<String>,
    pub created_at: String,
}

impl From<LocationRecord> for LocationDto {
    fn from(l: LocationRecord) -> Self {
        LocationDto {
            id: l.id,
            code: l.code,
            name: l.name,
            kind: l.kind,
            address: l.address,
            phone: l.phone,
            contact_name: l.contact_name,
            created_at: l.created_at.to_string(),
        }
    }
}

/// Register a client location (clinic, ward, outreach client).
#[utoipa::path(post, path = "/api/v1/locations", tag = "directory", request_body = NewLocation,
    responses((status = 201, body = LocationDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_location(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<NewLocation>,
) -> ApiResult<(StatusCode, Json<LocationDto>)> {
    let l = state
        .app
        .create_location(
            &actor,
            NewLocationInput {
                code: req.code,
                name: req.name,
                kind: req.kind,
                address: req.address,
                phone: req.phone,
                contact_name: req.contact_name,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(l.into())))
}

/// All client locations.
#[utoipa::path(get, path = "/api/v1/locations", tag = "directory",
    responses((status = 200, body = [LocationDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_locations(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> ApiResult<Json<Vec<LocationDto>>> {
    Ok(Json(
        state
            .app
            .locations(&actor)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
