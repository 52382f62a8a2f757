//! Specimen: a tube or aliquot, by accession number. Read, and search by accession
//! (`identifier`) or patient.

use aliquot_app::{Actor, AppError, SpecimenDetail};
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::params::Params;
use super::patient::not_found_as;
use super::{ACCESSION_SYSTEM, FhirError, FhirResult, Resource, instant, patient_ref, searchset};
use crate::AppState;

const PARAMS: &[&str] = &["identifier", "accession", "patient", "subject"];

/// A specimen type as an HL7 v2 table 0487 code, where there is one.
fn type_code(specimen_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match specimen_type {
        "serum" => ("SER", "Serum"),
        "plasma" => ("PLAS", "Plasma"),
        "whole_blood" => ("BLD", "Whole blood"),
        "urine" => ("UR", "Urine"),
        "csf" => ("CSF", "Cerebral spinal fluid"),
        "body_fluid" => ("BDY", "Body fluid, unspecified"),
        "swab" => ("SWAB", "Swab"),
        "sputum" => ("SPT", "Sputum"),
        "stool" => ("STL", "Stool = Fecal"),
        "tissue" => ("TISS", "Tissue"),
        "bone_marrow" => ("MAR", "Marrow"),
        "arterial_blood" => ("BLDA", "Blood arterial"),
        _ => return None,
    })
}

fn status(s: &str) -> &'static str {
    match s {
        "rejected" => "unsatisfactory",
        "sent_out" | "disposed" | "cancelled" | "planned" => "unavailable",
        _ => "available",
    }
}

pub fn specimen(s: &SpecimenDetail) -> Value {
    let text = s.specimen_type.replace('_', " ");
    let mut kind = json!({"text": text});
    if let Some((code, display)) = type_code(&s.specimen_type) {
        kind["coding"] = json!([{"system": "http://terminology.hl7.org/CodeSystem/v2-0487",
                                 "code": code, "display": display}]);
    }
    let mut v = json!({
        "resourceType": "Specimen",
        "id": s.accession,
        "identifier": [{"system": ACCESSION_SYSTEM, "value": s.accession}],
        "accessionIdentifier": {"system": ACCESSION_SYSTEM, "value": s.accession},
        "status": status(&s.status),
        "type": kind,
        "subject": patient_ref(s.patient_id),
        "request": s.tests.iter()
            .map(|t| json!({"reference": format!("ServiceRequest/{}-{}", s.order_id, t)}))
            .collect::<Vec<_>>(),
        "container": [{"type": {"text": s.container_name},
                       "identifier": [{"system": ACCESSION_SYSTEM, "value": s.accession}]}],
    });
    if let Some(at) = s.collected_at {
        v["collection"] = json!({"collectedDateTime": instant(at)});
    }
    if let Some(received) = s
        .events
        .iter()
        .filter(|e| e.to_status == "received")
        .map(|e| e.at)
        .min()
    {
        v["receivedTime"] = json!(instant(received));
    }
    if let Some(parent) = &s.parent {
        v["parent"] = json!([{"reference": format!("Specimen/{parent}")}]);
    }
    v
}

pub async fn read(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let s = state.app.specimen(&actor, &id).await.map_err(|e| match e {
        AppError::Invalid { .. } => FhirError::not_found("Specimen"),
        e => not_found_as(e, "Specimen"),
    })?;
    Ok(Resource::from_value(&specimen(&s)).into_response())
}

pub async fn search(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    RawQuery(raw): RawQuery,
) -> FhirResult<Response> {
    let params = Params::parse(raw.as_deref(), PARAMS)?;
    let patient = params.patient()?;
    let mut accessions = params.tokens("identifier")?;
    accessions.extend(params.tokens("accession")?);
    let mut found: Vec<SpecimenDetail> = Vec::new();
    if !accessions.is_empty() {
        for (system, acc) in accessions {
            if system.as_deref().is_some_and(|s| s != ACCESSION_SYSTEM) {
                continue;
            }
            match state.app.specimen(&actor, &acc).await {
                Ok(s) if patient.is_none_or(|p| p == s.patient_id) => found.push(s),
                Ok(_) | Err(AppError::NotFound { .. } | AppError::Invalid { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    } else if let Some(p) = patient {
        found = state
            .app
            .patient_specimens(&actor, p)
            .await
            .map_err(|e| not_found_as(e, "Patient"))?;
    } else {
        return Err(FhirError::invalid(
            "patient",
            "search specimens by identifier (accession) or patient",
        ));
    }
    let (page, total, next) = params.page(found)?;
    let entries = page
        .iter()
        .map(|s| (s.accession.clone(), Resource::from_value(&specimen(s))))
        .collect();
    Ok(searchset(
        "Specimen",
        &params.query(),
        entries,
        Some(total),
        next,
    ))
}
