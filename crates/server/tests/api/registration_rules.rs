//! Issue 10 items 15–17 as the issue reproduced them: duplicates the check missed (a day
//! off, a transposed year, a married name, a Cyrillic look-alike letter), names stored in NFC
//! and found by prefix; physicians who read only their own patients; a clinical sex that
//! selects the reference interval.

use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::results::{received_order, setup, test_of, tube};
use crate::support::*;

crate::both_backends!(
    duplicates_the_check_missed_are_refused_and_names_found,
    physicians_read_only_their_own_patients,
    clinical_sex_selects_the_reference_interval,
);

fn family_names(found: &Value) -> Vec<String> {
    let mut v: Vec<String> = found
        .as_array()
        .unwrap_or_else(|| panic!("{found}"))
        .iter()
        .map(|p| p["family_name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn duplicates_the_check_missed_are_refused_and_names_found(db: Db) {
    let app = spawn_app(db).await;
    let t = app.token_for(Role::Technician).await;
    let anna = register(
        &app,
        &t,
        patient_body("MRN-1", "Smith", "Anna", "1980-03-04"),
    )
    .await;
    let before = app.audit_len().await;
    // Each of these was registered without a warning before.
    let cases = [
        (
            patient_body("MRN-2", "Smith", "Anna", "1980-03-05"),
            "birth_date_one_day_off",
        ),
        (
            patient_body("MRN-3", "Smith", "Anna", "1908-03-04"),
            "birth_year_digits_transposed",
        ),
        (
            patient_body("MRN-4", "Jones", "Anna", "1980-03-04"),
            "family_name_changed",
        ),
        (
            patient_body("MRN-5", "Sm\u{0456}th", "Anna", "1980-03-04"),
            "exact_name",
        ),
    ];
    for (body, reason) in cases {
        let got = app.post("/api/v1/patients", &t, body).await;
        assert_error(&got, StatusCode::CONFLICT, "possible_duplicate", None);
        assert_eq!(
            got.1["error"]["candidates"],
            json!([{"patient_id": anna, "reason": reason}]),
            "{reason}"
        );
    }
    assert_eq!(app.audit_len().await, before, "a refusal wrote nothing");
    // Another person: same birth date, other given name and family name.
    register(
        &app,
        &t,
        patient_body("MRN-6", "Okafor", "Chidi", "1980-03-04"),
    )
    .await;

    // Names are stored in NFC; the ligature stays as typed (NFC), the keys fold it.
    let zoe = register(
        &app,
        &t,
        patient_body("MRN-7", "\u{FB01}sher", "Zoe\u{0308}", "1990-01-02"),
    )
    .await;
    let (_, p) = app.get(&format!("/api/v1/patients/{zoe}"), &t).await;
    assert_eq!(p["given_name"], "Zo\u{eb}", "{p}");
    assert_eq!(p["family_name"], "\u{FB01}sher");
    let (_, found) = app.get("/api/v1/patients?family_name=Fisher", &t).await;
    assert_eq!(family_names(&found), ["\u{FB01}sher"]);
    let (_, found) = app.get("/api/v1/patients?given_name=zoe", &t).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");

    // A Cyrillic а in the family name: found by a search for Garcia and by the prefix gar,
    // and a duplicate candidate of the Latin spelling.
    let cyr = register(
        &app,
        &t,
        patient_body("MRN-8", "G\u{0430}rcia", "Luis", "1975-07-01"),
    )
    .await;
    let (_, found) = app.get("/api/v1/patients?family_name=Garcia", &t).await;
    assert_eq!(family_names(&found), ["G\u{0430}rcia"]);
    let got = app
        .post(
            "/api/v1/patients",
            &t,
            patient_body("MRN-9", "Garcia", "Luis", "1975-07-02"),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "possible_duplicate", None);
    assert_eq!(
        got.1["error"]["candidates"],
        json!([{"patient_id": cyr, "reason": "birth_date_one_day_off"}])
    );
    let mut luisa = patient_body("MRN-9", "García", "Luisa", "1975-07-02");
    luisa["sex"] = json!("F");
    register(&app, &t, luisa).await;
    let (_, found) = app.get("/api/v1/patients?family_name=gar", &t).await;
    assert_eq!(family_names(&found), ["García", "G\u{0430}rcia"]);
    let (_, found) = app
        .get("/api/v1/patients?family_name=GAR&given_name=lu", &t)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");
    let (_, found) = app.get("/api/v1/patients?family_name=garz", &t).await;
    assert_eq!(found, json!([]));
    app.finish().await;
}

async fn physicians_read_only_their_own_patients(db: Db) {
    let app = spawn_app(db).await;
    let (house, location) = seed_ordering(&app).await;
    let wilson = app
        .app
        .create_provider(
            &aliquot_app::Actor::cli("test"),
            aliquot_app::NewProviderInput {
                npi: "1245319599".into(),
                family_name: "Wilson".into(),
                given_name: "James".into(),
                phone: "+1 555 0199".into(),
            },
        )
        .await
        .expect("provider")
        .id;
    let t = app.token_for(Role::Technician).await;
    let own = register(
        &app,
        &t,
        patient_body("MRN-1", "Adams", "Ada", "1950-01-01"),
    )
    .await;
    let other = register(
        &app,
        &t,
        patient_body("MRN-2", "Adler", "Bea", "1960-02-02"),
    )
    .await;
    let order = |mrn: &str, birth: &str, provider: i64| {
        json!({"patient": {"mrn": mrn, "birth_date": birth}, "provider_id": provider,
               "location_id": location, "tests": ["CBC"], "priority": "routine"})
    };
    let (s, own_order) = app
        .post("/api/v1/orders", &t, order("MRN-1", "1950-01-01", house))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{own_order}");
    let (s, other_order) = app
        .post("/api/v1/orders", &t, order("MRN-2", "1960-02-02", wilson))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{other_order}");
    let other_acc = other_order["specimens"][0]["accession"].as_str().unwrap();
    let own_acc = own_order["specimens"][0]["accession"].as_str().unwrap();

    let doc_id = app.create_user("house", Role::Physician).await;
    let doc = app.login("house").await;
    // No provider linked: nobody.
    assert_error(
        &app.get(&format!("/api/v1/patients/{own}"), &doc).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (s, found) = app.get("/api/v1/patients?family_name=ad", &doc).await;
    assert_eq!((s, found), (StatusCode::OK, json!([])));

    // Only an administrator links a user to a provider, with a reason; audited.
    let admin = app.token_for(Role::Admin).await;
    let link = |p: Value| json!({"provider_id": p, "reason": "Dr House joined the staff"});
    let path = format!("/api/v1/users/{doc_id}/provider");
    let (s, _) = app.put(&path, &t, link(json!(house))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let before = app.audit_len().await;
    assert_error(
        &app.put(&path, &admin, link(json!(999_999))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_provider",
        Some("provider_id"),
    );
    assert_error(
        &app.put(&path, &admin, json!({"provider_id": house, "reason": ""}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    assert_eq!(app.audit_len().await, before, "refusals wrote nothing");
    let (s, v) = app.put(&path, &admin, link(json!(house))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"user_id": doc_id, "provider_id": house}));
    let events = app
        .app
        .store()
        .audit_events(before, 100, Some(("user", &doc_id.to_string())))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entry.action, "user.provider");
    assert_eq!(
        events[0].entry.new_value,
        Some(json!({"provider_id": house}))
    );
    assert_eq!(
        events[0].entry.reason.as_deref(),
        Some("Dr House joined the staff")
    );

    // Their own patient: readable everywhere.
    let reads = |patient: i64, order: &Value, acc: &str| {
        vec![
            format!("/api/v1/patients/{patient}"),
            format!("/api/v1/patients/{patient}/versions"),
            format!("/api/v1/patients/{patient}/results?test=CREA"),
            format!("/api/v1/orders/{}", order["id"]),
            format!("/api/v1/orders/{}/tat", order["id"]),
            format!("/api/v1/orders/{}/scans", order["id"]),
            format!("/api/v1/specimens/{acc}"),
        ]
    };
    for path in reads(own, &own_order, own_acc) {
        let (s, v) = app.get(&path, &doc).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    // Another physician's patient: answered as if it did not exist.
    let (_, missing) = app.get("/api/v1/patients/999999", &doc).await;
    for path in reads(other, &other_order, other_acc) {
        let (s, v) = app.get(&path, &doc).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
        assert!(!v.to_string().contains("Adler"), "{path}: {v}");
    }
    let (_, v) = app.get(&format!("/api/v1/patients/{other}"), &doc).await;
    assert_eq!(
        v, missing,
        "the answer does not tell that the patient exists"
    );
    let (_, found) = app.get("/api/v1/patients?family_name=ad", &doc).await;
    assert_eq!(family_names(&found), ["Adams"]);
    let (_, found) = app
        .get(&format!("/api/v1/orders?patient_id={other}"), &doc)
        .await;
    assert_eq!(found, json!([]));
    let (_, found) = app
        .get(&format!("/api/v1/orders?patient_id={own}"), &doc)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    // Other roles are not restricted.
    let (s, _) = app.get(&format!("/api/v1/patients/{other}"), &t).await;
    assert_eq!(s, StatusCode::OK);
    // Unlinked again: nobody.
    let (s, _) = app.put(&path, &admin, link(Value::Null)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get(&format!("/api/v1/patients/{own}"), &doc).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.finish().await;
}

async fn clinical_sex_selects_the_reference_interval(db: Db) {
    let c = setup(db).await;
    let (_, found) = c.app.get("/api/v1/patients?mrn=MRN-900", &c.tech).await;
    let id = found[0]["id"].as_i64().unwrap();
    let patch = |body: Value| {
        let app = &c.app;
        let tech = c.tech.clone();
        async move {
            app.call(
                Method::PATCH,
                &format!("/api/v1/patients/{id}"),
                Some(&tech),
                Some(body),
            )
            .await
        }
    };
    // Bad values name their field and write nothing.
    let before = c.app.audit_len().await;
    for (body, code, field) in [
        (
            json!({"clinical_sex": "F", "reason": "from the EMR"}),
            "clinical_sex_code",
            "clinical_sex",
        ),
        (
            json!({"birth_time": "7:30", "reason": "from the EMR"}),
            "birth_time_format",
            "birth_time",
        ),
        (json!({"clinical_sex": "male"}), "reason_required", "reason"),
    ] {
        assert_error(
            &patch(body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            Some(field),
        );
    }
    let mut bad = patient_body("MRN-901", "Other", "Person", "2001-01-01");
    bad["clinical_sex"] = json!("intersex");
    assert_error(
        &c.app.post("/api/v1/patients", &c.tech, bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "clinical_sex_code",
        Some("clinical_sex"),
    );
    assert_eq!(c.app.audit_len().await, before);

    // Registration accepts and returns the new fields.
    let mut body = patient_body("MRN-902", "Nakamura", "Kai", "2001-01-01");
    body["sex"] = json!("M");
    body["clinical_sex"] = json!("female");
    body["birth_time"] = json!("07:30");
    let (s, p) = c.app.post("/api/v1/patients", &c.tech, body).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(
        (&p["sex"], &p["clinical_sex"], &p["birth_time"]),
        (&json!("M"), &json!("female"), &json!("07:30"))
    );

    // The patient of the results suite: administrative F, 65 years old.
    let crea_interval = || async {
        let now = c.app.app.now();
        let (order, o) = received_order(&c, &["BMP"], now - SignedDuration::from_mins(30)).await;
        let sst = tube(&o, "SST");
        let (s, v) = c
            .app
            .post(
                "/api/v1/results",
                &c.tech,
                json!({"results": [{"accession": sst, "test": "2160-0", "value": "0.90",
                       "instrument": "CHEM-1"}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, o) = c.app.get(&format!("/api/v1/orders/{order}"), &c.tech).await;
        test_of(&o["tests"], "CREA")["result"]["reference_interval"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(crea_interval().await, "0.44–1.00");
    // A clinical sex of male: the male interval, though the administrative sex is F.
    let (s, p) = patch(json!({"clinical_sex": "male", "birth_time": "06:15",
                               "reason": "sex parameter for clinical use from the EMR"}))
    .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (&p["sex"], &p["clinical_sex"], &p["birth_time"]),
        (&json!("F"), &json!("male"), &json!("06:15"))
    );
    assert_eq!(crea_interval().await, "0.61–1.24");
    // Unknown: both sexes' intervals, never male by default.
    let (s, _) = patch(json!({"clinical_sex": "unknown", "reason": "not known after all"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(crea_interval().await, "F 0.44–1.00; M 0.61–1.24");
    // Cleared: the administrative sex again.
    let (s, p) = patch(json!({"clinical_sex": "", "reason": "recorded in error"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["clinical_sex"], Value::Null);
    assert_eq!(crea_interval().await, "0.44–1.00");
    // Every change is versioned and audited with old and new values.
    let (_, versions) = c
        .app
        .get(&format!("/api/v1/patients/{id}/versions"), &c.tech)
        .await;
    let clinical: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["clinical_sex"])
        .collect();
    assert_eq!(clinical, [&Value::Null, &json!("male"), &json!("unknown")]);
    let events = c
        .app
        .app
        .store()
        .audit_events(0, 1000, Some(("patient", &id.to_string())))
        .await
        .unwrap();
    let corrections: Vec<_> = events
        .iter()
        .filter(|e| e.entry.action == "patient.correct")
        .collect();
    assert_eq!(corrections.len(), 3);
    assert_eq!(
        corrections[0].entry.old_value,
        Some(json!({"clinical_sex": null, "birth_time": null}))
    );
    assert_eq!(
        corrections[0].entry.new_value.as_ref().unwrap()["clinical_sex"],
        "male"
    );
    c.app.finish().await;
}
