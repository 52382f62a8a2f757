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
    the_real_draw_time_is_kept_judged_and_corrected,
    an_outreach_tube_is_received_with_its_draw_time,
    receipt_check_double_and_concurrent_receipt,
    concurrent_receipt_from_two_processes,
    every_rejection_reason_opens_a_problem_and_a_task,
    refused_attempts_are_audited_and_change_nothing,
    problems_are_resolved_and_recollections_completed,
    turnaround_time_milestones_and_overdue_list,
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
    collect_at(c, acc, c.app.app.now()).await;
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
    // The ordering physician may read orders but not print labels.
    let doc = physician_token(&c.app, c.provider).await;
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
    // The refused print is audited; nothing was counted.
    assert_eq!(c.app.audit_len().await, before + 3);
    assert_eq!(
        last_audit(&c).await.entry.action,
        "specimen.label_print_refused"
    );
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
    let early = now - SignedDuration::from_hours(7 * 24 + 1);
    let got = c.app.post(&path, &c.token, collect_body(early)).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "collection_too_old",
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
    // Five refused attempts reached the use case and are audited (the unknown field was
    // refused by the JSON reader before); nothing else was written.
    assert_eq!(c.app.audit_len().await, before + 5);
    let refused = c
        .app
        .app
        .store()
        .audit_events(before, 10, Some(("specimen", acc.as_str())))
        .await
        .unwrap();
    assert_eq!(refused.len(), 5);
    assert!(
        refused
            .iter()
            .all(|e| e.entry.action == "specimen.collect_refused")
    );
    assert_eq!(
        refused[0].entry.new_value.as_ref().unwrap()["code"],
        "collection_in_future"
    );
    let before = c.app.audit_len().await;
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
    // The label now shows the collection time, in the lab's time zone.
    let (_, _, svg) = raw_label(&c, &acc, "svg").await;
    assert!(
        svg.contains(&now.strftime("%d %b %H:%M UTC").to_string()),
        "{svg}"
    );
    c.app
        .app
        .put_setting(
            &Actor::cli("test"),
            "lab.timezone",
            "America/New_York",
            Some("lab moved"),
        )
        .await
        .unwrap();
    let local = now.to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    let (_, _, svg) = raw_label(&c, &acc, "svg").await;
    assert!(
        svg.contains(&local.strftime("%d %b %H:%M %Z").to_string()),
        "{svg}"
    );
    c.app.finish().await;
}

async fn receipt_check_double_and_concurrent_receipt(db: Db) {
    let c = setup(db).await;
    let acc = new_tube(&c).await;
    let path = format!("/api/v1/specimens/{acc}/receive");
    // Not collected yet.
    let got = c.app.post(&path, &c.token, full_tube("LAV")).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    collect(&c, &acc).await;

    let before = c.app.audit_len().await;
    let got = c
        .app
        .post(
            &path,
            &c.token,
            json!({"label": "missing", "container": "LAV", "volume_ul": 1}),
        )
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
        .post(&path, &c.token, json!({"label": "ok", "container": "LAV", "volume_ul": 2000, "temperature": "lukewarm"}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_temperature",
        Some("temperature"),
    );
    let got = c
        .app
        .post(
            &path,
            &c.token,
            json!({"label": "ok", "container": "LAV", "volume_ul": -5}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "volume_range",
        Some("volume_ul"),
    );
    // Issue 10 item 10: 99,999 µL do not fit in a lavender tube.
    let got = c
        .app
        .post(
            &path,
            &c.token,
            json!({"label": "ok", "container": "LAV", "volume_ul": 99_999}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "volume_exceeds_container",
        Some("volume_ul"),
    );
    assert_eq!(c.app.audit_len().await, before + 4);

    let (s, v) = c.app.post(&path, &c.token, full_tube("LAV")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "received");
    assert_eq!(v["events"][1]["kind"], "receive");
    let got = c.app.post(&path, &c.token, full_tube("LAV")).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);

    // Two receipts of the same tube at once: exactly one succeeds.
    let acc2 = new_tube(&c).await;
    collect(&c, &acc2).await;
    let p2 = format!("/api/v1/specimens/{acc2}/receive");
    let (a, b) = tokio::join!(
        c.app.post(&p2, &c.token, full_tube("LAV")),
        c.app.post(&p2, &c.token, full_tube("LAV"))
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
            full_tube("LAV"),
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
    assert_eq!(c.app.audit_len().await, before + 1);
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
            full_tube("LAV"),
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
            c.app.post(&path, &c.token, full_tube("LAV")),
            app2.receive_specimen(
                &actor,
                &acc,
                ReceiveInput {
                    label: Some("ok".into()),
                    container: Some("LAV".into()),
                    volume_ul: Some(4000),
                    ..ReceiveInput::default()
                }
            )
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

/// The last audit entry.
async fn last_audit(c: &Ctx) -> aliquot_store::AuditRecord {
    let len = c.app.audit_len().await;
    c.app
        .app
        .store()
        .audit_events(len - 1, 1, None)
        .await
        .unwrap()
        .remove(0)
}

async fn specimen_json(c: &Ctx, acc: &str) -> Value {
    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Bad input at the receiving station: a mistyped check character, a scan with trailing
/// whitespace or a control character, an unknown tube, a tube of another patient's order, a
/// double receipt. Each is a clear 4xx, changes nothing, and is audited.
async fn refused_attempts_are_audited_and_change_nothing(db: Db) {
    let c = setup(db).await;
    register(
        &c.app,
        &c.token,
        patient_body("MRN-701", "Berg", "Lena", "1975-06-01"),
    )
    .await;
    let acc = new_tube(&c).await;
    collect(&c, &acc).await;
    let order_id = specimen_json(&c, &acc).await["order_id"].as_i64().unwrap();
    let body = json!({"patient": {"mrn": "MRN-701", "birth_date": "1975-06-01"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["CBC"], "priority": "routine"});
    let (s, other_order) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{other_order}");
    let other_order_id = other_order["id"].as_i64().unwrap();

    let last = acc.chars().last().unwrap();
    let wrong = format!(
        "{}{}",
        &acc[..acc.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let unknown = AccessionNumber::generate(&AccessionPrefix::parse("Z").unwrap(), 26, 9_999_999);
    // (accession in the path, body, status, code, field, accession as audited)
    type Case<'a> = (String, Value, StatusCode, &'a str, Option<&'a str>, String);
    let cases: Vec<Case> = vec![
        (
            wrong.clone(),
            full_tube("LAV"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "accession_check",
            Some("accession"),
            wrong.clone(),
        ),
        (
            format!("{acc}%20"),
            full_tube("LAV"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "accession_whitespace",
            Some("accession"),
            format!("{acc} "),
        ),
        (
            format!("{acc}%0D"),
            full_tube("LAV"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "accession_control_char",
            Some("accession"),
            format!("{acc}\\r"),
        ),
        (
            format!("{acc}%1B"),
            full_tube("LAV"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "accession_control_char",
            Some("accession"),
            format!("{acc}\\u{{1b}}"),
        ),
        (
            unknown.as_str().to_owned(),
            full_tube("LAV"),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            unknown.as_str().to_owned(),
        ),
        (
            acc.clone(),
            merged(full_tube("LAV"), json!({"order_id": other_order_id})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "specimen_order_mismatch",
            Some("order_id"),
            acc.clone(),
        ),
        (
            acc.clone(),
            merged(
                full_tube("LAV"),
                json!({"patient": {"mrn": "MRN-701", "birth_date": "1975-06-01"}}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "patient_mismatch",
            Some("patient"),
            acc.clone(),
        ),
    ];
    for (path_acc, body, status, code, field, audited_as) in cases {
        let before = c.app.audit_len().await;
        let got = c
            .app
            .post(
                &format!("/api/v1/specimens/{path_acc}/receive"),
                &c.token,
                body,
            )
            .await;
        assert_error(&got, status, code, field);
        assert_eq!(c.app.audit_len().await, before + 1, "{code}");
        let a = last_audit(&c).await;
        assert_eq!(a.entry.action, "specimen.receive_refused");
        assert_eq!(a.entry.entity_id, audited_as, "{code}");
        assert_eq!(a.entry.actor_name, "technician");
        assert_eq!(a.entry.new_value.as_ref().unwrap()["code"], code);
        let v = specimen_json(&c, &acc).await;
        assert_eq!(v["status"], "collected", "{code}");
        assert_eq!(v["events"].as_array().unwrap().len(), 1, "{code}");
    }

    // The right requisition and patient: received.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/receive"),
            &c.token,
            merged(
                full_tube("LAV"),
                json!({"order_id": order_id,
                       "patient": {"mrn": "MRN-700", "birth_date": "1980-02-29"}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "received");
    // Double receipt: 409, audited, nothing changed.
    let before = c.app.audit_len().await;
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/receive"),
            &c.token,
            full_tube("LAV"),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    assert_eq!(c.app.audit_len().await, before + 1);
    assert_eq!(
        last_audit(&c).await.entry.action,
        "specimen.receive_refused"
    );
    let v = specimen_json(&c, &acc).await;
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    c.app.finish().await;
}

async fn problems_are_resolved_and_recollections_completed(db: Db) {
    let c = setup(db).await;
    register(
        &c.app,
        &c.token,
        patient_body("MRN-701", "Berg", "Lena", "1975-06-01"),
    )
    .await;
    let acc = new_tube(&c).await;
    collect(&c, &acc).await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/reject"),
            &c.token,
            json!({"reason": "hemolyzed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, log) = c.app.get("/api/v1/problem-log?open=true", &c.token).await;
    let problem = log[0]["id"].as_i64().unwrap();
    let (_, tasks) = c
        .app
        .get("/api/v1/recollect-tasks?open=true", &c.token)
        .await;
    let task = tasks[0]["id"].as_i64().unwrap();

    // Resolving needs a resolution, once.
    let path = format!("/api/v1/problem-log/{problem}/resolve");
    let got = c
        .app
        .post(&path, &c.token, json!({"resolution": "  "}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("resolution"),
    );
    let before = c.app.audit_len().await;
    let (s, p) = c
        .app
        .post(
            &path,
            &c.token,
            json!({"resolution": "recollected; ward informed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["resolved_by"], "technician");
    assert_eq!(p["resolution"], "recollected; ward informed");
    assert!(p["resolved_at"].is_string());
    assert_eq!(c.app.audit_len().await, before + 1);
    assert_eq!(last_audit(&c).await.entry.action, "problem.resolve");
    let got = c
        .app
        .post(&path, &c.token, json!({"resolution": "again"}))
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    let (_, open) = c.app.get("/api/v1/problem-log?open=true", &c.token).await;
    assert_eq!(open, json!([]));
    let (_, all) = c.app.get("/api/v1/problem-log", &c.token).await;
    assert_eq!(all[0]["resolution"], "recollected; ward informed");

    // Completing a recollection names a collected specimen of the same patient.
    let path = format!("/api/v1/recollect-tasks/{task}/complete");
    let got = c
        .app
        .post(
            &path,
            &c.token,
            json!({"replacement_accession": "nonsense"}),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(got.1["error"]["field"], "replacement_accession");
    let planned = new_tube(&c).await;
    let got = c
        .app
        .post(&path, &c.token, json!({"replacement_accession": planned}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "replacement_not_collected",
        Some("replacement_accession"),
    );
    let body = json!({"patient": {"mrn": "MRN-701", "birth_date": "1975-06-01"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["CBC"], "priority": "routine"});
    let (_, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    let theirs = o["specimens"][0]["accession"].as_str().unwrap().to_owned();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{theirs}/collect"),
            &c.token,
            json!({"collected_at": c.app.app.now().to_string(),
                   "patient": {"mrn": "MRN-701", "birth_date": "1975-06-01"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = c
        .app
        .post(&path, &c.token, json!({"replacement_accession": theirs}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient_mismatch",
        Some("replacement_accession"),
    );
    collect(&c, &planned).await;
    let before = c.app.audit_len().await;
    let (s, t) = c
        .app
        .post(&path, &c.token, json!({"replacement_accession": planned}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["replacement_accession"], planned.as_str());
    assert_eq!(t["done_by"], "technician");
    assert_eq!(c.app.audit_len().await, before + 1);
    let a = last_audit(&c).await;
    assert_eq!(a.entry.action, "recollect_task.complete");
    assert_eq!(
        a.entry.new_value.as_ref().unwrap()["rejected_accession"],
        acc.as_str()
    );
    let got = c
        .app
        .post(&path, &c.token, json!({"replacement_accession": planned}))
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    let (_, open) = c
        .app
        .get("/api/v1/recollect-tasks?open=true", &c.token)
        .await;
    assert_eq!(open, json!([]));
    c.app.finish().await;
}

async fn turnaround_time_milestones_and_overdue_list(db: Db) {
    let c = setup(db).await;
    // A STAT CBC (target 60 min in the demo catalogue) and a routine sodium (240 min).
    let stat = new_tube(&c).await;
    collect(&c, &stat).await;
    let body = json!({"patient": {"mrn": "MRN-700", "birth_date": "1980-02-29"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["NA"], "priority": "routine"});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let routine = o["specimens"][0]["accession"].as_str().unwrap().to_owned();
    collect(&c, &routine).await;
    // A STAT tube that never arrives is not the lab's to chase on this list.
    let lost = new_tube(&c).await;
    collect(&c, &lost).await;
    for acc in [&stat, &routine] {
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/receive"),
                &c.token,
                c.app.full_tube_of(acc, &c.token).await,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let stat_order = specimen_json(&c, &stat).await["order_id"].as_i64().unwrap();
    // Platelets poured off into an aliquot keep the parent tube's receipt time.
    let (s, child) = c
        .app
        .post(
            &format!("/api/v1/specimens/{stat}/aliquots"),
            &c.token,
            json!({"volume_ul": 100, "tests": ["PLT"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{child}");

    let (s, tat) = c
        .app
        .get(&format!("/api/v1/orders/{stat_order}/tat"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{tat}");
    let tests = tat.as_array().unwrap();
    assert_eq!(tests.len(), 9, "{tat}");
    let wbc = tests.iter().find(|t| t["test_code"] == "WBC").unwrap();
    assert_eq!(wbc["accession"], stat.as_str());
    assert_eq!(wbc["priority"], "stat");
    let names: Vec<&str> = wbc["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["milestone"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ordered", "collected", "received"]);
    assert_eq!(wbc["in_lab"]["status"], "on_time");
    assert_eq!(wbc["in_lab"]["target_minutes"], 60);
    assert_eq!(wbc["in_lab"]["elapsed_minutes"], 0);
    assert_eq!(wbc["total"]["status"], "on_time");
    let plt = tests.iter().find(|t| t["test_code"] == "PLT").unwrap();
    assert_eq!(plt["accession"], format!("{stat}-01"));
    assert_eq!(plt["milestones"], wbc["milestones"]);
    assert_eq!(plt["in_lab"]["status"], "on_time");
    let (_, list) = c.app.get("/api/v1/tat/overdue", &c.token).await;
    assert_eq!(list, json!([]));

    // 50 minutes on: the STAT tests are at risk (≥ 80 % of 60 min), the routine one is not.
    c.app.clock.advance(SignedDuration::from_mins(50));
    let token = c.app.token_for(Role::Technician).await;
    let (s, list) = c.app.get("/api/v1/tat/overdue", &token).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 9, "{list:?}");
    assert!(list.iter().all(|t| t["in_lab"]["status"] == "at_risk"
        && t["accession"].as_str().unwrap().starts_with(stat.as_str())));
    // 200 minutes on: STAT overdue, routine at risk (≥ 192 of 240 min); STAT first.
    c.app.clock.advance(SignedDuration::from_mins(150));
    let token = c.app.token_for(Role::Technician).await;
    let (_, list) = c.app.get("/api/v1/tat/overdue", &token).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 10, "{list:?}");
    assert!(list[..9].iter().all(|t| t["priority"] == "stat"
        && t["in_lab"]["status"] == "overdue"
        && t["in_lab"]["remaining_minutes"] == -140));
    assert_eq!(list[9]["test_code"], "NA");
    assert_eq!(list[9]["in_lab"]["status"], "at_risk");
    assert_eq!(list[9]["in_lab"]["remaining_minutes"], 40);

    // The ordering physician reads an order's TAT but not the lab's worklist.
    let doc = physician_token(&c.app, c.provider).await;
    let (s, _) = c
        .app
        .get(&format!("/api/v1/orders/{stat_order}/tat"), &doc)
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = c.app.get("/api/v1/tat/overdue", &doc).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    let got = c.app.get("/api/v1/orders/999999/tat", &token).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    c.app.finish().await;
}

/// Issue 10 item 1: an outreach draw entered hours later keeps its real draw time (it may
/// precede the order), stability is judged from it (a 3-hour-old lactate, limit 1 h at room
/// temperature, is refused at receipt), the collector is recorded, and a mistyped time is
/// corrected with a reason, audited old and new, in the chain of custody.
async fn the_real_draw_time_is_kept_judged_and_corrected(db: Db) {
    let c = setup(db).await;
    // Stored to the microsecond.
    let now = Timestamp::from_microsecond(c.app.app.now().as_microsecond()).unwrap();
    let body = json!({"patient": {"mrn": "MRN-700", "birth_date": "1980-02-29"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["LACT"], "priority": "stat"});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let lact = o["specimens"][0]["accession"].as_str().unwrap().to_owned();
    let drawn = now - SignedDuration::from_hours(3);
    let mut collect = collect_body(drawn);
    collect["collector"] = json!("Nurse Kim, outreach");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{lact}/collect"),
            &c.token,
            collect,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a draw before the order's entry is accepted: {v}"
    );
    assert_eq!(v["collected_at"], drawn.to_string());
    let event = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(event["kind"], "collect");
    assert!(
        event["details"].to_string().contains("Nurse Kim, outreach"),
        "{event}"
    );
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{lact}/receive"),
            &c.token,
            full_tube("GRY"),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(got.1["error"]["code"], "receipt_problems", "{}", got.1);
    assert!(got.1.to_string().contains("stability"), "{}", got.1);

    // A correction, with a reason.
    let acc = new_tube(&c).await;
    let planned = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/collection-time"),
            &c.token,
            json!({"collected_at": now.to_string(), "reason": "typo"}),
        )
        .await;
    assert_error(
        &planned,
        StatusCode::CONFLICT,
        "not_collected",
        Some("collected_at"),
    );
    collect_at(&c, &acc, now - SignedDuration::from_hours(2)).await;
    let path = format!("/api/v1/specimens/{acc}/collection-time");
    let fixed = now - SignedDuration::from_mins(70);
    let got = c
        .app
        .post(
            &path,
            &c.token,
            json!({"collected_at": fixed.to_string(), "reason": " "}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("reason"),
    );
    let before = c.app.audit_len().await;
    let (s, v) = c
        .app
        .post(
            &path,
            &c.token,
            json!({"collected_at": fixed.to_string(), "reason": "requisition says 07:50"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["collected_at"], fixed.to_string());
    assert_eq!(v["status"], "collected", "a correction keeps the status");
    let event = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(event["kind"], "collection_correct", "{event}");
    let audit = c
        .app
        .app
        .store()
        .audit_events(before, 10, Some(("specimen", acc.as_str())))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    let e = &audit[0].entry;
    assert_eq!(e.action, "specimen.collection_correct");
    assert_eq!(e.reason.as_deref(), Some("requisition says 07:50"));
    assert_eq!(
        e.old_value.as_ref().unwrap()["collected_at"],
        (now - SignedDuration::from_hours(2)).to_string()
    );
    assert_eq!(
        e.new_value.as_ref().unwrap()["collected_at"],
        fixed.to_string()
    );
    c.app.finish().await;
}

async fn collect_at(c: &Ctx, acc: &str, at: Timestamp) {
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

/// Issue 10 item 1, at receipt: an outreach tube arrives with its requisition and no recorded
/// collection. The draw time on the requisition is recorded (two identifiers required) and the
/// receipt check judges stability from it: a 3-hour-old CBC is received, a 3-hour-old lactate
/// is refused, though its collection stays recorded (it happened).
async fn an_outreach_tube_is_received_with_its_draw_time(db: Db) {
    let c = setup(db).await;
    let now = Timestamp::from_microsecond(c.app.app.now().as_microsecond()).unwrap();
    let drawn = now - SignedDuration::from_hours(3);
    let ids = json!({"mrn": "MRN-700", "birth_date": "1980-02-29"});
    let cbc = new_tube(&c).await;
    let path = format!("/api/v1/specimens/{cbc}/receive");
    let got = c
        .app
        .post(
            &path,
            &c.token,
            merged(full_tube("LAV"), json!({"collected_at": drawn.to_string()})),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "required",
        Some("patient"),
    );
    let (s, v) = c
        .app
        .post(
            &path,
            &c.token,
            merged(
                full_tube("LAV"),
                json!({"collected_at": drawn.to_string(),
                       "collector": "Clinic RN Ortiz", "patient": ids}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "received");
    assert_eq!(v["collected_at"], drawn.to_string());
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["collect", "receive"]);

    let body = json!({"patient": ids, "provider_id": c.provider, "location_id": c.location,
        "tests": ["LACT"], "priority": "stat"});
    let (_, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    let lact = o["specimens"][0]["accession"].as_str().unwrap().to_owned();
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{lact}/receive"),
            &c.token,
            merged(
                full_tube("GRY"),
                json!({"collected_at": drawn.to_string(), "patient": ids}),
            ),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(got.1["error"]["code"], "receipt_problems", "{}", got.1);
    let (_, v) = c
        .app
        .get(&format!("/api/v1/specimens/{lact}"), &c.token)
        .await;
    assert_eq!(
        (v["status"].as_str(), v["collected_at"].as_str()),
        (Some("collected"), Some(drawn.to_string().as_str()))
    );
    // Its recorded time is not replaced at receipt: that is a correction, with a reason.
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{lact}/receive"),
            &c.token,
            merged(
                full_tube("GRY"),
                json!({"collected_at": now.to_string(), "patient": ids}),
            ),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "already_collected",
        Some("collected_at"),
    );
    c.app.finish().await;
}
