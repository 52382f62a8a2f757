//! Quality control on both databases, through the API: a rejected run locks its instrument and
//! test and holds their patient results (autoverification and manual release) until a
//! corrective action is documented and a run is accepted, all audited; runs posted out of
//! time order are judged in collection-time order; bad input is refused and writes nothing;
//! the Levey-Jennings chart, the statistics, lab-established targets and calibration.

use aliquot_app::Clock;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, received_order, setup, tube};
use crate::support::*;

crate::both_backends!(
    a_rejected_run_holds_patient_results_until_corrected,
    runs_are_judged_in_collection_time_order,
    bad_qc_input_is_refused_and_writes_nothing,
    chart_statistics_targets_and_calibration,
    an_analyzer_sends_its_controls_as_qc_never_as_a_patients_results,
);

/// Registers CHEM1 and two control lots of potassium with manufacturer targets
/// (level 1: 3.50 ± 0.10, level 2: 6.00 ± 0.15). Returns the admin token.
async fn qc_setup(c: &Ctx) -> String {
    let admin = c.app.token_for(aliquot_domain::auth::Role::Admin).await;
    let (s, v) = c
        .app
        .post(
            "/api/v1/instruments",
            &admin,
            json!({"code": "CHEM1", "name": "Chemistry analyzer 1", "protocol": "hl7",
                   "sender": "CHEM1", "department": "chemistry",
                   "test_codes": [{"code": "K", "test": "K"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for (lot, level, mean, sd) in [
        ("K1-2026", 1, "3.50", "0.10"),
        ("K2-2026", 2, "6.00", "0.15"),
    ] {
        let (s, v) = c
            .app
            .post(
                "/api/v1/qc/lots",
                &c.mt,
                json!({"material": "Chemistry control", "manufacturer": "Acme Diagnostics",
                       "lot": lot, "level": level, "expires_on": "2099-12-31"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = c
            .app
            .post(
                "/api/v1/qc/targets",
                &c.mt,
                json!({"instrument": "CHEM1", "test": "K", "lot": lot, "level": level,
                       "mean": mean, "sd": sd,
                       "effective_at": "2020-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    admin
}

/// A time at the database's resolution, so it prints as it is stored.
fn micros(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap()
}

async fn run(c: &Ctx, at: Timestamp, l1: &str, l2: &str) -> Value {
    let (s, v) = c
        .app
        .post(
            "/api/v1/qc/results",
            &c.tech,
            json!({"instrument": "CHEM1", "test": "K", "time": at.to_string(),
                   "controls": [{"lot": "K1-2026", "level": 1, "value": l1},
                                {"lot": "K2-2026", "level": 2, "value": l2}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

fn rules(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

async fn status(c: &Ctx) -> Value {
    let (s, v) = c
        .app
        .get("/api/v1/qc/status?instrument=CHEM1&test=K", &c.mt)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    v[0].clone()
}

/// Posts a potassium result measured on CHEM1 for a new order; returns the result.
async fn potassium(c: &Ctx, value: &str) -> Value {
    let now = c.app.clock.now();
    let (_, order) = received_order(c, &["K"], now - SignedDuration::from_mins(30)).await;
    let acc = tube(&order, "SST");
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [{"accession": acc, "test": "K", "value": value,
                                "instrument": "CHEM1"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"][0].clone()
}

fn reasons(result: &Value) -> Vec<String> {
    result["hold_reasons"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_rejected_run_holds_patient_results_until_corrected(db: Db) {
    let c = setup(db).await;
    qc_setup(&c).await;
    let now = micros(c.app.clock.now());
    let h = |n: i64| now - SignedDuration::from_hours(n);

    // A good run, then a patient result that autoverifies.
    let good = run(&c, h(3), "3.52", "6.05").await;
    assert_eq!(good["status"], "accepted", "{good}");
    assert_eq!(good["accepted"], true);
    let released = potassium(&c, "4.2").await;
    assert_eq!(released["status"], "released", "{released}");

    // Level 1 at +3.5 SD: 1-3s rejects the run and locks CHEM1 for K.
    let before = c.app.audit_len().await;
    let bad = run(&c, h(2), "3.85", "6.02").await;
    assert_eq!(bad["status"], "rejected", "{bad}");
    assert_eq!(bad["accepted"], false);
    assert_eq!(rules(&bad["violations"]), ["1-3s"], "{bad}");
    assert_eq!(bad["locked"], true);
    assert_eq!(bad["controls"][0]["z"], "3.50");
    assert_eq!(bad["controls"][1]["z"], "0.13");
    let st = status(&c).await;
    assert_eq!(st["locked"], true, "{st}");
    assert_eq!(st["lock"]["rejected_run"]["id"], bad["id"]);
    assert_eq!(
        st["lock"]["since"].as_str().unwrap(),
        h(3).to_string(),
        "results since the last accepted run are in doubt"
    );
    let affected = st["lock"]["affected_results"].as_array().unwrap();
    assert!(
        affected
            .iter()
            .any(|a| a["result_id"] == released["result_id"] && a["status"] == "released"),
        "the result released before the rejection is listed to re-test: {st}"
    );

    // A new result on the locked instrument is held with reason `qc`, and nobody releases it.
    let held = potassium(&c, "4.3").await;
    assert_eq!(held["status"], "held", "{held}");
    assert_eq!(reasons(&held), ["qc"], "{held}");
    let id = held["result_id"].as_i64().unwrap();
    let verify = c
        .app
        .post(&format!("/api/v1/results/{id}/verify"), &c.mt, json!({}))
        .await;
    assert_error(&verify, StatusCode::CONFLICT, "qc_locked", None);

    // A corrective action is documented; the lock holds until a run is accepted.
    let ca = c
        .app
        .post(
            "/api/v1/qc/corrective-actions",
            &c.mt,
            json!({"instrument": "CHEM1", "test": "K",
                   "action": "replaced the ISE reference electrode, recalibrated",
                   "reason": "level 1 read high after the electrode drifted"}),
        )
        .await;
    assert_eq!(ca.0, StatusCode::CREATED, "{}", ca.1);
    assert_eq!(ca.1["locked"], true);
    assert_eq!(status(&c).await["locked"], true);

    // The re-run is accepted: the lock lifts and the held result can be released.
    let rerun = run(&c, h(1), "3.49", "6.01").await;
    assert_eq!(rerun["status"], "accepted", "{rerun}");
    assert_eq!(rerun["locked"], false);
    let st = status(&c).await;
    assert_eq!(st["locked"], false, "{st}");
    let (s, v) = c
        .app
        .post(&format!("/api/v1/results/{id}/verify"), &c.mt, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "released", "{v}");

    // Every step is audited, by whom it was done.
    let actions: Vec<(String, String)> = c
        .app
        .app
        .store()
        .audit_events(before, 1000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.entry.action, e.entry.actor_role.unwrap_or_default()))
        .collect();
    for (action, role) in [
        ("qc_run.post", "technician"),
        ("qc_lock.open", "technician"),
        ("qc_corrective_action.create", "technologist"),
        ("qc_lock.lift", "technician"),
    ] {
        assert!(
            actions.iter().any(|(a, r)| a == action && r == role),
            "{action} by {role} not in {actions:?}"
        );
    }
    c.app.finish().await;
}

async fn runs_are_judged_in_collection_time_order(db: Db) {
    let c = setup(db).await;
    qc_setup(&c).await;
    let now = micros(c.app.clock.now());
    let h = |n: i64| now - SignedDuration::from_hours(n);
    // Level 1 at +2.5 SD at 08:00: a warning alone.
    let later = run(&c, h(1), "3.75", "6.00").await;
    assert_eq!(later["status"], "warning", "{later}");
    assert_eq!(rules(&later["warnings"]), ["1-2s"]);
    assert_eq!(status(&c).await["locked"], false);
    // A run measured an hour earlier arrives late, level 1 at +2.3 SD: judged against what
    // came before it (nothing), it is a warning; the later run, judged again with it, breaks
    // 2-2s across runs and locks the instrument.
    let earlier = run(&c, h(2), "3.73", "6.01").await;
    assert_eq!(earlier["status"], "warning", "{earlier}");
    let st = status(&c).await;
    assert_eq!(st["locked"], true, "{st}");
    assert_eq!(st["lock"]["rejected_run"]["id"], later["id"], "{st}");
    assert!(
        rules(&st["lock"]["rejected_run"]["violations"]).contains(&"2-2s".to_owned()),
        "{st}"
    );
    let (s, runs) = c
        .app
        .get(
            &format!("/api/v1/qc/runs?instrument=CHEM1&test=K&from={}", h(5)),
            &c.mt,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{runs}");
    let ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            earlier["id"].as_i64().unwrap(),
            later["id"].as_i64().unwrap()
        ],
        "runs are listed in collection-time order"
    );
    c.app.finish().await;
}

async fn bad_qc_input_is_refused_and_writes_nothing(db: Db) {
    let c = setup(db).await;
    qc_setup(&c).await;
    let (s, v) = c
        .app
        .post(
            "/api/v1/qc/lots",
            &c.mt,
            json!({"material": "Chemistry control", "manufacturer": "Acme Diagnostics",
                   "lot": "OLD-1", "level": 1, "expires_on": "2020-06-30"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let before = c.app.audit_len().await;
    let at = (c.app.clock.now() - SignedDuration::from_hours(1)).to_string();
    let post = |body: Value| {
        let app = &c.app;
        let token = c.tech.clone();
        async move { app.post("/api/v1/qc/results", &token, body).await }
    };
    let control = |lot: &str, level: i64, value: &str| {
        json!({"instrument": "CHEM1", "test": "K", "time": at,
               "controls": [{"lot": lot, "level": level, "value": value}]})
    };
    for (body, code, field) in [
        (
            control("NOPE", 1, "3.5"),
            "unknown_qc_lot",
            "controls[0].lot",
        ),
        (
            control("OLD-1", 1, "3.5"),
            "qc_lot_expired",
            "controls[0].lot",
        ),
        (
            control("K1-2026", 1, "3,5"),
            "not_numeric",
            "controls[0].value",
        ),
        (
            control("K1-2026", 1, "high"),
            "not_numeric",
            "controls[0].value",
        ),
        (
            control("K1-2026", 4, "3.5"),
            "invalid_level",
            "controls[0].level",
        ),
        (
            json!({"instrument": "CHEM9", "test": "K", "controls": [{"lot": "K1-2026", "level": 1, "value": "3.5"}]}),
            "unknown_instrument",
            "instrument",
        ),
        (
            json!({"instrument": "CHEM1", "test": "NOPE", "controls": [{"lot": "K1-2026", "level": 1, "value": "3.5"}]}),
            "unknown_test",
            "test",
        ),
        (
            json!({"instrument": "CHEM1", "test": "NA", "controls": [{"lot": "K1-2026", "level": 1, "value": "140"}]}),
            "no_qc_target",
            "controls[0].lot",
        ),
        (
            json!({"instrument": "CHEM1", "test": "K", "controls": [
                {"lot": "K1-2026", "level": 1, "value": "3.5"},
                {"lot": "K1-2026", "level": 1, "value": "3.6"}]}),
            "duplicate_level",
            "controls[1].level",
        ),
        (
            json!({"instrument": "CHEM1", "test": "K", "time": "2099-01-01T00:00:00Z",
                   "controls": [{"lot": "K1-2026", "level": 1, "value": "3.5"}]}),
            "time_in_future",
            "time",
        ),
        (
            json!({"instrument": "CHEM1", "test": "K", "controls": [],
                   "lot": "K1-2026", "level": 1, "value": "3.5"}),
            "invalid_controls",
            "controls",
        ),
    ] {
        let got = post(body.clone()).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code, Some(field));
    }
    // A corrective action without a reason, or with nothing locked.
    let got = c
        .app
        .post(
            "/api/v1/qc/corrective-actions",
            &c.mt,
            json!({"instrument": "CHEM1", "test": "K", "action": "cleaned the probe", "reason": " "}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let got = c
        .app
        .post(
            "/api/v1/qc/corrective-actions",
            &c.mt,
            json!({"instrument": "CHEM1", "test": "K", "action": "cleaned the probe",
                   "reason": "routine"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "qc_not_locked",
        Some("test"),
    );
    // A technician may post QC but not register lots or document corrective actions.
    let got = c
        .app
        .post(
            "/api/v1/qc/lots",
            &c.tech,
            json!({"material": "x", "manufacturer": "y", "lot": "Z", "level": 1,
                   "expires_on": "2099-01-01"}),
        )
        .await;
    assert_eq!(got.0, StatusCode::FORBIDDEN, "{}", got.1);
    // A target with SD 0, a bad rule name.
    let got = c
        .app
        .post(
            "/api/v1/qc/targets",
            &c.mt,
            json!({"instrument": "CHEM1", "test": "K", "lot": "K1-2026", "level": 1,
                   "mean": "3.5", "sd": "0"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_sd",
        Some("sd"),
    );
    let got = c
        .app
        .put(
            "/api/v1/qc/configs/CHEM1/K",
            &c.mt,
            json!({"rules": ["1-3s", "2-3s"]}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_qc_rule",
        Some("rules"),
    );
    assert_eq!(c.app.audit_len().await, before, "nothing was written");
    let (_, runs) = c
        .app
        .get("/api/v1/qc/runs?instrument=CHEM1&test=K", &c.mt)
        .await;
    assert_eq!(runs, json!([]));
    c.app.finish().await;
}

async fn chart_statistics_targets_and_calibration(db: Db) {
    let c = setup(db).await;
    qc_setup(&c).await;
    let now = c.app.clock.now();
    // 24 runs over 24 days around the targets, one rejected (level 2 at −3.4 SD).
    let l1 = [
        "3.52", "3.47", "3.55", "3.49", "3.51", "3.44", "3.58", "3.50", "3.46", "3.53", "3.48",
        "3.56", "3.51", "3.45", "3.54", "3.50", "3.47", "3.53", "3.49", "3.52", "3.48", "3.55",
        "3.50", "3.51",
    ];
    let mut rejected = None;
    for (i, v1) in l1.iter().enumerate() {
        let at = now - SignedDuration::from_hours(24 * (24 - i as i64));
        let v2 = if i == 10 {
            "5.49"
        } else if i % 2 == 0 {
            "6.08"
        } else {
            "5.93"
        };
        let r = run(&c, at, v1, v2).await;
        if i == 10 {
            assert_eq!(r["status"], "rejected", "{r}");
            rejected = Some(r["id"].clone());
        }
    }
    let rejected = rejected.unwrap();
    // Documented after later runs were accepted: the lock lifts at once.
    let (s, ca) = c
        .app
        .post(
            "/api/v1/qc/corrective-actions",
            &c.mt,
            json!({"instrument": "CHEM1", "test": "K", "action": "new level 2 vial opened",
                   "reason": "level 2 vial left open overnight"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ca}");
    assert_eq!(ca["locked"], false, "{ca}");

    // The chart: an SVG document with every level 1 value, the limits, the rejected run.
    let resp = c
        .app
        .client
        .get(format!(
            "{}/api/v1/qc/chart.svg?instrument=CHEM1&test=K&level=2&from={}",
            c.app.base,
            now - SignedDuration::from_hours(24 * 30)
        ))
        .bearer_auth(&c.mt)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let svg = resp.text().await.unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    let points: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("point"))
        .collect();
    assert_eq!(points.len(), 24, "every level 2 value is drawn");
    let bad: Vec<_> = points
        .iter()
        .filter(|p| p.attribute("data-status") == Some("rejected"))
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        bad[0].attribute("data-run"),
        Some(rejected.to_string().as_str())
    );
    assert_eq!(bad[0].attribute("data-value"), Some("5.49"));
    assert!(
        svg.contains("1-3s"),
        "the broken rule is written beside the point"
    );
    let limits: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("limit"))
        .filter_map(|n| n.attribute("data-value"))
        .collect();
    for v in ["5.55", "5.7", "5.85", "6", "6.15", "6.3", "6.45"] {
        assert!(limits.contains(&v), "limit {v} missing from {limits:?}");
    }

    // Statistics: the rejected run is counted as a rejection, not in the mean.
    let (s, st) = c
        .app
        .get("/api/v1/qc/statistics?instrument=CHEM1&test=K", &c.mt)
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    let cumulative = |level: i64| {
        st["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["period"] == "cumulative" && r["level"] == level)
            .cloned()
            .unwrap()
    };
    assert_eq!(cumulative(2)["n"], 23, "{st}");
    assert_eq!(cumulative(2)["rejected_runs"], 1);
    assert_eq!(cumulative(1)["n"], 23);
    let resp = c
        .app
        .client
        .get(format!(
            "{}/api/v1/qc/statistics?instrument=CHEM1&test=K&format=csv",
            c.app.base
        ))
        .bearer_auth(&c.mt)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text().await.unwrap();
    assert!(
        csv.starts_with("instrument,test,period,level,lot,n,mean,sd,cv_pct,sigma,rejected_runs\n")
    );
    assert!(csv.contains("CHEM1,K,cumulative,1,K1-2026,23,"), "{csv}");

    // The lab's own target from its accepted values (23 ≥ 20), documented with a reason.
    let (s, t) = c
        .app
        .post(
            "/api/v1/qc/targets/establish",
            &c.mt,
            json!({"instrument": "CHEM1", "test": "K", "lot": "K1-2026", "level": 1,
                   "reason": "24 days of data (CLSI C24)"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["source"], "lab");
    assert_eq!(t["points"], 23);
    let (_, targets) = c
        .app
        .get("/api/v1/qc/targets?instrument=CHEM1&test=K", &c.mt)
        .await;
    assert_eq!(targets.as_array().unwrap().len(), 3, "{targets}");

    // A calibration interval of 24 h with no calibration: potassium results are held.
    let (s, v) = c
        .app
        .put(
            "/api/v1/qc/configs/CHEM1/K",
            &c.mt,
            json!({"rules": ["1-3s", "2-2s", "R-4s"], "calibration_interval_hours": 24}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let held = potassium(&c, "4.1").await;
    assert_eq!(reasons(&held), ["calibration"], "{held}");
    let (s, v) = c
        .app
        .post(
            "/api/v1/qc/calibrations",
            &c.tech,
            json!({"instrument": "CHEM1", "test": "K", "kind": "calibration",
                   "calibrator_lot": "CAL-77", "outcome": "passed"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ok = potassium(&c, "4.1").await;
    assert_eq!(ok["status"], "released", "{ok}");
    let st = status(&c).await;
    assert_eq!(st["calibration"]["overdue"], false, "{st}");
    assert_eq!(st["rules"], json!(["1-3s", "2-2s", "R-4s"]));

    // Rules from the sigma metric: TEa 15 %, bias 2 %, the lab's CV about 1 %: above 6 sigma,
    // 1-3s alone (Westgard Sigma Rules); the statistics show sigma per level.
    let (s, v) = c
        .app
        .put(
            "/api/v1/qc/configs/CHEM1/K",
            &c.mt,
            json!({"tea_pct": "15", "bias_pct": "2", "calibration_interval_hours": 24,
                   "version": 1, "reason": "QC design from the sigma metric"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rules"], json!(["1-3s"]), "{v}");
    assert!(
        v["sigma"].as_str().unwrap().parse::<f64>().unwrap() > 6.0,
        "{v}"
    );
    let (_, st) = c
        .app
        .get("/api/v1/qc/statistics?instrument=CHEM1&test=K", &c.mt)
        .await;
    assert!(
        st["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["n"].as_u64() < Some(2) || r["sigma"].is_string()),
        "{st}"
    );
    c.app.finish().await;
}

async fn send(mllp: &mut aliquot_connect::simulate::MllpClient, m: Vec<u8>) -> String {
    let ack = mllp
        .send(&m, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    String::from_utf8(ack).unwrap()
}

/// An ORU^R01 from CHEM1 with one OBR per sample and one potassium OBX each.
fn control_message(control_id: &str, samples: &[(&str, &str)]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|CHEM1|LAB|ALIQUOT|LAB|20261128080000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r"
    );
    for (i, (sample, value)) in samples.iter().enumerate() {
        m.push_str(&format!(
            "OBR|{n}||{sample}|CHEM^Chemistry\rOBX|1|NM|K^K||{value}|mmol/L||||||F\r",
            n = i + 1
        ));
    }
    m.into_bytes()
}

async fn an_analyzer_sends_its_controls_as_qc_never_as_a_patients_results(db: Db) {
    let c = setup(db).await;
    qc_setup(&c).await;
    // The analyzer names its two potassium controls QC-L1 and QC-L2.
    for (lot, level, id, mean, sd) in [
        ("KQ1", 1, "QC-L1", "3.50", "0.10"),
        ("KQ2", 2, "QC-L2", "6.00", "0.15"),
    ] {
        let (s, v) = c
            .app
            .post(
                "/api/v1/qc/lots",
                &c.mt,
                json!({"material": "Chemistry control", "manufacturer": "Acme Diagnostics",
                       "lot": lot, "level": level, "expires_on": "2099-12-31",
                       "control_ids": [{"instrument": "CHEM1", "id": id}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = c
            .app
            .post(
                "/api/v1/qc/targets",
                &c.mt,
                json!({"instrument": "CHEM1", "test": "K", "lot": lot, "level": level,
                       "mean": mean, "sd": sd, "effective_at": "2020-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(aliquot_connect::serve_mllp(
        listener,
        c.app.app.clone(),
        aliquot_connect::MllpConfig::default(),
        std::future::pending::<()>(),
    ));
    let mut mllp = aliquot_connect::simulate::MllpClient::connect(addr)
        .await
        .unwrap();
    // Both levels in one message: one run, accepted, from HL7; no patient result.
    let ack = send(
        &mut mllp,
        control_message("QC-0001", &[("QC-L1", "3.52"), ("QC-L2", "6.04")]),
    )
    .await;
    assert_eq!(
        aliquot_connect::simulate::ack_code(ack.as_bytes()),
        "AA",
        "{ack}"
    );
    let (_, runs) = c
        .app
        .get("/api/v1/qc/runs?instrument=CHEM1&test=K", &c.mt)
        .await;
    let runs = runs.as_array().unwrap().clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["source"], "hl7");
    assert_eq!(runs[0]["status"], "accepted");
    assert_eq!(runs[0]["entered_by"], "instrument:CHEM1");
    assert_eq!(runs[0]["controls"].as_array().unwrap().len(), 2);
    // Level 1 at +3.5 SD: the run is rejected (a QC verdict, not a message error) and locks.
    let ack = send(
        &mut mllp,
        control_message("QC-0002", &[("QC-L1", "3.85"), ("QC-L2", "6.01")]),
    )
    .await;
    assert_eq!(
        aliquot_connect::simulate::ack_code(ack.as_bytes()),
        "AA",
        "{ack}"
    );
    assert_eq!(status(&c).await["locked"], true);
    // A control value that is not a number is named in the acknowledgement (AE) and the
    // message waits in the error queue.
    let ack = send(&mut mllp, control_message("QC-0003", &[("QC-L1", "high")])).await;
    assert_eq!(
        aliquot_connect::simulate::ack_code(ack.as_bytes()),
        "AE",
        "{ack}"
    );
    assert!(ack.contains("OBX^1^5") || ack.contains("OBX[1]-5"), "{ack}");
    let (_, queue) = c
        .app
        .get("/api/v1/interface/messages?status=error", &c.mt)
        .await;
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    c.app.finish().await;
}
