//! Storage, transport, send-out and disposal: holders and occupancy, store/retrieve with one
//! specimen per position (also concurrently, also from two processes), retention and the
//! disposal list, dispatch and manifests, send-outs, and the chain of custody from pickup to
//! disposal. Every refused request leaves the audit trail unchanged.

use aliquot_app::{Actor, App, AppConfig, AppError, Source};
use aliquot_domain::auth::Role;
use aliquot_store::SpecimenChange;
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    holders_and_occupancy,
    store_refusals_and_one_specimen_per_position,
    concurrent_stores_into_one_position,
    chain_of_custody_from_pickup_to_disposal,
    retention_and_the_disposal_list,
    dispatch_and_manifests,
    send_outs_to_reference_labs,
    worklists_showing_patients_are_access_logged,
);

struct Ctx {
    app: TestApp,
    token: String,
    provider: i64,
    location: i64,
}

async fn setup(db: Db) -> Ctx {
    let app = spawn_app(db).await;
    let (provider, location) = seed_ordering(&app).await;
    let token = app.token_for(Role::Technician).await;
    register(
        &app,
        &token,
        patient_body("MRN-800", "Moreau", "Lea", "1975-06-01"),
    )
    .await;
    Ctx {
        app,
        token,
        provider,
        location,
    }
}

/// Orders `test` (CBC: one EDTA whole-blood tube; NA: one SST serum tube) and returns the
/// accession of its tube.
async fn new_tube(c: &Ctx, test: &str) -> String {
    let body = json!({"patient": {"mrn": "MRN-800", "birth_date": "1975-06-01"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": [test], "priority": "routine"});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    o["specimens"][0]["accession"]
        .as_str()
        .expect("accession")
        .to_owned()
}

async fn collect(c: &Ctx, acc: &str) {
    let body = json!({"collected_at": c.app.app.now().to_string(), "site": "Clinic draw room",
        "patient": {"mrn": "MRN-800", "family_name": "Moreau", "given_name": "Lea"}});
    let got = c
        .app
        .post(&format!("/api/v1/specimens/{acc}/collect"), &c.token, body)
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
}

async fn receive(c: &Ctx, acc: &str) -> Value {
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/receive"),
            &c.token,
            c.app.full_tube_of(acc, &c.token).await,
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    got.1
}

/// received → in_process → processed directly in the store: the processing routes belong to
/// another slice of issue 4.
async fn finish_processing(c: &Ctx, acc: &str) {
    let store = c.app.app.store();
    let s = store.specimen_by_accession(acc).await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    for (from, to) in [("received", "in_process"), ("in_process", "processed")] {
        let change = SpecimenChange {
            id: s.id,
            from: from.into(),
            to: to.into(),
            collected_at: None,
            temperature: None,
            volume_ul: None,
        };
        assert!(tx.change_specimen(&change).await.unwrap());
    }
    tx.commit().await.unwrap();
}

/// A processed specimen of the test's tube.
/// A processed tube whose work is done (its tests cancelled here, as no result is posted in
/// these tests): a tube with pending tests is not disposed of (issue 10 item 11).
async fn processed(c: &Ctx, test: &str) -> String {
    let acc = new_tube(c, test).await;
    collect(c, &acc).await;
    receive(c, &acc).await;
    finish_processing(c, &acc).await;
    tests_done(c, &acc).await;
    acc
}

/// Cancels every test on the tube, with a reason.
async fn tests_done(c: &Ctx, acc: &str) {
    let v = specimen(c, acc).await;
    let order = v["order_id"].as_i64().unwrap();
    for t in v["tests"].as_array().unwrap() {
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/orders/{order}/cancel-test"),
                &c.token,
                json!({"test": t, "reason": "no result in this test"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

async fn unit(c: &Ctx, body: Value) -> Value {
    let (s, v) = c.app.post("/api/v1/storage/units", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// LAB1 / FRZ-02 (frozen) / R3 / B12 (9 × 9), and LAB1 / FRIDGE1 / RACK2 without a grid.
async fn holders(c: &Ctx) -> (i64, i64, i64) {
    unit(c, json!({"path": "LAB1", "kind": "room"})).await;
    let frz = unit(
        c,
        json!({"path": "LAB1/FRZ-02", "kind": "freezer", "temperature": "frozen", "name": "Freezer 2"}),
    )
    .await;
    let rack = unit(c, json!({"path": "lab1/frz-02/r3", "kind": "rack"})).await;
    assert_eq!(rack["path"], "LAB1/FRZ-02/R3");
    assert_eq!(rack["temperature"], "frozen");
    assert_eq!(rack["parent_id"], frz["id"]);
    let b = unit(
        c,
        json!({"path": "LAB1/FRZ-02/R3/B12", "kind": "box", "rows": 9, "cols": 9}),
    )
    .await;
    assert_eq!(b["capacity"], 81);
    assert_eq!(b["used"], 0);
    unit(
        c,
        json!({"path": "LAB1/FRIDGE1", "kind": "refrigerator", "temperature": "refrigerated"}),
    )
    .await;
    let r2 = unit(c, json!({"path": "LAB1/FRIDGE1/RACK2", "kind": "rack"})).await;
    (
        frz["id"].as_i64().unwrap(),
        b["id"].as_i64().unwrap(),
        r2["id"].as_i64().unwrap(),
    )
}

async fn store(c: &Ctx, acc: &str, location: &str) -> (StatusCode, Value) {
    c.app
        .post(
            &format!("/api/v1/specimens/{acc}/store"),
            &c.token,
            json!({"location": location}),
        )
        .await
}

async fn specimen(c: &Ctx, acc: &str) -> Value {
    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn kinds(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn holders_and_occupancy(db: Db) {
    let c = setup(db).await;
    let before = c.app.audit_len().await;
    let (frz, box_id, rack2) = holders(&c).await;
    assert_eq!(c.app.audit_len().await, before + 6);
    let audit = c
        .app
        .app
        .store()
        .audit_events(before, 1, None)
        .await
        .unwrap();
    assert_eq!(audit[0].entry.action, "storage.unit_register");
    assert_eq!(audit[0].entry.entity_id, "LAB1");

    let phleb = c.app.token_for(Role::Phlebotomist).await;
    let before = c.app.audit_len().await;
    let path = "/api/v1/storage/units";
    for (body, status, code, field) in [
        (
            json!({"path": "LAB2/FRZ-01", "kind": "freezer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_parent_unknown",
            "path",
        ),
        (
            json!({"path": "LAB1/FRZ-03", "kind": "rack"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_kind_level",
            "kind",
        ),
        (
            json!({"path": "LAB1/FRZ 03", "kind": "freezer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_path_segment",
            "path",
        ),
        (
            json!({"path": "A/B/C/D/E", "kind": "box"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_holder_depth",
            "path",
        ),
        (
            json!({"path": "LAB1/FRZ-03", "kind": "igloo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_holder_kind",
            "kind",
        ),
        (
            json!({"path": "LAB1/FRZ-02/R3/B13", "kind": "box", "rows": 30, "cols": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_grid",
            "rows",
        ),
        (
            json!({"path": "LAB1/FRZ-02/R3/B13", "kind": "box", "rows": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_grid",
            "rows",
        ),
        (
            json!({"path": "LAB1/FRZ-03", "kind": "freezer", "rows": 2, "cols": 2}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "storage_grid",
            "rows",
        ),
        (
            json!({"path": "LAB1/FRZ-03", "kind": "freezer", "temperature": "warm"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_temperature",
            "temperature",
        ),
        (
            json!({"path": "lab1/frz-02", "kind": "freezer"}),
            StatusCode::CONFLICT,
            "storage_unit_exists",
            "path",
        ),
    ] {
        let got = c.app.post(path, &c.token, body).await;
        assert_error(&got, status, code, Some(field));
    }
    // A phlebotomist does not manage storage.
    let got = c
        .app
        .post(path, &phleb, json!({"path": "LAB9", "kind": "room"}))
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    assert_eq!(c.app.audit_len().await, before);

    // Occupancy: two in the box, one in the gridless rack.
    let a = processed(&c, "NA").await;
    let b = processed(&c, "NA").await;
    let d = processed(&c, "NA").await;
    assert_eq!(
        store(&c, &a, "LAB1/FRZ-02/R3/B12/A1").await.0,
        StatusCode::OK
    );
    assert_eq!(
        store(&c, &b, "LAB1/FRZ-02/R3/B12/I9").await.0,
        StatusCode::OK
    );
    assert_eq!(
        store(&c, &d, "LAB1/FRIDGE1/RACK2/15").await.0,
        StatusCode::OK
    );
    let (s, units) = c.app.get(path, &c.token).await;
    assert_eq!(s, StatusCode::OK, "{units}");
    let by_path = |p: &str| {
        units
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["path"] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(by_path("LAB1")["used"], 3);
    assert_eq!(by_path("LAB1")["capacity"], Value::Null);
    assert_eq!(by_path("LAB1/FRZ-02")["used"], 2);
    assert_eq!(by_path("LAB1/FRZ-02")["id"], frz);
    assert_eq!(by_path("LAB1/FRZ-02/R3/B12")["used"], 2);
    assert_eq!(by_path("LAB1/FRZ-02/R3/B12")["capacity"], 81);
    assert_eq!(by_path("LAB1/FRIDGE1/RACK2")["used"], 1);

    let (s, list) = c
        .app
        .get(&format!("/api/v1/storage/units/{frz}/contents"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let locs: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["accession"].as_str().unwrap(),
                e["location"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        locs,
        [
            (a.as_str(), "LAB1/FRZ-02/R3/B12/A1"),
            (b.as_str(), "LAB1/FRZ-02/R3/B12/I9")
        ]
    );
    assert_eq!(list[0]["unit_id"], box_id);
    assert_eq!(list[0]["stored_by"], "technician");
    let (_, list) = c
        .app
        .get(&format!("/api/v1/storage/units/{rack2}/contents"), &c.token)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let got = c
        .app
        .get("/api/v1/storage/units/999999/contents", &c.token)
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);

    // Find a specimen (access-logged).
    let (s, v) = c
        .app
        .get(&format!("/api/v1/storage/specimens/{b}"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["location"], "LAB1/FRZ-02/R3/B12/I9");
    assert_eq!(v["status"], "stored");
    assert_eq!(v["unit_id"], box_id);
    // The specimen itself says where it is.
    let (_, v) = c.app.get(&format!("/api/v1/specimens/{b}"), &c.token).await;
    assert_eq!(v["storage_location"], "LAB1/FRZ-02/R3/B12/I9");
    let log = c.app.app.store().access_log(0, 1000).await.unwrap();
    assert!(
        log.iter()
            .any(|l| l.action == "specimen.locate" && l.entity_id == b)
    );
    let other = new_tube(&c, "CBC").await;
    let (_, v) = c
        .app
        .get(&format!("/api/v1/storage/specimens/{other}"), &c.token)
        .await;
    assert_eq!(v["location"], Value::Null);
    assert_eq!(v["status"], "planned");
    let got = c
        .app
        .get("/api/v1/storage/specimens/NOT-AN-ACCESSION", &c.token)
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(got.1["error"]["field"], "accession");
    c.app.finish().await;
}

async fn store_refusals_and_one_specimen_per_position(db: Db) {
    let c = setup(db).await;
    holders(&c).await;
    let a = processed(&c, "NA").await;
    let b = processed(&c, "NA").await;
    let received = new_tube(&c, "CBC").await;
    collect(&c, &received).await;
    receive(&c, &received).await;

    let before = c.app.audit_len().await;
    for (loc, code) in [
        ("LAB1/FRZ-09/R3/A1", "storage_unit_unknown"),
        ("LAB1/FRZ-02/R3/B99/A1", "storage_unit_unknown"),
        ("LAB1/FRZ-02/R3/B12/J1", "storage_position_off_grid"),
        ("LAB1/FRZ-02/R3/B12/A10", "storage_position_off_grid"),
        ("LAB1/FRZ-02/R3/B12/5", "storage_position_off_grid"),
        ("LAB1/FRZ-02", "storage_path_depth"),
        ("LAB1/FRZ-02/R3/B12/A0", "storage_position"),
        ("LAB1/FRZ 02/R3/B12/A1", "storage_path_segment"),
    ] {
        let got = store(&c, &a, loc).await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            Some("location"),
        );
    }
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{a}/store"),
            &c.token,
            json!({"location": "LAB1/FRZ-02/R3/B12/A1", "shelf": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Received, not processed: refused by the state machine.
    let got = store(&c, &received, "LAB1/FRZ-02/R3/B12/A1").await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    // Retrieve what is not stored.
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{a}/retrieve"),
            &c.token,
            json!({}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    c.app.assert_only_refused(before).await;
    let before = c.app.audit_len().await;

    // One specimen per position.
    let (s, v) = store(&c, &a, "lab1/frz-02/r3/b12/a1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "stored");
    assert_eq!(v["temperature"], "frozen");
    assert_eq!(c.app.audit_len().await, before + 1);
    let got = store(&c, &b, "LAB1/FRZ-02/R3/B12/A1").await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "storage_position_occupied",
        Some("location"),
    );
    // Stored twice: refused.
    let got = store(&c, &a, "LAB1/FRZ-02/R3/B12/A2").await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    c.app.assert_only_refused(before + 1).await;
    assert_eq!(specimen(&c, &b).await["status"], "processed");

    // Retrieving frees the position.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{a}/retrieve"),
            &c.token,
            json!({"reason": "add-on test"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "processed");
    let (s, v) = store(&c, &b, "LAB1/FRZ-02/R3/B12/A1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    c.app.finish().await;
}

async fn concurrent_stores_into_one_position(db: Db) {
    let c = setup(db).await;
    holders(&c).await;
    // Two requests on one server.
    for round in 1..=3 {
        let a = processed(&c, "NA").await;
        let b = processed(&c, "NA").await;
        let loc = format!("LAB1/FRZ-02/R3/B12/A{round}");
        let (x, y) = tokio::join!(store(&c, &a, &loc), store(&c, &b, &loc));
        let mut statuses = [x.0, y.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{} {}",
            x.1,
            y.1
        );
        let loser = if x.0 == StatusCode::CONFLICT { &x } else { &y };
        assert_eq!(loser.1["error"]["code"], "storage_position_occupied");
    }
    // Two processes (two stores, each with its own writer) on one database.
    let store2 = open_store(&c.app.db).await;
    let app2 = App::new(store2, c.app.clock.clone(), AppConfig::default());
    let actor = Actor {
        user_id: None,
        username: "second-process".into(),
        role: Role::Technician,
        source: Source::Api,
        session_id: None,
    };
    for round in 1..=3 {
        let a = processed(&c, "NA").await;
        let b = processed(&c, "NA").await;
        let loc = format!("LAB1/FRZ-02/R3/B12/B{round}");
        let (http, other) =
            tokio::join!(store(&c, &a, &loc), app2.store_specimen(&actor, &b, &loc));
        match (http.0, other) {
            (StatusCode::OK, Err(AppError::Conflict { code, .. })) => {
                assert_eq!(code, "storage_position_occupied");
            }
            (StatusCode::CONFLICT, Ok(s)) => {
                assert_eq!(s.status, "stored");
                assert_eq!(http.1["error"]["code"], "storage_position_occupied");
            }
            (status, other) => panic!("{status} {} / {other:?}", http.1),
        }
    }
    app2.store().close().await;
    let (_, units) = c.app.get("/api/v1/storage/units", &c.token).await;
    let b12 = units
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["path"] == "LAB1/FRZ-02/R3/B12")
        .unwrap()
        .clone();
    assert_eq!(b12["used"], 6);
    let id = b12["id"].as_i64().unwrap();
    let (_, list) = c
        .app
        .get(&format!("/api/v1/storage/units/{id}/contents"), &c.token)
        .await;
    let mut locs: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["location"].as_str().unwrap())
        .collect();
    locs.sort();
    locs.dedup();
    assert_eq!(locs.len(), 6);
    c.app.finish().await;
}

async fn chain_of_custody_from_pickup_to_disposal(db: Db) {
    let mut c = setup(db).await;
    holders(&c).await;
    let acc = new_tube(&c, "NA").await;
    collect(&c, &acc).await;
    let courier = c.app.token_for(Role::Phlebotomist).await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/dispatch"),
            &courier,
            json!({"courier": "Rapid Couriers #7", "from_location": "Clinic OPD",
                   "destination": "Core lab"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "in_transit");
    receive(&c, &acc).await;
    finish_processing(&c, &acc).await;
    let (s, _) = store(&c, &acc, "LAB1/FRZ-02/R3/B12/C3").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/retrieve"),
            &c.token,
            json!({"reason": "add-on potassium"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = store(&c, &acc, "LAB1/FRIDGE1/RACK2/4").await;
    assert_eq!(s, StatusCode::OK);
    c.app.clock.advance(SignedDuration::from_hours(49));
    // Tokens idle for 30 minutes expire: log in again.
    c.token = c.app.token_for(Role::Technician).await;
    // Its test still pending: not disposed of (issue 10 item 11); cancelled, it may be.
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/dispose"),
            &c.token,
            json!({"method": "biohazard"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "pending_tests", None);
    tests_done(&c, &acc).await;
    let before = c.app.audit_len().await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/dispose"),
            &c.token,
            json!({"method": "biohazard"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "disposed");
    assert_eq!(c.app.audit_len().await, before + 1);

    let v = specimen(&c, &acc).await;
    assert_eq!(
        kinds(&v),
        [
            "collect",
            "dispatch",
            "receive",
            "store",
            "retrieve",
            "store",
            "test_cancel",
            "dispose"
        ]
    );
    let ev = v["events"].as_array().unwrap();
    for e in ev {
        assert!(!e["at"].as_str().unwrap().is_empty());
        assert!(!e["actor_name"].as_str().unwrap().is_empty());
    }
    assert_eq!(ev[1]["actor_name"], "phlebotomist");
    assert_eq!(ev[1]["from_status"], "collected");
    assert_eq!(ev[1]["to_status"], "in_transit");
    assert_eq!(ev[1]["location"], "Clinic OPD");
    assert_eq!(ev[1]["details"]["courier"], "Rapid Couriers #7");
    assert_eq!(ev[1]["details"]["destination"], "Core lab");
    assert_eq!(ev[2]["from_status"], "in_transit");
    assert_eq!(ev[2]["to_status"], "received");
    assert_eq!(ev[3]["location"], "LAB1/FRZ-02/R3/B12/C3");
    assert_eq!(ev[3]["to_status"], "stored");
    assert_eq!(ev[4]["location"], "LAB1/FRZ-02/R3/B12/C3");
    assert_eq!(ev[4]["details"]["reason"], "add-on potassium");
    assert_eq!(ev[5]["location"], "LAB1/FRIDGE1/RACK2/4");
    assert_eq!(ev[6]["details"]["test"], "NA");
    assert_eq!(ev[7]["location"], "LAB1/FRIDGE1/RACK2/4");
    assert_eq!(ev[7]["details"]["method"], "biohazard");
    assert_eq!(ev[7]["details"]["before_retention"], false);
    assert_eq!(ev[7]["from_status"], "stored");
    let audit = c
        .app
        .app
        .store()
        .audit_events(0, 100, Some(("specimen", acc.as_str())))
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "specimen.collect",
            "specimen.dispatch",
            "specimen.receive",
            "specimen.store",
            "specimen.retrieve",
            "specimen.store",
            "specimen.dispose_refused",
            "specimen.dispose"
        ]
    );
    // Disposal freed the position; nothing more can happen to the specimen.
    let (_, loc) = c
        .app
        .get(&format!("/api/v1/storage/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(loc["location"], Value::Null);
    let other = processed(&c, "NA").await;
    assert_eq!(
        store(&c, &other, "LAB1/FRIDGE1/RACK2/4").await.0,
        StatusCode::OK
    );
    let before = c.app.audit_len().await;
    let got = store(&c, &acc, "LAB1/FRIDGE1/RACK2/5").await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_terminal_state",
        None,
    );
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/dispose"),
            &c.token,
            json!({"method": "biohazard"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_terminal_state",
        None,
    );
    c.app.assert_only_refused(before).await;
    c.app.finish().await;
}

async fn retention_and_the_disposal_list(db: Db) {
    let mut c = setup(db).await;
    holders(&c).await;
    let mut admin = c.app.token_for(Role::Admin).await;

    // Defaults: serum 48 h, whole blood none.
    let (s, list) = c.app.get("/api/v1/storage/retention", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let of = |list: &Value, t: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["specimen_type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&list, "serum")["hours"], 48);
    assert_eq!(of(&list, "serum")["source"], "default");
    assert_eq!(of(&list, "whole_blood")["hours"], Value::Null);
    assert_eq!(of(&list, "whole_blood")["source"], "none");

    // Dispose of a received (unprocessed) specimen: refused.
    let received = new_tube(&c, "CBC").await;
    collect(&c, &received).await;
    receive(&c, &received).await;
    let wb = processed(&c, "CBC").await;
    let serum = processed(&c, "NA").await;
    // EDTA whole blood is never frozen (issue 10 item 10): a CBC tube goes to the refrigerator.
    let got = store(&c, &wb, "LAB1/FRZ-02/R3/B12/A1").await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "storage_temperature_not_allowed",
        Some("location"),
    );
    assert_eq!(
        store(&c, &wb, "LAB1/FRIDGE1/RACK2/1").await.0,
        StatusCode::OK
    );
    let t_wb = c.app.app.now();
    c.app.clock.advance(SignedDuration::from_mins(20));
    assert_eq!(
        store(&c, &serum, "LAB1/FRZ-02/R3/B12/A2").await.0,
        StatusCode::OK
    );
    let rejected = new_tube(&c, "CBC").await;
    collect(&c, &rejected).await;
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{rejected}/reject"),
            &c.token,
            json!({"reason": "hemolyzed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let before = c.app.audit_len().await;
    let dispose = |acc: &str| format!("/api/v1/specimens/{acc}/dispose");
    let got = c
        .app
        .post(
            &dispose(&received),
            &c.token,
            json!({"method": "biohazard"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    let got = c
        .app
        .post(&dispose(&wb), &c.token, json!({"method": "flush"}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_disposal_method",
        Some("method"),
    );
    // Before retention (or without any period): a reason is needed.
    for acc in [&wb, &serum] {
        let got = c
            .app
            .post(&dispose(acc), &c.token, json!({"method": "biohazard"}))
            .await;
        assert_error(
            &got,
            StatusCode::CONFLICT,
            "retention_not_elapsed",
            Some("reason"),
        );
    }
    // Retention changes: SettingsWrite, a reason, a known type, a sane number of hours.
    let put = |t: &str| format!("/api/v1/storage/retention/{t}");
    for (path, body, status, code, field) in [
        (
            put("blood"),
            json!({"hours": 24, "reason": "policy 2026-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_specimen_type",
            Some("specimen_type"),
        ),
        (
            put("whole_blood"),
            json!({"hours": 0, "reason": "policy 2026-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "retention_non_positive",
            Some("hours"),
        ),
        (
            put("whole_blood"),
            json!({"hours": 100000, "reason": "policy 2026-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "retention_too_long",
            Some("hours"),
        ),
        (
            put("whole_blood"),
            json!({"hours": 24}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            Some("reason"),
        ),
    ] {
        let got = c.app.put(&path, &admin, body).await;
        assert_error(&got, status, code, field);
    }
    let got = c
        .app
        .put(
            &put("whole_blood"),
            &c.token,
            json!({"hours": 24, "reason": "policy 2026-01"}),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    c.app.assert_only_refused(before).await;
    let before = c.app.audit_len().await;

    let (s, due) = c.app.get("/api/v1/storage/disposal-due", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{due}");
    assert_eq!(due["due"], json!([]));
    assert_eq!(due["rejected"].as_array().unwrap().len(), 1);
    assert_eq!(due["rejected"][0]["accession"], rejected.as_str());

    // Whole blood 24 h: after 25 h the whole-blood tube is due, the serum (48 h) is not.
    let (s, v) = c
        .app
        .put(
            &put("whole_blood"),
            &admin,
            json!({"hours": 24, "reason": "policy 2026-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["source"], "configured");
    assert_eq!(c.app.audit_len().await, before + 1);
    let audit = c
        .app
        .app
        .store()
        .audit_events(before, 1, None)
        .await
        .unwrap();
    let e = &audit[0].entry;
    assert_eq!(e.action, "storage.retention_set");
    assert_eq!(e.entity_id, "whole_blood");
    assert_eq!(e.reason.as_deref(), Some("policy 2026-01"));
    assert_eq!(e.old_value.as_ref().unwrap()["hours"], Value::Null);
    assert_eq!(e.new_value.as_ref().unwrap()["hours"], 24);

    c.app.clock.advance(SignedDuration::from_hours(24));
    // Tokens idle for 30 minutes expire: log in again.
    c.token = c.app.token_for(Role::Technician).await;
    admin = c.app.token_for(Role::Admin).await;
    let token = c.token.clone();
    let (_, due) = c.app.get("/api/v1/storage/disposal-due", &token).await;
    let accs: Vec<&str> = due["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["accession"].as_str().unwrap())
        .collect();
    assert_eq!(accs, [wb.as_str()]);
    assert_eq!(due["due"][0]["location"], "LAB1/FRIDGE1/RACK2/1");
    assert_eq!(
        due["due"][0]["due_at"],
        (t_wb + SignedDuration::from_hours(24)).to_string()
    );
    // Longer retention: no longer due.
    let (s, _) = c
        .app
        .put(
            &put("whole_blood"),
            &admin,
            json!({"hours": 72, "reason": "extended for add-ons"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let audit = c
        .app
        .app
        .store()
        .audit_events(before + 1, 100, Some(("retention_policy", "whole_blood")))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.old_value.as_ref().unwrap()["hours"], 24);
    assert_eq!(
        audit[0].entry.old_value.as_ref().unwrap()["source"],
        "configured"
    );
    let (_, due) = c.app.get("/api/v1/storage/disposal-due", &token).await;
    assert_eq!(due["due"], json!([]));
    // 48 h later both are due, oldest first.
    c.app.clock.advance(SignedDuration::from_hours(48));
    c.token = c.app.token_for(Role::Technician).await;
    admin = c.app.token_for(Role::Admin).await;
    let token = c.token.clone();
    let (_, due) = c.app.get("/api/v1/storage/disposal-due", &token).await;
    let accs: Vec<&str> = due["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["accession"].as_str().unwrap())
        .collect();
    assert_eq!(accs, [wb.as_str(), serum.as_str()]);

    // Due: disposed without a reason. Rejected: disposed at any time.
    let fresh = processed(&c, "NA").await;
    let before = c.app.audit_len().await;
    for acc in [&wb, &rejected] {
        let (s, v) = c
            .app
            .post(&dispose(acc), &token, json!({"method": "autoclave"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "disposed");
    }
    // Early disposal with a reason.
    let (s, v) = c
        .app
        .post(
            &dispose(&fresh),
            &token,
            json!({"method": "biohazard", "reason": "tube cracked in centrifuge"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["details"]["before_retention"], true);
    assert_eq!(last["details"]["reason"], "tube cracked in centrifuge");
    assert_eq!(c.app.audit_len().await, before + 3);
    let (_, due) = c.app.get("/api/v1/storage/disposal-due", &token).await;
    assert_eq!(due["due"].as_array().unwrap().len(), 1);
    assert_eq!(due["due"][0]["accession"], serum.as_str());
    assert_eq!(due["rejected"], json!([]));
    let (_, list) = c.app.get("/api/v1/storage/retention", &admin).await;
    assert_eq!(of(&list, "whole_blood")["hours"], 72);
    assert_eq!(of(&list, "whole_blood")["updated_by"], "admin");
    c.app.finish().await;
}

async fn dispatch_and_manifests(db: Db) {
    let c = setup(db).await;
    let planned = new_tube(&c, "CBC").await;
    let a = new_tube(&c, "CBC").await;
    let b = new_tube(&c, "CBC").await;
    let d = new_tube(&c, "CBC").await;
    for acc in [&a, &b, &d] {
        collect(&c, acc).await;
    }
    let body =
        json!({"courier": "Van 2", "from_location": "Clinic OPD", "destination": "Core lab"});
    let doc = c.app.token_for(Role::Physician).await;
    let phleb = c.app.token_for(Role::Phlebotomist).await;
    let before = c.app.audit_len().await;
    let path = |acc: &str| format!("/api/v1/specimens/{acc}/dispatch");
    let got = c.app.post(&path(&planned), &c.token, body.clone()).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    for field in ["courier", "from_location", "destination"] {
        let mut bad = body.clone();
        bad[field] = json!("  ");
        let got = c.app.post(&path(&a), &c.token, bad).await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            Some(field),
        );
    }
    let got = c.app.post(&path(&a), &doc, body.clone()).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);

    // A manifest is all or nothing.
    let manifests = "/api/v1/transport/manifests";
    let mut m = body.clone();
    m["accessions"] = json!([a, b, planned]);
    let got = c.app.post(manifests, &c.token, m.clone()).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_illegal",
        Some("accessions[2]"),
    );
    m["accessions"] = json!([a, a]);
    let got = c.app.post(manifests, &c.token, m.clone()).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "duplicate_accession",
        Some("accessions[1]"),
    );
    m["accessions"] = json!([]);
    let got = c.app.post(manifests, &c.token, m.clone()).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "manifest_size",
        Some("accessions"),
    );
    m["accessions"] = json!([a, "X"]);
    let got = c.app.post(manifests, &c.token, m.clone()).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(got.1["error"]["field"], "accessions[1]");
    c.app.assert_only_refused(before).await;
    let before = c.app.audit_len().await;
    for acc in [&a, &b] {
        assert_eq!(specimen(&c, acc).await["status"], "collected");
    }

    m["accessions"] = json!([a, b]);
    let (s, v) = c.app.post(manifests, &phleb, m).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let manifest = v["manifest"].as_str().unwrap().to_owned();
    assert!(manifest.starts_with('M'), "{manifest}");
    // Two custody events, their audit entries, and the manifest's.
    assert_eq!(c.app.audit_len().await, before + 3);
    for acc in [&a, &b] {
        let v = specimen(&c, acc).await;
        assert_eq!(v["status"], "in_transit");
        let last = v["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "dispatch");
        assert_eq!(last["details"]["manifest"], manifest.as_str());
        assert_eq!(last["actor_name"], "phlebotomist");
    }
    let (s, v) = c.app.post(&path(&d), &c.token, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["events"][1]["details"]["manifest"], Value::Null);
    // Dispatched twice: refused.
    let got = c.app.post(&path(&d), &c.token, body).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    // Delivery is the receipt.
    let v = receive(&c, &d).await;
    assert_eq!(kinds(&v), ["collect", "dispatch", "receive"]);
    c.app.finish().await;
}

async fn send_outs_to_reference_labs(db: Db) {
    let c = setup(db).await;
    holders(&c).await;
    let collected = new_tube(&c, "CBC").await;
    collect(&c, &collected).await;
    let acc = new_tube(&c, "CBC").await;
    collect(&c, &acc).await;
    receive(&c, &acc).await;
    let stored = processed(&c, "NA").await;
    assert_eq!(
        store(&c, &stored, "LAB1/FRZ-02/R3/B12/A1").await.0,
        StatusCode::OK
    );
    let tests = specimen(&c, &acc).await["tests"].clone();
    let first = tests[0].as_str().unwrap().to_owned();
    reference_lab(&c.app, "MAYO", "Mayo Clinic Laboratories", &[&first]).await;
    reference_lab(&c.app, "ARUP", "ARUP Laboratories", &["NA"]).await;

    let path = |acc: &str| format!("/api/v1/specimens/{acc}/send-out");
    let body = json!({"reference_lab": "MAYO", "tests": [first],
        "tracking": "1Z999", "temperature": "refrigerated"});
    let before = c.app.audit_len().await;
    let got = c.app.post(&path(&collected), &c.token, body.clone()).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    // A stored specimen must be retrieved first.
    let got = c
        .app
        .post(
            &path(&stored),
            &c.token,
            json!({"reference_lab": "ARUP", "temperature": "frozen"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    for (patch, code, field) in [
        (json!({"temperature": null}), "required", "temperature"),
        (
            json!({"temperature": "tepid"}),
            "unknown_temperature",
            "temperature",
        ),
        (json!({"reference_lab": ""}), "required", "reference_lab"),
        (
            json!({"reference_lab": "Mayo Clinic Laboratories"}),
            "unknown_reference_lab",
            "reference_lab",
        ),
        // ARUP does not perform the test sent.
        (
            json!({"reference_lab": "ARUP"}),
            "reference_lab_test_unmapped",
            "tests[0]",
        ),
        (
            json!({"tests": ["GLU"]}),
            "send_out_test_not_on_specimen",
            "tests[0]",
        ),
        (json!({"tests": []}), "send_out_tests_empty", "tests"),
    ] {
        let mut bad = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let got = c.app.post(&path(&acc), &c.token, bad).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code, Some(field));
    }
    c.app.assert_only_refused(before).await;
    let before = c.app.audit_len().await;
    let (s, v) = c.app.get("/api/v1/send-outs?open=true", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!([]));

    // One test of the CBC tube goes out, the others stay in house: the tube stays (issue 10
    // item 11, partial send-out).
    let (s, v) = c.app.post(&path(&acc), &c.token, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "received");
    let details = &v["events"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(details["partial"], true);
    assert_eq!(details["staying"].as_array().unwrap().len(), 8, "{details}");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "send_out");
    assert_eq!(last["location"], "Mayo Clinic Laboratories");
    assert_eq!(last["details"]["tests"], json!([first]));
    assert_eq!(last["details"]["tracking"], "1Z999");
    assert_eq!(c.app.audit_len().await, before + 1);

    // Processed (after retrieval) with all tests.
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{stored}/retrieve"),
            &c.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = c
        .app
        .post(
            &path(&stored),
            &c.token,
            json!({"reference_lab": "ARUP", "temperature": "frozen"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, list) = c.app.get("/api/v1/send-outs?open=true", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["accession"], acc.as_str());
    assert_eq!(list[0]["reference_lab"], "Mayo Clinic Laboratories");
    assert_eq!(list[0]["tests"], json!([first]));
    assert_eq!(list[0]["sent_by"], "technician");
    assert_eq!(list[0]["resulted_at"], Value::Null);
    assert_eq!(list[1]["accession"], stored.as_str());
    assert_eq!(list[1]["tests"], json!(["NA"]));
    assert_eq!(list[1]["temperature"], "frozen");
    let (_, all) = c.app.get("/api/v1/send-outs", &c.token).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    // Sent out is final.
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{stored}/dispose"),
            &c.token,
            json!({"method": "biohazard", "reason": "x-check"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_terminal_state",
        None,
    );
    let phleb = c.app.token_for(Role::Phlebotomist).await;
    let got = c.app.get("/api/v1/send-outs", &phleb).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    c.app.finish().await;
}

/// The id of the newest access-log row (0 when there is none).
async fn last_access(c: &Ctx) -> i64 {
    c.app
        .app
        .store()
        .access_log(0, 100_000)
        .await
        .unwrap()
        .last()
        .map_or(0, |a| a.id)
}

/// A STAT CBC for patient MRN-801, collected and received: `(order id, accession)`.
async fn other_tube(c: &Ctx) -> (i64, String) {
    let body = json!({"patient": {"mrn": "MRN-801", "birth_date": "1990-03-03"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["CBC"], "priority": "stat"});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let acc = o["specimens"][0]["accession"].as_str().unwrap().to_owned();
    let body = json!({"collected_at": c.app.app.now().to_string(),
        "patient": {"mrn": "MRN-801", "family_name": "Osei", "given_name": "Kofi"}});
    let got = c
        .app
        .post(&format!("/api/v1/specimens/{acc}/collect"), &c.token, body)
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    receive(c, &acc).await;
    (o["id"].as_i64().unwrap(), acc)
}

/// The access-log rows written since `after` for `action`: `(entity_id, patient_ids)`.
async fn access_rows(c: &Ctx, after: i64, action: &str) -> Vec<(String, Vec<i64>)> {
    c.app
        .app
        .store()
        .access_log(after, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == action)
        .map(|a| (a.entity_id, a.patient_ids))
        .collect()
}

/// Lists that show patient data (the order's TAT, the overdue list, storage contents, the
/// disposal list, the problem log, recollection tasks, send-outs) write an access-log row
/// naming exactly the patients on the list, and an empty list names nobody.
async fn worklists_showing_patients_are_access_logged(db: Db) {
    let c = setup(db).await;
    let (frz, _, _) = holders(&c).await;
    let other = register(
        &c.app,
        &c.token,
        patient_body("MRN-801", "Osei", "Kofi", "1990-03-03"),
    )
    .await;
    // Nothing to show yet: no row.
    let before = last_access(&c).await;
    let (s, _) = c.app.get("/api/v1/problem-log", &c.token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(access_rows(&c, before, "problem_log.list").await.is_empty());

    // The first patient's tube is stored; the other patient's tube is received, then a
    // third (the other patient's) is sent out and a fourth rejected.
    let stored = processed(&c, "NA").await;
    assert_eq!(
        store(&c, &stored, "LAB1/FRZ-02/R3/B12/A1").await.0,
        StatusCode::OK
    );
    let first = specimen(&c, &stored).await["patient_id"].as_i64().unwrap();
    let (other_order, _) = other_tube(&c).await;
    let (_, sent) = other_tube(&c).await;
    reference_lab(
        &c.app,
        "MAYO",
        "Mayo Clinic Laboratories",
        &[
            "WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "RDW", "PLT",
        ],
    )
    .await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{sent}/send-out"),
            &c.token,
            json!({"reference_lab": "MAYO", "temperature": "refrigerated"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, rejected) = other_tube(&c).await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{rejected}/reject"),
            &c.token,
            json!({"reason": "hemolyzed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let before = last_access(&c).await;
    for path in [
        format!("/api/v1/orders/{other_order}/tat"),
        "/api/v1/tat/overdue".to_owned(),
        format!("/api/v1/storage/units/{frz}/contents"),
        "/api/v1/storage/disposal-due".to_owned(),
        "/api/v1/problem-log".to_owned(),
        "/api/v1/recollect-tasks?open=true".to_owned(),
        "/api/v1/send-outs".to_owned(),
    ] {
        let (s, v) = c.app.get(&path, &c.token).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    // STAT CBC targets 60 minutes: 55 minutes on, the other patient's received tube is on
    // the overdue list, alone (the stored sodium is routine and processed).
    c.app.clock.advance(SignedDuration::from_mins(55));
    let token = c.app.token_for(Role::Technician).await;
    let (s, overdue) = c.app.get("/api/v1/tat/overdue", &token).await;
    assert_eq!(s, StatusCode::OK, "{overdue}");
    assert!(!overdue.as_array().unwrap().is_empty(), "{overdue}");

    // One row per list, naming exactly the patients on it (the first GET of the overdue
    // list, with nothing overdue yet, wrote none).
    for (action, entity, patients) in [
        ("order.tat", other_order.to_string(), other),
        ("tat.overdue", "overdue".to_owned(), other),
        ("storage.contents", frz.to_string(), first),
        ("storage.disposal_due", "disposal_due".to_owned(), other),
        ("problem_log.list", "all".to_owned(), other),
        ("recollect_task.list", "open".to_owned(), other),
        ("send_out.list", "all".to_owned(), other),
    ] {
        assert_eq!(
            access_rows(&c, before, action).await,
            [(entity, vec![patients])],
            "{action}"
        );
    }
    c.app.finish().await;
}
