//! FHIR R4 (issue 14 item 3) end to end: a released panel read back as Patient, Observation,
//! DiagnosticReport, ServiceRequest and Specimen; every search parameter and paging; a
//! correction seen as `corrected`; errors as OperationOutcome; a physician's scope; an order
//! placed by creating a ServiceRequest. Every resource served is validated by the independent
//! `fhir.resources` package (scripts/fhir-validate.py, in a venv this suite creates: a missing
//! Python or package is a failure, never a skip).

use std::path::PathBuf;

use crate::pypi::run;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, received_order, setup, tube};
use crate::support::*;

crate::both_backends!(
    a_released_panel_reads_back_as_valid_fhir,
    errors_are_operation_outcomes_and_physicians_see_their_own,
    creating_a_service_request_places_an_order,
);

const VALIDATOR: &str = "fhir.resources==8.3.0";

struct Fhir {
    status: StatusCode,
    content_type: String,
    text: String,
    json: Value,
}

async fn fhir(
    c: &Ctx,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Fhir {
    let mut req = c
        .app
        .client
        .request(method, format!("{}{path}", c.app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Fhir {
        status,
        content_type,
        text,
        json,
    }
}

async fn get(c: &Ctx, path: &str, token: &str) -> Fhir {
    let r = fhir(c, reqwest::Method::GET, path, Some(token), None).await;
    assert_eq!(r.content_type, "application/fhir+json", "{path}");
    r
}

/// A searchset's resources.
fn resources(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset", "{bundle}");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// An OperationOutcome error naming `expression` (when given).
fn assert_outcome(r: &Fhir, status: StatusCode, issue: &str, expression: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.content_type, "application/fhir+json");
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(r.json["issue"][0]["severity"], "error");
    assert_eq!(r.json["issue"][0]["code"], issue, "{}", r.text);
    if let Some(e) = expression {
        assert_eq!(r.json["issue"][0]["expression"], json!([e]), "{}", r.text);
    }
}

/// The venv's python with fhir.resources installed.
fn validator_python() -> PathBuf {
    crate::pypi::python_with(
        "fhir-resources-venv",
        &[VALIDATOR],
        "import fhir.resources.R4B",
    )
}

/// Validates every resource with fhir.resources; panics with its report on any failure.
pub(crate) fn validate(resources: &[Value]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("resources.json");
    std::fs::write(&file, serde_json::to_string(resources).unwrap()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/fhir-validate.py"
    );
    let report = run(
        Command::new(validator_python()).arg(script).arg(&file),
        "scripts/fhir-validate.py",
    );
    assert!(
        report.contains(&format!("{} resources, 0 invalid", resources.len())),
        "{report}"
    );
}

fn item(acc: &str, test: &str, value: &str) -> Value {
    json!({"accession": acc, "test": test, "value": value, "instrument": "CHEM-1"})
}

async fn released_panel(c: &Ctx) -> (i64, i64, String) {
    let now = c.app.app.now();
    let (order, o) = received_order(c, &["BMP"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [
                item(&sst, "NA", "140"), item(&sst, "K", "4.2"), item(&sst, "CL", "104"),
                item(&sst, "CO2", "24"), item(&sst, "BUN", "14"), item(&sst, "2160-0", "0.90"),
                item(&sst, "GLU", "182"), item(&sst, "CA", "9.5"),
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (order, o["patient_id"].as_i64().unwrap(), sst)
}

async fn a_released_panel_reads_back_as_valid_fhir(db: Db) {
    let c = setup(db).await;
    let (order, patient, sst) = released_panel(&c).await;
    let mut served: Vec<Value> = Vec::new();

    // The CapabilityStatement needs no login.
    let r = fhir(&c, reqwest::Method::GET, "/fhir/r4/metadata", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["resourceType"], "CapabilityStatement");
    assert_eq!(r.json["fhirVersion"], "4.0.1");
    served.push(r.json.clone());

    // Patient by MRN, name prefix (accents ignored), birth date; read.
    for q in [
        "identifier=urn:aliquot:mrn|MRN-900",
        "identifier=MRN-900",
        "name=okonkwo",
        "given=zoe",
        "family=Okonkwo-Lindqvist&birthdate=1961-04-09",
    ] {
        let r = get(&c, &format!("/fhir/r4/Patient?{q}"), &c.tech).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert_eq!(r.json["total"], 1, "{q}: {}", r.text);
        let p = &resources(&r.json)[0];
        assert_eq!(p["id"], patient.to_string());
        assert_eq!(p["name"][0]["family"], "Okonkwo-Lindqvist");
        assert_eq!(p["name"][0]["given"], json!(["Zoë"]));
        assert_eq!(p["gender"], "female");
        assert_eq!(p["birthDate"], "1961-04-09");
        assert_eq!(p["identifier"][0]["value"], "MRN-900");
        served.push(r.json.clone());
    }
    for q in [
        "family=zzz",
        "birthdate=1961-04-10",
        "identifier=urn:other|MRN-900",
    ] {
        let r = get(&c, &format!("/fhir/r4/Patient?{q}"), &c.tech).await;
        assert_eq!(r.json["total"], 0, "{q}: {}", r.text);
    }
    let r = get(&c, &format!("/fhir/r4/Patient/{patient}"), &c.tech).await;
    assert_eq!(r.status, StatusCode::OK);
    served.push(r.json.clone());

    // Observation by LOINC: the value exactly as reported, units in UCUM, the interval in
    // force at collection, the v3 interpretation.
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?patient={patient}&code=http://loinc.org|2823-3"),
        &c.tech,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let obs = resources(&r.json);
    assert_eq!(obs.len(), 1, "{}", r.text);
    let k = &obs[0];
    assert_eq!(k["status"], "final");
    assert_eq!(
        k["code"]["coding"][0],
        json!({"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"})
    );
    assert_eq!(k["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(k["specimen"]["reference"], format!("Specimen/{sst}"));
    assert_eq!(k["valueQuantity"]["unit"], "mmol/L");
    assert_eq!(k["valueQuantity"]["system"], "http://unitsofmeasure.org");
    assert!(r.text.contains(r#""value":4.2,"#), "{}", r.text);
    assert_eq!(k["referenceRange"][0]["text"], "3.5–5.1");
    assert!(r.text.contains(r#""low":{"value":3.5,"#), "{}", r.text);
    assert_eq!(k["interpretation"][0]["coding"][0]["code"], "N");
    assert_eq!(k["category"][0]["coding"][0]["code"], "laboratory");
    served.push(r.json.clone());
    // The lab's own code and the local code system find the same; "0.90" keeps its scale.
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?subject=Patient/{patient}&code=urn:aliquot:test-code|CREA"),
        &c.tech,
    )
    .await;
    assert_eq!(resources(&r.json).len(), 1, "{}", r.text);
    assert!(r.text.contains(r#""value":0.90,"#), "{}", r.text);
    let crea_id = resources(&r.json)[0]["id"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    // A high glucose is flagged H.
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?patient={patient}&code=GLU"),
        &c.tech,
    )
    .await;
    assert_eq!(
        resources(&r.json)[0]["interpretation"][0]["coding"][0]["code"],
        "H",
        "{}",
        r.text
    );
    // Several codes are alternatives; an unknown system or category matches nothing.
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?patient={patient}&code=K,NA"),
        &c.tech,
    )
    .await;
    assert_eq!(resources(&r.json).len(), 2, "{}", r.text);
    for q in [
        "code=http://snomed.info/sct|2823-3",
        "category=vital-signs",
        "code=NOPE",
    ] {
        let r = get(
            &c,
            &format!("/fhir/r4/Observation?patient={patient}&{q}"),
            &c.tech,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert!(resources(&r.json).is_empty(), "{q}: {}", r.text);
    }

    // Paging: every released result exactly once, newest first, pages of 3.
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?patient={patient}&category=laboratory"),
        &c.tech,
    )
    .await;
    let all: Vec<String> = resources(&r.json)
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 10, "8 posted and 2 calculated: {}", r.text);
    let mut paged = Vec::new();
    let mut url = Some(format!("/fhir/r4/Observation?patient={patient}&_count=3"));
    while let Some(u) = url {
        let r = get(&c, &u, &c.tech).await;
        assert_eq!(r.status, StatusCode::OK, "{u}: {}", r.text);
        let page = resources(&r.json);
        assert!(page.len() <= 3);
        paged.extend(page.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        served.push(r.json.clone());
        url = next_link(&r.json);
    }
    assert_eq!(paged, all);

    // Dates: the collection time, in the lab's days or to the second.
    let collected: Timestamp = k["effectiveDateTime"].as_str().unwrap().parse().unwrap();
    let day = collected.strftime("%Y-%m-%d").to_string();
    let second = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for (q, n) in [
        (format!("date={day}"), 10),
        (format!("date=ge{}", second(collected)), 10),
        (format!("date=gt{}", second(collected)), 0),
        (format!("date=lt{}", second(collected)), 0),
        (format!("date=le{}", second(collected)), 10),
        (format!("date=ge{day}&date=lt{day}"), 0),
    ] {
        let r = get(
            &c,
            &format!("/fhir/r4/Observation?patient={patient}&{q}"),
            &c.tech,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert_eq!(resources(&r.json).len(), n, "{q}");
    }

    // Read one; a correction shows as `corrected`, version 2, with the new value.
    let r = get(&c, &format!("/fhir/r4/Observation/{crea_id}"), &c.tech).await;
    assert_eq!(r.json["status"], "final");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{crea_id}/correct"),
            &c.mt,
            json!({"value": "1.80", "reason": "transcription error",
                   "signature": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = get(&c, &format!("/fhir/r4/Observation/{crea_id}"), &c.tech).await;
    assert_eq!(r.json["status"], "corrected", "{}", r.text);
    assert_eq!(r.json["meta"]["versionId"], "2");
    assert!(r.text.contains(r#""value":1.80,"#), "{}", r.text);
    assert_eq!(r.json["interpretation"][0]["coding"][0]["code"], "H");
    served.push(r.json.clone());

    // DiagnosticReport: the order's report, corrected, with its observations.
    let r = get(
        &c,
        &format!("/fhir/r4/DiagnosticReport?patient={patient}"),
        &c.tech,
    )
    .await;
    let reports = resources(&r.json);
    assert_eq!(reports.len(), 1, "{}", r.text);
    assert_eq!(reports[0]["id"], order.to_string());
    assert_eq!(reports[0]["status"], "corrected");
    assert_eq!(reports[0]["result"].as_array().unwrap().len(), 10);
    served.push(r.json.clone());
    for (q, n) in [
        ("status=corrected", 1),
        ("status=final", 0),
        (&format!("date={day}") as &str, 1),
    ] {
        let r = get(
            &c,
            &format!("/fhir/r4/DiagnosticReport?patient={patient}&{q}"),
            &c.tech,
        )
        .await;
        assert_eq!(resources(&r.json).len(), n, "{q}: {}", r.text);
    }
    let r = get(&c, &format!("/fhir/r4/DiagnosticReport/{order}"), &c.tech).await;
    assert_eq!(r.json["status"], "corrected");
    served.push(r.json.clone());

    // ServiceRequest: one per ordered test, the order as requisition.
    let order_id = order.to_string();
    let r = get(
        &c,
        &format!("/fhir/r4/ServiceRequest?patient={patient}"),
        &c.tech,
    )
    .await;
    let requests = resources(&r.json);
    assert!(requests.len() >= 8, "{}", r.text);
    assert!(
        requests
            .iter()
            .all(|s| s["requisition"]["value"].as_str() == Some(order_id.as_str()))
    );
    assert!(
        requests.iter().all(|s| s["status"] == "completed"),
        "{}",
        r.text
    );
    assert!(requests.iter().all(|s| s["priority"] == "stat"));
    served.push(r.json.clone());
    let r = get(
        &c,
        &format!("/fhir/r4/ServiceRequest?patient={patient}&status=active"),
        &c.tech,
    )
    .await;
    assert!(resources(&r.json).is_empty(), "{}", r.text);
    let r = get(&c, &format!("/fhir/r4/ServiceRequest/{order}-K"), &c.tech).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["code"]["coding"][0]["code"], "2823-3");
    served.push(r.json.clone());

    // Specimen by accession and by patient; read.
    let r = get(&c, &format!("/fhir/r4/Specimen?identifier={sst}"), &c.tech).await;
    assert_eq!(resources(&r.json).len(), 1, "{}", r.text);
    served.push(r.json.clone());
    let r = get(&c, &format!("/fhir/r4/Specimen?patient={patient}"), &c.tech).await;
    assert!(resources(&r.json).iter().any(|s| s["id"] == sst.as_str()));
    served.push(r.json.clone());
    let r = get(&c, &format!("/fhir/r4/Specimen/{sst}"), &c.tech).await;
    assert_eq!(r.json["type"]["coding"][0]["code"], "SER");
    assert_eq!(r.json["status"], "available");
    assert!(r.json["receivedTime"].is_string(), "{}", r.text);
    assert!(r.json["collection"]["collectedDateTime"].is_string());
    served.push(r.json.clone());

    // Every read went to the access log as a FHIR read.
    let admin = c.app.token_for(aliquot_domain::auth::Role::Admin).await;
    let (s, log) = c
        .app
        .get("/api/v1/audit/access-log?limit=500", &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let fhir_reads = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "fhir" && e["patient_ids"] == json!([patient]))
        .count();
    assert!(fhir_reads >= 20, "{fhir_reads} FHIR reads logged");

    validate(&served);
    c.app.finish().await;
}

async fn errors_are_operation_outcomes_and_physicians_see_their_own(db: Db) {
    let c = setup(db).await;
    let (order, patient, _) = released_panel(&c).await;
    let mut served = Vec::new();
    for (path, status, issue, expression) in [
        (
            "/fhir/r4/Observation",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("patient"),
        ),
        (
            "/fhir/r4/Observation?patient=abc",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("patient"),
        ),
        (
            "/fhir/r4/Observation?patient=1&colour=red",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("colour"),
        ),
        (
            "/fhir/r4/Observation?patient=1&date=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("date"),
        ),
        (
            "/fhir/r4/Observation?patient=1&_count=0",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("_count"),
        ),
        (
            "/fhir/r4/Patient",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("identifier"),
        ),
        (
            "/fhir/r4/Patient?birthdate=1961-13-01",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("birthdate"),
        ),
        (
            "/fhir/r4/Specimen",
            StatusCode::BAD_REQUEST,
            "invalid",
            Some("patient"),
        ),
        (
            "/fhir/r4/Patient/999999",
            StatusCode::NOT_FOUND,
            "not-found",
            None,
        ),
        (
            "/fhir/r4/Observation/999999",
            StatusCode::NOT_FOUND,
            "not-found",
            None,
        ),
        (
            "/fhir/r4/Observation?patient=999999",
            StatusCode::NOT_FOUND,
            "not-found",
            None,
        ),
        (
            "/fhir/r4/ServiceRequest/1-NOPE",
            StatusCode::NOT_FOUND,
            "not-found",
            None,
        ),
        (
            "/fhir/r4/Specimen/nonsense",
            StatusCode::NOT_FOUND,
            "not-found",
            None,
        ),
        (
            "/fhir/r4/Medication",
            StatusCode::NOT_FOUND,
            "not-supported",
            None,
        ),
    ] {
        let r = get(&c, path, &c.tech).await;
        assert_outcome(&r, status, issue, expression);
        served.push(r.json);
    }
    // Without a token: 401 with an OperationOutcome.
    let r = fhir(
        &c,
        reqwest::Method::GET,
        &format!("/fhir/r4/Patient/{patient}"),
        None,
        None,
    )
    .await;
    assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", None);
    // The administrator may not read orders and results: 403.
    let admin = c.app.token_for(aliquot_domain::auth::Role::Admin).await;
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?patient={patient}"),
        &admin,
    )
    .await;
    assert_outcome(&r, StatusCode::FORBIDDEN, "forbidden", None);
    // A physician of another provider finds nothing and reads nothing of this patient.
    let other = c
        .app
        .app
        .create_provider(
            &aliquot_app::Actor::cli("test"),
            aliquot_app::NewProviderInput {
                npi: "1245319599".into(),
                family_name: "Quinn".into(),
                given_name: "Michaela".into(),
                phone: "+1 555 0101".into(),
            },
        )
        .await
        .expect("provider");
    let doc = physician_token(&c.app, other.id).await;
    for path in [
        format!("/fhir/r4/Patient/{patient}"),
        format!("/fhir/r4/Observation?patient={patient}"),
        format!("/fhir/r4/DiagnosticReport/{order}"),
        format!("/fhir/r4/ServiceRequest?patient={patient}"),
    ] {
        let r = get(&c, &path, &doc).await;
        assert_outcome(&r, StatusCode::NOT_FOUND, "not-found", None);
    }
    let r = get(&c, "/fhir/r4/Patient?identifier=MRN-900", &doc).await;
    assert_eq!(r.json["total"], 0, "{}", r.text);
    // The ordering provider's physician reads them.
    let own = physician_token(&c.app, c.provider).await;
    let r = get(
        &c,
        &format!("/fhir/r4/Observation?patient={patient}&code=K"),
        &own,
    )
    .await;
    assert_eq!(resources(&r.json).len(), 1, "{}", r.text);
    validate(&served);
    c.app.finish().await;
}

fn request_body(c: &Ctx, placer: &str, birth_date: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "contained": [{"resourceType": "Patient", "id": "pat",
                       "identifier": [{"system": "urn:aliquot:mrn", "value": "MRN-900"}],
                       "name": [{"family": "Okonkwo-Lindqvist", "given": ["Zoë"]}],
                       "birthDate": birth_date}],
        "identifier": [{"system": "urn:aliquot:placer-order-number", "value": placer}],
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": "#pat"},
        "requester": {"reference": format!("Practitioner/{}", c.provider)},
        "locationReference": [{"reference": format!("Location/{}", c.location)}],
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}],
    })
}

async fn creating_a_service_request_places_an_order(db: Db) {
    let c = setup(db).await;
    let post = |body: Value| {
        fhir(
            &c,
            reqwest::Method::POST,
            "/fhir/r4/ServiceRequest",
            Some(&c.tech),
            Some(body),
        )
    };
    let r = post(request_body(&c, "EMR-4711", "1961-04-09")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["resourceType"], "ServiceRequest");
    assert_eq!(r.json["status"], "active");
    // The lab has no level between routine and asap: urgent is served as asap.
    assert_eq!(r.json["priority"], "asap");
    assert_eq!(r.json["code"]["coding"][0]["code"], "2345-7");
    assert_eq!(r.json["identifier"][0]["value"], "EMR-4711");
    let id = r.json["id"].as_str().unwrap().to_owned();
    let order: i64 = id.split('-').next().unwrap().parse().unwrap();
    let created = r.json.clone();
    // The same order through the REST API.
    let (s, o) = c.app.get(&format!("/api/v1/orders/{order}"), &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    assert_eq!(o["placer_order_number"], "EMR-4711");
    assert_eq!(o["tests"][0]["test_code"], "GLU");
    assert_eq!(o["diagnosis_codes"], json!(["E11.9"]));
    let r = get(&c, &format!("/fhir/r4/ServiceRequest/{id}"), &c.tech).await;
    assert_eq!(r.json, created);
    // The same placer order number again: a duplicate, refused.
    let r = post(request_body(&c, "EMR-4711", "1961-04-09")).await;
    assert_outcome(&r, StatusCode::CONFLICT, "duplicate", None);
    // One identifier matching is not positive identification.
    let r = post(request_body(&c, "EMR-4712", "1970-01-01")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome");
    let expr = r.json["issue"][0]["expression"][0].as_str().unwrap_or("");
    assert!(expr.starts_with("ServiceRequest.subject"), "{}", r.text);
    // Missing pieces are named.
    let mut b = request_body(&c, "EMR-4713", "1961-04-09");
    b.as_object_mut().unwrap().remove("requester");
    let r = post(b).await;
    assert_outcome(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        Some("ServiceRequest.requester"),
    );
    let mut b = request_body(&c, "EMR-4714", "1961-04-09");
    b["code"] = json!({"coding": [{"system": "http://snomed.info/sct", "code": "1"}]});
    let r = post(b).await;
    assert_outcome(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        Some("ServiceRequest.code"),
    );
    let r = post(json!({"resourceType": "Patient"})).await;
    assert_outcome(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid",
        Some("ServiceRequest.resourceType"),
    );
    // Nothing refused was written: the patient has the one order.
    let patient = o["patient_id"].as_i64().unwrap();
    let (s, orders) = c
        .app
        .get(&format!("/api/v1/orders?patient_id={patient}"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{orders}");
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");
    validate(&[created]);
    c.app.finish().await;
}
