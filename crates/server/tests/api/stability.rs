//! Issue 10 items 2, 3, 8, 9 and 10 on both databases: stability over the temperature history,
//! unspun blood (CLSI GP44) and special handling at receipt, the spin protocols, and retention
//! by use.

use aliquot_domain::auth::Role;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    thirty_hours_at_room_temperature_is_refused_however_it_arrives,
    unspun_blood_and_special_handling_at_receipt,
    spins_follow_the_container_protocol_and_the_unspun_limit,
    retention_by_use_and_irreplaceable_specimens,
    result_entry_judges_the_temperature_history,
    add_ons_judge_the_temperature_history,
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
        patient_body("MRN-900", "Ito", "Yuki", "1970-03-03"),
    )
    .await;
    Ctx {
        app,
        token,
        provider,
        location,
    }
}

/// A new order's only tube.
async fn tube(c: &Ctx, tests: &[&str]) -> String {
    let body = json!({"patient": {"mrn": "MRN-900", "birth_date": "1970-03-03"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": tests, "priority": "routine"});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let specimens = o["specimens"].as_array().unwrap();
    assert_eq!(specimens.len(), 1, "{o}");
    specimens[0]["accession"].as_str().unwrap().to_owned()
}

/// Collected now, kept at `temperature`.
async fn collect(c: &Ctx, acc: &str, temperature: &str) -> Timestamp {
    let now = Timestamp::from_microsecond(c.app.app.now().as_microsecond()).unwrap();
    let body = json!({"collected_at": now.to_string(), "temperature": temperature,
        "patient": {"mrn": "MRN-900", "family_name": "Ito", "given_name": "Yuki"}});
    let (s, v) = c
        .app
        .post(&format!("/api/v1/specimens/{acc}/collect"), &c.token, body)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    now
}

/// Receipt with the label, container and fill attested as planned; `body` adds or overrides
/// (a tube with a fill line attests its line, never a volume).
async fn receive(c: &Ctx, acc: &str, body: Value) -> (StatusCode, Value) {
    let mut full = c.app.full_tube_of(acc, &c.token).await;
    for (k, v) in body.as_object().expect("an object") {
        full[k] = v.clone();
    }
    if full.get("fill").is_some()
        && let Some(o) = full.as_object_mut()
    {
        o.remove("volume_ul");
    }
    let body = full;
    c.app
        .post(&format!("/api/v1/specimens/{acc}/receive"), &c.token, body)
        .await
}

/// The receipt problem codes of a refused receipt.
fn problems(got: &(StatusCode, Value)) -> Vec<String> {
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(got.1["error"]["code"], "receipt_problems", "{}", got.1);
    got.1["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Hours pass; tokens idle for 30 minutes expire, so log in again.
async fn later(c: &mut Ctx, d: SignedDuration) {
    c.app.clock.advance(d);
    c.token = c.app.token_for(Role::Technician).await;
}

async fn spin(c: &Ctx, acc: &str, body: Value) -> (StatusCode, Value) {
    let mut body = body;
    body["centrifuge_id"] = json!("CF-1");
    body["temperature_c"] = json!(20);
    c.app
        .post(
            &format!("/api/v1/specimens/{acc}/centrifugations"),
            &c.token,
            body,
        )
        .await
}

/// Issue 10 item 2: the same serum tube, 30 h at room temperature (potassium: 24 h), is refused
/// whether it is received as "room" or as "refrigerated"; the tube the courier kept cold from
/// the first hour is accepted (1 h / 24 h + 29 h / 7 d of its stability).
async fn thirty_hours_at_room_temperature_is_refused_however_it_arrives(db: Db) {
    let mut c = setup(db).await;
    let room = tube(&c, &["K"]).await;
    let cold = tube(&c, &["K"]).await;
    let couriered = tube(&c, &["K"]).await;
    let mut drawn = Timestamp::UNIX_EPOCH;
    for acc in [&room, &cold, &couriered] {
        drawn = collect(&c, acc, "room").await;
    }
    // Spun at the draw site 40 minutes after the draw: only the temperatures are judged.
    let spun = (drawn + SignedDuration::from_mins(40)).to_string();
    later(&mut c, SignedDuration::from_hours(1)).await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{couriered}/dispatch"),
            &c.token,
            json!({"courier": "Route 7", "from_location": "Clinic", "destination": "Core lab",
                   "temperature": "refrigerated"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    later(&mut c, SignedDuration::from_hours(29)).await;

    for (acc, arrives) in [(&room, "room"), (&cold, "refrigerated")] {
        let before = c.app.audit_len().await;
        let got = receive(
            &c,
            acc,
            json!({"temperature": arrives, "separated_at": spun, "volume_ul": 1000}),
        )
        .await;
        assert_eq!(
            problems(&got),
            ["receipt_stability_exceeded"],
            "received {arrives}: {}",
            got.1
        );
        assert!(
            got.1.to_string().contains("125 %"),
            "the share used is named: {}",
            got.1
        );
        c.app.assert_only_refused(before).await;
    }
    let (s, v) = receive(
        &c,
        &couriered,
        json!({"temperature": "refrigerated", "separated_at": spun, "volume_ul": 1000}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let receipt = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(receipt["details"]["separated_at"], spun.as_str());
    c.app.finish().await;
}

/// Issue 10 item 3 and item 10: unspun blood has its own, shorter stability (potassium 2 h at
/// room temperature, never refrigerated unspun); lactate is judged in minutes and must stay on
/// ice; LDH must not be refrigerated.
async fn unspun_blood_and_special_handling_at_receipt(db: Db) {
    let mut c = setup(db).await;
    let late = tube(&c, &["K"]).await;
    let chilled = tube(&c, &["K"]).await;
    let lact_warm = tube(&c, &["LACT"]).await;
    let lact_ice = tube(&c, &["LACT"]).await;
    let lact_room = tube(&c, &["LACT"]).await;
    let ldh = tube(&c, &["LDH"]).await;
    collect(&c, &late, "room").await;
    collect(&c, &chilled, "refrigerated").await;
    collect(&c, &lact_warm, "refrigerated").await;
    collect(&c, &lact_ice, "refrigerated").await;
    collect(&c, &lact_room, "room").await;
    collect(&c, &ldh, "room").await;

    later(&mut c, SignedDuration::from_mins(10)).await;
    // Lactate on ice for 10 minutes: accepted; the same tube arriving warm is flagged.
    let got = receive(&c, &lact_warm, json!({"temperature": "room"})).await;
    assert_eq!(problems(&got), ["receipt_special_handling"], "{}", got.1);
    assert_eq!(
        got.1["error"]["problems"][0]["rejection_reason"],
        "wrong_temperature"
    );
    let (s, v) = receive(&c, &lact_ice, json!({"temperature": "refrigerated"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Potassium in refrigerated unspun blood: refused whatever the age.
    let got = receive(&c, &chilled, json!({"temperature": "room"})).await;
    assert_eq!(
        problems(&got),
        ["receipt_unspun_temperature_not_allowed"],
        "{}",
        got.1
    );
    // LDH received refrigerated: not allowed, and against its do-not-refrigerate flag.
    let got = receive(&c, &ldh, json!({"temperature": "refrigerated"})).await;
    let codes = problems(&got);
    assert!(
        codes.contains(&"receipt_temperature_not_allowed".to_owned())
            && codes.contains(&"receipt_special_handling".to_owned()),
        "{}",
        got.1
    );

    // A lactate left at room temperature for 20 minutes: past its 15 unspun minutes (limits
    // in minutes), and never on ice; putting it on ice at receipt does not undo that.
    later(&mut c, SignedDuration::from_mins(10)).await;
    let got = receive(&c, &lact_room, json!({"temperature": "refrigerated"})).await;
    assert_eq!(
        problems(&got),
        ["receipt_separation_late", "receipt_special_handling"],
        "{}",
        got.1
    );

    // Potassium unspun for 2 h 30 min at room temperature: too late to separate.
    later(&mut c, SignedDuration::from_mins(130)).await;
    let got = receive(&c, &late, json!({})).await;
    assert_eq!(problems(&got), ["receipt_separation_late"], "{}", got.1);
    assert!(got.1.to_string().contains("CLSI GP44"), "{}", got.1);
    c.app.finish().await;
}

/// Issue 10 item 9: a spin protocol per container (citrate to platelet-poor plasma, 1,500 g ×
/// 15 min; 150 g × 2 min is refused), the domain's and the app's ranges agree, a gel tube is
/// never spun twice, and a first spin later than the unspun stability is refused.
async fn spins_follow_the_container_protocol_and_the_unspun_limit(db: Db) {
    let mut c = setup(db).await;
    let citrate = tube(&c, &["PT"]).await;
    let sst = tube(&c, &["K"]).await;
    let late = tube(&c, &["K"]).await;
    let drawn = collect(&c, &citrate, "room").await;
    collect(&c, &sst, "room").await;
    collect(&c, &late, "room").await;
    later(&mut c, SignedDuration::from_mins(45)).await;
    for acc in [&citrate, &sst, &late] {
        let (s, v) = receive(&c, acc, json!({"volume_ul": 2700})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    let before = c.app.audit_len().await;
    let got = spin(&c, &citrate, json!({"rcf_g": 150, "minutes": 2})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "spin_protocol",
        Some("rcf_g"),
    );
    assert!(got.1.to_string().contains("platelet-poor"), "{}", got.1);
    let got = spin(&c, &citrate, json!({"rcf_g": 1500, "minutes": 5})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "spin_protocol",
        Some("minutes"),
    );
    // One range for the domain and the edge: 61 minutes is refused by both.
    let got = spin(&c, &citrate, json!({"rcf_g": 1500, "minutes": 61})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "centrifugation_duration",
        Some("minutes"),
    );
    c.app.assert_only_refused(before).await;
    let (s, v) = spin(&c, &citrate, json!({"rcf_g": 1500, "minutes": 15})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Citrate plasma is double-spun before freezing: allowed.
    let (s, v) = spin(&c, &citrate, json!({"rcf_g": 1500, "minutes": 15})).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, v) = spin(&c, &sst, json!({"rcf_g": 1300, "minutes": 10})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = spin(&c, &sst, json!({"rcf_g": 1300, "minutes": 10})).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "gel_tube_respin",
        Some("accession"),
    );

    // Spun 2 h 15 min after the draw: too late for potassium (2 h unspun); a spin recorded
    // for 1 h 50 min (the centrifuge's log) is accepted.
    later(&mut c, SignedDuration::from_mins(90)).await;
    let got = spin(&c, &late, json!({"rcf_g": 1300, "minutes": 10})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "separation_late",
        Some("started_at"),
    );
    assert!(got.1.to_string().contains("K"), "{}", got.1);
    let on_time = (drawn + SignedDuration::from_mins(110)).to_string();
    let (s, v) = spin(
        &c,
        &late,
        json!({"rcf_g": 1300, "minutes": 10, "started_at": on_time}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    c.app.finish().await;
}

async fn processed_and_stored(c: &Ctx, acc: &str, location: &str) {
    for route in ["start-processing", "complete-processing"] {
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/{route}"),
                &c.token,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/store"),
            &c.token,
            json!({"location": location}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Issue 10 item 8: with whole blood at CAP's 48 h, a blood-bank tube is still kept (10 days by
/// default); a rule per test is set and listed; an irreplaceable specimen (CSF), even
/// rejected, is kept until a person decides.
async fn retention_by_use_and_irreplaceable_specimens(db: Db) {
    let mut c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    for (path, kind, temperature) in [
        ("LAB1", "room", None),
        ("LAB1/FRIDGE1", "refrigerator", Some("refrigerated")),
        ("LAB1/FRIDGE1/R1", "rack", None),
    ] {
        let (s, v) = c
            .app
            .post(
                "/api/v1/storage/units",
                &c.token,
                json!({"path": path, "kind": kind, "temperature": temperature}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // A CSF test, for an irreplaceable specimen.
    let (s, v) = c
        .app
        .post(
            "/api/v1/catalog/tests",
            &admin,
            json!({"code": "CSFGLU", "name": "Glucose CSF", "loinc": "2342-4",
                   "department": "chemistry", "specimen_type": "csf", "container": "UCUP",
                   "min_volume_ul": 200, "stability": {"room_minutes": 120, "refrigerated_minutes": 2880},
                   "result_type": "numeric", "precision": 0, "units": "mg/dL"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["stability"]["room_minutes"], 120, "{v}");
    let put = |t: &str| format!("/api/v1/storage/retention/{t}");
    let (s, v) = c
        .app
        .put(
            &put("whole_blood"),
            &admin,
            json!({"hours": 48, "reason": "CAP: haematology whole blood 48 h"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = c
        .app
        .put(
            &put("serum"),
            &admin,
            json!({"hours": 168, "department": "chemistry", "test": "TSH", "reason": "both"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_use_twice",
        Some("test"),
    );
    let (s, v) = c
        .app
        .put(
            &put("serum"),
            &admin,
            json!({"hours": 168, "test": "TSH", "reason": "thyroid add-ons for a week"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["test"].as_str(), v["hours"].as_i64()),
        (Some("TSH"), Some(168))
    );
    let (_, list) = c.app.get("/api/v1/storage/retention", &admin).await;
    let rows = list.as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["specimen_type"] == "whole_blood"
            && r["department"] == "blood_bank"
            && r["hours"] == 240
            && r["source"] == "default"),
        "{list}"
    );
    assert!(
        rows.iter()
            .any(|r| r["specimen_type"] == "serum" && r["test"] == "TSH" && r["hours"] == 168),
        "{list}"
    );
    assert!(
        rows.iter()
            .any(|r| r["specimen_type"] == "csf" && r["until_decided"] == true),
        "{list}"
    );

    let cbc = tube(&c, &["CBC"]).await;
    let bank = tube(&c, &["ABORH"]).await;
    let csf = tube(&c, &["CSFGLU"]).await;
    for acc in [&cbc, &bank, &csf] {
        collect(&c, acc, "room").await;
    }
    for acc in [&cbc, &bank] {
        let (s, v) = receive(&c, acc, json!({"volume_ul": 4000})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = receive(&c, &csf, json!({"volume_ul": 1000})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    processed_and_stored(&c, &cbc, "LAB1/FRIDGE1/R1/1").await;
    processed_and_stored(&c, &bank, "LAB1/FRIDGE1/R1/2").await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{csf}/reject"),
            &c.token,
            json!({"reason": "leaked"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Their tests are done with (cancelled here: the scenario is retention, and a tube with
    // pending tests is never disposed of).
    for acc in [&cbc, &bank] {
        let (s, v) = c
            .app
            .get(&format!("/api/v1/specimens/{acc}"), &c.token)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let order = v["order_id"].as_i64().unwrap();
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/orders/{order}/cancel"),
                &c.token,
                json!({"reason": "duplicate request from the ward"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    later(&mut c, SignedDuration::from_hours(72)).await;
    let (s, due) = c.app.get("/api/v1/storage/disposal-due", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{due}");
    let accs: Vec<&str> = due["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["accession"].as_str().unwrap())
        .collect();
    assert_eq!(accs, [cbc.as_str()], "the blood-bank tube is kept: {due}");
    let rejected = &due["rejected"].as_array().unwrap()[0];
    assert_eq!(rejected["accession"], csf.as_str());
    assert_eq!(rejected["due_at"], Value::Null, "{due}");

    let dispose = |acc: &str| format!("/api/v1/specimens/{acc}/dispose");
    let got = c
        .app
        .post(&dispose(&bank), &c.token, json!({"method": "biohazard"}))
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "retention_not_elapsed",
        Some("reason"),
    );
    let got = c
        .app
        .post(&dispose(&csf), &c.token, json!({"method": "biohazard"}))
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "disposal_decision_required",
        Some("reason"),
    );
    let (s, v) = c
        .app
        .post(&dispose(&cbc), &c.token, json!({"method": "biohazard"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &dispose(&csf),
            &c.token,
            json!({"method": "incineration", "reason": "pathologist: leaked, nothing to test"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["details"]["before_retention"], true);

    // Ten days after storage the blood-bank tube is due too.
    later(&mut c, SignedDuration::from_hours(24 * 7 + 1)).await;
    let (_, due) = c.app.get("/api/v1/storage/disposal-due", &c.token).await;
    assert_eq!(due["due"][0]["accession"], bank.as_str(), "{due}");
    c.app.finish().await;
}

/// A serum tube drawn now at room temperature, received 6 hours later refrigerated (spun at
/// the draw site after 40 minutes), then 48 hours in the refrigerator: glucose has used
/// 6 h / 8 h + 48 h / 3 d = 141.7 % of its stability, potassium 6 h / 24 h + 48 h / 7 d = 54 %.
/// Judged by its last temperature alone (refrigerated, 54 h) both looked fine.
async fn six_hours_warm_then_two_days_cold(c: &mut Ctx, tests: &[&str]) -> String {
    let acc = tube(c, tests).await;
    let drawn = collect(c, &acc, "room").await;
    later(c, SignedDuration::from_hours(6)).await;
    let spun = (drawn + SignedDuration::from_mins(40)).to_string();
    let (s, v) = receive(
        c,
        &acc,
        json!({"temperature": "refrigerated", "separated_at": spun}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    later(c, SignedDuration::from_hours(48)).await;
    acc
}

/// Issue 10 leftover: result entry judges stability over the temperature history.
async fn result_entry_judges_the_temperature_history(db: Db) {
    let mut c = setup(db).await;
    let acc = six_hours_warm_then_two_days_cold(&mut c, &["GLU", "K"]).await;
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.token,
            json!({"results": [
                {"accession": acc, "test": "GLU", "value": "98"},
                {"accession": acc, "test": "K", "value": "4.1"},
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let reasons = |i: usize| -> Vec<String> {
        v["results"][i]["hold_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        reasons(0).contains(&"specimen_not_stable".to_owned()),
        "glucose: {v}"
    );
    let message = v["results"][0]["hold_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "specimen_not_stable")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("used 141 %"), "{message}");
    assert!(
        !reasons(1).contains(&"specimen_not_stable".to_owned()),
        "potassium: {v}"
    );
    c.app.finish().await;
}

/// Issue 10 leftover: an add-on judges the tube over its temperature history.
async fn add_ons_judge_the_temperature_history(db: Db) {
    let mut c = setup(db).await;
    let acc = six_hours_warm_then_two_days_cold(&mut c, &["K"]).await;
    let (_, sp) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    let order = sp["order_id"].as_i64().unwrap();
    let path = format!("/api/v1/orders/{order}/tests");
    // Glucose: 142 % used, and no other tube: refused (a new draw is a new order).
    let before = c.app.audit_len().await;
    let got = c.app.post(&path, &c.token, json!({"test": "GLU"})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "add_on_stability_exceeded",
        Some("test"),
    );
    assert_eq!(c.app.audit_len().await, before, "nothing written");
    // Sodium (7 d at room temperature, 14 d cold): 6 h / 7 d + 48 h / 14 d, on the same tube.
    let (s, o) = c.app.post(&path, &c.token, json!({"test": "NA"})).await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let na = o["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test_code"] == "NA")
        .unwrap();
    assert_eq!(na["accession"], acc.as_str(), "{o}");
    assert_eq!(o["specimens"].as_array().unwrap().len(), 1, "{o}");
    c.app.finish().await;
}
