//! Results end to end through the API: order → collect → receive → post results →
//! autoverified or held → verify → correct, critical calls, calculated tests, delta checks,
//! worklists, the cumulative view, result rules, and bad input that changes nothing.

use aliquot_app::{Actor, AppError, ResultInput, ResultOutcome, Source};
use aliquot_domain::auth::Role;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    a_basic_panel_is_autoverified_and_calculated,
    held_results_are_verified_once_and_corrected_with_history,
    critical_values_open_a_call_that_is_documented,
    delta_stability_and_suspension_hold_results,
    bad_input_is_refused_item_by_item_and_changes_nothing,
    result_rules_are_versioned_and_history_is_not_rewritten,
    an_order_is_released_at_once_and_a_test_marked_not_performed,
    a_batch_answers_as_its_items_posted_one_by_one,
    a_dropped_request_stores_its_whole_batch_once,
    the_entry_list_is_the_worklists_head_with_its_hints,
    a_changed_rule_set_is_used_by_the_next_batch,
);

/// On one thread: every request's batch is handed over before the worker runs, so the four
/// form one group (on several threads the worker could take the first alone).
mod concurrent_batches_answer_as_posted_one_after_another {
    use crate::support::Db;

    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::concurrent_batches_answer_as_posted_one_after_another(Db::Sqlite).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::concurrent_batches_answer_as_posted_one_after_another(Db::Postgres).await
    }
}

pub(crate) struct Ctx {
    pub(crate) app: TestApp,
    pub(crate) tech: String,
    pub(crate) mt: String,
    pub(crate) provider: i64,
    pub(crate) location: i64,
}

/// The lab director who sets the result rules, from the command line.
fn director() -> Actor {
    Actor {
        user_id: None,
        username: "director".into(),
        role: Role::Director,
        source: Source::Cli,
        session_id: None,
    }
}

pub(crate) async fn setup(db: Db) -> Ctx {
    let app = spawn_app(db).await;
    let (provider, location) = seed_ordering(&app).await;
    let director = director();
    for (test, rules) in aliquot_app::demo_catalog::demo_result_rules() {
        app.app
            .put_result_rules(&director, &test, 0, rules, Some("demo rules"))
            .await
            .expect("rules");
    }
    let tech = app.token_for(Role::Technician).await;
    let mt = app.token_for(Role::Technologist).await;
    register(
        &app,
        &tech,
        json!({"mrn": "MRN-900", "family_name": "Okonkwo-Lindqvist", "given_name": "Zoë",
               "birth_date": "1961-04-09", "sex": "F"}),
    )
    .await;
    Ctx {
        app,
        tech,
        mt,
        provider,
        location,
    }
}

/// Places an order, collects and receives every tube; returns the order and the accession
/// of each tube by container.
pub(crate) async fn received_order(
    c: &Ctx,
    tests: &[&str],
    collected_at: Timestamp,
) -> (i64, Value) {
    let body = json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": tests, "priority": "stat"});
    let (s, o) = c.app.post("/api/v1/orders", &c.tech, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    for sp in o["specimens"].as_array().unwrap() {
        let acc = sp["accession"].as_str().unwrap();
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/collect"),
                &c.tech,
                json!({"collected_at": collected_at.to_string(), "site": "left arm",
                       "patient": {"mrn": "MRN-900", "family_name": "Okonkwo-Lindqvist", "given_name": "Zoë"}}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // Serum and plasma arrive spun at the draw site within half an hour (CLSI GP44).
        let spun = (collected_at + SignedDuration::from_mins(30)).min(c.app.app.now());
        let (s, v) = c
            .app
            .post(&format!("/api/v1/specimens/{acc}/receive"), &c.tech, {
                let mut body = full_tube(sp["container"].as_str().unwrap());
                body["separated_at"] = json!(spun.to_string());
                body
            })
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    (o["id"].as_i64().unwrap(), o)
}

pub(crate) fn tube(order: &Value, container: &str) -> String {
    order["specimens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["container"] == container)
        .unwrap_or_else(|| panic!("no {container} tube in {order}"))["accession"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn post(c: &Ctx, token: &str, items: Value) -> Vec<Value> {
    let (s, v) = c
        .app
        .post("/api/v1/results", token, json!({"results": items}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"].as_array().unwrap().clone()
}

pub(crate) async fn order_tests(c: &Ctx, order: i64) -> Value {
    let (s, v) = c.app.get(&format!("/api/v1/orders/{order}"), &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["tests"].clone()
}

pub(crate) fn test_of<'a>(tests: &'a Value, code: &str) -> &'a Value {
    tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test_code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {tests}"))
}

fn item(acc: &str, test: &str, value: &str) -> Value {
    json!({"accession": acc, "test": test, "value": value, "instrument": "CHEM-1"})
}

async fn a_basic_panel_is_autoverified_and_calculated(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["BMP"], now - SignedDuration::from_mins(30)).await;
    let sst = tube(&o, "SST");
    let out = post(
        &c,
        &c.tech,
        json!([
            item(&sst, "NA", "140"),
            item(&sst, "K", "4.2"),
            item(&sst, "CL", "104"),
            item(&sst, "CO2", "24"),
            item(&sst, "BUN", "14"),
            item(&sst, "2160-0", "0.90"),
            item(&sst, "GLU", "90"),
            item(&sst, "CA", "9.5"),
        ]),
    )
    .await;
    for o in &out {
        assert_eq!(o["outcome"], "released", "{o}");
        assert_eq!(o["hold_reasons"], json!([]), "{o}");
    }
    let tests = order_tests(&c, order).await;
    let k = &test_of(&tests, "K")["result"];
    assert_eq!(k["value"], "4.2");
    assert_eq!(k["units"], "mmol/L");
    assert_eq!(k["status"], "released");
    assert_eq!(k["flags"], json!([]));
    assert_eq!(k["reference_interval"]["text"], "3.5–5.1");
    assert_eq!(k["autoverified"], true);
    assert_eq!(k["critical_call"], Value::Null);
    assert_eq!(k["versions"].as_array().unwrap().len(), 1);
    assert_eq!(test_of(&tests, "K")["status"], "released");
    // "0.90" stays "0.90"; the female adult interval of creatinine applies.
    let crea = &test_of(&tests, "CREA")["result"];
    assert_eq!(crea["value"], "0.90");
    assert_eq!(crea["reference_interval"]["text"], "0.44–1.00");
    // Calculated when their inputs were released: anion gap 140 − (104 + 24) = 12, and the
    // CKD-EPI 2021 eGFR of a 65-year-old woman with creatinine 0.90 mg/dL
    // (142 × (0.90/0.7)^−1.200 × 0.9938^65 × 1.012 = 70.95).
    let ag = &test_of(&tests, "AGAP")["result"];
    assert_eq!(ag["value"], "12", "{ag}");
    assert_eq!(ag["calculated"], true);
    assert_eq!(ag["status"], "released");
    let egfr = &test_of(&tests, "EGFR")["result"];
    assert_eq!(egfr["value"], "71", "{egfr}");
    assert_eq!(egfr["reference_interval"]["text"], "≥ 60");
    assert_eq!(egfr["calculated"], true);
    // Correcting creatinine recomputes eGFR, as a correction of its own.
    let crea_id = crea["id"].as_i64().unwrap();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{crea_id}/correct"),
            &c.mt,
            json!({"value": "1.80", "reason": "transcription error: wrong sample line",
                   "signature": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "corrected");
    assert_eq!(v["flags"], json!(["H"]));
    let tests = order_tests(&c, order).await;
    let egfr = &test_of(&tests, "EGFR")["result"];
    assert_eq!(egfr["status"], "corrected", "{egfr}");
    assert_eq!(egfr["value"], "31", "{egfr}");
    assert_eq!(egfr["versions"][0]["value"], "71");
    // TAT: resulted, verified and reported are recorded.
    let (s, tat) = c
        .app
        .get(&format!("/api/v1/orders/{order}/tat"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{tat}");
    let na = tat
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["test_code"] == "NA")
        .unwrap();
    let names: Vec<&str> = na["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["milestone"].as_str().unwrap())
        .collect();
    for m in ["resulted", "verified", "reported"] {
        assert!(names.contains(&m), "{names:?}");
    }
    assert_eq!(na["in_lab"]["status"], "met", "{na}");
    // The cumulative view of the patient's creatinine shows the corrected value.
    let patient = o["patient_id"].as_i64().unwrap();
    let (s, cum) = c
        .app
        .get(
            &format!("/api/v1/patients/{patient}/results?test=CREA"),
            &c.mt,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cum}");
    assert_eq!(cum["points"][0]["value"], "1.80");
    assert_eq!(cum["points"][0]["reference_interval"]["text"], "0.44–1.00");
    c.app.finish().await;
}

async fn held_results_are_verified_once_and_corrected_with_history(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["NA", "K"], now - SignedDuration::from_mins(20)).await;
    let sst = tube(&o, "SST");
    // An instrument flag holds the result with its reason.
    let out = post(
        &c,
        &c.tech,
        json!([{"accession": sst, "test": "NA", "value": "141", "flags": ["clot detected"]}]),
    )
    .await;
    assert_eq!(out[0]["outcome"], "held");
    assert_eq!(out[0]["hold_reasons"][0]["code"], "instrument_flag");
    let id = out[0]["result_id"].as_i64().unwrap();
    // The worklist shows it held, and K pending.
    let (s, wl) = c.app.get("/api/v1/worklists/chemistry", &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{wl}");
    let items = wl["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["test_code"] == "NA" && i["status"] == "held"),
        "{wl}"
    );
    assert!(
        items
            .iter()
            .any(|i| i["test_code"] == "K" && i["status"] == "pending"),
        "{wl}"
    );
    // A technician may not release it.
    let (s, _) = c
        .app
        .post(&format!("/api/v1/results/{id}/verify"), &c.tech, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Two technologists verify at once: exactly one wins, the other is told.
    let mt2 = c.app.token_for(Role::Director).await;
    let path = format!("/api/v1/results/{id}/verify");
    let (a, b) = tokio::join!(
        c.app.post(&path, &c.mt, json!({"version": 1})),
        c.app.post(&path, &mt2, json!({"version": 1})),
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
    let loser = if a.0 == StatusCode::CONFLICT { &a } else { &b };
    assert!(
        ["result_changed", "result_not_held"].contains(&loser.1["error"]["code"].as_str().unwrap()),
        "{}",
        loser.1
    );
    let (_, r) = c.app.get(&format!("/api/v1/results/{id}"), &c.mt).await;
    assert_eq!(r["status"], "released");
    assert_eq!(r["version"], 2);
    assert!(r["order_id"].as_i64().is_some_and(|o| o > 0), "{r}");
    assert_eq!(r["autoverified"], false);
    // The same result posted again is stored once.
    let again = post(
        &c,
        &c.tech,
        json!([{"accession": sst, "test": "NA", "value": "141", "flags": ["clot detected"]}]),
    )
    .await;
    assert_eq!(again[0]["outcome"], "duplicate", "{}", again[0]);
    // Another value for a released result needs a correction.
    let other = post(&c, &c.tech, json!([item(&sst, "NA", "150")])).await;
    assert_eq!(other[0]["outcome"], "refused");
    assert_eq!(other[0]["error"]["code"], "result_released");
    assert_eq!(other[0]["error"]["field"], "results[0].value");
    // A correction without a reason is refused; with one it appends a version.
    let cp = format!("/api/v1/results/{id}/correct");
    let r = c.app.post(&cp, &c.mt, json!({"value": "145"})).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    // A correction is an electronic signature: refused unsigned or wrongly signed.
    let r = c
        .app
        .post(
            &cp,
            &c.mt,
            json!({"value": "145", "reason": "instrument re-run after clot removed"}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_required",
        Some("signature"),
    );
    let r = c
        .app
        .post(
            &cp,
            &c.mt,
            json!({"value": "145", "reason": "instrument re-run after clot removed",
                   "signature": {"password": "not my password"}}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_signature",
        Some("signature.password"),
    );
    let (s, r) = c
        .app
        .post(
            &cp,
            &c.mt,
            json!({"value": "145", "reason": "instrument re-run after clot removed",
                   "signature": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "corrected");
    // The signature is kept with the version it signed: meaning, signer, time, method.
    assert_eq!(r["signature"]["meaning"], "corrected");
    assert_eq!(r["signature"]["signer"], "technologist");
    assert_eq!(r["signature"]["method"], "password");
    assert_eq!(r["signature"]["version"], 3);
    assert_eq!(r["versions"][2]["signature"]["meaning"], "corrected");
    assert!(r["versions"][1]["signature"].is_null());
    let versions = r["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["value"], "141");
    assert_eq!(versions[1]["reason"], "verified");
    assert_eq!(versions[2]["value"], "145");
    assert_eq!(
        versions[2]["reason"],
        "instrument re-run after clot removed"
    );
    let tests = order_tests(&c, order).await;
    assert_eq!(test_of(&tests, "NA")["result"]["status"], "corrected");
    c.app.finish().await;
}

async fn critical_values_open_a_call_that_is_documented(db: Db) {
    let mut c = setup(db).await;
    let now = c.app.app.now();
    let (_, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(10)).await;
    let sst = tube(&o, "SST");
    let out = post(&c, &c.tech, json!([item(&sst, "K", "6.8")])).await;
    assert_eq!(out[0]["outcome"], "held");
    assert_eq!(out[0]["flags"], json!(["HH"]));
    assert_eq!(out[0]["hold_reasons"][0]["code"], "critical");
    let id = out[0]["result_id"].as_i64().unwrap();
    let (s, calls) = c.app.get("/api/v1/critical-calls", &c.mt).await;
    assert_eq!(s, StatusCode::OK, "{calls}");
    assert_eq!(calls[0]["result_id"], id);
    assert_eq!(calls[0]["call"]["overdue"], false);
    // Thirty-one minutes later the call is overdue.
    c.app.clock.advance(SignedDuration::from_mins(31));
    c.mt = c.app.token_for(Role::Technologist).await;
    let (_, calls) = c.app.get("/api/v1/critical-calls", &c.mt).await;
    assert_eq!(calls[0]["call"]["overdue"], true, "{calls}");
    let cp = format!("/api/v1/results/{id}/critical-call");
    let r = c
        .app
        .post(&cp, &c.mt, json!({"notified_name": "Dr. Gregory House", "notified_role": "physician", "read_back": false}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "read_back_required",
        Some("read_back"),
    );
    let (s, r) = c
        .app
        .post(&cp, &c.mt, json!({"notified_name": "Dr. Gregory House", "notified_role": "physician", "read_back": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["critical_call"]["notified_name"], "Dr. Gregory House");
    assert_eq!(r["critical_call"]["read_back"], true);
    assert!(r["critical_call"]["called_by"].as_str().is_some());
    let again = c
        .app
        .post(&cp, &c.mt, json!({"notified_name": "Dr. Gregory House", "notified_role": "physician", "read_back": true}))
        .await;
    assert_error(&again, StatusCode::CONFLICT, "no_open_call", None);
    let (_, calls) = c.app.get("/api/v1/critical-calls", &c.mt).await;
    assert_eq!(calls, json!([]));
    let (s, r) = c
        .app
        .post(&format!("/api/v1/results/{id}/verify"), &c.mt, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "released");
    assert_eq!(r["critical_call"]["notified_role"], "physician");
    c.app.finish().await;
}

async fn delta_stability_and_suspension_hold_results(db: Db) {
    let mut c = setup(db).await;
    let now = c.app.app.now();
    // Yesterday's potassium 4.0, released.
    let (_, first) = received_order(&c, &["K"], now - SignedDuration::from_hours(20)).await;
    let out = post(&c, &c.tech, json!([item(&tube(&first, "SST"), "K", "4.0")])).await;
    assert_eq!(out[0]["outcome"], "released", "{}", out[0]);
    // Today's 5.5 changed by 1.5 within 24 h (limit 1.0): held for the delta check.
    let (_, second) = received_order(&c, &["K"], now - SignedDuration::from_mins(30)).await;
    let out = post(
        &c,
        &c.tech,
        json!([item(&tube(&second, "SST"), "K", "5.5")]),
    )
    .await;
    assert_eq!(out[0]["outcome"], "held");
    assert_eq!(out[0]["hold_reasons"][0]["code"], "delta", "{}", out[0]);
    assert_eq!(out[0]["flags"], json!(["H"]));
    // A glucose drawn 7 h 30 min ago at room temperature (8 h once separated) is received;
    // analysed 40 minutes later it is held, whatever its value.
    let (_, glu) = received_order(&c, &["GLU"], now - SignedDuration::from_mins(450)).await;
    let sst = tube(&glu, "SST");
    c.app.clock.advance(SignedDuration::from_mins(40));
    c.tech = c.app.token_for(Role::Technician).await;
    let out = post(&c, &c.tech, json!([item(&sst, "GLU", "101")])).await;
    assert_eq!(out[0]["outcome"], "held");
    assert_eq!(
        out[0]["hold_reasons"][0]["code"], "specimen_not_stable",
        "{}",
        out[0]
    );
    // Haemolysis above potassium's limit holds; lab-wide suspension holds everything.
    let now = c.app.app.now();
    let (_, third) = received_order(&c, &["NA", "K"], now - SignedDuration::from_mins(5)).await;
    let sst = tube(&third, "SST");
    let out = post(
        &c,
        &c.tech,
        json!([{"accession": sst, "test": "K", "value": "4.1", "indices": {"hemolysis": 80}}]),
    )
    .await;
    assert_eq!(
        out[0]["hold_reasons"][0]["code"], "serum_index",
        "{}",
        out[0]
    );
    let admin = c.app.token_for(Role::Admin).await;
    let (s, v) = c
        .app
        .put(
            "/api/v1/settings/results.autoverification_suspended",
            &admin,
            json!({"value": "true", "reason": "QC failure on CHEM-1"}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let out = post(&c, &c.tech, json!([item(&sst, "NA", "140")])).await;
    assert_eq!(out[0]["outcome"], "held");
    assert_eq!(
        out[0]["hold_reasons"][0]["code"],
        "autoverification_suspended"
    );
    c.app.finish().await;
}

async fn bad_input_is_refused_item_by_item_and_changes_nothing(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (order, o) = received_order(&c, &["BMP", "UA"], now - SignedDuration::from_mins(10)).await;
    let sst = tube(&o, "SST");
    let cup = tube(&o, "UCUP");
    // A tube not yet received.
    let body = json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"},
        "provider_id": c.provider, "location_id": c.location, "tests": ["GLU"], "priority": "routine"});
    let (_, pending) = c.app.post("/api/v1/orders", &c.tech, body).await;
    let not_received = tube(&pending, "SST");
    let before = c.app.audit_len().await;
    let out = post(
        &c,
        &c.tech,
        json!([
            item(&sst, "TSH", "1.2"),
            item(&sst, "NA", "high"),
            {"accession": sst, "test": "K", "value": "4.0", "units": "mg/dL"},
            item(&not_received, "GLU", "90"),
            item("D26X", "NA", "140"),
            item(&cup, "UGLU", "5+"),
            item(&cup, "UPH", "6.0"),
            {"accession": sst, "test": "GLU", "value": "5.0", "units": "mmol/L"},
            {"accession": cup, "test": "UGLU", "value": "2+"},
        ]),
    )
    .await;
    let codes: Vec<(&str, &str)> = out
        .iter()
        .map(|o| {
            (
                o["error"]["code"]
                    .as_str()
                    .unwrap_or(o["outcome"].as_str().unwrap()),
                o["error"]["field"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("test_not_ordered", "results[0].test"),
            ("value_not_numeric", "results[1].value"),
            ("unit_not_convertible", "results[2].units"),
            ("specimen_not_received", "results[3].accession"),
            ("accession_format", "results[4].accession"),
            ("value_not_an_answer", "results[5].value"),
            // Urine pH has no result rules in the demo: a technologist reviews it.
            ("held", ""),
            ("released", ""),
            ("released", ""),
        ],
        "{out:?}"
    );
    assert_eq!(out[6]["hold_reasons"][0]["code"], "manual_review");
    // Only the three good items were stored: glucose converted from mmol/L (5.0 / 0.0555 =
    // 90.09 → 90 mg/dL, the reading kept), a coded 2+ flagged abnormal.
    assert!(c.app.audit_len().await >= before + 3);
    let tests = order_tests(&c, order).await;
    let glu = &test_of(&tests, "GLU")["result"];
    assert_eq!(glu["value"], "90", "{glu}");
    assert_eq!(glu["units"], "mg/dL");
    assert_eq!(test_of(&tests, "UGLU")["result"]["flags"], json!(["A"]));
    for code in ["NA", "K", "TSH"] {
        if let Some(t) = tests
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["test_code"] == code)
        {
            assert_eq!(t["result"], Value::Null, "{code}: {t}");
        }
    }
    // The whole request is refused when it is not a batch.
    let r = c
        .app
        .post("/api/v1/results", &c.tech, json!({"results": []}))
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "batch_size",
        Some("results"),
    );
    // A phlebotomist may not post results.
    let phleb = c.app.token_for(Role::Phlebotomist).await;
    let (s, _) = c
        .app
        .post(
            "/api/v1/results",
            &phleb,
            json!({"results": [item(&sst, "NA", "140")]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    c.app.finish().await;
}

async fn result_rules_are_versioned_and_history_is_not_rewritten(db: Db) {
    let c = setup(db).await;
    let director = c.app.token_for(Role::Director).await;
    let (s, k) = c.app.get("/api/v1/result-rules/K", &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["version"], 1);
    assert_eq!(k["rules"]["critical"]["high"], "6.0");
    let mut rules = k["rules"].clone();
    // Only the director changes them.
    let (s, _) = c
        .app
        .put(
            "/api/v1/result-rules/K",
            &c.mt,
            json!({"version": 1, "reason": "x", "rules": rules}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Editing the limits of an interval in force rewrites history: refused.
    rules["reference_intervals"][0]["low"] = json!("3.4");
    let r = c
        .app
        .put(
            "/api/v1/result-rules/K",
            &director,
            json!({"version": 1, "reason": "new method", "rules": rules}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "interval_rewrites_history",
        None,
    );
    // Closing it now and adding the new interval: accepted, as version 2.
    let now = c.app.app.now().to_string();
    rules["reference_intervals"] = json!([
        {"low": "3.5", "high": "5.1", "effective_from": "2020-01-01T00:00:00Z", "effective_to": now},
        {"low": "3.4", "high": "4.8", "effective_from": now},
        {"specimen_type": "plasma", "low": "3.4", "high": "4.5", "effective_from": "2020-01-01T00:00:00Z"},
    ]);
    let (s, v) = c
        .app
        .put(
            "/api/v1/result-rules/K",
            &director,
            json!({"version": 1, "reason": "new method", "rules": rules}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    // A stale version is refused.
    let r = c
        .app
        .put(
            "/api/v1/result-rules/K",
            &director,
            json!({"version": 1, "reason": "again", "rules": rules}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "rules_changed", Some("version"));
    let (_, versions) = c.app.get("/api/v1/result-rules/K/versions", &c.tech).await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[1]["reason"], "new method");
    // A bad decimal names its field.
    rules["critical"]["low"] = json!("2,9");
    let r = c
        .app
        .put(
            "/api/v1/result-rules/K",
            &director,
            json!({"version": 2, "reason": "typo", "rules": rules}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "decimal",
        Some("critical.low"),
    );
    c.app.finish().await;
}

async fn an_order_is_released_at_once_and_a_test_marked_not_performed(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (order, o) = received_order(
        &c,
        &["NA", "K", "CL", "GLU"],
        now - SignedDuration::from_mins(15),
    )
    .await;
    let sst = tube(&o, "SST");
    // Two held (instrument flags), one released, glucose not run.
    let out = post(
        &c,
        &c.tech,
        json!([
            {"accession": sst, "test": "NA", "value": "139", "flags": ["bubble"]},
            {"accession": sst, "test": "K", "value": "4.4", "flags": ["bubble"]},
            item(&sst, "CL", "101"),
        ]),
    )
    .await;
    let outcomes: Vec<&str> = out.iter().map(|o| o["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["held", "held", "released"]);
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/orders/{order}/verify"),
            &c.mt,
            json!({"comment": "bubbles checked"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for code in ["NA", "K", "CL"] {
        assert_eq!(
            test_of(&v["tests"], code)["result"]["status"],
            "released",
            "{code}"
        );
    }
    assert_eq!(test_of(&v["tests"], "GLU")["result"], Value::Null);
    // Glucose was not performed: with a reason, it keeps its history and leaves the worklist.
    let np = format!("/api/v1/orders/{order}/not-performed");
    let r = c.app.post(&np, &c.mt, json!({"test": "GLU"})).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let (s, v) = c
        .app
        .post(
            &np,
            &c.mt,
            json!({"test": "GLU", "reason": "insufficient specimen after processing"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let glu = test_of(&v["tests"], "GLU");
    assert_eq!(glu["status"], "not_performed");
    assert_eq!(glu["result"]["status"], "not_performed");
    assert_eq!(
        glu["result"]["comment"],
        "insufficient specimen after processing"
    );
    let (_, wl) = c.app.get("/api/v1/worklists/chemistry", &c.tech).await;
    assert!(
        !wl["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["order_id"] == order),
        "{wl}"
    );
    // A result for it is refused.
    let late = post(&c, &c.tech, json!([item(&sst, "GLU", "95")])).await;
    assert_eq!(
        late[0]["error"]["code"], "test_not_performed",
        "{}",
        late[0]
    );
    // A released result is corrected, not marked not performed.
    let r = c
        .app
        .post(&np, &c.mt, json!({"test": "NA", "reason": "mistake"}))
        .await;
    assert_error(&r, StatusCode::CONFLICT, "result_released", None);
    c.app.finish().await;
}

/// The same lab twice: the results of a batch and of an earlier result every item may depend
/// on; returns the batch's items.
async fn batch_scenario(c: &Ctx) -> (Vec<i64>, Vec<Value>) {
    let now = c.app.app.now();
    // A potassium 4.0 released yesterday: the delta checks compare with it.
    let (_, a) = received_order(c, &["K"], now - SignedDuration::from_hours(20)).await;
    let out = post(c, &c.tech, json!([item(&tube(&a, "SST"), "K", "4.0")])).await;
    assert_eq!(out[0]["outcome"], "released", "{}", out[0]);
    let (b_id, b) = received_order(c, &["BMP"], now - SignedDuration::from_mins(40)).await;
    let (c_id, k2) = received_order(c, &["K"], now - SignedDuration::from_mins(30)).await;
    let (d_id, k3) = received_order(c, &["K", "GLU"], now - SignedDuration::from_mins(20)).await;
    let (b, k2, k3) = (tube(&b, "SST"), tube(&k2, "SST"), tube(&k3, "SST"));
    let items = vec![
        // Held for its delta against yesterday's 4.0; repeated below (a new version).
        item(&k2, "K", "5.6"),
        // Released: the next potassium's previous result is this one, not yesterday's.
        item(&b, "K", "4.3"),
        item(&k3, "K", "5.2"),
        // Sodium has a calculated test (anion gap) depending on it: recalculated at once,
        // and the order's later items see it.
        item(&b, "NA", "140"),
        item(&b, "CL", "104"),
        // The same item twice: stored once.
        item(&b, "CL", "104"),
        item(&b, "CO2", "24"),
        item(&b, "GLU", "abc"),
        item(&b, "GLU", "95"),
        item(&k2, "K", "5.7"),
        item(&k3, "GLU", "not ordered here"),
        item(&k3, "CA", "9.5"),
        item(&k3, "GLU", "700"),
        json!({"accession": "NOPE", "test": "K", "value": "4"}),
    ];
    (vec![b_id, c_id, d_id], items)
}

/// What an answer or a stored result says, without ids or times.
fn decision(v: &Value) -> Value {
    json!({
        "outcome": v["outcome"], "status": v["status"], "flags": v["flags"],
        "hold_reasons": v["hold_reasons"].as_array().map(|a| a.iter().map(|r| r["code"].clone()).collect::<Vec<_>>()),
        "error": v["error"]["code"], "field": v["error"]["field"],
        "value": v["value"], "versions": v["versions"].as_array().map(Vec::len),
        "calculated": v["calculated"], "critical_call": v["critical_call"].is_object(),
    })
}

/// Each order of lab `a` shows the same tests, statuses and results as its twin in lab `b`.
async fn same_orders(a: &Ctx, orders: &[i64], b: &Ctx, twins: &[i64]) {
    let shown = |t: &Value| -> Vec<Value> {
        t.as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"test": t["test_code"], "status": t["status"], "result": decision(&t["result"])}))
            .collect()
    };
    for (o, twin) in orders.iter().zip(twins) {
        let (ta, tb) = (order_tests(a, *o).await, order_tests(b, *twin).await);
        assert_eq!(shown(&ta), shown(&tb), "order {o}");
    }
}

/// Posting a batch reads and writes it as set operations (`crates/app/src/results/batch.rs`);
/// its answers and what it stores are those of posting each item on its own, in order.
async fn a_batch_answers_as_its_items_posted_one_by_one(db: Db) {
    let (batch, single) = (setup(db).await, setup(db).await);
    let (orders, items) = batch_scenario(&batch).await;
    let (single_orders, single_items) = batch_scenario(&single).await;
    let at_once = post(&batch, &batch.tech, Value::Array(items)).await;
    let mut one_by_one = Vec::new();
    for it in single_items {
        let (s, v) = single
            .app
            .post("/api/v1/results", &single.tech, json!({"results": [it]}))
            .await;
        if s == StatusCode::OK {
            one_by_one.push(v["results"][0].clone());
        } else {
            one_by_one.push(v);
        }
    }
    let at_once: Vec<Value> = at_once.iter().map(decision).collect();
    let one_by_one: Vec<Value> = one_by_one.iter().map(decision).collect();
    assert_eq!(at_once.len(), one_by_one.len());
    for (i, (a, b)) in at_once.iter().zip(&one_by_one).enumerate() {
        // Field names carry the item's index in its own request.
        let mut b = b.clone();
        if let Some(f) = b["field"].as_str() {
            b["field"] = json!(f.replacen("results[0]", &format!("results[{i}]"), 1));
        }
        assert_eq!(a, &b, "item {i}");
    }
    // The outcomes cover every path: set path, deferred, duplicate, refused.
    let outcomes: Vec<&str> = at_once
        .iter()
        .map(|d| d["outcome"].as_str().unwrap_or(""))
        .collect();
    for o in ["released", "held", "duplicate", "refused"] {
        assert!(outcomes.contains(&o), "{o} in {outcomes:?}");
    }
    same_orders(&batch, &orders, &single, &single_orders).await;
    // The anion gap was calculated from the batch's sodium, chloride and bicarbonate.
    let tests = order_tests(&batch, orders[0]).await;
    let ag = &test_of(&tests, "AGAP")["result"];
    assert_eq!(ag["value"], "12", "{ag}");
    batch.app.finish().await;
    single.app.finish().await;
}

fn input(v: &Value) -> ResultInput {
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    ResultInput {
        accession: text("accession").unwrap_or_default(),
        test: text("test").unwrap_or_default(),
        value: text("value").unwrap_or_default(),
        instrument: text("instrument"),
        ..ResultInput::default()
    }
}

/// What an answer says: its index in its request, outcome, status, flags, hold reasons, error.
fn shown_outcome(o: &ResultOutcome) -> Value {
    json!({
        "index": o.index, "outcome": o.outcome, "status": o.status, "flags": o.flags,
        "hold_reasons": o.hold_reasons.iter().map(|r| json!({"code": r.code})).collect::<Vec<_>>(),
        "error": o.error.as_ref().map(|e| match e {
            AppError::Invalid { field, code, .. } | AppError::Conflict { field, code, .. } => {
                json!({"code": code, "field": field})
            }
            other => json!({"other": other.to_string()}),
        }),
    })
}

fn staff(username: &str, role: Role) -> Actor {
    Actor {
        user_id: None,
        username: username.into(),
        role,
        source: Source::Api,
        session_id: None,
    }
}

/// Concurrent requests' batches are posted together (`crates/app/src/results/group.rs`):
/// each request's answers, with indices and field names counted in that request, and what is
/// stored are those of posting the requests one after another. One of them is another user's.
async fn concurrent_batches_answer_as_posted_one_after_another(db: Db) {
    let (group, single) = (setup(db).await, setup(db).await);
    let (orders, items) = batch_scenario(&group).await;
    let (single_orders, single_items) = batch_scenario(&single).await;
    let (tech, mt) = (
        staff("tech-1", Role::Technician),
        staff("mt-1", Role::Technologist),
    );
    // Four requests, the second by another user: the last two are one run of one user's
    // batches, the last with refusals at its indices 0, 1 and 3 (the unknown tube).
    let split = |items: &[Value]| -> Vec<(Actor, Vec<ResultInput>)> {
        let inputs: Vec<ResultInput> = items.iter().map(input).collect();
        vec![
            (tech.clone(), inputs[0..3].to_vec()),
            (mt.clone(), inputs[3..7].to_vec()),
            (tech.clone(), inputs[7..10].to_vec()),
            (tech.clone(), inputs[10..14].to_vec()),
        ]
    };
    let before = group.app.app.result_group_stats();
    let app = &group.app.app;
    let together = futures_util::future::join_all(
        split(&items)
            .into_iter()
            .map(|(actor, batch)| async move { app.post_results(&actor, batch).await }),
    )
    .await;
    let after = group.app.app.result_group_stats();
    assert_eq!(
        (after.groups, after.grouped),
        (before.groups + 1, before.grouped + 4),
        "the four batches were not posted as one group: {before:?} → {after:?}"
    );
    let mut one_after_another = Vec::new();
    for (actor, batch) in split(&single_items) {
        one_after_another.push(single.app.app.post_results(&actor, batch).await);
    }
    let shown = |answers: &[aliquot_app::AppResult<Vec<ResultOutcome>>]| -> Vec<Vec<Value>> {
        answers
            .iter()
            .map(|a| {
                a.as_ref()
                    .expect("posted")
                    .iter()
                    .map(shown_outcome)
                    .collect()
            })
            .collect()
    };
    let (together, one_after_another) = (shown(&together), shown(&one_after_another));
    assert_eq!(together, one_after_another);
    // Indices and fields count within each request.
    let last = &together[3];
    assert_eq!(
        last.iter()
            .map(|o| o["index"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        last[3]["error"]["field"], "results[3].accession",
        "{}",
        last[3]
    );
    for answer in together.iter().flatten() {
        if let Some(field) = answer["error"]["field"].as_str() {
            let own = format!("results[{}].", answer["index"]);
            assert!(field.starts_with(&own), "{answer}");
        }
    }
    same_orders(&group, &orders, &single, &single_orders).await;
    // The other user's results are audited as theirs.
    let admin = group.app.token_for(Role::Admin).await;
    let (s, events) = group
        .app
        .get("/api/v1/audit/events?limit=1000", &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{events}");
    let actors: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity_type"] == "result")
        .filter_map(|e| e["actor_name"].as_str())
        .collect();
    assert!(
        actors.contains(&"mt-1") && actors.contains(&"tech-1"),
        "{actors:?}"
    );
    group.app.finish().await;
    single.app.finish().await;
}

/// A request dropped after handing its batch over (its client went away while the batch
/// waited for the writer) does not stop the batch: it is stored whole and once, and the
/// client sending it again is told each result is a duplicate. A request dropped before it
/// handed anything over stores nothing.
async fn a_dropped_request_stores_its_whole_batch_once(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let tech = staff("tech-1", Role::Technician);
    let (order, o) = received_order(&c, &["BMP"], now - SignedDuration::from_mins(40)).await;
    let acc = tube(&o, "SST");
    let batch: Vec<ResultInput> = [("NA", "140"), ("K", "4.1"), ("CL", "104"), ("CO2", "24")]
        .iter()
        .map(|(t, v)| input(&item(&acc, t, v)))
        .collect();
    // Never polled: nothing handed over, nothing stored.
    drop(c.app.app.post_results(&tech, batch.clone()));
    let tests = order_tests(&c, order).await;
    assert!(test_of(&tests, "NA")["result"].is_null(), "{tests}");
    // Polled once (the batch is handed to the worker), then dropped while it waits.
    let dropped = tokio::time::timeout(
        std::time::Duration::ZERO,
        c.app.app.post_results(&tech, batch.clone()),
    )
    .await;
    assert!(dropped.is_err(), "answered within one poll: {dropped:?}");
    // The worker takes batches in order: this one is answered after the dropped one.
    let again = c.app.app.post_results(&tech, batch).await.expect("posted");
    let outcomes: Vec<&str> = again.iter().map(|o| o.outcome).collect();
    assert_eq!(outcomes, ["duplicate"; 4], "{again:?}");
    let tests = order_tests(&c, order).await;
    for code in ["NA", "K", "CL", "CO2"] {
        let r = &test_of(&tests, code)["result"];
        assert_eq!(
            r["versions"].as_array().map(Vec::len),
            Some(1),
            "{code}: {r}"
        );
    }
    c.app.finish().await;
}

/// The bench's entry list (the web result-entry page) reads only the rows it shows: it must
/// list exactly the first rows of the department's worklist, in its order, count them all,
/// and show each row's held value, interval in force and the previous released result.
async fn the_entry_list_is_the_worklists_head_with_its_hints(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let tech = Actor {
        user_id: None,
        username: "technician".into(),
        role: Role::Technician,
        source: Source::Cli,
        session_id: None,
    };
    // An earlier potassium, released: the previous result of the later tubes.
    let (_, o1) = received_order(&c, &["K"], now - SignedDuration::from_mins(180)).await;
    let out = post(&c, &c.tech, json!([item(&tube(&o1, "SST"), "K", "4.0")])).await;
    if out[0]["outcome"] == "held" {
        let id = out[0]["result_id"].as_i64().unwrap();
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/results/{id}/verify"),
                &c.mt,
                json!({"version": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (_, o2) = received_order(&c, &["BMP"], now - SignedDuration::from_mins(40)).await;
    let (_, o3) = received_order(&c, &["NA", "K"], now - SignedDuration::from_mins(20)).await;
    let out = post(
        &c,
        &c.tech,
        json!([{"accession": tube(&o3, "SST"), "test": "NA", "value": "141",
                "flags": ["clot detected"]}]),
    )
    .await;
    assert_eq!(out[0]["outcome"], "held", "{out:?}");

    let (s, wl) = c.app.get("/api/v1/worklists/chemistry", &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{wl}");
    let worklist: Vec<(String, String, String)> = wl["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap().to_owned();
            (s("accession"), s("test_code"), s("status"))
        })
        .collect();
    assert!(worklist.len() > 6, "{wl}");
    for limit in [0, 5, worklist.len(), 100] {
        let list = c
            .app
            .app
            .results_entry_list(&tech, "chemistry", limit)
            .await
            .unwrap();
        assert_eq!(list.total, worklist.len(), "limit {limit}");
        let shown: Vec<(String, String, String)> = list
            .items
            .iter()
            .map(|(i, _)| {
                (
                    i.accession.clone(),
                    i.test_code.clone(),
                    i.status.to_owned(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            worklist[..limit.min(worklist.len())],
            "limit {limit}"
        );
    }
    let list = c
        .app
        .app
        .results_entry_list(&tech, "chemistry", 100)
        .await
        .unwrap();
    let row = |acc: &str, test: &str| {
        list.items
            .iter()
            .find(|(i, _)| i.accession == acc && i.test_code == test)
            .unwrap_or_else(|| panic!("no {test} of {acc}"))
    };
    let (na, _) = row(&tube(&o3, "SST"), "NA");
    assert_eq!(na.status, "held");
    assert_eq!(na.value.as_deref(), Some("141"));
    assert_eq!(na.hold_reasons[0].code, "instrument_flag");
    for o in [&o2, &o3] {
        let (k, hint) = row(&tube(o, "SST"), "K");
        assert_eq!(k.status, "pending");
        assert_eq!(hint.units.as_deref(), Some("mmol/L"));
        assert_eq!(
            hint.reference_interval.as_ref().map(|i| i.text.as_str()),
            Some("3.5–5.1")
        );
        let previous = hint.previous.as_ref().expect("the earlier potassium");
        assert_eq!(previous.value, "4.0");
    }
    // The earlier tube's own row is gone (released); another department's list is empty.
    assert!(
        list.items
            .iter()
            .all(|(i, _)| i.accession != tube(&o1, "SST"))
    );
    let blood = c
        .app
        .app
        .results_entry_list(&tech, "hematology", 100)
        .await
        .unwrap();
    assert_eq!((blood.total, blood.items.len()), (0, 0));
    c.app.finish().await;
}

/// Which tests are calculated from which is kept between batches (`App::dependents`): a rule
/// set changed after a batch is used by the next one.
async fn a_changed_rule_set_is_used_by_the_next_batch(db: Db) {
    let c = setup(db).await;
    let director = director();
    let (_, egfr) = aliquot_app::demo_catalog::demo_result_rules()
        .into_iter()
        .find(|(test, _)| test == "EGFR")
        .expect("the demo rules calculate eGFR");
    assert!(egfr.calculation.is_some());
    let plain = aliquot_app::ResultRulesDoc {
        calculation: None,
        ..egfr.clone()
    };
    c.app
        .app
        .put_result_rules(&director, "EGFR", 1, plain, Some("calculation off"))
        .await
        .expect("rules");
    let now = c.app.app.now();
    let creatinine = |acc: &str| json!([item(acc, "2160-0", "0.90")]);
    // eGFR is not calculated while its rule set has no calculation.
    let (first, o) = received_order(&c, &["BMP"], now - SignedDuration::from_mins(30)).await;
    let out = post(&c, &c.tech, creatinine(&tube(&o, "SST"))).await;
    assert_eq!(out[0]["outcome"], "released", "{out:?}");
    let tests = order_tests(&c, first).await;
    assert_eq!(test_of(&tests, "CREA")["result"]["value"], "0.90");
    assert_eq!(test_of(&tests, "EGFR")["result"], Value::Null);
    // The calculation back: the next batch calculates it.
    c.app
        .app
        .put_result_rules(&director, "EGFR", 2, egfr, Some("calculation on"))
        .await
        .expect("rules");
    let (second, o) = received_order(&c, &["BMP"], now - SignedDuration::from_mins(20)).await;
    let out = post(&c, &c.tech, creatinine(&tube(&o, "SST"))).await;
    assert_eq!(out[0]["outcome"], "released", "{out:?}");
    let tests = order_tests(&c, second).await;
    let calculated = &test_of(&tests, "EGFR")["result"];
    assert_eq!(calculated["value"], "71", "{calculated}");
    assert_eq!(calculated["calculated"], true);
}
