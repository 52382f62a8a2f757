//! Processing and routing: start/complete processing, centrifugation (clotting time, RCF from
//! rpm), aliquots (suffix, volume, lineage both ways, child labels), dilutions and the
//! sorting view (STAT first, aliquot plans).

use aliquot_domain::auth::Role;
use aliquot_store::DatabaseConfig;
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    processing_centrifugation_and_completion,
    aliquots_volume_lineage_and_labels,
    aliquot_of_rejected_or_disposed_is_refused,
    dilutions_are_recorded_and_validated,
    sorting_view_stat_first_with_aliquot_plan,
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
        patient_body("MRN-800", "Moreau", "Lea", "1975-06-15"),
    )
    .await;
    Ctx {
        app,
        token,
        provider,
        location,
    }
}

/// Places an order and returns the accession of its only tube.
async fn order(c: &Ctx, tests: &[&str], priority: &str) -> String {
    let body = json!({"patient": {"mrn": "MRN-800", "birth_date": "1975-06-15"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": tests, "priority": priority});
    let (s, o) = c.app.post("/api/v1/orders", &c.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let specimens = o["specimens"].as_array().unwrap();
    assert_eq!(specimens.len(), 1, "{o}");
    specimens[0]["accession"].as_str().unwrap().to_owned()
}

/// Collects now and receives the tube; returns its detail.
async fn received(c: &Ctx, acc: &str) -> Value {
    let body = json!({"collected_at": c.app.app.now().to_string(),
        "patient": {"mrn": "MRN-800", "family_name": "Moreau", "given_name": "Lea"}});
    let (s, v) = c
        .app
        .post(&format!("/api/v1/specimens/{acc}/collect"), &c.token, body)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(&format!("/api/v1/specimens/{acc}/receive"), &c.token, {
            // 2,000 µL measured, except a citrate tube, judged against its line.
            let mut body = c.app.full_tube_of(acc, &c.token).await;
            if body.get("volume_ul").is_some() {
                body["volume_ul"] = json!(2000);
            }
            body
        })
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Half an hour later (the serum has clotted), a spin at 1,300 g for 10 minutes.
async fn spun(c: &Ctx, acc: &str) -> Value {
    // In two steps, with a request between: a session idle for 30 minutes ends.
    c.app.clock.advance(SignedDuration::from_mins(15));
    detail(c, acc).await;
    c.app.clock.advance(SignedDuration::from_mins(15));
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/centrifugations"),
            &c.token,
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 20}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn detail(c: &Ctx, acc: &str) -> Value {
    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn lineage(c: &Ctx, acc: &str) -> Value {
    let (s, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}/lineage"), &c.token)
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

/// The audit actions recorded for one specimen after `after`.
/// The changes audited on a specimen since `after` (refused attempts left out).
async fn actions(c: &Ctx, after: i64, acc: &str) -> Vec<String> {
    c.app
        .app
        .store()
        .audit_events(after, 100, Some(("specimen", acc)))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry.action)
        .filter(|a| !a.ends_with("_refused"))
        .collect()
}

/// Sets a specimen's status directly (states reached through routes outside this slice).
async fn force_status(app: &TestApp, accession: &str, status: &str) {
    let sql = "UPDATE specimens SET status = $1 WHERE accession = $2";
    match &app.db {
        DatabaseConfig::Sqlite { path } => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(status)
                .bind(accession)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        DatabaseConfig::Postgres { url } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(sql)
                .bind(status)
                .bind(accession)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

async fn processing_centrifugation_and_completion(db: Db) {
    let mut c = setup(db).await;
    let acc = order(&c, &["NA", "K"], "routine").await;
    let start = format!("/api/v1/specimens/{acc}/start-processing");
    let spin = format!("/api/v1/specimens/{acc}/centrifugations");
    let complete = format!("/api/v1/specimens/{acc}/complete-processing");
    // Not received yet.
    let got = c.app.post(&start, &c.token, json!({})).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_illegal",
        Some("event"),
    );
    let v = received(&c, &acc).await;
    assert_eq!(v["container"], "SST");

    let before = c.app.audit_len().await;
    let (s, v) = c.app.post(&start, &c.token, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "in_process");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "start_processing");
    assert_eq!(last["from_status"], "received");
    assert_eq!(last["to_status"], "in_process");
    assert_eq!(last["actor_name"], "technician");
    assert_eq!(
        actions(&c, before, &acc).await,
        ["specimen.start_processing"]
    );
    let got = c.app.post(&start, &c.token, json!({})).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);

    // Serum can't be released as processed without a centrifugation record.
    let got = c.app.post(&complete, &c.token, json!({})).await;
    assert_error(&got, StatusCode::CONFLICT, "centrifugation_required", None);

    // The SST was collected just now: spinning before 30 min of clotting is refused.
    let before = c.app.audit_len().await;
    let body = json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 20});
    let got = c.app.post(&spin, &c.token, body.clone()).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "centrifugation_clotting_time",
        Some("started_at"),
    );
    // Bad input, each naming its field, nothing written.
    for (bad, code, field) in [
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "rpm": 3000, "radius_cm": 10, "minutes": 10, "temperature_c": 20}),
            "centrifugation_speed",
            "rcf_g",
        ),
        (
            json!({"centrifuge_id": "CF-1", "minutes": 10, "temperature_c": 20}),
            "centrifugation_speed",
            "rcf_g",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 30000, "minutes": 10, "temperature_c": 20}),
            "centrifugation_rcf",
            "rcf_g",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rpm": 0, "radius_cm": 10, "minutes": 10, "temperature_c": 20}),
            "centrifugation_speed",
            "rpm",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rpm": 3000, "radius_cm": -1, "minutes": 10, "temperature_c": 20}),
            "centrifugation_speed",
            "radius_cm",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 0, "temperature_c": 20}),
            "centrifugation_duration",
            "minutes",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 99}),
            "temperature_c_range",
            "temperature_c",
        ),
        (
            json!({"centrifuge_id": " ", "rcf_g": 1300, "minutes": 10, "temperature_c": 20}),
            "required",
            "centrifuge_id",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 20, "started_at": "soon"}),
            "started_at_format",
            "started_at",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 20,
                   "started_at": (c.app.app.now() + SignedDuration::from_hours(2)).to_string()}),
            "started_at_in_future",
            "started_at",
        ),
        (
            json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 20,
                   "started_at": (c.app.app.now() - SignedDuration::from_hours(2)).to_string()}),
            "started_before_collection",
            "started_at",
        ),
    ] {
        let got = c.app.post(&spin, &c.token, bad.clone()).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code, Some(field));
    }
    let got = c
        .app
        .post(&spin, &c.token, json!({"rcf_g": 1300, "minutes": 10}))
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    c.app.assert_only_refused(before).await;
    assert!(
        lineage(&c, &acc).await["centrifugations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // 31 minutes later: a 10 cm rotor at 3000 rpm is stored as 1006 g.
    c.app.clock.advance(SignedDuration::from_mins(31));
    c.token = c.app.login("technician").await;
    let body = json!({"centrifuge_id": "CF-1", "rpm": 3000, "radius_cm": 10, "minutes": 10, "temperature_c": 21.5});
    let (s, v) = c.app.post(&spin, &c.token, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "in_process");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "centrifuge");
    assert_eq!(last["from_status"], "in_process");
    assert_eq!(last["to_status"], "in_process");
    assert_eq!(last["details"]["rcf_g"], 1006);
    assert_eq!(last["details"]["centrifuge_id"], "CF-1");
    assert_eq!(actions(&c, before, &acc).await, ["specimen.centrifuge"]);
    let l = lineage(&c, &acc).await;
    let spins = l["centrifugations"].as_array().unwrap();
    assert_eq!(spins.len(), 1, "{l}");
    assert_eq!(spins[0]["rcf_g"], 1006);
    assert_eq!(spins[0]["minutes"], 10);
    assert_eq!(spins[0]["temperature_c"], "21.5");
    assert_eq!(spins[0]["operator_name"], "technician");

    let before = c.app.audit_len().await;
    let (s, v) = c.app.post(&complete, &c.token, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "processed");
    assert_eq!(
        kinds(&v),
        [
            "collect",
            "receive",
            "start_processing",
            "centrifuge",
            "complete_processing"
        ]
    );
    assert_eq!(
        actions(&c, before, &acc).await,
        ["specimen.complete_processing"]
    );
    // A processed specimen is not spun again.
    let body = json!({"centrifuge_id": "CF-1", "rcf_g": 1300, "minutes": 10, "temperature_c": 20});
    let got = c.app.post(&spin, &c.token, body).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_illegal",
        Some("event"),
    );

    // Whole blood (EDTA) completes without a centrifugation.
    let lav = order(&c, &["CBC"], "routine").await;
    received(&c, &lav).await;
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{lav}/start-processing"),
            &c.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{lav}/complete-processing"),
            &c.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "processed");

    // Only roles with specimen.process reach these routes.
    let doc = c.app.token_for(Role::Physician).await;
    let got = c.app.post(&start, &doc, json!({})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    c.app.finish().await;
}

async fn aliquots_volume_lineage_and_labels(db: Db) {
    let c = setup(db).await;
    let acc = order(&c, &["NA", "K", "TSH"], "routine").await;
    let v = received(&c, &acc).await;
    let total = v["volume_ul"].as_i64().unwrap();
    assert_eq!(total, 2000, "{v}");
    let path = format!("/api/v1/specimens/{acc}/aliquots");
    // Issue 10 item 10: nothing is poured from an unspun (clotted) serum tube.
    let got = c.app.post(&path, &c.token, json!({"volume_ul": 500})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_separated",
        Some("accession"),
    );
    spun(&c, &acc).await;
    // Nor is serum poured into a urine cup, or into a tube with an additive.
    for cup in ["UCUP", "LAV"] {
        let got = c
            .app
            .post(&path, &c.token, json!({"volume_ul": 500, "container": cup}))
            .await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            "aliquot_container_unsuitable",
            Some("container"),
        );
    }
    assert!(detail(&c, &acc).await["children"] == json!([]));

    let before = c.app.audit_len().await;
    let (s, child) = c
        .app
        .post(&path, &c.token, json!({"volume_ul": 500, "tests": ["TSH"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{child}");
    let child_acc = format!("{acc}-01");
    assert_eq!(child["accession"], child_acc.as_str());
    assert_eq!(child["status"], "received");
    assert_eq!(child["volume_ul"], 500);
    // The default child container is the aliquot tube really used, not the parent's SST.
    assert_eq!(child["container"], "ALQ");
    assert_eq!(child["tests"], json!(["TSH"]));
    assert_eq!(child["parent"], acc.as_str());
    assert_eq!(child["patient_id"], v["patient_id"]);
    assert_eq!(child["order_id"], v["order_id"]);
    assert_eq!(kinds(&child), ["aliquot"]);
    assert_eq!(child["events"][0]["details"]["parent"], acc.as_str());
    let p = detail(&c, &acc).await;
    assert_eq!(p["volume_ul"], total - 500);
    assert_eq!(p["tests"], json!(["K", "NA"]));
    assert_eq!(p["parent"], Value::Null);
    assert_eq!(
        p["children"],
        json!([{"accession": child_acc, "volume_ul": 500, "status": "received"}])
    );
    let last = p["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "aliquot");
    assert_eq!(last["details"]["child"], child_acc.as_str());
    assert_eq!(last["from_status"], "received");
    assert_eq!(last["to_status"], "received");
    assert_eq!(c.app.audit_len().await, before + 2);
    assert_eq!(actions(&c, before, &acc).await, ["specimen.aliquot"]);
    assert_eq!(
        actions(&c, before, &child_acc).await,
        ["specimen.aliquot_created"]
    );

    // More than what is left: refused, nothing written.
    let before = c.app.audit_len().await;
    let left = total - 500;
    let got = c
        .app
        .post(&path, &c.token, json!({"volume_ul": left + 1}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "aliquot_volume_exceeded",
        Some("volume_ul"),
    );
    for (bad, code, field) in [
        (json!({"volume_ul": 0}), "aliquot_zero_volume", "volume_ul"),
        (json!({"volume_ul": -3}), "volume_range", "volume_ul"),
        (
            json!({"volume_ul": 100, "tests": ["CBC"]}),
            "test_not_on_specimen",
            "tests[0]",
        ),
        (
            json!({"volume_ul": 100, "tests": ["TSH"]}),
            "test_not_on_specimen",
            "tests[0]",
        ),
        (
            json!({"volume_ul": 100, "tests": ["NA", "NA"]}),
            "test_duplicate",
            "tests[1]",
        ),
        (
            json!({"volume_ul": 100, "container": "XYZ"}),
            "unknown_container",
            "container",
        ),
    ] {
        let got = c.app.post(&path, &c.token, bad).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code, Some(field));
    }
    c.app.assert_only_refused(before).await;
    assert_eq!(detail(&c, &acc).await["volume_ul"], left);

    // The rest can be poured; the next child is -02, in another container.
    let (s, second) = c
        .app
        .post(
            &path,
            &c.token,
            json!({"volume_ul": 300, "container": "alq", "tests": ["K"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    let second_acc = format!("{acc}-02");
    assert_eq!(second["accession"], second_acc.as_str());
    assert_eq!(second["container"], "ALQ");

    // Lineage both ways.
    let l = lineage(&c, &acc).await;
    assert_eq!(l["specimen"], acc.as_str());
    assert_eq!(l["parent"], Value::Null);
    assert_eq!(l["volume_ul"], total - 800);
    assert_eq!(
        l["children"],
        json!([
            {"accession": child_acc, "volume_ul": 500, "status": "received"},
            {"accession": second_acc, "volume_ul": 300, "status": "received"}
        ])
    );
    let l = lineage(&c, &child_acc).await;
    assert_eq!(l["parent"], acc.as_str());
    assert_eq!(l["children"], json!([]));
    let log = c.app.app.store().access_log(0, 1000).await.unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "specimen.lineage" && a.entity_id == child_acc)
    );

    // An aliquot can't be aliquoted again (the suffix has one level).
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{child_acc}/aliquots"),
            &c.token,
            json!({"volume_ul": 100}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "accession_already_child", None);

    // The child's label carries the child accession and its own tests.
    let resp = c
        .app
        .client
        .get(format!(
            "{}/api/v1/specimens/{child_acc}/label?format=zpl",
            c.app.base
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let zpl = resp.text().await.unwrap();
    assert!(zpl.contains(&format!("^FD{child_acc}^FS")), "{zpl}");
    assert!(zpl.contains("TSH"), "{zpl}");
    assert!(zpl.contains("MOREAU, Lea"), "{zpl}");
    let resp = c
        .app
        .client
        .get(format!(
            "{}/api/v1/specimens/{second_acc}/label?format=svg",
            c.app.base
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    let svg = resp.text().await.unwrap();
    assert!(svg.contains(&second_acc), "{svg}");
    c.app.finish().await;
}

async fn aliquot_of_rejected_or_disposed_is_refused(db: Db) {
    let c = setup(db).await;
    // Planned: nothing in hand yet.
    let planned = order(&c, &["NA"], "routine").await;
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{planned}/aliquots"),
            &c.token,
            json!({"volume_ul": 100}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_illegal",
        Some("event"),
    );

    let acc = order(&c, &["K"], "routine").await;
    received(&c, &acc).await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/reject"),
            &c.token,
            json!({"reason": "hemolyzed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let before = c.app.audit_len().await;
    let path = format!("/api/v1/specimens/{acc}/aliquots");
    let got = c.app.post(&path, &c.token, json!({"volume_ul": 100})).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_illegal",
        Some("event"),
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );
    for route in ["start-processing", "complete-processing"] {
        let got = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/{route}"),
                &c.token,
                json!({}),
            )
            .await;
        assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    }

    force_status(&c.app, &acc, "disposed").await;
    let got = c.app.post(&path, &c.token, json!({"volume_ul": 100})).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_terminal_state",
        Some("event"),
    );
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/dilutions"),
            &c.token,
            json!({"factor": "1:2"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "transition_terminal_state",
        None,
    );
    c.app.assert_only_refused(before).await;
    assert_eq!(lineage(&c, &acc).await["children"], json!([]));
    c.app.finish().await;
}

async fn dilutions_are_recorded_and_validated(db: Db) {
    let c = setup(db).await;
    let acc = order(&c, &["NA", "K"], "routine").await;
    let path = format!("/api/v1/specimens/{acc}/dilutions");
    let got = c.app.post(&path, &c.token, json!({"factor": "1:10"})).await;
    assert_error(&got, StatusCode::CONFLICT, "transition_illegal", None);
    received(&c, &acc).await;
    // Issue 10 item 10: not on a tube that was only received, nor on unspun serum.
    let got = c.app.post(&path, &c.token, json!({"factor": "1:10"})).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "dilution_state",
        Some("accession"),
    );
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{acc}/start-processing"),
            &c.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = c.app.post(&path, &c.token, json!({"factor": "1:10"})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_separated",
        Some("accession"),
    );
    spun(&c, &acc).await;

    let before = c.app.audit_len().await;
    for (bad, code, field) in [
        (json!({"factor": "ten"}), "dilution_format", "factor"),
        (json!({"factor": "2:10"}), "dilution_format", "factor"),
        (
            json!({"factor": "1:1"}),
            "dilution_not_greater_than_one",
            "factor",
        ),
        (
            json!({"factor": "10000000"}),
            "dilution_too_large",
            "factor",
        ),
        (
            json!({"factor": "1:1000000"}),
            "dilution_too_large",
            "factor",
        ),
        (
            json!({"factor": "1:10", "test_code": "TSH"}),
            "test_not_on_specimen",
            "test_code",
        ),
        (
            json!({"factor": "1:10", "test_code": "bad code!"}),
            "test_code",
            "test_code",
        ),
        (
            json!({"factor": "1:10", "diluent": "x".repeat(101)}),
            "text_format",
            "diluent",
        ),
    ] {
        let got = c.app.post(&path, &c.token, bad).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code, Some(field));
    }
    c.app.assert_only_refused(before).await;

    let (s, v) = c
        .app
        .post(
            &path,
            &c.token,
            json!({"factor": "1:10", "test_code": "NA", "diluent": "saline"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "in_process");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "dilution");
    assert_eq!(last["details"]["factor"], "1:10");
    let (s, _) = c.app.post(&path, &c.token, json!({"factor": "5"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        actions(&c, before, &acc).await,
        ["specimen.dilution", "specimen.dilution"]
    );
    let l = lineage(&c, &acc).await;
    let d = l["dilutions"].as_array().unwrap();
    assert_eq!(d.len(), 2, "{l}");
    assert_eq!(d[0]["factor"], "1:10");
    assert_eq!(d[0]["test_code"], "NA");
    assert_eq!(d[0]["diluent"], "saline");
    assert_eq!(d[0]["actor_name"], "technician");
    assert_eq!(d[1]["factor"], "1:5");
    assert_eq!(d[1]["test_code"], Value::Null);
    c.app.finish().await;
}

async fn sorting_view_stat_first_with_aliquot_plan(db: Db) {
    let c = setup(db).await;
    let routine = order(&c, &["NA"], "routine").await;
    received(&c, &routine).await;
    c.app.clock.advance(SignedDuration::from_mins(1));
    let stat = order(&c, &["CBC", "A1C"], "stat").await;
    received(&c, &stat).await;
    c.app.clock.advance(SignedDuration::from_mins(1));
    // Not received: not in the view.
    let planned = order(&c, &["K"], "stat").await;

    let (s, v) = c.app.get("/api/v1/sorting", &c.token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v.as_array().unwrap();
    let accs: Vec<&str> = list
        .iter()
        .map(|e| e["accession"].as_str().unwrap())
        .collect();
    assert_eq!(accs, [stat.as_str(), routine.as_str()], "{v}");
    assert!(!accs.contains(&planned.as_str()));
    // The EDTA tube is needed by hematology and chemistry, which can't share it: hematology
    // keeps the primary, chemistry gets an aliquot.
    let e = &list[0];
    assert_eq!(e["priority"], "stat");
    assert_eq!(e["container"], "LAV");
    assert_eq!(e["departments"], json!(["chemistry", "hematology"]));
    assert_eq!(e["primary"], json!(["hematology"]));
    assert!(!e["primary_tests"].as_array().unwrap().is_empty());
    assert_eq!(
        e["aliquots"],
        json!([{"departments": ["chemistry"], "tests": ["A1C"], "volume_ul": 100}])
    );
    let e = &list[1];
    assert_eq!(e["departments"], json!(["chemistry"]));
    assert_eq!(e["primary_tests"], json!(["NA"]));
    assert_eq!(e["aliquots"], json!([]));
    let log = c.app.app.store().access_log(0, 1000).await.unwrap();
    assert!(log.iter().any(|a| a.action == "specimen.sorting"));

    // Pour the planned aliquot: the parent no longer needs one, the child goes to chemistry.
    let (s, child) = c
        .app
        .post(
            &format!("/api/v1/specimens/{stat}/aliquots"),
            &c.token,
            json!({"volume_ul": 100, "tests": ["A1C"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{child}");
    let (_, v) = c.app.get("/api/v1/sorting?status=received", &c.token).await;
    let list = v.as_array().unwrap();
    let accs: Vec<&str> = list
        .iter()
        .map(|e| e["accession"].as_str().unwrap())
        .collect();
    let child_acc = format!("{stat}-01");
    // The child is STAT too (same order), poured after the parent's receipt.
    assert_eq!(
        accs,
        [stat.as_str(), child_acc.as_str(), routine.as_str()],
        "{v}"
    );
    assert_eq!(list[0]["departments"], json!(["hematology"]));
    assert_eq!(list[0]["aliquots"], json!([]));
    assert_eq!(list[1]["departments"], json!(["chemistry"]));
    assert_eq!(list[1]["primary_tests"], json!(["A1C"]));

    // Status filter.
    let (s, _) = c
        .app
        .post(
            &format!("/api/v1/specimens/{routine}/start-processing"),
            &c.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = c
        .app
        .get("/api/v1/sorting?status=in_process", &c.token)
        .await;
    let accs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["accession"].as_str().unwrap())
        .collect();
    assert_eq!(accs, [routine.as_str()]);
    let (_, v) = c
        .app
        .get("/api/v1/sorting?status=received&limit=1", &c.token)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["accession"], stat.as_str());
    let (_, v) = c.app.get("/api/v1/sorting", &c.token).await;
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");

    let got = c.app.get("/api/v1/sorting?status=stored", &c.token).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sorting_status",
        Some("status"),
    );
    let got = c.app.get("/api/v1/sorting?limit=0", &c.token).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_range",
        Some("limit"),
    );
    let doc = c.app.token_for(Role::Physician).await;
    let got = c.app.get("/api/v1/sorting", &doc).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    c.app.finish().await;
}
