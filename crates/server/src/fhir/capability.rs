//! `GET /fhir/r4/metadata`: what this server does, for clients to discover (public, as FHIR
//! expects).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::fhir_json;

fn search_param(name: &str, kind: &str, doc: &str) -> Value {
    json!({"name": name, "type": kind, "documentation": doc})
}

fn resource(kind: &str, interactions: &[&str], params: Vec<Value>, doc: &str) -> Value {
    json!({
        "type": kind,
        "documentation": doc,
        "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
        "searchParam": params,
    })
}

pub fn capability_statement() -> Value {
    let count = || search_param("_count", "number", "Page size, 1 to 100 (default 20)");
    let patient = || {
        search_param(
            "patient",
            "reference",
            "Patient/{id}; required (or subject)",
        )
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-28",
        "publisher": "Aliquot",
        "kind": "instance",
        "software": {"name": "Aliquot", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Aliquot laboratory information system", "url": super::BASE},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Authenticate with Authorization: Bearer <token> from POST /api/v1/auth/token. Searches other than Patient's name the patient. Only released and corrected results are Observations.",
            "security": {"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "Basic", "display": "Basic"}], "text": "Bearer token"}],
                         "description": "Bearer tokens of Aliquot users; roles and a physician's patient scope apply, and every read is recorded in the access log."},
            "resource": [
                resource("Patient", &["read", "search-type"], vec![
                    search_param("_id", "token", "Logical id"),
                    search_param("identifier", "token", "MRN (urn:aliquot:mrn|value)"),
                    search_param("name", "string", "Start of the family or given name"),
                    search_param("family", "string", "Start of the family name"),
                    search_param("given", "string", "Start of the given name"),
                    search_param("birthdate", "date", "YYYY-MM-DD"),
                    count(),
                ], "Registered patients"),
                resource("ServiceRequest", &["read", "search-type", "create"], vec![
                    patient(),
                    search_param("status", "token", "active, completed, revoked"),
                    search_param("authored", "date", "When the order was placed"),
                    count(),
                ], "One ordered test; requisition = the order. Create places an order of one test: subject (Patient/{id} and an MRN identifier, or a contained Patient with two identifiers), code (LOINC or urn:aliquot:test-code), requester (Practitioner/{id}), locationReference (Location/{id}), priority, identifier (placer order number)."),
                resource("Specimen", &["read", "search-type"], vec![
                    search_param("identifier", "token", "Accession number"),
                    search_param("accession", "token", "Accession number"),
                    patient(),
                    count(),
                ], "Tubes and aliquots; id = accession number"),
                resource("Observation", &["read", "search-type"], vec![
                    patient(),
                    search_param("code", "token", "LOINC or the lab's test code"),
                    search_param("date", "date", "Collection time (eq, ge, gt, le, lt)"),
                    search_param("category", "token", "laboratory"),
                    count(),
                ], "Released and corrected results"),
                resource("DiagnosticReport", &["read", "search-type"], vec![
                    patient(),
                    search_param("status", "token", "registered, partial, final, corrected, cancelled"),
                    search_param("date", "date", "Collection time"),
                    count(),
                ], "An order's laboratory report"),
            ],
        }],
    })
}

pub async fn metadata() -> Response {
    fhir_json(StatusCode::OK, capability_statement().to_string())
}
