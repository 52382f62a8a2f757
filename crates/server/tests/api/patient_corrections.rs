//! Patient corrections: demographics corrected with a reason, versioned, audited old/new,
//! orders kept; bad corrections write nothing; merged patients and likely duplicates refused.

use aliquot_domain::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    correction_is_versioned_audited_and_keeps_orders,
    bad_corrections_write_nothing,
    corrections_of_merged_patients_and_into_duplicates_are_refused,
);

async fn patch(app: &TestApp, id: i64, token: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::PATCH,
        &format!("/api/v1/patients/{id}"),
        Some(token),
        Some(body),
    )
    .await
}

async fn correction_is_versioned_audited_and_keeps_orders(db: Db) {
    let app = spawn_app(db).await;
    let (provider, location) = seed_ordering(&app).await;
    let t = app.token_for(Role::Technician).await;
    let mut body = patient_body("MRN-30", "Smyth", "Ann", "1970-05-06");
    body["middle_name"] = json!("Marie");
    body["contact"] = json!({"phone": "+1 555 0101", "email": "ann@example.org"});
    let id = register(&app, &t, body).await;
    let order = |birth_date: &str| {
        json!({"patient": {"mrn": "MRN-30", "birth_date": birth_date},
        "provider_id": provider, "location_id": location, "tests": ["CBC"], "priority": "routine"})
    };
    let (s, o) = app.post("/api/v1/orders", &t, order("1970-05-06")).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");

    let (s, p) = patch(
        &app,
        id,
        &t,
        json!({"family_name": "Smith", "birth_date": "1970-06-05", "middle_name": "",
               "contact": {"phone": "+1 555 0102"},
               "reason": "registered from a misread wristband"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (&p["id"], &p["mrn"], &p["family_name"], &p["given_name"]),
        (&json!(id), &json!("MRN-30"), &json!("Smith"), &json!("Ann"))
    );
    assert_eq!(p["middle_name"], json!(null));
    assert_eq!(p["birth_date"], "1970-06-05");
    assert_eq!(
        p["contact"],
        json!({"phone": "+1 555 0102", "email": "ann@example.org", "address": null})
    );
    let (_, got) = app.get(&format!("/api/v1/patients/{id}"), &t).await;
    assert_eq!(got, p);
    // The search keys follow the correction.
    let (_, found) = app.get("/api/v1/patients?family_name=SMITH", &t).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let (_, found) = app.get("/api/v1/patients?family_name=Smyth", &t).await;
    assert_eq!(found.as_array().unwrap().len(), 0, "{found}");
    // The order stays with the patient, and identification now uses the corrected data.
    let (_, got) = app.get(&format!("/api/v1/orders/{}", o["id"]), &t).await;
    assert_eq!(got["patient_id"], id);
    let (s, o2) = app.post("/api/v1/orders", &t, order("1970-06-05")).await;
    assert_eq!(s, StatusCode::CREATED, "{o2}");

    // Audited with old and new values of exactly what changed, and the reason.
    let events = app
        .app
        .store()
        .audit_events(0, 1000, Some(("patient", &id.to_string())))
        .await
        .unwrap();
    let e = &events.last().unwrap().entry;
    assert_eq!(e.action, "patient.correct");
    assert_eq!(
        e.reason.as_deref(),
        Some("registered from a misread wristband")
    );
    assert_eq!(
        e.old_value.as_ref().unwrap(),
        &json!({"family_name": "Smyth", "middle_name": "Marie", "birth_date": "1970-05-06",
                "contact": {"phone": "+1 555 0101", "email": "ann@example.org", "address": null}})
    );
    assert_eq!(
        e.new_value.as_ref().unwrap(),
        &json!({"family_name": "Smith", "middle_name": null, "birth_date": "1970-06-05",
                "contact": {"phone": "+1 555 0102", "email": "ann@example.org", "address": null},
                "replaced_version": 1})
    );

    // A second correction appends a second version.
    let (s, p2) = patch(
        &app,
        id,
        &t,
        json!({"sex": "U", "reason": "sex was not stated"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p2}");
    assert_eq!(p2["sex"], "U");
    let (s, v) = app
        .get(&format!("/api/v1/patients/{id}/versions"), &t)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["version"], 1);
    assert_eq!(
        (
            &v[0]["family_name"],
            &v[0]["middle_name"],
            &v[0]["birth_date"]
        ),
        (&json!("Smyth"), &json!("Marie"), &json!("1970-05-06"))
    );
    assert_eq!(v[0]["contact"]["phone"], "+1 555 0101");
    assert_eq!(v[0]["reason"], "registered from a misread wristband");
    assert_eq!(v[0]["replaced_by"], "technician");
    assert_eq!(v[1]["version"], 2);
    assert_eq!(
        (&v[1]["family_name"], &v[1]["sex"]),
        (&json!("Smith"), &json!("F"))
    );
    assert_eq!(v[1]["reason"], "sex was not stated");
    // Reading the versions is access-logged like reading the patient.
    let log = app.app.store().access_log(0, 1000).await.unwrap();
    let read = log
        .iter()
        .rfind(|r| r.action == "patient.versions")
        .unwrap();
    assert_eq!(
        (read.entity_id.as_str(), &read.patient_ids),
        (id.to_string().as_str(), &vec![id])
    );
    // The ordering physician may read the versions but not correct.
    let doc = physician_token(&app, provider).await;
    assert_eq!(
        app.get(&format!("/api/v1/patients/{id}/versions"), &doc)
            .await
            .0,
        StatusCode::OK
    );
    assert_error(
        &patch(&app, id, &doc, json!({"sex": "F", "reason": "because"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &app.get("/api/v1/patients/999999/versions", &t).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    app.finish().await;
}

async fn bad_corrections_write_nothing(db: Db) {
    let app = spawn_app(db).await;
    let t = app.token_for(Role::Technician).await;
    let id = register(
        &app,
        &t,
        patient_body("MRN-40", "Doe", "Jane", "1980-01-02"),
    )
    .await;
    let before = app.audit_len().await;
    for (body, status, code, field) in [
        (
            json!({"family_name": "Roe"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            "reason",
        ),
        (
            json!({"family_name": "Roe", "reason": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            "reason",
        ),
        (
            json!({"birth_date": "2999-01-01", "reason": "typo in year"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "birth_date_future",
            "birth_date",
        ),
        (
            json!({"birth_date": "02/01/1980", "reason": "typo in year"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "birth_date_format",
            "birth_date",
        ),
        (
            json!({"given_name": "J@ne", "reason": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_invalid_char",
            "given_name",
        ),
        (
            json!({"sex": "female", "reason": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sex_code",
            "sex",
        ),
        (
            json!({"contact": {"email": "x".repeat(201)}, "reason": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "contact_format",
            "contact.email",
        ),
        (
            json!({"mrn": "MRN-41", "reason": "typo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "mrn",
        ),
        (
            json!({"reason": "nothing given"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "correction_empty",
            "family_name",
        ),
        (
            json!({"family_name": " Doe ", "given_name": "Jane", "reason": "same"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "correction_unchanged",
            "family_name",
        ),
    ] {
        assert_error(&patch(&app, id, &t, body).await, status, code, Some(field));
    }
    assert_error(
        &patch(
            &app,
            999_999,
            &t,
            json!({"sex": "M", "reason": "wrong sex"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_eq!(
        app.audit_len().await,
        before,
        "a refused correction was written"
    );
    let (_, v) = app
        .get(&format!("/api/v1/patients/{id}/versions"), &t)
        .await;
    assert_eq!(v, json!([]));
    let (_, p) = app.get(&format!("/api/v1/patients/{id}"), &t).await;
    assert_eq!(
        (&p["family_name"], &p["birth_date"]),
        (&json!("Doe"), &json!("1980-01-02"))
    );
    app.finish().await;
}

async fn corrections_of_merged_patients_and_into_duplicates_are_refused(db: Db) {
    let app = spawn_app(db).await;
    let t = app.token_for(Role::Technician).await;
    let dir = app.token_for(Role::Director).await;
    let jon = register(
        &app,
        &t,
        patient_body("MRN-50", "Berg", "Jon", "1990-03-04"),
    )
    .await;
    let other = register(
        &app,
        &t,
        patient_body("MRN-51", "Lind", "Eva", "1960-07-08"),
    )
    .await;
    // Correcting Eva into Jon's twin is not silently accepted.
    let before = app.audit_len().await;
    let (s, e) = patch(
        &app,
        other,
        &t,
        json!({"family_name": "Berg", "given_name": "Jon", "birth_date": "1990-03-04", "sex": "F",
               "reason": "wrong patient picked"}),
    )
    .await;
    assert_error(
        &(s, e.clone()),
        StatusCode::CONFLICT,
        "possible_duplicate",
        None,
    );
    assert_eq!(e["error"]["candidates"][0]["patient_id"], jon, "{e}");
    assert_eq!(app.audit_len().await, before);
    // Confirmed by the registrar, it goes through and says so in the audit.
    let (s, p) = patch(
        &app,
        other,
        &t,
        json!({"family_name": "Berg", "given_name": "Jon", "birth_date": "1990-03-04", "sex": "F",
               "confirm_not_duplicate": true, "reason": "checked: a different person"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let events = app
        .app
        .store()
        .audit_events(0, 1000, Some(("patient", &other.to_string())))
        .await
        .unwrap();
    assert_eq!(
        events.last().unwrap().entry.new_value.as_ref().unwrap()["confirmed_not_duplicate_of"],
        json!([jon])
    );
    // A correction that does not touch name, birth date or sex is not re-checked.
    let (s, p) = patch(
        &app,
        other,
        &t,
        json!({"contact": {"phone": "+1 555 0199"}, "reason": "new phone number"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");

    // A merged-away record is corrected through its survivor only.
    let (s, m) = app
        .post(
            &format!("/api/v1/patients/{jon}/merge"),
            &dir,
            json!({"merged_patient_id": other, "reason": "same person after all"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let before = app.audit_len().await;
    assert_error(
        &patch(
            &app,
            other,
            &t,
            json!({"given_name": "John", "reason": "typo"}),
        )
        .await,
        StatusCode::CONFLICT,
        "patient_merged",
        None,
    );
    assert_eq!(app.audit_len().await, before);
    app.finish().await;
}
