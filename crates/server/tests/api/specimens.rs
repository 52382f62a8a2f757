//! The specimen lifecycle: read with chain of custody, labels, collection, receipt (receipt
//! check, double and concurrent receipt), rejection with problem log and recollection tasks.

use aliquot_app::{Actor, App, AppConfig, AppError, ReceiveInput, Source};
use aliquot_domain::auth::Role;
use aliquot_domain::ids::{AccessionNumber, AccessionPrefix};
use aliquot_domain::specimen::RejectionReason;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    read_and_bad_accessions,
    labels_are_counted_and_audited,
    collection_checks_identity_and_time,
    receipt_check_double_and_concurrent_receipt,
    concurrent_receipt_from_two_processes,
    every_rejection_reason_opens_a_problem_and_a_task,
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
        patient_body("MRN-700", "Okafor", "Ada", "1980-02-29"),
    )
    .await;
    Ctx {
        app,
        token,
        provider,
        location,
    }
}

/// Places a CBC order (one EDTA tube) and returns its accession.
async fn new_tube(c: &Ctx) -> String {
    let body = json!({"patient": {"mrn": "MRN-700", "birth_date": "1980-02-29"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["CBC"], "priority": "stat"});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    o["specimens"][0]["accession"]
        .as_str()
        .expect("accession")
        .to_owned()
}

fn collect_body(at: Timestamp) -> Value {
    json!({"collected_at": at.to_string(), "site": "Ward 3",
           "patient": {"mrn": "MRN-700", "family_name": "Okafor", "given_name": "Ada"}})
}

async fn collect(c: &Ctx, acc: &str) {
    let at = c.app.app.now();
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/collect"),
            &c.token,
            collect_body(at),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
}

async fn read_and_bad_accessions(db: Db) {
    let c = setup(db).await;
    let acc = new_tube(&c).await;
    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accession"], acc.as_str());
    assert_eq!(v["status"], "planned");
    assert_eq!(v["container"], "LAV");
    assert!(v["tests"].as_array().unwrap().len() >= 4, "{v}");
    assert_eq!(v["events"], json!([]));
    let log = c.app.app.store().access_log(0, 1000).await.unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "specimen.read" && a.entity_id == acc)
    );

    // Wrong check character.
    let last = acc.chars().last().unwrap();
    let other = if last == 'A' { 'B' } else { 'A' };
    let wrong = format!("{}{other}", &acc[..acc.len() - 1]);
    let got = c
        .app
        .get(&format!("/api/v1/specimens/{wrong}"), &c.token)
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "accession_check",
        Some("accession"),
    );
    let got = c
        .app
        .get(&format!("/api/v1/specimens/{acc}%20"), &c.token)
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "accession_whitespace",
        Some("accession"),
    );
    let got = c
        .app
        .get(&format!("/api/v1/specimens/{acc}%0D"), &c.token)
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "accession_control_char",
        Some("accession"),
    );
    let unknown = AccessionNumber::generate(&AccessionPrefix::parse("Z").unwrap(), 26, 9_999_999);
    let got = c
        .app
        .get(&format!("/api/v1/specimens/{}", unknown.as_str()), &c.token)
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    // A physician may read orders but not print labels.
    let doc = c.app.token_for(Role::Physician).await;
    let (s, _) = c.app.get(&format!("/api/v1/specimens/{acc}"), &doc).await;
    assert_eq!(s, StatusCode::OK);
    let got = c
        .app
        .get(&format!("/api/v1/specimens/{acc}/label?format=svg"), &doc)
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    c.app.finish().await;
}

async fn raw_label(c: &Ctx, acc: &str, format: &str) -> (StatusCode, String, String) {
    let resp = c
        .app
        .client
        .get(format!(
            "{}/api/v1/specimens/{acc}/label?format={format}",
            c.app.base
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

async fn labels_are_counted_and_audited(db: Db) {
    let c = setup(db).await;
    let acc = new_tube(&c).await;
    let before = c.app.audit_len().await;
    let (s, ct, svg) = raw_label(&c, &acc, "svg").await;
    assert_eq!(s, StatusCode::OK, "{svg}");
    assert_eq!(ct, "image/svg+xml");
    assert!(svg.contains(&acc));
    assert!(svg.contains("OKAFOR, Ada"));
    assert!(svg.contains("DOB 1980-02-29"));
    assert!(!svg.contains("R2"));
    assert_eq!(c.app.audit_len().await, before + 1);

    let (s, ct, zpl) = raw_label(&c, &acc, "zpl").await;
    assert_eq!(s, StatusCode::OK, "{zpl}");
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(zpl.starts_with("^XA"));
    assert!(zpl.trim_end().ends_with("^XZ"));
    assert!(zpl.contains(&format!("^FD{acc}^FS")), "{zpl}");
    assert!(zpl.contains("R2"), "{zpl}");
    assert_eq!(c.app.audit_len().await, before + 2);
    let events = c
        .app
        .app
        .store()
        .audit_events(before, 10, Some(("specimen", acc.as_str())))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.entry.action == "specimen.label_print")
    );

    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["label_print", "label_print"]);
    assert_eq!(v["events"][1]["details"]["print"], 2);

    let got = c
        .app
        .get(
            &format!("/api/v1/specimens/{acc}/label?format=pdf"),
            &c.token,
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_label_format",
        Some("format"),
    );
    assert_eq!(c.app.audit_len().await, before + 2);
    let (_, doc) = c.app.get("/api/v1/openapi.json", &c.token).await;
    let content =
        &doc["paths"]["/api/v1/specimens/{accession}/label"]["get"]["responses"]["200"]["content"];
    assert!(content.get("image/svg+xml").is_some(), "{content}");
    assert!(
        content.get("text/plain; charset=utf-8").is_some(),
        "{content}"
    );
    c.app.finish().await;
}

async fn collection_checks_identity_and_time(db: Db) {
    let c = setup(db).await;
    let acc = new_tube(&c).await;
    let path = format!("/api/v1/specimens/{acc}/collect");
    let now = c.app.app.now();
    let before = c.app.audit_len().await;

    let future = now + SignedDuration::from_mins(6);
    let got = c.app.post(&path, &c.token, collect_body(future)).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "collection_in_future",
        Some("collected_at"),
    );
    let early = now - SignedDuration::from_hours(1);
    let got = c.app.post(&path, &c.token, collect_body(early)).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "collection_before_order",
        Some("collected_at"),
    );
    let mut one_id = collect_body(now);
    one_id["patient"] = json!({"mrn": "MRN-700"});
    let got = c.app.post(&path, &c.token, one_id).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert!(
        got.1["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("patient")
    );
    let mut wrong = collect_body(now);
    wrong["patient"]["given_name"] = json!("Adaeze");
    let got = c.app.post(&path, &c.token, wrong).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    let mut bad = collect_body(now);
    bad["collected_at"] = json!("yesterday");
    let got = c.app.post(&path, &c.token, bad).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "collected_at_format",
        Some("collected_at"),
    );
    let mut bad = collect_body(now);
    bad["extra"] = json!(1);
    let (s, _) = c.app.post(&path, &c.token, bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(c.app.audit_len().await, before);
    let (_, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(v["status"], "planned");

    let (s, v) = c.app.post(&path, &c.token, collect_body(now)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "collected");
    assert_eq!(v["collected_at"], now.to_string());
    assert_eq!(v["events"][0]["kind"], "collect");
    assert_eq!(v["events"][0]["actor_name"], "technician");
    assert_eq!(v["events"][0]["from_status"], "planned");
    assert_eq!(v["events"][0]["to_status"], "collected");
    assert_eq!(v["events"][0]["location"], "Ward 3");
    assert_eq!(c.app.audit_len().await, before + 1);
    let audit = c
        .app
        .app
        .store()
        .audit_events(before, 10, Some(("specimen", acc.as_str())))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.action, "specimen.collect");
    assert_eq!(audit[0].entry.actor_name, "technician");
    let (old, new) = (
        audit[0].entry.old_value.as_ref().unwrap(),
        audit[0].entry.new_value.as_ref().unwrap(),
    );
    assert_eq!(old["status"], "planned");
    assert_eq!(new["status"], "collected");

    let got = c.app.post(&path, &c.token, collect_body(now)).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    // The label now shows the collection time.
    let (_, _, svg) = raw_label(&c, &acc, "svg").await;
    assert!(svg.contains(&now.strftime("%Y-%m-%d %H:%M").to_string()));
    c.app.finish().await;
}

async fn receipt_check_double_and_concurrent_receipt(db: Db) {
    let c = setup(db).await;
    let acc = new_tube(&c).await;
    let path = format!("/api/v1/specimens/{acc}/receive");
    // Not collected yet.
    let got = c.app.post(&path, &c.token, json!({})).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    collect(&c, &acc).await;

    let before = c.app.audit_len().await;
    let got = c
        .app
        .post(&path, &c.token, json!({"label_ok": false, "volume_ul": 1}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "receipt_problems",
        None,
    );
    let problems = got.1["error"]["problems"].as_array().unwrap();
    let pairs: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap(),
                p["rejection_reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&("receipt_label_missing", "unlabeled")),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("receipt_insufficient_volume", "qns")),
        "{pairs:?}"
    );
    // Only the refused attempt is recorded.
    assert_eq!(c.app.audit_len().await, before + 1);
    let (_, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(v["status"], "collected");
    assert_eq!(v["events"].as_array().unwrap().len(), 1);

    let got = c
        .app
        .post(&path, &c.token, json!({"temperature": "lukewarm"}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_temperature",
        Some("temperature"),
    );
    let got = c.app.post(&path, &c.token, json!({"volume_ul": -5})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "volume_range",
        Some("volume_ul"),
    );
    assert_eq!(c.app.audit_len().await, before + 1);

    let (s, v) = c.app.post(&path, &c.token, json!({"label_ok": true})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "received");
    assert_eq!(v["events"][1]["kind"], "receive");
    let got = c.app.post(&path, &c.token, json!({})).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);

    // Two receipts of the same tube at once: exactly one succeeds.
    let acc2 = new_tube(&c).await;
    collect(&c, &acc2).await;
    let p2 = format!("/api/v1/specimens/{acc2}/receive");
    let (a, b) = tokio::join!(
        c.app.post(&p2, &c.token, json!({})),
        c.app.post(&p2, &c.token, json!({}))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} {}",
        a.1,
        b.1
    );
    let (_, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc2}"), &c.token)
        .await;
    let receipts = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "receive")
        .count();
    assert_eq!(receipts, 1);

    // Stability exceeded: a month later.
    let acc3 = new_tube(&c).await;
    collect(&c, &acc3).await;
    c.app.clock.advance(SignedDuration::from_hours(24 * 30));
    let token = c.app.token_for(Role::Technician).await;
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc3}/receive"),
            &token,
            json!({}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "receipt_problems",
        None,
    );
    assert!(
        got.1["error"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["rejection_reason"] == "stability_exceeded"),
        "{}",
        got.1
    );
    c.app.finish().await;
}

async fn every_rejection_reason_opens_a_problem_and_a_task(db: Db) {
    let c = setup(db).await;
    let acc = new_tube(&c).await;
    collect(&c, &acc).await;
    let path = format!("/api/v1/specimens/{acc}/reject");
    let before = c.app.audit_len().await;
    let got = c.app.post(&path, &c.token, json!({"reason": "ugly"})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_rejection_reason",
        Some("reason"),
    );
    assert_eq!(c.app.audit_len().await, before);
    let (s, v) = c.app.get("/api/v1/problem-log?open=true", &c.token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!([]));

    let mut rejected = Vec::new();
    for (i, reason) in RejectionReason::ALL.iter().enumerate() {
        let acc = if i == 0 {
            acc.clone()
        } else {
            let a = new_tube(&c).await;
            collect(&c, &a).await;
            a
        };
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/reject"),
                &c.token,
                json!({"reason": reason.as_str(), "comment": "seen at the bench"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{reason}: {v}");
        assert_eq!(v["status"], "rejected");
        let last = v["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "reject");
        assert_eq!(last["details"]["reason"], reason.as_str());
        rejected.push((v["id"].as_i64().unwrap(), acc, reason.as_str()));
    }

    let (s, log) = c.app.get("/api/v1/problem-log?open=true", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), rejected.len());
    for (p, (id, acc, reason)) in log.iter().zip(&rejected) {
        assert_eq!(p["specimen_id"], *id);
        assert_eq!(p["accession"], acc.as_str());
        assert_eq!(p["reason"], *reason);
        assert_eq!(p["comment"], "seen at the bench");
        assert_eq!(p["opened_by"], "technician");
        assert_eq!(p["resolved_at"], Value::Null);
    }
    let (s, tasks) = c
        .app
        .get("/api/v1/recollect-tasks?open=true", &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{tasks}");
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), rejected.len());
    assert!(tasks.iter().all(|t| t["location_id"] == c.location));
    for (t, (id, acc, reason)) in tasks.iter().zip(&rejected) {
        assert_eq!(t["specimen_id"], *id);
        assert_eq!(t["accession"], acc.as_str());
        assert_eq!(t["reason"], *reason);
        assert_eq!(t["done_at"], Value::Null);
    }

    // Receipt after rejection is refused.
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/receive"),
            &c.token,
            json!({}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    // A phlebotomist collects but does not process.
    let phleb = c.app.token_for(Role::Phlebotomist).await;
    let got = c.app.get("/api/v1/problem-log", &phleb).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    c.app.finish().await;
}

/// Two stores on one database (as two server processes would have, each with its own writer
/// connection): receiving the same tube from both at once, exactly one succeeds.
async fn concurrent_receipt_from_two_processes(db: Db) {
    let c = setup(db).await;
    let store2 = open_store(&c.app.db).await;
    let app2 = App::new(store2, c.app.clock.clone(), AppConfig::default());
    let actor = Actor {
        user_id: None,
        username: "second-process".into(),
        role: Role::Technician,
        source: Source::Api,
        session_id: None,
    };
    for _ in 0..5 {
        let acc = new_tube(&c).await;
        collect(&c, &acc).await;
        let path = format!("/api/v1/specimens/{acc}/receive");
        let (http, other) = tokio::join!(
            c.app.post(&path, &c.token, json!({})),
            app2.receive_specimen(&actor, &acc, ReceiveInput::default())
        );
        match (http.0, other) {
            (StatusCode::OK, Err(AppError::Conflict { .. })) => {}
            (StatusCode::CONFLICT, Ok(Ok(s))) => assert_eq!(s.status, "received"),
            (status, other) => panic!("{status} {} / {other:?}", http.1),
        }
        let (_, v) = c
            .app
            .get(&format!("/api/v1/specimens/{acc}"), &c.token)
            .await;
        assert_eq!(v["status"], "received");
        let receipts = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "receive")
            .count();
        assert_eq!(receipts, 1);
    }
    app2.store().close().await;
    c.app.finish().await;
}
