//! The test catalogue (versioned, audited, retire-not-delete), providers and locations.

use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(catalog_lists_edits_and_retires, providers_and_locations);

fn glucose_poc() -> Value {
    json!({"code": "GLUF", "name": "Glucose fasting", "loinc": "1558-6", "department": "chemistry",
           "specimen_type": "plasma", "container": "GRY", "min_volume_ul": 100,
           "stability": {"room_hours": 24, "refrigerated_hours": 72},
           "result_type": "numeric", "precision": 0, "units": "mg/dL",
           "reportable_low": 10, "reportable_high": 800,
           "tat_minutes": {"stat": 60, "routine": 240}})
}

async fn catalog_lists_edits_and_retires(db: Db) {
    let app = spawn_app(db).await;
    seed_ordering(&app).await;
    let tech = app.token_for(Role::Technician).await;
    let admin = app.token_for(Role::Admin).await;
    let (s, list) = app.get("/api/v1/catalog/tests", &tech).await;
    assert_eq!(s, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert!(list.iter().filter(|t| t["kind"] == "test").count() >= 40);
    let cbc = list.iter().find(|t| t["code"] == "CBC").unwrap();
    assert_eq!(cbc["loinc"], "58410-2");
    assert_eq!(cbc["kind"], "panel");
    assert_eq!(cbc["components"].as_array().unwrap().len(), 9);
    let glu = list.iter().find(|t| t["code"] == "GLU").unwrap();
    assert_eq!(glu["loinc"], "2345-7");
    assert_eq!(glu["units"], "mg/dL");
    assert_eq!(glu["version"], 1);

    // Bad definitions: nothing written.
    let before = app.audit_len().await;
    let bad: Vec<(Value, &str, &str)> = vec![
        (
            {
                let mut d = glucose_poc();
                d["loinc"] = json!("1558-5");
                d
            },
            "loinc_check",
            "loinc",
        ),
        (
            {
                let mut d = glucose_poc();
                d["container"] = json!("XYZ");
                d
            },
            "unknown_container",
            "container",
        ),
        (
            {
                let mut d = glucose_poc();
                d["units"] = json!("mg//dL");
                d
            },
            "ucum_syntax",
            "units",
        ),
        (
            {
                let mut d = glucose_poc();
                d["department"] = json!("kitchen");
                d
            },
            "unknown_department",
            "department",
        ),
        (
            {
                let mut d = glucose_poc();
                d["min_volume_ul"] = json!(0);
                d
            },
            "min_volume_range",
            "min_volume_ul",
        ),
        (
            {
                let mut d = glucose_poc();
                d["reportable_low"] = json!(900);
                d
            },
            "reportable_range",
            "reportable_high",
        ),
        (
            {
                let mut d = glucose_poc();
                d["code"] = json!("GLU");
                d
            },
            "code_taken",
            "code",
        ),
        (
            json!({"code": "PNL", "name": "Panel", "kind": "panel", "components": ["NA", "NOPE"]}),
            "unknown_test",
            "components[1]",
        ),
    ];
    for (body, code, field) in bad {
        let got = app.post("/api/v1/catalog/tests", &admin, body).await;
        assert!(got.0.is_client_error(), "{}", got.1);
        assert_eq!(got.1["error"]["code"], code, "{}", got.1);
        assert_eq!(got.1["error"]["field"], field, "{}", got.1);
    }
    assert_eq!(app.audit_len().await, before);
    assert_error(
        &app.post("/api/v1/catalog/tests", &tech, glucose_poc())
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );

    let (s, e) = app
        .post("/api/v1/catalog/tests", &admin, glucose_poc())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(e["version"], 1);
    let mut d = glucose_poc();
    d["min_volume_ul"] = json!(200);
    assert_error(
        &app.put(
            "/api/v1/catalog/tests/GLUF",
            &admin,
            json!({"definition": d, "reason": ""}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let (s, e) = app
        .put(
            "/api/v1/catalog/tests/GLUF",
            &admin,
            json!({"definition": d, "reason": "new analyser dead volume"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["version"], 2);
    assert_eq!(e["min_volume_ul"], 200);
    let (_, got) = app.get("/api/v1/catalog/tests/gluf", &tech).await;
    assert_eq!(got, e);

    let (s, r) = app
        .post(
            "/api/v1/catalog/tests/GLUF/retire",
            &admin,
            json!({"reason": "replaced by GLU"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["version"], 3);
    assert_eq!(r["retired"], true);
    let (_, list) = app.get("/api/v1/catalog/tests", &tech).await;
    assert!(!list.as_array().unwrap().iter().any(|t| t["code"] == "GLUF"));
    let (_, all) = app
        .get("/api/v1/catalog/tests?include_retired=true", &tech)
        .await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|t| t["code"] == "GLUF" && t["retired"] == true)
    );
    assert_error(
        &app.put(
            "/api/v1/catalog/tests/GLUF",
            &admin,
            json!({"definition": d, "reason": "edit after retire"}),
        )
        .await,
        StatusCode::CONFLICT,
        "test_retired",
        None,
    );
    let (s, history) = app.get("/api/v1/catalog/tests/GLUF/versions", &tech).await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let versions: Vec<(i64, i64)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["definition"]["min_volume_ul"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, 100), (2, 200), (3, 200)]);
    assert_eq!(history[0]["changed_by"], "admin");
    let audit = app
        .app
        .store()
        .audit_events(0, 1000, Some(("catalog_test", "GLUF")))
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        ["catalog.create", "catalog.update", "catalog.retire"]
    );
    assert_eq!(
        audit[1].entry.old_value.as_ref().unwrap()["definition"]["min_volume_ul"],
        100
    );
    assert_eq!(
        audit[1].entry.new_value.as_ref().unwrap()["definition"]["min_volume_ul"],
        200
    );
    app.finish().await;
}

async fn providers_and_locations(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let tech = app.token_for(Role::Technician).await;
    let before = app.audit_len().await;
    let provider = |npi: &str| json!({"npi": npi, "family_name": "Quinn", "given_name": "Harleen", "phone": "+1 (555) 010-2000"});
    assert_error(
        &app.post("/api/v1/providers", &admin, provider("1234567890"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "npi_check",
        Some("npi"),
    );
    assert_error(
        &app.post("/api/v1/providers", &admin, provider("12345"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "npi_length",
        Some("npi"),
    );
    let mut no_phone = provider("1234567893");
    no_phone["phone"] = json!("call me");
    assert_error(
        &app.post("/api/v1/providers", &admin, no_phone).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "phone_format",
        Some("phone"),
    );
    let location = |kind: &str| json!({"code": "w-4", "name": "Ward 4", "kind": kind, "address": "Main hospital, 4th floor", "phone": "555 0199"});
    assert_error(
        &app.post("/api/v1/locations", &admin, location("garage"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "location_kind",
        Some("kind"),
    );
    assert_eq!(app.audit_len().await, before);

    let (s, p) = app
        .post("/api/v1/providers", &admin, provider("1234567893"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["npi"], "1234567893");
    assert_error(
        &app.post("/api/v1/providers", &admin, provider("1234567893"))
            .await,
        StatusCode::CONFLICT,
        "npi_taken",
        Some("npi"),
    );
    let (s, l) = app
        .post("/api/v1/locations", &admin, location("ward"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    assert_eq!(l["code"], "W-4");
    assert_error(
        &app.post("/api/v1/locations", &admin, location("ward"))
            .await,
        StatusCode::CONFLICT,
        "location_code_taken",
        Some("code"),
    );
    let (_, ps) = app.get("/api/v1/providers", &tech).await;
    assert_eq!(ps, json!([p]));
    let (_, ls) = app.get("/api/v1/locations", &tech).await;
    assert_eq!(ls, json!([l]));
    assert_error(
        &app.post("/api/v1/providers", &tech, provider("1234567893"))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_eq!(app.audit_len().await, before + 2);
    app.finish().await;
}
