//! Patients: registration (with duplicate detection), search, read, merge and unmerge.

use aliquot_app::{
    Actor, Contact, DuplicateCandidate, FacilityIdentifier, MergeView, NewPatientInput,
    PatientCorrection, PatientSearch, PatientVersionView, PatientView,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, DuplicateCandidateDto, ErrorBody, ErrorExtra};
use crate::json::{ApiJson, ApiPath, ApiQuery};

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDto {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

/// An identifier assigned by another facility or system (e.g. another hospital's MRN).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierDto {
    /// Assigning system, e.g. `ST-MARY-MRN`.
    pub system: String,
    pub value: String,
}

impl From<IdentifierDto> for FacilityIdentifier {
    fn from(d: IdentifierDto) -> Self {
        FacilityIdentifier {
            system: d.system,
            value: d.value,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPatient {
    pub mrn: String,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    /// `YYYY-MM-DD`, not in the future.
    pub birth_date: String,
    /// HL7 table 0001: F, M, O, U, A, N.
    pub sex: String,
    /// Sex parameter for clinical use (HL7 Gender Harmony): `female`, `male`, `specified`,
    /// `unknown`. Reference intervals use it when given, else `sex`; `specified` and
    /// `unknown` (like O, U, A, N) never select one sex's interval.
    pub clinical_sex: Option<String>,
    /// Local time of birth `HH:MM` in the lab's time zone (neonatal intervals by hours of
    /// life).
    pub birth_time: Option<String>,
    #[serde(default)]
    pub identifiers: Vec<IdentifierDto>,
    #[serde(default)]
    pub contact: ContactDto,
    /// Register even though the registration resembles existing patients (needs `reason`).
    #[serde(default)]
    pub confirm_not_duplicate: bool,
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PatientDto {
    pub id: i64,
    pub mrn: String,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: String,
    /// Administrative sex, HL7 table 0001.
    pub sex: String,
    /// Sex parameter for clinical use (HL7 Gender Harmony): `female`, `male`, `specified`,
    /// `unknown`. Reference intervals use it when given, else `sex`; `specified` and
    /// `unknown` (like O, U, A, N) never select one sex's interval.
    pub clinical_sex: Option<String>,
    /// Local time of birth `HH:MM` in the lab's time zone (neonatal intervals by hours of
    /// life).
    pub birth_time: Option<String>,
    pub identifiers: Vec<IdentifierDto>,
    pub contact: ContactDto,
    pub created_at: String,
    /// Set when this record was merged into another patient (the survivor).
    pub merged_into: Option<i64>,
}

impl From<PatientView> for PatientDto {
    fn from(p: PatientView) -> Self {
        PatientDto {
            id: p.id,
            mrn: p.mrn,
            family_name: p.family_name,
            given_name: p.given_name,
            middle_name: p.middle_name,
            birth_date: p.birth_date,
            sex: p.sex,
            clinical_sex: p.clinical_sex,
            birth_time: p.birth_time,
            identifiers: p
                .identifiers
                .into_iter()
                .map(|i| IdentifierDto {
                    system: i.system,
                    value: i.value,
                })
                .collect(),
            contact: ContactDto {
                phone: p.contact.phone,
                email: p.contact.email,
                address: p.contact.address,
            },
            created_at: p.created_at.to_string(),
            merged_into: p.merged_into,
        }
    }
}

/// Register a patient. Names are stored in NFC. A registration that resembles a live
/// patient (same birth date with equal, swapped or near-miss names, or the same given name and
/// sex under another family name; or the same names with the birth date a day off, day and
/// month swapped or two digits of the year transposed; names compared through their
/// confusable skeleton) is refused with 409 `possible_duplicate` and the candidates, unless the request says
/// `"confirm_not_duplicate": true` with a `reason`.
#[utoipa::path(post, path = "/api/v1/patients", tag = "patients", request_body = RegisterPatient,
    responses((status = 201, body = PatientDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "MRN taken, or possible duplicate (with candidates)"),
              (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<RegisterPatient>,
) -> ApiResult<Response> {
    let input = NewPatientInput {
        mrn: req.mrn,
        family_name: req.family_name,
        given_name: req.given_name,
        middle_name: req.middle_name,
        birth_date: req.birth_date,
        sex: req.sex,
        clinical_sex: req.clinical_sex,
        birth_time: req.birth_time,
        identifiers: req.identifiers.into_iter().map(Into::into).collect(),
        contact: Contact {
            phone: req.contact.phone,
            email: req.contact.email,
            address: req.contact.address,
        },
        confirm_not_duplicate: req.confirm_not_duplicate,
        reason: req.reason,
    };
    match state.app.register_patient(&actor, input).await? {
        Ok(p) => Ok((StatusCode::CREATED, Json(PatientDto::from(p))).into_response()),
        Err(candidates) => Err(possible_duplicate(
            "the registration resembles existing patients; check them, or resend with \
             confirm_not_duplicate and a reason",
            candidates,
        )),
    }
}

/// 409 `possible_duplicate` with the candidates.
fn possible_duplicate(message: &str, candidates: Vec<DuplicateCandidate>) -> ApiError {
    let mut e = ApiError::new(StatusCode::CONFLICT, "possible_duplicate", message);
    e.extra = Some(Box::new(ErrorExtra::Candidates(
        candidates
            .into_iter()
            .map(|c| DuplicateCandidateDto {
                patient_id: c.patient_id,
                reason: c.reason.to_owned(),
            })
            .collect(),
    )));
    e
}

/// A correction of demographics: every field but `reason` is optional, and an omitted (or
/// null) field keeps its value; an empty `middle_name` or contact field clears it. The MRN
/// and facility identifiers are identifiers and are not corrected here (an unknown field
/// such as `mrn` is refused).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectPatient {
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    /// `YYYY-MM-DD`, not in the future.
    pub birth_date: Option<String>,
    /// HL7 table 0001: F, M, O, U, A, N.
    pub sex: Option<String>,
    /// `female`, `male`, `specified`, `unknown`; an empty string clears it.
    pub clinical_sex: Option<String>,
    /// `HH:MM`; an empty string clears it.
    pub birth_time: Option<String>,
    /// Only the contact fields given change.
    pub contact: Option<ContactDto>,
    /// Apply the correction even though the patient would then resemble other patients.
    #[serde(default)]
    pub confirm_not_duplicate: bool,
    /// Required (3 to 500 characters): why the demographics were wrong.
    pub reason: Option<String>,
}

/// Correct a patient's demographics (names, birth date, sex, clinical sex, time of birth,
/// contact) with a reason. The
/// registration rules apply; the replaced demographics are kept as a version (see
/// `/versions`) and the change is audited as `patient.correct` with the old and new values.
/// Orders and specimens stay with the patient. A merged-away record is refused (409
/// `patient_merged`); a correction that makes the patient resemble another is refused with
/// 409 `possible_duplicate` and the candidates unless `confirm_not_duplicate` is set.
#[utoipa::path(patch, path = "/api/v1/patients/{id}", tag = "patients", request_body = CorrectPatient,
    params(("id" = i64, Path, description = "patient id")),
    responses((status = 200, body = PatientDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "merged patient, or possible duplicate (with candidates)"),
              (status = 422, body = ErrorBody)))]
pub async fn correct(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CorrectPatient>,
) -> ApiResult<Json<PatientDto>> {
    let CorrectPatient {
        family_name,
        given_name,
        middle_name,
        birth_date,
        sex,
        clinical_sex,
        birth_time,
        contact,
        confirm_not_duplicate,
        reason,
    } = req;
    let input = PatientCorrection {
        family_name,
        given_name,
        middle_name,
        birth_date,
        sex,
        clinical_sex,
        birth_time,
        contact: contact.map(
            |ContactDto {
                 phone,
                 email,
                 address,
             }| Contact {
                phone,
                email,
                address,
            },
        ),
        confirm_not_duplicate,
        reason,
    };
    match state.app.correct_patient(&actor, id, input).await? {
        Ok(p) => Ok(Json(p.into())),
        Err(candidates) => Err(possible_duplicate(
            "the corrected patient resembles other patients; check them, or resend with \
             confirm_not_duplicate",
            candidates,
        )),
    }
}

/// Demographics a correction replaced.
#[derive(Serialize, ToSchema)]
pub struct PatientVersionDto {
    /// 1 is what registration recorded.
    pub version: i64,
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: String,
    pub sex: String,
    pub clinical_sex: Option<String>,
    pub birth_time: Option<String>,
    pub contact: ContactDto,
    /// When and by whom these demographics were replaced, and why.
    pub replaced_at: String,
    pub replaced_by: String,
    pub reason: String,
}

impl From<PatientVersionView> for PatientVersionDto {
    fn from(v: PatientVersionView) -> Self {
        let PatientVersionView {
            version,
            family_name,
            given_name,
            middle_name,
            birth_date,
            sex,
            clinical_sex,
            birth_time,
            contact,
            replaced_at,
            replaced_by,
            reason,
        } = v;
        PatientVersionDto {
            version,
            family_name,
            given_name,
            middle_name,
            birth_date,
            sex,
            clinical_sex,
            birth_time,
            contact: ContactDto {
                phone: contact.phone,
                email: contact.email,
                address: contact.address,
            },
            replaced_at: replaced_at.to_string(),
            replaced_by,
            reason,
        }
    }
}

/// The demographics the patient's corrections replaced, oldest first (the current ones are
/// `GET /api/v1/patients/{id}`). Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/patients/{id}/versions", tag = "patients",
    params(("id" = i64, Path, description = "patient id")),
    responses((status = 200, body = [PatientVersionDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<PatientVersionDto>>> {
    let versions = state.app.patient_versions(&actor, id).await?;
    Ok(Json(versions.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub mrn: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// A prefix of the family name (`gar` finds García), matched ignoring case, accents,
    /// spaces, punctuation, compatibility forms and confusable look-alike letters (Unicode
    /// TS #39 skeleton: a Cyrillic `а` matches a Latin `a`).
    pub family_name: Option<String>,
    /// A prefix of the given name, matched like `family_name`.
    pub given_name: Option<String>,
}

/// Search live patients by MRN, birth date and/or name prefixes (all given criteria must
/// hold; at most 50). A physician finds only patients with an order of their own (their
/// user's linked provider). Recorded in the access log.
#[utoipa::path(get, path = "/api/v1/patients", tag = "patients", params(SearchParams),
    responses((status = 200, body = [PatientDto]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiQuery(q): ApiQuery<SearchParams>,
) -> ApiResult<Json<Vec<PatientDto>>> {
    let found = state
        .app
        .search_patients(
            &actor,
            PatientSearch {
                mrn: q.mrn,
                birth_date: q.birth_date,
                family_name: q.family_name,
                given_name: q.given_name,
            },
        )
        .await?;
    Ok(Json(found.into_iter().map(PatientDto::from).collect()))
}

/// One patient. Recorded in the access log. A physician reads only patients with an order of
/// their own; any other patient is answered 404 as if it did not exist.
#[utoipa::path(get, path = "/api/v1/patients/{id}", tag = "patients",
    params(("id" = i64, Path, description = "patient id")),
    responses((status = 200, body = PatientDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<PatientDto>> {
    Ok(Json(state.app.patient(&actor, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The duplicate record, merged into the patient of the path (the survivor).
    pub merged_patient_id: i64,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct MergeDto {
    pub id: i64,
    pub survivor_id: i64,
    pub merged_id: i64,
    pub moved_order_ids: Vec<i64>,
    pub moved_specimen_ids: Vec<i64>,
    pub reason: String,
    pub merged_at: String,
    pub undone_at: Option<String>,
}

impl From<MergeView> for MergeDto {
    fn from(m: MergeView) -> Self {
        MergeDto {
            id: m.id,
            survivor_id: m.survivor_id,
            merged_id: m.merged_id,
            moved_order_ids: m.moved_order_ids,
            moved_specimen_ids: m.moved_specimen_ids,
            reason: m.reason,
            merged_at: m.merged_at.to_string(),
            undone_at: m.undone_at.map(|t| t.to_string()),
        }
    }
}

/// Merge a duplicate record into this patient: its orders and specimens move to the
/// survivor, and the merge record keeps exactly what moved (for unmerge). Audited.
#[utoipa::path(post, path = "/api/v1/patients/{id}/merge", tag = "patients", request_body = MergeRequest,
    params(("id" = i64, Path, description = "surviving patient id")),
    responses((status = 200, body = MergeDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn merge(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> ApiResult<Json<MergeDto>> {
    Ok(Json(
        state
            .app
            .merge_patients(&actor, id, req.merged_patient_id, Some(&req.reason))
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

/// Undo a merge: exactly the orders and specimens it moved go back, and the merged record
/// is live again. Audited.
#[utoipa::path(post, path = "/api/v1/patient-merges/{id}/undo", tag = "patients", request_body = ReasonRequest,
    params(("id" = i64, Path, description = "merge id")),
    responses((status = 200, body = MergeDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn unmerge(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReasonRequest>,
) -> ApiResult<Json<MergeDto>> {
    Ok(Json(
        state
            .app
            .unmerge_patients(&actor, id, Some(&req.reason))
            .await?
            .into(),
    ))
}
