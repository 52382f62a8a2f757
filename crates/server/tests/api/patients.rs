//! Patients: registration, search and read (access-logged), bad input, duplicate detection,
//! merge and unmerge.

use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    register_search_and_read,
    bad_registrations_write_nothing,
    duplicates_are_refused_with_candidates,
    merge_moves_orders_and_unmerge_restores_them,
    the_interface_account_reads_no_patient,
);

/// Issue 16 item 6: the interface account registers patients and places orders (matched
/// inside the use cases), but reads no patient: not by id, not by search, not the versions.
async fn the_interface_account_reads_no_patient(db: Db) {
    let app = spawn_app(db).await;
    let tech = app.token_for(Role::Technician).await;
    let iface = app.token_for(Role::Interface).await;
    let (status, p) = app
        .post(
            "/api/v1/patients",
            &tech,
            json!({"mrn": "MRN-2001", "family_name": "Okafor", "given_name": "Ada",
                   "birth_date": "1975-06-01", "sex": "F"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let id = p["id"].as_i64().unwrap();
    let before = app.audit_len().await;
    for path in [
        format!("/api/v1/patients/{id}"),
        format!("/api/v1/patients/{id}/versions"),
        "/api/v1/patients?mrn=MRN-2001".to_owned(),
        "/api/v1/patients?family_name=oka".to_owned(),
        "/api/v1/patients?birth_date=1975-06-01".to_owned(),
    ] {
        let got = app.get(&path, &iface).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
        assert!(!got.1.to_string().contains("Okafor"), "{path}: {}", got.1);
    }
    // Registering still works (what an EMR connection needs), and answers only the record
    // the interface itself sent.
    let (status, q) = app
        .post(
            "/api/v1/patients",
            &iface,
            json!({"mrn": "MRN-2002", "family_name": "Lindqvist", "given_name": "Per",
                   "birth_date": "1960-01-15", "sex": "M"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    assert!(app.audit_len().await > before);
    app.finish().await;
}

async fn register_search_and_read(db: Db) {
    let app = spawn_app(db).await;
    let t = app.token_for(Role::Technician).await;
    let (status, p) = app
        .post(
            "/api/v1/patients",
            &t,
            json!({"mrn": "mrn-1001", "family_name": "Núñez", "given_name": "José", "middle_name": "Luis",
                   "birth_date": "1980-02-29", "sex": "O",
                   "identifiers": [{"system": "st-mary", "value": "sm-77"}],
                   "contact": {"phone": "+1 555 0101", "address": "2 Elm Street"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["mrn"], "MRN-1001");
    assert_eq!(p["sex"], "O");
    assert_eq!(p["identifiers"][0]["system"], "ST-MARY");
    assert_eq!(p["contact"]["phone"], "+1 555 0101");
    let id = p["id"].as_i64().unwrap();
    let u = register(
        &app,
        &t,
        json!({"mrn": "MRN-1002", "family_name": "Smith", "given_name": "Ann",
        "birth_date": "1990-01-01", "sex": "U"}),
    )
    .await;

    let (s, got) = app.get(&format!("/api/v1/patients/{id}"), &t).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, p);
    let (s, found) = app
        .get("/api/v1/patients?mrn=mrn-1001&birth_date=1980-02-29", &t)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], id);
    let (_, found) = app
        .get("/api/v1/patients?family_name=NUNEZ&given_name=jose", &t)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, found) = app.get("/api/v1/patients?birth_date=1990-01-01", &t).await;
    assert_eq!(found[0]["id"], u);
    let (_, found) = app
        .get("/api/v1/patients?mrn=MRN-1001&birth_date=1980-03-01", &t)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 0);
    assert_error(
        &app.get("/api/v1/patients", &t).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "search_criteria_required",
        None,
    );
    assert_error(
        &app.get("/api/v1/patients/424242", &t).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    // Every read of patient data is in the access log, with the patients returned.
    let log = app.app.store().access_log(0, 100).await.unwrap();
    let reads: Vec<_> = log.iter().filter(|a| a.action == "patient.read").collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].patient_ids, vec![id]);
    let searches: Vec<_> = log
        .iter()
        .filter(|a| a.action == "patient.search")
        .collect();
    assert_eq!(searches.len(), 4);
    assert_eq!(searches[0].patient_ids, vec![id]);
    assert_eq!(searches[0].actor_name, "technician");

    // The physician may not register, and reads only the patients of their own orders:
    // this one has none (issue 10 item 16), so it is not found.
    let doc = app.token_for(Role::Physician).await;
    assert_eq!(
        app.get(&format!("/api/v1/patients/{id}"), &doc).await.0,
        StatusCode::NOT_FOUND
    );
    assert_error(
        &app.post(
            "/api/v1/patients",
            &doc,
            patient_body("X1", "A", "B", "2000-01-01"),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    app.finish().await;
}

async fn bad_registrations_write_nothing(db: Db) {
    let app = spawn_app(db).await;
    let t = app.token_for(Role::Technician).await;
    let mut jane = patient_body("MRN-1", "Doe", "Jane", "1970-05-06");
    jane["identifiers"] = json!([{"system": "ST-MARY", "value": "SM-1"}]);
    register(&app, &t, jane).await;
    let before = app.audit_len().await;
    let mut taken = patient_body("MRN-9", "Other", "Person", "2001-01-01");
    taken["identifiers"] =
        json!([{"system": "OTHER", "value": "X"}, {"system": "st-mary", "value": "sm-1"}]);
    assert_error(
        &app.post("/api/v1/patients", &t, taken).await,
        StatusCode::CONFLICT,
        "identifier_taken",
        Some("identifiers[1]"),
    );
    assert_error(
        &app.post(
            "/api/v1/patients",
            &t,
            patient_body("mrn-1", "Other", "Person", "2001-01-01"),
        )
        .await,
        StatusCode::CONFLICT,
        "mrn_taken",
        Some("mrn"),
    );
    let tomorrow = app
        .app
        .now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    assert_error(
        &app.post(
            "/api/v1/patients",
            &t,
            patient_body("MRN-2", "Other", "Person", &tomorrow.to_string()),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "birth_date_future",
        Some("birth_date"),
    );
    let mut bad_sex = patient_body("MRN-3", "Other", "Person", "2001-01-01");
    bad_sex["sex"] = json!("X");
    assert_error(
        &app.post("/api/v1/patients", &t, bad_sex).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sex_code",
        Some("sex"),
    );
    assert_error(
        &app.post(
            "/api/v1/patients",
            &t,
            patient_body("MRN-4", "", "Person", "2001-01-01"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "name_empty",
        Some("family_name"),
    );
    assert_error(
        &app.post(
            "/api/v1/patients",
            &t,
            patient_body("MRN 5!", "Other", "Person", "2001-01-01"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "mrn_invalid_char",
        Some("mrn"),
    );
    let mut extra = patient_body("MRN-6", "Other", "Person", "2001-01-01");
    extra["ssn"] = json!("123");
    assert_error(
        &app.post("/api/v1/patients", &t, extra).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("ssn"),
    );
    assert_eq!(app.audit_len().await, before);
    app.finish().await;
}

async fn duplicates_are_refused_with_candidates(db: Db) {
    let app = spawn_app(db).await;
    let t = app.token_for(Role::Technician).await;
    let jon = register(
        &app,
        &t,
        patient_body("MRN-10", "Johnson", "Catherine", "1955-03-04"),
    )
    .await;
    let before = app.audit_len().await;
    let cases = [
        (
            patient_body("MRN-11", "JOHNSON", "Catherine", "1955-03-04"),
            "exact_name",
        ),
        (
            patient_body("MRN-12", "Catherine", "Johnson", "1955-03-04"),
            "swapped_given_family",
        ),
        (
            patient_body("MRN-13", "Jonson", "Katherine", "1955-03-04"),
            "near_miss_name",
        ),
        (
            patient_body("MRN-14", "Johnson", "Catherine", "1955-04-03"),
            "birth_day_month_transposed",
        ),
    ];
    for (body, reason) in cases {
        let got = app.post("/api/v1/patients", &t, body).await;
        assert_error(&got, StatusCode::CONFLICT, "possible_duplicate", None);
        assert_eq!(
            got.1["error"]["candidates"],
            json!([{"patient_id": jon, "reason": reason}]),
            "{reason}"
        );
    }
    assert_eq!(app.audit_len().await, before);
    // Naming a candidate shows that patient to the caller: each refusal is a logged read.
    let admin = app.token_for(Role::Admin).await;
    let (_, log) = app.get("/api/v1/audit/access-log", &admin).await;
    let shown: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "patient.duplicate_candidates")
        .collect();
    assert_eq!(shown.len(), 4, "{log}");
    for a in shown {
        assert_eq!(a["patient_ids"], json!([jon]), "{a}");
    }
    // A different person with the same birth date is not a candidate.
    register(
        &app,
        &t,
        patient_body("MRN-15", "Okafor", "Chidi", "1955-03-04"),
    )
    .await;
    // Confirming needs a reason, and is audited with it.
    let mut confirm = patient_body("MRN-11", "Johnson", "Catherine", "1955-03-04");
    confirm["confirm_not_duplicate"] = json!(true);
    assert_error(
        &app.post("/api/v1/patients", &t, confirm.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    confirm["reason"] = json!("twin sister, checked photo ID");
    let (s, b) = app.post("/api/v1/patients", &t, confirm).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_i64().unwrap();
    let events = app
        .app
        .store()
        .audit_events(0, 100, Some(("patient", &id.to_string())))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].entry.reason.as_deref(),
        Some("twin sister, checked photo ID")
    );
    assert_eq!(
        events[0].entry.new_value.as_ref().unwrap()["confirmed_not_duplicate_of"],
        json!([jon])
    );
    app.finish().await;
}

async fn merge_moves_orders_and_unmerge_restores_them(db: Db) {
    let app = spawn_app(db).await;
    let (provider, location) = seed_ordering(&app).await;
    let t = app.token_for(Role::Technician).await;
    let dir = app.token_for(Role::Director).await;
    let survivor = register(
        &app,
        &t,
        patient_body("MRN-20", "Ito", "Hana", "1999-09-09"),
    )
    .await;
    let mut dup = patient_body("MRN-21", "Ito", "Hanna", "1999-09-09");
    dup["confirm_not_duplicate"] = json!(true);
    dup["reason"] = json!("registrar unsure");
    let merged = register(&app, &t, dup).await;
    let order = |mrn: &str| {
        json!({"patient": {"mrn": mrn, "birth_date": "1999-09-09"},
        "provider_id": provider, "location_id": location, "tests": ["CBC"], "priority": "routine"})
    };
    let (s, o1) = app.post("/api/v1/orders", &t, order("MRN-21")).await;
    assert_eq!(s, StatusCode::CREATED, "{o1}");
    let (_, o2) = app.post("/api/v1/orders", &t, order("MRN-21")).await;
    let (_, o0) = app.post("/api/v1/orders", &t, order("MRN-20")).await;

    // The technician may not merge; a reason is required.
    assert_error(
        &app.post(
            &format!("/api/v1/patients/{survivor}/merge"),
            &t,
            json!({"merged_patient_id": merged, "reason": "same person"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &app.post(
            &format!("/api/v1/patients/{survivor}/merge"),
            &dir,
            json!({"merged_patient_id": merged, "reason": ""}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    assert_error(
        &app.post(
            &format!("/api/v1/patients/{survivor}/merge"),
            &dir,
            json!({"merged_patient_id": survivor, "reason": "same person"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "merge_self",
        Some("merged_patient_id"),
    );

    let (s, m) = app
        .post(
            &format!("/api/v1/patients/{survivor}/merge"),
            &dir,
            json!({"merged_patient_id": merged, "reason": "same person, typo in given name"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["moved_order_ids"], json!([o1["id"], o2["id"]]));
    assert_eq!(m["moved_specimen_ids"].as_array().unwrap().len(), 2);
    for o in [&o1, &o2, &o0] {
        let (_, got) = app.get(&format!("/api/v1/orders/{}", o["id"]), &t).await;
        assert_eq!(got["patient_id"], survivor);
    }
    let (_, p) = app.get(&format!("/api/v1/patients/{merged}"), &t).await;
    assert_eq!(p["merged_into"], survivor);
    // A merged-away record can't be ordered against, or merged again, and isn't found.
    assert_error(
        &app.post("/api/v1/orders", &t, order("MRN-21")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient_merged",
        Some("patient"),
    );
    assert_error(
        &app.post(
            &format!("/api/v1/patients/{survivor}/merge"),
            &dir,
            json!({"merged_patient_id": merged, "reason": "again"}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_merged",
        None,
    );
    let (_, found) = app.get("/api/v1/patients?mrn=MRN-21", &t).await;
    assert_eq!(found.as_array().unwrap().len(), 0);
    let (_, o3) = app.post("/api/v1/orders", &t, order("MRN-20")).await;

    let merge_id = m["id"].as_i64().unwrap();
    let (s, u) = app
        .post(
            &format!("/api/v1/patient-merges/{merge_id}/undo"),
            &dir,
            json!({"reason": "merged in error"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert!(u["undone_at"].is_string());
    for (o, owner) in [
        (&o1, merged),
        (&o2, merged),
        (&o0, survivor),
        (&o3, survivor),
    ] {
        let (_, got) = app.get(&format!("/api/v1/orders/{}", o["id"]), &t).await;
        assert_eq!(got["patient_id"], owner);
    }
    let (_, p) = app.get(&format!("/api/v1/patients/{merged}"), &t).await;
    assert_eq!(p["merged_into"], json!(null));
    assert_error(
        &app.post(
            &format!("/api/v1/patient-merges/{merge_id}/undo"),
            &dir,
            json!({"reason": "twice"}),
        )
        .await,
        StatusCode::CONFLICT,
        "unmerge_conflict",
        None,
    );
    let events = app
        .app
        .store()
        .audit_events(0, 1000, Some(("patient", &merged.to_string())))
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        ["patient.create", "patient.merge", "patient.unmerge"]
    );
    assert_eq!(
        events[1].entry.new_value.as_ref().unwrap()["moved_order_ids"],
        m["moved_order_ids"]
    );
    app.finish().await;
}
