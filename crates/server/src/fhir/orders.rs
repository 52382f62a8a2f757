//! ServiceRequest (one ordered test; its requisition is the order) and DiagnosticReport (an
//! order's report). Read, search by patient, and create of a ServiceRequest, which places an
//! order through the same use case as `POST /api/v1/orders` and HL7 ORM/OML.

use std::collections::HashMap;

use aliquot_app::{Actor, NewOrderInput, OrderTestView, OrderView, PatientIdentification, SignOff};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::observation::test_code;
use super::params::Params;
use super::patient::not_found_as;
use super::{
    FhirError, FhirResult, LOINC, MRN_SYSTEM, PLACER_SYSTEM, REQUISITION_SYSTEM, Resource,
    TEST_CODE_SYSTEM, USER_SYSTEM, fhir_json, instant, patient_ref, searchset,
};
use crate::AppState;

const REQUEST_PARAMS: &[&str] = &["patient", "subject", "status", "authored"];
const REPORT_PARAMS: &[&str] = &["patient", "subject", "status", "date"];

/// Names and LOINC codes of the catalogue's tests, looked up once per request.
struct Names(HashMap<String, (String, Option<String>)>);

impl Names {
    async fn load(state: &AppState, actor: &Actor, orders: &[OrderView]) -> Names {
        let mut names = HashMap::new();
        for t in orders.iter().flat_map(|o| &o.tests) {
            if names.contains_key(&t.test_code) {
                continue;
            }
            // A retired or unreadable entry still shows its code.
            let n = match state.app.catalog_entry(actor, &t.test_code).await {
                Ok(e) => (e.definition.name, e.definition.loinc),
                Err(_) => (t.test_code.clone(), None),
            };
            names.insert(t.test_code.clone(), n);
        }
        Names(names)
    }

    fn code(&self, test: &str) -> Value {
        let (name, loinc) = self
            .0
            .get(test)
            .map(|(n, l)| (n.as_str(), l.as_deref()))
            .unwrap_or((test, None));
        test_code(test, name, loinc)
    }
}

fn released(t: &OrderTestView) -> bool {
    t.result
        .as_ref()
        .is_some_and(|r| matches!(r.status.as_str(), "released" | "corrected"))
}

fn request_status(o: &OrderView, t: &OrderTestView) -> &'static str {
    if o.status == "cancelled" || matches!(t.status.as_str(), "cancelled" | "not_performed") {
        "revoked"
    } else if released(t)
        || t.result
            .as_ref()
            .is_some_and(|r| r.status == "not_performed")
    {
        "completed"
    } else {
        "active"
    }
}

fn priority(p: &str) -> &'static str {
    match p {
        "stat" => "stat",
        "asap" => "asap",
        "urgent" => "urgent",
        _ => "routine",
    }
}

fn service_request(o: &OrderView, t: &OrderTestView, names: &Names) -> Value {
    let mut v = json!({
        "resourceType": "ServiceRequest",
        "id": format!("{}-{}", o.id, t.test_code),
        "requisition": {"system": REQUISITION_SYSTEM, "value": o.id.to_string()},
        "status": request_status(o, t),
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007",
                                  "display": "Laboratory procedure"}]}],
        "priority": priority(&o.priority),
        "code": names.code(&t.test_code),
        "subject": patient_ref(o.patient_id),
        "authoredOn": instant(o.created_at),
        "specimen": [{"reference": format!("Specimen/{}", t.accession)}],
    });
    if let Some(p) = &o.placer_order_number {
        v["identifier"] = json!([{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                 "code": "PLAC", "display": "Placer Identifier"}]},
            "system": PLACER_SYSTEM, "value": p}]);
    }
    if let Some(at) = o.timed_at {
        v["occurrenceDateTime"] = json!(instant(at));
    }
    if !o.diagnosis_codes.is_empty() {
        v["reasonCode"] = json!(
            o.diagnosis_codes
                .iter()
                .map(|c| json!({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": c}]}))
                .collect::<Vec<_>>()
        );
    }
    if let Some(n) = &o.clinical_notes {
        v["note"] = json!([{"text": n}]);
    }
    v
}

fn report_status(o: &OrderView) -> &'static str {
    let live: Vec<&OrderTestView> = o
        .tests
        .iter()
        .filter(|t| !matches!(t.status.as_str(), "cancelled" | "not_performed"))
        .collect();
    let done = live.iter().filter(|t| released(t)).count();
    if o.status == "cancelled" && done == 0 {
        "cancelled"
    } else if done == 0 {
        "registered"
    } else if live
        .iter()
        .any(|t| t.result.as_ref().is_some_and(|r| r.status == "corrected"))
    {
        "corrected"
    } else if done < live.len() {
        "partial"
    } else {
        "final"
    }
}

fn diagnostic_report(o: &OrderView) -> Value {
    let results: Vec<Value> = o
        .tests
        .iter()
        .filter(|t| released(t))
        .filter_map(|t| t.result.as_ref())
        .map(|r| json!({"reference": format!("Observation/{}", r.id)}))
        .collect();
    let issued = o
        .tests
        .iter()
        .filter(|t| released(t))
        .filter_map(|t| t.result.as_ref().and_then(|r| r.released_at))
        .max();
    let collected = o.specimens.iter().filter_map(|s| s.collected_at).min();
    let mut v = json!({
        "resourceType": "DiagnosticReport",
        "id": o.id.to_string(),
        "identifier": [{"system": REQUISITION_SYSTEM, "value": o.id.to_string()}],
        "basedOn": o.tests.iter()
            .map(|t| json!({"reference": format!("ServiceRequest/{}-{}", o.id, t.test_code)}))
            .collect::<Vec<_>>(),
        "status": report_status(o),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                  "code": "LAB", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "11502-2",
                             "display": "Laboratory report"}], "text": "Laboratory report"},
        "subject": patient_ref(o.patient_id),
        "specimen": o.specimens.iter()
            .map(|s| json!({"reference": format!("Specimen/{}", s.accession)}))
            .collect::<Vec<_>>(),
    });
    if let Some(c) = collected {
        v["effectiveDateTime"] = json!(instant(c));
    }
    if let Some(i) = issued {
        v["issued"] = json!(instant(i));
    }
    if !results.is_empty() {
        v["result"] = json!(results);
    }
    // Who signed the results off (tests that need a pathologist): one contained Practitioner
    // per signer, named as when they signed, referenced from `resultsInterpreter`.
    let mut signers: Vec<&SignOff> = Vec::new();
    for so in o
        .tests
        .iter()
        .filter(|t| released(t))
        .filter_map(|t| t.result.as_ref().and_then(|r| r.signed_off.as_ref()))
    {
        match signers.iter_mut().find(|s| s.by == so.by) {
            Some(s) if s.at < so.at => *s = so,
            Some(_) => {}
            None => signers.push(so),
        }
    }
    if !signers.is_empty() {
        v["contained"] = json!(
            signers
                .iter()
                .enumerate()
                .map(|(i, s)| json!({
                    "resourceType": "Practitioner",
                    "id": format!("signer-{}", i + 1),
                    "identifier": [{"system": USER_SYSTEM, "value": s.by}],
                    "name": [{"text": s.name}],
                    "qualification": [{"code": {"text": s.role}}],
                }))
                .collect::<Vec<_>>()
        );
        v["resultsInterpreter"] = json!(
            signers
                .iter()
                .enumerate()
                .map(|(i, s)| json!({
                    "reference": format!("#signer-{}", i + 1),
                    "display": format!("{} ({}), signed off {}", s.name, s.role, instant(s.at)),
                }))
                .collect::<Vec<_>>()
        );
    }
    v
}

/// The PDF report as an Attachment: the current version's route, size, SHA-1 (base64, as R4
/// asks), title and issue time. Reading it issues the current version when the report's
/// content changed, as `GET /orders/{id}/report.pdf` does (and is access-logged the same way).
async fn presented_form(state: &AppState, actor: &Actor, order_id: i64) -> FhirResult<Value> {
    let doc = state.app.order_report(actor, order_id, None).await?;
    let (size, hash) = crate::api::reports::pdf_digest(&doc).await?;
    Ok(json!({
        "contentType": "application/pdf",
        "language": "en-US",
        "url": format!("/api/v1/orders/{order_id}/report.pdf?version={}", doc.version),
        "size": size,
        "hash": hash,
        "title": format!("Laboratory report, order {order_id}, version {} ({})", doc.version, doc.status),
        "creation": instant(doc.created),
    }))
}

/// A DiagnosticReport with its PDF.
async fn full_report(state: &AppState, actor: &Actor, o: &OrderView) -> FhirResult<Value> {
    let mut v = diagnostic_report(o);
    v["presentedForm"] = json!([presented_form(state, actor, o.id).await?]);
    Ok(v)
}

/// `{order}-{test}` → (order, test).
fn request_id(id: &str) -> Option<(i64, &str)> {
    let (order, test) = id.split_once('-')?;
    let order = order.parse().ok()?;
    (!test.is_empty()).then_some((order, test))
}

pub async fn read_request(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let (order_id, test) = request_id(&id).ok_or_else(|| FhirError::not_found("ServiceRequest"))?;
    let o = state
        .app
        .order(&actor, order_id)
        .await
        .map_err(|e| not_found_as(e, "ServiceRequest"))?;
    let t = o
        .tests
        .iter()
        .find(|t| t.test_code == test)
        .ok_or_else(|| FhirError::not_found("ServiceRequest"))?;
    let names = Names::load(&state, &actor, std::slice::from_ref(&o)).await;
    Ok(Resource::from_value(&service_request(&o, t, &names)).into_response())
}

pub async fn read_report(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let id = super::numeric_id(&id, "DiagnosticReport")?;
    let o = state
        .app
        .order(&actor, id)
        .await
        .map_err(|e| not_found_as(e, "DiagnosticReport"))?;
    let v = full_report(&state, &actor, &o).await?;
    Ok(Resource::from_value(&v).into_response())
}

/// The patient's orders for a search that requires the patient.
async fn orders_of(state: &AppState, actor: &Actor, params: &Params) -> FhirResult<Vec<OrderView>> {
    let patient = params.patient()?.ok_or_else(|| {
        FhirError::invalid(
            "patient",
            "search one patient's orders: give patient or subject",
        )
    })?;
    state
        .app
        .patient_orders(actor, patient)
        .await
        .map_err(|e| not_found_as(e, "Patient"))
}

fn in_range(
    t: Option<jiff::Timestamp>,
    range: (Option<jiff::Timestamp>, Option<jiff::Timestamp>),
) -> bool {
    match range {
        (None, None) => true,
        (from, before) => {
            t.is_some_and(|t| from.is_none_or(|f| t >= f) && before.is_none_or(|b| t < b))
        }
    }
}

pub async fn search_requests(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    RawQuery(raw): RawQuery,
) -> FhirResult<Response> {
    let params = Params::parse(raw.as_deref(), REQUEST_PARAMS)?;
    let statuses: Vec<String> = params
        .tokens("status")?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let tz = state.app.lab_timezone().await?;
    let authored = params.date_range("authored", &tz)?;
    let orders = orders_of(&state, &actor, &params).await?;
    let names = Names::load(&state, &actor, &orders).await;
    let mut found = Vec::new();
    for o in &orders {
        if !in_range(Some(o.created_at), authored) {
            continue;
        }
        for t in &o.tests {
            let status = request_status(o, t);
            if statuses.is_empty() || statuses.iter().any(|s| s == status) {
                found.push((
                    format!("{}-{}", o.id, t.test_code),
                    service_request(o, t, &names),
                ));
            }
        }
    }
    let (items, total, next) = params.page(found)?;
    let entries = items
        .into_iter()
        .map(|(id, v)| (id, Resource::from_value(&v)))
        .collect();
    Ok(searchset(
        "ServiceRequest",
        &params.query(),
        entries,
        Some(total),
        next,
    ))
}

pub async fn search_reports(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    RawQuery(raw): RawQuery,
) -> FhirResult<Response> {
    let params = Params::parse(raw.as_deref(), REPORT_PARAMS)?;
    let statuses: Vec<String> = params
        .tokens("status")?
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let tz = state.app.lab_timezone().await?;
    let date = params.date_range("date", &tz)?;
    let orders = orders_of(&state, &actor, &params).await?;
    let found: Vec<(String, Value)> = orders
        .iter()
        .filter(|o| {
            in_range(
                o.specimens.iter().filter_map(|s| s.collected_at).min(),
                date,
            )
        })
        .map(|o| (o.id.to_string(), diagnostic_report(o)))
        .filter(|(_, v)| statuses.is_empty() || statuses.iter().any(|s| v["status"] == s.as_str()))
        .collect();
    let (items, total, next) = params.page(found)?;
    let mut entries = Vec::with_capacity(items.len());
    for (id, mut v) in items {
        // Only the page's reports are rendered (each once per version: see `pdf_digest`).
        if let Some(o) = orders.iter().find(|o| o.id.to_string() == id) {
            v["presentedForm"] = json!([presented_form(&state, &actor, o.id).await?]);
        }
        entries.push((id, Resource::from_value(&v)));
    }
    Ok(searchset(
        "DiagnosticReport",
        &params.query(),
        entries,
        Some(total),
        next,
    ))
}

/// The id of a `Type/{id}` reference at `path`, or a refusal naming it.
fn reference_id(body: &Value, pointer: &str, kind: &str, field: &str) -> FhirResult<Option<i64>> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) => r
            .strip_prefix(&format!("{kind}/"))
            .and_then(|id| id.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| FhirError::invalid(field, format!("a reference here is {kind}/{{id}}"))),
        Some(_) => Err(FhirError::invalid(field, "a reference is a string")),
    }
}

fn unprocessable(field: &str, message: impl Into<String>) -> FhirError {
    let mut e = FhirError::invalid(field, message);
    e.status = StatusCode::UNPROCESSABLE_ENTITY;
    e
}

/// The MRN among a Patient's identifiers.
fn mrn_of(identifiers: Option<&Vec<Value>>) -> Option<String> {
    identifiers?
        .iter()
        .find(|i| i["system"] == MRN_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

/// A request priority as the lab's: FHIR's `urgent` (ahead of routine, behind asap) is served
/// as asap, since the lab has no level between; a routine request with an occurrence time is a
/// timed order.
fn order_priority(body: &Value) -> FhirResult<&'static str> {
    let timed = body.get("occurrenceDateTime").is_some();
    match body.get("priority").and_then(Value::as_str) {
        None | Some("routine") if timed => Ok("timed"),
        None | Some("routine") => Ok("routine"),
        Some("urgent" | "asap") => Ok("asap"),
        Some("stat") => Ok("stat"),
        Some(_) => Err(unprocessable(
            "ServiceRequest.priority",
            "priority is routine, urgent, asap or stat",
        )),
    }
}

/// Reads a ServiceRequest into an order of one test.
fn new_order(body: &Value) -> FhirResult<NewOrderInput> {
    let field = |f: &str| format!("ServiceRequest.{f}");
    if body["resourceType"] != "ServiceRequest" {
        return Err(FhirError::invalid(
            "ServiceRequest.resourceType",
            "the body must be a ServiceRequest",
        ));
    }
    if body.get("intent").and_then(Value::as_str) != Some("order") {
        return Err(unprocessable(&field("intent"), "intent must be order"));
    }
    let mut patient = PatientIdentification::default();
    // `#id`: the patient as the EMR knows them, contained in the request.
    if let Some(local) = body
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        let contained = body
            .get("contained")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|r| r["resourceType"] == "Patient" && r["id"] == local)
            })
            .ok_or_else(|| {
                unprocessable(
                    &field("subject.reference"),
                    format!("no contained Patient #{local}"),
                )
            })?;
        patient.mrn = mrn_of(contained.get("identifier").and_then(Value::as_array));
        patient.family_name = contained
            .pointer("/name/0/family")
            .and_then(Value::as_str)
            .map(str::to_owned);
        patient.given_name = contained
            .pointer("/name/0/given/0")
            .and_then(Value::as_str)
            .map(str::to_owned);
        patient.birth_date = contained
            .get("birthDate")
            .and_then(Value::as_str)
            .map(str::to_owned);
    } else {
        patient.id = reference_id(
            body,
            "/subject/reference",
            "Patient",
            &field("subject.reference"),
        )?;
    }
    match body.pointer("/subject/identifier") {
        None => {}
        Some(i) if i["system"] == MRN_SYSTEM || i.get("system").is_none() => {
            patient.mrn = i["value"].as_str().map(str::to_owned).or(patient.mrn);
        }
        Some(_) => {
            return Err(unprocessable(
                &field("subject.identifier"),
                format!("the patient identifier must be the MRN ({MRN_SYSTEM})"),
            ));
        }
    }
    let codings = body
        .pointer("/code/coding")
        .and_then(Value::as_array)
        .ok_or_else(|| unprocessable(&field("code"), "code.coding names the test"))?;
    let test = codings
        .iter()
        .find(|c| c["system"] == LOINC || c["system"] == TEST_CODE_SYSTEM)
        .and_then(|c| c["code"].as_str())
        .ok_or_else(|| {
            unprocessable(
                &field("code"),
                format!("code.coding needs a {LOINC} or {TEST_CODE_SYSTEM} code"),
            )
        })?;
    let provider_id = reference_id(
        body,
        "/requester/reference",
        "Practitioner",
        &field("requester"),
    )?
    .ok_or_else(|| {
        unprocessable(
            &field("requester"),
            "requester is the ordering provider: Practitioner/{id}",
        )
    })?;
    let location_id = match body.pointer("/locationReference/0/reference") {
        Some(_) => reference_id(
            body,
            "/locationReference/0/reference",
            "Location",
            &field("locationReference"),
        )?,
        None => None,
    }
    .ok_or_else(|| {
        unprocessable(
            &field("locationReference"),
            "locationReference[0] is the client location: Location/{id}",
        )
    })?;
    let placer = body
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| ids.iter().find(|i| i["system"] == PLACER_SYSTEM))
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned);
    let diagnosis_codes = body
        .get("reasonCode")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|c| c.pointer("/coding/0/code").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(NewOrderInput {
        patient,
        provider_id,
        location_id,
        tests: vec![test.to_owned()],
        priority: order_priority(body)?.to_owned(),
        timed_at: body
            .get("occurrenceDateTime")
            .and_then(Value::as_str)
            .map(str::to_owned),
        clinical_notes: body
            .pointer("/note/0/text")
            .and_then(Value::as_str)
            .map(str::to_owned),
        diagnosis_codes,
        placer_order_number: placer,
        winged_collection_set: false,
    })
}

/// The use case's field names as FHIR element paths.
fn element(field: &str) -> String {
    let f = match field {
        "patient" | "patient.id" => "subject.reference",
        "patient.mrn" => "subject.identifier",
        f if f.starts_with("patient") => "subject",
        "provider_id" => "requester",
        "location_id" => "locationReference",
        "tests" | "test" => "code",
        "timed_at" => "occurrenceDateTime",
        "placer_order_number" => "identifier",
        "diagnosis_codes" => "reasonCode",
        "clinical_notes" => "note",
        other => other,
    };
    format!("ServiceRequest.{f}")
}

pub async fn create_request(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> FhirResult<Response> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|_| FhirError::invalid("ServiceRequest", "the body is not JSON"))?;
    let input = new_order(&body)?;
    let test = input.tests[0].clone();
    let o = state.app.place_order(&actor, input).await.map_err(|e| {
        let mut f = FhirError::from(e);
        f.field = f.field.map(|x| element(&x));
        f
    })?;
    let t = o
        .tests
        .iter()
        .find(|t| t.test_code.eq_ignore_ascii_case(&test))
        .or_else(|| o.tests.first())
        .ok_or_else(|| FhirError::not_found("ServiceRequest"))?;
    let names = Names::load(&state, &actor, std::slice::from_ref(&o)).await;
    let v = service_request(&o, t, &names);
    let mut resp = fhir_json(StatusCode::CREATED, v.to_string());
    if let Ok(loc) = HeaderValue::from_str(&format!(
        "{}/ServiceRequest/{}-{}",
        super::BASE,
        o.id,
        t.test_code
    )) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}
