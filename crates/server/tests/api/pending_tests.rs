//! Issue 10 items 7 and 11, as the issue reproduced them: tests must not silently vanish
//! with a disposed, rejected or sent-out tube, and a test found unusable at the analyser
//! (haemolysis, a clot) is marked not performed without rejecting the rest of the tube.

use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, order_tests, received_order, setup, test_of, tube};
use crate::support::*;

crate::both_backends!(
    tests_move_with_the_recollection_and_never_vanish,
    one_test_is_cancelled_with_a_reason,
    a_partial_send_out_leaves_the_tube_in_house,
    one_test_is_not_performed_and_the_rest_go_on,
);

async fn specimen(c: &Ctx, acc: &str) -> Value {
    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn order(c: &Ctx, id: i64) -> Value {
    let (s, v) = c.app.get(&format!("/api/v1/orders/{id}"), &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn tests_move_with_the_recollection_and_never_vanish(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    // The only tube of nine pending CBC tests.
    let (id, o) = received_order(&c, &["CBC"], now - SignedDuration::from_mins(20)).await;
    let lav = tube(&o, "LAV");
    // The issue: it was disposed of with a free-text reason, its tests left "ordered" on a
    // disposed tube. Now refused while they are pending (a rejected tube, below, is fine:
    // its tests moved).
    let path = format!("/api/v1/specimens/{lav}/start-processing");
    assert_eq!(
        c.app.post(&path, &c.tech, json!({})).await.0,
        StatusCode::OK
    );
    let path = format!("/api/v1/specimens/{lav}/complete-processing");
    let (s, v) = c.app.post(&path, &c.tech, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let before = c.app.audit_len().await;
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{lav}/dispose"),
            &c.tech,
            json!({"method": "biohazard", "reason": "bench clean-up"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "pending_tests", None);
    assert!(
        got.1["error"]["message"].as_str().unwrap().contains("WBC"),
        "{}",
        got.1
    );
    c.app.assert_only_refused(before).await;

    // A STAT tube rejected at receipt: its pending tests move to a replacement tube planned
    // in the same order, the rejected tube keeps none (its turnaround time stops there).
    let (id2, o2) = {
        let body = json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"},
            "provider_id": c.provider, "location_id": c.location,
            "tests": ["CBC"], "priority": "stat"});
        let (s, o) = c.app.post("/api/v1/orders", &c.tech, body).await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        (o["id"].as_i64().unwrap(), o)
    };
    let first = tube(&o2, "LAV");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{first}/collect"),
            &c.tech,
            json!({"collected_at": now.to_string(),
                   "patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{first}/reject"),
            &c.tech,
            json!({"reason": "clotted"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rejection = &v["events"].as_array().unwrap().last().unwrap()["details"];
    let replacement = rejection["replacement"].as_str().unwrap().to_owned();
    assert_eq!(rejection["tests_moved"].as_array().unwrap().len(), 9);
    assert_eq!(v["tests"], json!([]), "nothing left on the rejected tube");
    let o2 = order(&c, id2).await;
    for t in o2["tests"].as_array().unwrap() {
        assert_eq!(t["accession"], replacement.as_str(), "{t}");
        assert_eq!(t["status"], "ordered");
    }
    // Rejected, it may be disposed of at once: nothing pending on it (a whole-blood tube
    // without a retention period is kept until a person decides, with a reason).
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{first}/dispose"),
            &c.tech,
            json!({"method": "biohazard", "reason": "mislabeled; its tests moved to the redraw"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The redraw is collected and completes the recollection task.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{replacement}/collect"),
            &c.tech,
            json!({"collected_at": c.app.app.now().to_string(),
                   "patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, tasks) = c
        .app
        .get("/api/v1/recollect-tasks?open=true", &c.tech)
        .await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["accession"] == first.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/recollect-tasks/{task}/complete"),
            &c.tech,
            json!({"replacement_accession": replacement}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["replacement_accession"], replacement.as_str());
    // The first order's tube, still pending, stays where it is.
    assert_eq!(
        specimen(&c, &lav).await["tests"].as_array().unwrap().len(),
        9
    );
    assert_eq!(order(&c, id).await["status"], "active");
    c.app.finish().await;
}

async fn one_test_is_cancelled_with_a_reason(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (id, o) = received_order(&c, &["NA", "K"], now - SignedDuration::from_mins(20)).await;
    let sst = tube(&o, "SST");
    let path = format!("/api/v1/orders/{id}/cancel-test");
    let before = c.app.audit_len().await;
    for (body, status, code, field) in [
        (
            json!({"test": "K", "reason": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            Some("reason"),
        ),
        (
            json!({"test": "GLU", "reason": "not needed"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "test_not_ordered",
            Some("test"),
        ),
    ] {
        let got = c.app.post(&path, &c.tech, body).await;
        assert_error(&got, status, code, field);
    }
    assert_eq!(c.app.audit_len().await, before);
    let (s, v) = c
        .app
        .post(
            &path,
            &c.tech,
            json!({"test": "K", "reason": "duplicate of this morning's order"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(test_of(&v["tests"], "K")["status"], "cancelled");
    assert_eq!(test_of(&v["tests"], "NA")["status"], "ordered");
    assert_eq!(v["status"], "active", "the order goes on");
    let events = specimen(&c, &sst).await["events"].clone();
    let last = events.as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "test_cancel");
    assert_eq!(last["details"]["test"], "K");
    assert_eq!(
        last["details"]["reason"],
        "duplicate of this morning's order"
    );
    let got = c
        .app
        .post(&path, &c.tech, json!({"test": "K", "reason": "again"}))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "test_closed", Some("test"));
    // A released result is corrected, not cancelled.
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [{"accession": sst, "test": "NA", "value": "140"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = c
        .app
        .post(&path, &c.tech, json!({"test": "NA", "reason": "too late"}))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "test_closed", Some("test"));
    // Nothing pending on the tube now: the order's tube may be disposed of once processed.
    let tests = order_tests(&c, id).await;
    assert_eq!(test_of(&tests, "NA")["status"], "released");
    c.app.finish().await;
}

async fn a_partial_send_out_leaves_the_tube_in_house(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    // Type and screen on one pink tube; the antibody screen goes to a reference lab.
    let (id, o) = received_order(&c, &["TS"], now - SignedDuration::from_mins(20)).await;
    let pnk = tube(&o, "PNK");
    reference_lab(&c.app, "BLOODCTR", "Blood Center", &["ABSC"]).await;
    let path = format!("/api/v1/specimens/{pnk}/send-out");
    let (s, v) = c
        .app
        .post(
            &path,
            &c.tech,
            json!({"reference_lab": "BLOODCTR", "tests": ["ABSC"], "temperature": "refrigerated"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The issue: the whole tube was marked sent out, leaving ABO/Rh without a specimen.
    assert_eq!(v["status"], "received");
    let details = &v["events"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(details["partial"], true);
    assert_eq!(details["staying"], json!(["ABORH"]));
    let (_, outs) = c.app.get("/api/v1/send-outs?open=true", &c.tech).await;
    assert_eq!(outs[0]["tests"], json!(["ABSC"]));
    // ABO/Rh still has its tube: its result is posted on it.
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [{"accession": pnk, "test": "ABORH", "value": "O Pos"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["results"][0]["outcome"].as_str().is_some(), "{v}");
    // Sending the rest: nothing pending stays in house, the tube goes.
    let tests = order_tests(&c, id).await;
    assert_ne!(test_of(&tests, "ABORH")["status"], "ordered");
    c.app.finish().await;
}

async fn one_test_is_not_performed_and_the_rest_go_on(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (id, o) = received_order(
        &c,
        &["K", "NA", "AST", "LDH"],
        now - SignedDuration::from_mins(20),
    )
    .await;
    let sst = tube(&o, "SST");
    let path = format!("/api/v1/orders/{id}/not-performed");
    // Haemolysis found at the analyser: potassium is not performed, with its reason code.
    let (s, v) = c
        .app
        .post(
            &path,
            &c.mt,
            json!({"test": "K", "reason": "H-index 250 at the analyser", "reason_code": "hemolyzed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(test_of(&v["tests"], "K")["status"], "not_performed");
    assert!(
        test_of(&v["tests"], "K")["result"]
            .to_string()
            .contains("hemolyzed"),
        "{v}"
    );
    // An unknown code names its field.
    let got = c
        .app
        .post(
            &path,
            &c.mt,
            json!({"test": "AST", "reason": "x-check", "reason_code": "pink"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_rejection_reason",
        Some("reason_code"),
    );
    // LD needs a redraw: it moves to a replacement tube with a recollection task.
    let got = c
        .app
        .post(
            &path,
            &c.mt,
            json!({"test": "LDH", "reason": "haemolysed", "recollect": true}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("reason_code"),
    );
    let (s, v) = c
        .app
        .post(
            &path,
            &c.mt,
            json!({"test": "LDH", "reason": "haemolysed", "reason_code": "hemolyzed", "recollect": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ld = test_of(&v["tests"], "LDH");
    assert_eq!(ld["status"], "ordered");
    assert_ne!(ld["accession"], sst.as_str());
    let (_, tasks) = c
        .app
        .get("/api/v1/recollect-tasks?open=true", &c.tech)
        .await;
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["accession"] == sst.as_str() && t["reason"] == "hemolyzed"),
        "{tasks}"
    );
    // The rest of the tube goes on: sodium is resulted and released.
    let (s, r) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [{"accession": sst, "test": "NA", "value": "140"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["results"][0]["outcome"], "released", "{r}");
    // A released result is not marked not performed.
    let got = c
        .app
        .post(
            &path,
            &c.mt,
            json!({"test": "NA", "reason": "too late", "reason_code": "hemolyzed"}),
        )
        .await;
    assert_eq!(got.0, StatusCode::CONFLICT, "{}", got.1);
    // The whole tube can still be rejected: AST, still pending, moves to the redraw.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{sst}/reject"),
            &c.tech,
            json!({"reason": "hemolyzed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let details = &v["events"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(details["tests_moved"], json!(["AST"]));
    let tests = order_tests(&c, id).await;
    assert_eq!(
        test_of(&tests, "NA")["accession"],
        sst.as_str(),
        "released stays"
    );
    assert_eq!(test_of(&tests, "K")["accession"], sst.as_str());
    assert_ne!(test_of(&tests, "AST")["accession"], sst.as_str());
    c.app.finish().await;
}
