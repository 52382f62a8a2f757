//! The API contract (issue 16, "The API contract"): what schemathesis found, each as a
//! regression test through the real API. JSON is read as JSON Schema reads it (an object only
//! from an object, `563.0` is an integer), every error names its field in the API's words and
//! never Rust's, and the OpenAPI document describes what the server answers.
//! (`crates/cli/tests/schemathesis.rs` runs schemathesis itself against the demo server.)

use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    json_is_read_as_its_schema_says_and_errors_name_their_field,
    an_integer_written_with_a_zero_fraction_is_an_integer,
    the_audit_verification_covers_the_access_log,
);

/// No error message may show a Rust type name.
fn assert_no_rust_names(body: &Value) {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for leak in [
        "struct ", "enum ", "i64", "u32", "u8", "i32", "u64", "f64", "usize", "Dto",
    ] {
        assert!(
            !message.contains(leak),
            "the message leaks `{leak}`: {body}"
        );
    }
    assert_ne!(body["error"]["field"], "?", "{body}");
}

async fn json_is_read_as_its_schema_says_and_errors_name_their_field(db: Db) {
    let app = spawn_app(db).await;
    seed_ordering(&app).await;
    let tech = app.token_for(Role::Technician).await;
    let admin = app.token_for(Role::Admin).await;
    let before = app.audit_len().await;
    let patients_before = app.app.store().access_log(0, 1000).await.unwrap().len();
    let raw = |path: &'static str, token: Option<String>, body: &'static str| {
        let mut req = app
            .client
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    // (path, caller, body, status, code, field).
    type Case = (
        &'static str,
        Option<String>,
        &'static str,
        StatusCode,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        // A positional array in place of an object created a patient, or logged in.
        (
            "/api/v1/patients",
            Some(tech.clone()),
            r#"["DEMO-9999", "Doe", "Jane", null, "1980-01-01", "female", null, null, null, null]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        (
            "/api/v1/auth/token",
            None,
            r#"["technician", "correct horse battery"]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        // Malformed JSON names no field rather than "?".
        (
            "/api/v1/auth/token",
            None,
            r#"{"username" "technician"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_json",
            None,
        ),
        // A duplicate key names its field.
        (
            "/api/v1/auth/token",
            None,
            r#"{"username": "technician", "username": "admin", "password": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("username"),
        ),
        // A string where an object is expected.
        (
            "/api/v1/auth/token",
            None,
            r#""technician""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        // A number for a string field names the field and says what it takes.
        (
            "/api/v1/users",
            Some(admin.clone()),
            r#"{"username": "eve", "display_name": "Eve", "role": "technician", "password": 5.5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("password"),
        ),
    ];
    for (path, token, body, status, code, field) in cases {
        let resp = raw(path, token, body).await.unwrap();
        let got = (resp.status(), resp.json::<Value>().await.unwrap());
        assert_error(&got, status, code, field);
        assert_no_rust_names(&got.1);
        if field.is_none() && code == "invalid_json" {
            assert!(got.1["error"].get("field").is_none(), "{}", got.1);
        }
        if body.starts_with('[') || body.starts_with('"') {
            assert!(
                got.1["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("a JSON object"),
                "{}",
                got.1
            );
        }
    }
    // Path and query parameters: named, in the API's words.
    let got = app
        .put(
            "/api/v1/users/abc/role",
            &admin,
            json!({"role": "technician", "reason": "x y z"}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_path", Some("id"));
    assert_no_rust_names(&got.1);
    let got = app
        .get("/api/v1/audit/events?after=yesterday", &admin)
        .await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        Some("after"),
    );
    assert_no_rust_names(&got.1);
    let got = app.get("/api/v1/audit/events?sort=desc", &admin).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_query", Some("sort"));
    // Nothing was written: no patient, no audit event, no access row, no user.
    assert_eq!(app.audit_len().await, before);
    assert_eq!(
        app.app.store().access_log(0, 1000).await.unwrap().len(),
        patients_before
    );
    let (_, found) = app.get("/api/v1/patients?mrn=DEMO-9999", &tech).await;
    assert_eq!(found, json!([]));
    assert!(
        app.app
            .store()
            .user_by_username("eve")
            .await
            .unwrap()
            .is_none()
    );
    app.finish().await;
}

/// JSON Schema counts `563.0` as an integer: it is accepted for an integer field and stored
/// as 563; `563.5` is refused naming the field.
async fn an_integer_written_with_a_zero_fraction_is_an_integer(db: Db) {
    let app = spawn_app(db).await;
    seed_ordering(&app).await;
    let admin = app.token_for(Role::Admin).await;
    let mut body = json!({"code": "GLUF", "name": "Glucose fasting", "loinc": "1558-6",
        "department": "chemistry", "specimen_type": "plasma", "container": "GRY",
        "min_volume_ul": 563.0, "stability": {"room_hours": 24.0},
        "result_type": "numeric", "precision": 0, "units": "mg/dL",
        "tat_minutes": {"stat": 60, "routine": 240}});
    let (status, created) = app
        .post("/api/v1/catalog/tests", &admin, body.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["min_volume_ul"], 563);
    // Hours are stored as minutes.
    assert_eq!(created["stability"]["room_minutes"], 24 * 60, "{created}");
    let (_, read) = app.get("/api/v1/catalog/tests/GLUF", &admin).await;
    assert_eq!(read["min_volume_ul"], 563);
    body["code"] = json!("GLUG");
    body["min_volume_ul"] = json!(563.5);
    let got = app
        .post("/api/v1/catalog/tests", &admin, body.clone())
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("min_volume_ul"),
    );
    assert_no_rust_names(&got.1);
    body["min_volume_ul"] = json!(-1);
    let got = app.post("/api/v1/catalog/tests", &admin, body).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("min_volume_ul"),
    );
    assert_no_rust_names(&got.1);
    app.finish().await;
}

/// `GET /audit/verify` reports the access log's chain beside the audit chain (issue 16
/// item 4): a read of a patient adds a chained row.
async fn the_audit_verification_covers_the_access_log(db: Db) {
    let app = spawn_app(db).await;
    seed_ordering(&app).await;
    let tech = app.token_for(Role::Technician).await;
    let admin = app.token_for(Role::Admin).await;
    let (_, v) = app.get("/api/v1/audit/verify", &admin).await;
    let rows_before = v["access_log"]["rows"].as_i64().unwrap();
    let (s, _) = app.get("/api/v1/patients?mrn=NOBODY", &tech).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.get("/api/v1/audit/verify", &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["access_log"]["intact"], true, "{v}");
    assert_eq!(
        v["access_log"]["rows"].as_i64().unwrap(),
        rows_before + 1,
        "{v}"
    );
    assert_eq!(v["access_log"]["head_seq"], v["access_log"]["rows"], "{v}");
    app.finish().await;
}

/// The OpenAPI document describes what the server answers (the cases schemathesis found).
#[test]
fn the_openapi_document_describes_the_server() {
    let doc = serde_json::to_value(aliquot_server::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    // A flattened struct is one object, not an `allOf` whose first part refuses the rest.
    let entry = &schemas["CatalogEntryDto"];
    assert!(entry.get("allOf").is_none(), "{entry}");
    for field in ["id", "version", "retired", "code", "name", "stability"] {
        assert!(entry["properties"].get(field).is_some(), "{field}: {entry}");
    }
    // Audit values may be null (no value before a creation).
    let old = &schemas["AuditEventDto"]["properties"]["old_value"];
    assert!(
        old.to_string().contains("null") || old == &json!({}),
        "{old}"
    );
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    // Edge errors are documented where they can happen.
    let register = op("/api/v1/patients", "post");
    for status in ["400", "401", "403", "413", "415", "422"] {
        assert!(
            register["responses"].get(status).is_some(),
            "POST /patients: no {status}"
        );
    }
    let search = op("/api/v1/patients", "get");
    assert!(search["responses"].get("400").is_some());
    assert!(search["responses"].get("415").is_none());
    let get = op("/api/v1/patients/{id}", "get");
    for status in ["400", "404"] {
        assert!(get["responses"].get(status).is_some(), "{status}");
    }
    // Scans: PDF, PNG or JPEG bytes in, the stored media type out.
    let upload = op("/api/v1/orders/{id}/scans", "post");
    let download = op("/api/v1/scans/{id}", "get");
    for media in ["application/pdf", "image/png", "image/jpeg"] {
        assert_eq!(
            upload["requestBody"]["content"][media]["schema"]["type"], "string",
            "{upload}"
        );
        assert!(
            download["responses"]["200"]["content"].get(media).is_some(),
            "{download}"
        );
    }
    assert!(
        download["responses"]["200"]["content"]
            .get("application/octet-stream")
            .is_none()
    );
    // The catalogue's entries are named by their code.
    assert!(doc["paths"].get("/api/v1/catalog/tests/{code}").is_some());
    assert!(doc["paths"].get("/api/v1/catalog/tests/{id}").is_none());
}
