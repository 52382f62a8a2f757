//! The test catalogue: tests and panels (LOINC, specimen, container, stability, result type,
//! units, reportable range, TAT targets, performing lab). Edits are versioned and audited;
//! entries are retired, never deleted.

use aliquot_app::{
    Actor, CatalogEntryView, SpecimenAlternative, StabilityLimits, TatMinutes, TestDefinition,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiPath, ApiQuery};

/// Limits from collection, per temperature, in minutes; absent = not allowed at it. The
/// `_hours` forms are still accepted (one or the other per temperature) and stored as minutes.
/// `unspun_*`: unspun whole blood before separation (serum and plasma tests, CLSI GP44; none
/// given = 2 h at room temperature or refrigerated).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StabilityLimitsDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refrigerated_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refrigerated_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unspun_room_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unspun_refrigerated_minutes: Option<u32>,
}

/// Turnaround targets (minutes) per priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TatMinutesDto {
    pub stat: Option<u32>,
    pub asap: Option<u32>,
    pub timed: Option<u32>,
    pub routine: Option<u32>,
}

/// Another (specimen type, container) pair a test accepts at receipt, e.g. `plasma` in `PST`
/// for a serum test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecimenAlternativeDto {
    pub specimen_type: String,
    pub container: String,
}

/// A test or panel definition, as entered and as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestDefinitionDto {
    pub code: String,
    pub name: String,
    /// `test` (default) or `panel`.
    #[serde(default)]
    pub kind: Option<String>,
    pub loinc: Option<String>,
    /// Panel members (test codes).
    #[serde(default)]
    pub components: Vec<String>,
    pub department: Option<String>,
    pub specimen_type: Option<String>,
    pub container: Option<String>,
    /// Other (specimen type, container) pairs the test accepts at receipt.
    #[serde(default)]
    pub alternatives: Vec<SpecimenAlternativeDto>,
    pub min_volume_ul: Option<u32>,
    #[serde(default)]
    pub stability: StabilityLimitsDto,
    #[serde(default)]
    pub special_handling: Vec<String>,
    /// `numeric`, `coded` or `text`.
    pub result_type: Option<String>,
    pub precision: Option<u8>,
    #[serde(default)]
    pub answers: Vec<String>,
    pub units: Option<String>,
    pub reportable_low: Option<f64>,
    pub reportable_high: Option<f64>,
    #[serde(default)]
    pub tat_minutes: TatMinutesDto,
    pub performing_lab: Option<String>,
}

// The wire form and the use-case form are converted field by field, with every struct
// destructured in full: a field added to one side and not the other does not compile, so the
// two shapes cannot drift apart at run time.

impl From<TestDefinitionDto> for TestDefinition {
    fn from(d: TestDefinitionDto) -> Self {
        let TestDefinitionDto {
            code,
            name,
            kind,
            loinc,
            components,
            department,
            specimen_type,
            container,
            alternatives,
            min_volume_ul,
            stability,
            special_handling,
            result_type,
            precision,
            answers,
            units,
            reportable_low,
            reportable_high,
            tat_minutes,
            performing_lab,
        } = d;
        let StabilityLimitsDto {
            room_hours,
            refrigerated_hours,
            frozen_hours,
            room_minutes,
            refrigerated_minutes,
            frozen_minutes,
            unspun_room_minutes,
            unspun_refrigerated_minutes,
        } = stability;
        let TatMinutesDto {
            stat,
            asap,
            timed,
            routine,
        } = tat_minutes;
        TestDefinition {
            code,
            name,
            kind,
            loinc,
            components,
            department,
            specimen_type,
            container,
            alternatives: alternatives
                .into_iter()
                .map(|a| {
                    let SpecimenAlternativeDto {
                        specimen_type,
                        container,
                    } = a;
                    SpecimenAlternative {
                        specimen_type,
                        container,
                    }
                })
                .collect(),
            min_volume_ul,
            stability: StabilityLimits {
                room_hours,
                refrigerated_hours,
                frozen_hours,
                room_minutes,
                refrigerated_minutes,
                frozen_minutes,
                unspun_room_minutes,
                unspun_refrigerated_minutes,
            },
            special_handling,
            result_type,
            precision,
            answers,
            units,
            reportable_low,
            reportable_high,
            tat_minutes: TatMinutes {
                stat,
                asap,
                timed,
                routine,
            },
            performing_lab,
        }
    }
}

impl From<TestDefinition> for TestDefinitionDto {
    fn from(d: TestDefinition) -> Self {
        let TestDefinition {
            code,
            name,
            kind,
            loinc,
            components,
            department,
            specimen_type,
            container,
            alternatives,
            min_volume_ul,
            stability,
            special_handling,
            result_type,
            precision,
            answers,
            units,
            reportable_low,
            reportable_high,
            tat_minutes,
            performing_lab,
        } = d;
        let StabilityLimits {
            room_hours,
            refrigerated_hours,
            frozen_hours,
            room_minutes,
            refrigerated_minutes,
            frozen_minutes,
            unspun_room_minutes,
            unspun_refrigerated_minutes,
        } = stability;
        let TatMinutes {
            stat,
            asap,
            timed,
            routine,
        } = tat_minutes;
        TestDefinitionDto {
            code,
            name,
            kind,
            loinc,
            components,
            department,
            specimen_type,
            container,
            alternatives: alternatives
                .into_iter()
                .map(|a| {
                    let SpecimenAlternative {
                        specimen_type,
                        container,
                    } = a;
                    SpecimenAlternativeDto {
                        specimen_type,
                        container,
                    }
                })
                .collect(),
            min_volume_ul,
            stability: StabilityLimitsDto {
                room_hours,
                refrigerated_hours,
                frozen_hours,
                room_minutes,
                refrigerated_minutes,
                frozen_minutes,
                unspun_room_minutes,
                unspun_refrigerated_minutes,
            },
            special_handling,
            result_type,
            precision,
            answers,
            units,
            reportable_low,
            reportable_high,
            tat_minutes: TatMinutesDto {
                stat,
                asap,
                timed,
                routine,
            },
            performing_lab,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CatalogEntryDto {
    pub id: i64,
    /// 1 at creation, +1 at every edit or retirement.
    pub version: i64,
    pub retired: bool,
    pub retired_at: Option<String>,
    pub updated_at: String,
    #[serde(flatten)]
    pub definition: TestDefinitionDto,
}

impl From<CatalogEntryView> for CatalogEntryDto {
    fn from(v: CatalogEntryView) -> Self {
        CatalogEntryDto {
            id: v.id,
            version: v.version,
            retired: v.retired_at.is_some(),
            retired_at: v.retired_at.map(|t| t.to_string()),
            updated_at: v.updated_at.to_string(),
            definition: v.definition.into(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Include retired entries.
    #[serde(default)]
    pub include_retired: bool,
}

/// The catalogue: orderable tests and panels, each with its LOINC code.
#[utoipa::path(get, path = "/api/v1/catalog/tests", tag = "catalog", params(ListParams),
    responses((status = 200, body = [CatalogEntryDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Vec<CatalogEntryDto>>> {
    Ok(Json(
        state
            .app
            .catalog(&actor, q.include_retired)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Add a test or panel (version 1).
#[utoipa::path(post, path = "/api/v1/catalog/tests", tag = "catalog", request_body = TestDefinitionDto,
    responses((status = 201, body = CatalogEntryDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<TestDefinitionDto>,
) -> ApiResult<(StatusCode, Json<CatalogEntryDto>)> {
    let v = state.app.create_catalog_entry(&actor, req.into()).await?;
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// One catalogue entry by its local code.
#[utoipa::path(get, path = "/api/v1/catalog/tests/{code}", tag = "catalog",
    params(("code" = String, Path, description = "the local test or panel code (e.g. `GLU`), as `code` in the list; not the numeric `id`")),
    responses((status = 200, body = CatalogEntryDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<CatalogEntryDto>> {
    Ok(Json(state.app.catalog_entry(&actor, &code).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEntry {
    pub definition: TestDefinitionDto,
    pub reason: String,
}

/// Replace an entry's definition: a new version (the old one is kept), audited with a reason.
#[utoipa::path(put, path = "/api/v1/catalog/tests/{code}", tag = "catalog", request_body = UpdateEntry,
    params(("code" = String, Path, description = "the local test or panel code (e.g. `GLU`), as `code` in the list; not the numeric `id`")),
    responses((status = 200, body = CatalogEntryDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateEntry>,
) -> ApiResult<Json<CatalogEntryDto>> {
    let def = req.definition.into();
    Ok(Json(
        state
            .app
            .update_catalog_entry(&actor, &code, def, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireEntry {
    pub reason: String,
}

/// Retire an entry: kept for the orders that use it, no longer orderable.
#[utoipa::path(post, path = "/api/v1/catalog/tests/{code}/retire", tag = "catalog", request_body = RetireEntry,
    params(("code" = String, Path, description = "the local test or panel code (e.g. `GLU`), as `code` in the list; not the numeric `id`")),
    responses((status = 200, body = CatalogEntryDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn retire(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<RetireEntry>,
) -> ApiResult<Json<CatalogEntryDto>> {
    Ok(Json(
        state
            .app
            .retire_catalog_entry(&actor, &code, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CatalogVersionDto {
    pub version: i64,
    pub changed_at: String,
    pub changed_by: String,
    pub definition: TestDefinitionDto,
}

/// Every version of an entry, oldest first.
#[utoipa::path(get, path = "/api/v1/catalog/tests/{code}/versions", tag = "catalog",
    params(("code" = String, Path, description = "the local test or panel code (e.g. `GLU`), as `code` in the list; not the numeric `id`")),
    responses((status = 200, body = [CatalogVersionDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<Vec<CatalogVersionDto>>> {
    Ok(Json(
        state
            .app
            .catalog_history(&actor, &code)
            .await?
            .into_iter()
            .map(|(version, at, by, d)| CatalogVersionDto {
                version,
                changed_at: at.to_string(),
                changed_by: by,
                definition: d.into(),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field set to a distinct value: the round trip keeps each one in its place, and
    /// the wire form serialises exactly as the stored (use-case) form.
    #[test]
    fn the_wire_and_use_case_forms_convert_field_by_field() {
        let dto = TestDefinitionDto {
            code: "K".into(),
            name: "Potassium".into(),
            kind: Some("test".into()),
            loinc: Some("2823-3".into()),
            components: vec!["X".into()],
            department: Some("chemistry".into()),
            specimen_type: Some("serum".into()),
            container: Some("SST".into()),
            alternatives: vec![SpecimenAlternativeDto {
                specimen_type: "plasma".into(),
                container: "PST".into(),
            }],
            min_volume_ul: Some(50),
            stability: StabilityLimitsDto {
                room_hours: Some(1),
                refrigerated_hours: Some(2),
                frozen_hours: Some(3),
                room_minutes: Some(4),
                refrigerated_minutes: Some(5),
                frozen_minutes: Some(6),
                unspun_room_minutes: Some(7),
                unspun_refrigerated_minutes: Some(8),
            },
            special_handling: vec!["protect_from_light".into()],
            result_type: Some("numeric".into()),
            precision: Some(1),
            answers: vec!["pos".into()],
            units: Some("mmol/L".into()),
            reportable_low: Some(1.5),
            reportable_high: Some(9.5),
            tat_minutes: TatMinutesDto {
                stat: Some(60),
                asap: Some(120),
                timed: Some(180),
                routine: Some(240),
            },
            performing_lab: Some("ref".into()),
        };
        let app: TestDefinition = dto.clone().into();
        assert_eq!(
            serde_json::to_value(&app).unwrap(),
            serde_json::to_value(&dto).unwrap()
        );
        assert_eq!(TestDefinitionDto::from(app), dto);
    }
}
