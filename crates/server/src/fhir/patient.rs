//! Patient: read, and search by identifier (MRN), name, family, given and birthdate.

use aliquot_app::{Actor, AppError, PatientSearch, PatientView};
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::params::Params;
use super::{FhirError, FhirResult, MRN_SYSTEM, Resource, instant, searchset};
use crate::AppState;

const PARAMS: &[&str] = &["_id", "identifier", "name", "family", "given", "birthdate"];

pub async fn read(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let id = super::numeric_id(&id, "Patient")?;
    let p = state
        .app
        .patient(&actor, id)
        .await
        .map_err(|e| not_found_as(e, "Patient"))?;
    Ok(Resource::from_value(&patient(&p)).into_response())
}

pub async fn search(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    RawQuery(raw): RawQuery,
) -> FhirResult<Response> {
    let params = Params::parse(raw.as_deref(), PARAMS)?;
    let mut found: Vec<PatientView> = Vec::new();
    if let Some(id) = params.one("_id")? {
        match id.parse::<i64>() {
            Ok(id) => match state.app.patient(&actor, id).await {
                Ok(p) => found.push(p),
                Err(AppError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            },
            Err(_) => return Err(FhirError::invalid("_id", "a Patient id is a number")),
        }
    } else {
        let mut mrn = None;
        let identifiers = params.tokens("identifier")?;
        if identifiers.len() > 1 {
            return Err(FhirError::invalid(
                "identifier",
                "give one identifier per search",
            ));
        }
        let mut other_system = false;
        if let Some((system, value)) = identifiers.into_iter().next() {
            match system.as_deref() {
                None | Some(MRN_SYSTEM) => mrn = Some(value),
                Some(_) => other_system = true,
            }
        }
        let family = params.one("family")?.map(str::to_owned);
        let given = params.one("given")?.map(str::to_owned);
        let name = params.one("name")?.map(str::to_owned);
        let birth_date = params
            .one("birthdate")?
            .map(|d| d.strip_prefix("eq").unwrap_or(d).to_owned());
        if mrn.is_none()
            && !other_system
            && family.is_none()
            && given.is_none()
            && name.is_none()
            && birth_date.is_none()
        {
            return Err(FhirError::invalid(
                "identifier",
                "search patients by _id, identifier, name, family, given or birthdate",
            ));
        }
        if !other_system {
            let base = PatientSearch {
                mrn,
                birth_date,
                family_name: family,
                given_name: given,
            };
            // `name` matches the start of the family or the given name.
            let searches = match name {
                None => vec![base],
                Some(n) => vec![
                    PatientSearch {
                        family_name: Some(n.clone()),
                        ..base.clone()
                    },
                    PatientSearch {
                        given_name: Some(n),
                        ..base
                    },
                ],
            };
            for s in searches {
                for p in state
                    .app
                    .search_patients(&actor, s)
                    .await
                    .map_err(search_error)?
                {
                    if !found.iter().any(|f| f.id == p.id) {
                        found.push(p);
                    }
                }
            }
        }
    }
    let (page, total, next) = params.page(found)?;
    let entries = page
        .iter()
        .map(|p| (p.id.to_string(), Resource::from_value(&patient(p))))
        .collect();
    Ok(searchset(
        "Patient",
        &params.query(),
        entries,
        Some(total),
        next,
    ))
}

/// HL7 v2 administrative sex → FHIR `AdministrativeGender`.
fn gender(sex: &str) -> &'static str {
    match sex {
        "M" => "male",
        "F" => "female",
        "O" | "A" | "N" => "other",
        _ => "unknown",
    }
}

pub fn patient(p: &PatientView) -> Value {
    let mut identifier = vec![json!({
        "use": "usual",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "MR", "display": "Medical record number"}]},
        "system": MRN_SYSTEM,
        "value": p.mrn,
    })];
    for i in &p.identifiers {
        identifier.push(
            json!({"system": format!("urn:aliquot:facility:{}", i.system),
                               "value": i.value}),
        );
    }
    let mut given = vec![p.given_name.clone()];
    given.extend(p.middle_name.clone());
    let mut v = json!({
        "resourceType": "Patient",
        "id": p.id.to_string(),
        "meta": {"lastUpdated": instant(p.created_at)},
        "identifier": identifier,
        "active": p.merged_into.is_none(),
        "name": [{"use": "official", "family": p.family_name, "given": given}],
        "gender": gender(&p.sex),
        "birthDate": p.birth_date,
    });
    let mut telecom = Vec::new();
    if let Some(phone) = &p.contact.phone {
        telecom.push(json!({"system": "phone", "value": phone}));
    }
    if let Some(email) = &p.contact.email {
        telecom.push(json!({"system": "email", "value": email}));
    }
    if !telecom.is_empty() {
        v["telecom"] = json!(telecom);
    }
    if let Some(address) = &p.contact.address {
        v["address"] = json!([{"text": address}]);
    }
    if let Some(into) = p.merged_into {
        v["link"] =
            json!([{"other": {"reference": format!("Patient/{into}")}, "type": "replaced-by"}]);
    }
    v
}

/// A use case's "not found" as this resource type's.
pub fn not_found_as(e: AppError, what: &str) -> FhirError {
    match e {
        AppError::NotFound { .. } => FhirError::not_found(what),
        e => e.into(),
    }
}

/// A search's refusal: 400, naming the FHIR parameter the use case's field came from.
fn search_error(e: AppError) -> FhirError {
    let mut f = FhirError::from(e);
    if f.status == axum::http::StatusCode::UNPROCESSABLE_ENTITY {
        f.status = axum::http::StatusCode::BAD_REQUEST;
    }
    f.field = f.field.map(|field| {
        match field.as_str() {
            "mrn" => "identifier",
            "birth_date" => "birthdate",
            "family_name" => "family",
            "given_name" => "given",
            other => other,
        }
        .to_owned()
    });
    f
}
