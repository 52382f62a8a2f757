//! Patient reports as PDF (issue 14), through the API on both databases: every CLIA element
//! of an order's report checked in the text `pdftotext` extracts (non-ASCII names included),
//! preliminary → final → corrected with the original still retrievable and byte-identical,
//! a rejected specimen with its reason, the cumulative report and the batch print, access
//! control and the access log.

use std::process::Command;

use aliquot_app::{Actor, NewProviderInput};
use aliquot_domain::auth::Role;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, received_order, setup, tube};
use crate::support::*;

crate::both_backends!(
    an_order_report_carries_every_element_and_a_correction_keeps_the_original,
    a_rejected_specimen_and_pending_tests_make_a_preliminary_report,
    the_cumulative_report_and_the_batch_print,
    reports_are_refused_to_whom_may_not_see_them,
    a_pathologist_sign_off_is_printed_and_carried_in_fhir,
);

/// GETs a PDF: status, bytes, and the report version and status headers.
pub(crate) async fn get_pdf(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (StatusCode, Vec<u8>, String) {
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let meta = format!(
        "{} v{} {}",
        resp.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        resp.headers()
            .get("x-report-version")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        resp.headers()
            .get("x-report-status")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default(),
    );
    (status, resp.bytes().await.expect("body").to_vec(), meta)
}

/// The PDF's text as `pdftotext -raw` extracts it (content order, so a table cell wrapped
/// over two lines stays together), every run of white space one space (poppler-utils;
/// missing = failure).
pub(crate) fn pdf_text(pdf: &[u8]) -> String {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = Command::new("pdftotext")
        .arg("-raw")
        .arg("-enc")
        .arg("UTF-8")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) must be installed");
    assert!(out.status.success(), "pdftotext failed");
    if let Ok(dir) = std::env::var("ALIQUOT_REPORT_OUT") {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::fs::write(format!("{dir}/report-{n}.pdf"), pdf).expect("keep pdf");
    }
    String::from_utf8(out.stdout)
        .expect("utf-8 text")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts that every expected piece of text is in the report.
fn assert_has(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "the report lacks {e:?}:\n{text}");
    }
}

/// A time as the report shows it (the lab's zone is UTC in these tests).
fn shown(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

async fn lab_settings(c: &Ctx) {
    let admin = c.app.token_for(Role::Admin).await;
    for (key, value) in [
        ("lab.name", "Aliquot Test Laboratory"),
        ("lab.address", "1200 Main Street, Springfield, IL 62701"),
        ("lab.clia", "14d0123456"),
    ] {
        let (s, v) = c
            .app
            .put(
                &format!("/api/v1/settings/{key}"),
                &admin,
                json!({"value": value, "reason": "report header"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{key}: {v}");
    }
    // A CLIA number is checked.
    let r = c
        .app
        .put(
            "/api/v1/settings/lab.clia",
            &admin,
            json!({"value": "14-0123456", "reason": "typo"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.1);
}

/// A provider with a non-ASCII name; the context's orders are placed by them.
async fn djordjevic(c: &mut Ctx) {
    let p = c
        .app
        .app
        .create_provider(
            &Actor::cli("test"),
            NewProviderInput {
                npi: "1245319599".into(),
                family_name: "Đorđević".into(),
                given_name: "Milan".into(),
                phone: "+1 555 0101".into(),
            },
        )
        .await
        .expect("provider");
    c.provider = p.id;
}

async fn post_results(c: &Ctx, items: Value) -> Vec<Value> {
    let (s, v) = c
        .app
        .post("/api/v1/results", &c.tech, json!({"results": items}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"].as_array().unwrap().clone()
}

async fn an_order_report_carries_every_element_and_a_correction_keeps_the_original(db: Db) {
    let mut c = setup(db).await;
    lab_settings(&c).await;
    djordjevic(&mut c).await;
    let collected = c.app.app.now() - SignedDuration::from_mins(30);
    let (order, o) = received_order(&c, &["NA", "K", "GLU", "WBC"], collected).await;
    let sst = tube(&o, "SST");
    let lav = tube(&o, "LAV");
    let received = c.app.app.now();
    let out = post_results(
        &c,
        json!([
            {"accession": sst, "test": "NA", "value": "141", "instrument": "CHEM-1"},
            {"accession": sst, "test": "K", "value": "6.8", "instrument": "CHEM-1"},
            {"accession": sst, "test": "GLU", "value": "250", "instrument": "CHEM-1",
             "comment": "non-fasting sample"},
            {"accession": lav, "test": "WBC", "value": "7.2", "instrument": "HEME-1"},
        ]),
    )
    .await;
    let k = out[1]["result_id"].as_i64().unwrap();
    let na = out[0]["result_id"].as_i64().unwrap();
    // The critical potassium is called and released.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{k}/critical-call"),
            &c.mt,
            json!({"notified_name": "RN Mary Hughes", "notified_role": "nurse", "read_back": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(&format!("/api/v1/orders/{order}/verify"), &c.mt, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, full) = c.app.get(&format!("/api/v1/orders/{order}"), &c.tech).await;
    let interval = |code: &str| {
        full["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["test_code"] == code)
            .unwrap()["result"]["reference_interval"]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{code} has an interval: {full}"))
            .to_owned()
    };
    for code in ["NA", "K", "GLU"] {
        assert_eq!(
            full["tests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["test_code"] == code)
                .unwrap()["result"]["status"],
            "released",
            "{full}"
        );
    }

    // Version 1: final, every element present.
    let path = format!("/api/v1/orders/{order}/report.pdf");
    let (s, v1, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&v1));
    assert_eq!(meta, "application/pdf v1 final");
    let text = pdf_text(&v1);
    let issued = c.app.app.now();
    assert_has(
        &text,
        &[
            // The laboratory.
            "Aliquot Test Laboratory",
            "1200 Main Street, Springfield, IL 62701",
            "CLIA 14D0123456",
            // The patient: name (non-ASCII), identifier, birth date, sex, age.
            "Okonkwo-Lindqvist, Zoë",
            "MRN-900",
            "1961-04-09",
            "Female",
            // The ordering provider (non-ASCII) and the client location.
            "Đorđević, Milan (NPI 1245319599)",
            "Outpatient clinic (OPD)",
            // Specimens: type, source (container), collection and receipt times, condition.
            &sst,
            &lav,
            "Serum",
            "Whole Blood",
            &shown(collected),
            "Acceptable",
            // The report's status, date and version.
            "FINAL REPORT",
            "Final report: every test is complete.",
            // Departments.
            "CHEMISTRY",
            "HEMATOLOGY",
            // Tests: name, result, units, interval in force at collection, flags.
            "Sodium",
            "141",
            "mmol/L",
            &interval("NA"),
            "Potassium",
            "6.8",
            "HH",
            &interval("K"),
            "Glucose",
            "250",
            "mg/dL",
            "Leukocytes",
            "7.2",
            "10*3/uL",
            // A comment and the critical call: who, whom, when, read back.
            "Comment: non-fasting sample",
            "Critical value called to RN Mary Hughes (nurse) by technologist",
            "read back",
            // The performing lab and page numbers.
            "Performed by: Aliquot Test Laboratory, CLIA 14D0123456",
            "Page 1 of 1",
            "Report version 1",
        ],
    );
    // The received and issue times (within the minute the test ran).
    let received_shown = shown(received);
    assert!(
        text.contains(&received_shown)
            || text.contains(&shown(received - SignedDuration::from_mins(1))),
        "received {received_shown}:\n{text}"
    );
    assert!(
        text.contains(&shown(issued))
            || text.contains(&shown(issued - SignedDuration::from_mins(1)))
    );
    assert!(!text.contains("CORRECTED"), "{text}");

    // The same version is the same bytes: again, and by its number.
    let (_, again, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(meta, "application/pdf v1 final");
    assert!(again == v1, "a reprint must be byte-identical");
    let (_, by_number, _) = get_pdf(&c.app, &format!("{path}?version=1"), &c.tech).await;
    assert!(by_number == v1);

    // A correction makes version 2, corrected, showing what changed and when.
    c.app.clock.advance(SignedDuration::from_mins(7));
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{na}/correct"),
            &c.mt,
            json!({"value": "131", "reason": "sample diluted with IV fluid; redrawn",
                   "signature": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v2, meta) = get_pdf(&c.app, &path, &c.mt).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(meta, "application/pdf v2 corrected");
    let text2 = pdf_text(&v2);
    assert_has(
        &text2,
        &[
            "CORRECTED REPORT",
            "Corrected results",
            "Sodium: 131 mmol/L (L) (previously reported 141 mmol/L)",
            "Reason: sample diluted with IV fluid; redrawn",
            &shown(c.app.app.now()),
            "It replaces version 1 (final) issued",
            "which stays retrievable",
            "Report version 2",
            "Okonkwo-Lindqvist, Zoë",
        ],
    );
    // The original stays retrievable, byte for byte, and says nothing of the correction.
    let (s, original, meta) = get_pdf(&c.app, &format!("{path}?version=1"), &c.mt).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(meta, "application/pdf v1 final");
    assert!(
        original == v1,
        "version 1 must not change after a correction"
    );
    let (_, v2_again, _) = get_pdf(&c.app, &format!("{path}?version=2"), &c.mt).await;
    assert!(v2_again == v2);
    // A version that was never issued, and a bad one.
    let (s, body, _) = get_pdf(&c.app, &format!("{path}?version=3"), &c.mt).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let r = c.app.get(&format!("{path}?version=0"), &c.mt).await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_version",
        Some("version"),
    );
    let r = c.app.get(&format!("{path}?version=x"), &c.mt).await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    assert_eq!(r.1["error"]["code"], "invalid_query");
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("version"),
        "{}",
        r.1
    );

    // Issuing is audited once per version; every read is access-logged.
    let audit = c
        .app
        .app
        .store()
        .audit_events(0, 100, Some(("order", &order.to_string())))
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.entry.action == "report.issue")
            .count(),
        2,
        "{audit:?}"
    );
    let log = c.app.app.store().access_log(0, 1000).await.unwrap();
    let patient = full["patient_id"].as_i64().unwrap();
    assert!(
        log.iter()
            .filter(|a| a.action == "report.read" && a.patient_ids == vec![patient])
            .count()
            >= 6
    );
    c.app.finish().await;
}

async fn a_rejected_specimen_and_pending_tests_make_a_preliminary_report(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let body = json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["NA", "WBC"], "priority": "routine"});
    let (s, o) = c.app.post("/api/v1/orders", &c.tech, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let order = o["id"].as_i64().unwrap();
    let sst = tube(&o, "SST");
    let lav = tube(&o, "LAV");
    for acc in [&sst, &lav] {
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/collect"),
                &c.tech,
                json!({"collected_at": (now - SignedDuration::from_mins(15)).to_string(),
                       "patient": {"mrn": "MRN-900", "family_name": "Okonkwo-Lindqvist", "given_name": "Zoë"}}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{sst}/receive"),
            &c.tech,
            full_tube("SST"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{lav}/reject"),
            &c.tech,
            json!({"reason": "clotted", "comment": "clot seen on inversion"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Nothing resulted yet: a preliminary report with every test pending.
    let path = format!("/api/v1/orders/{order}/report.pdf");
    let (s, pdf, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(meta, "application/pdf v1 preliminary");
    let text = pdf_text(&pdf);
    assert_has(
        &text,
        &[
            "PRELIMINARY REPORT",
            "some tests are still pending",
            "Rejected: clotted (clot seen on inversion); recollection requested",
            "Pending",
            "Sodium",
            "Leukocytes",
            "Aliquot laboratory",
            "CLIA (not set)",
        ],
    );
    // A held result is not reported.
    let out = post_results(
        &c,
        json!([{"accession": sst, "test": "NA", "value": "141", "flags": ["clot detected"]}]),
    )
    .await;
    assert_eq!(out[0]["outcome"], "held");
    let (_, same, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(
        meta, "application/pdf v1 preliminary",
        "held changes nothing"
    );
    assert!(same == pdf);
    c.app.finish().await;
}

async fn the_cumulative_report_and_the_batch_print(db: Db) {
    let mut c = setup(db).await;
    djordjevic(&mut c).await;
    // A second patient, 王秀英, with glucose on two days.
    let patient = register(
        &c.app,
        &c.tech,
        json!({"mrn": "MRN-901", "family_name": "王", "given_name": "秀英",
               "birth_date": "1950-02-01", "sex": "F"}),
    )
    .await;
    let start = c.app.app.now();
    let mut orders = Vec::new();
    for (i, value) in ["110", "180"].iter().enumerate() {
        let body = json!({"patient": {"mrn": "MRN-901", "birth_date": "1950-02-01"},
            "provider_id": c.provider, "location_id": c.location,
            "tests": ["GLU"], "priority": "routine"});
        let (s, o) = c.app.post("/api/v1/orders", &c.tech, body).await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let acc = tube(&o, "SST");
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/collect"),
                &c.tech,
                json!({"collected_at": (c.app.app.now() - SignedDuration::from_mins(5)).to_string(),
                       "patient": {"mrn": "MRN-901", "family_name": "王", "given_name": "秀英"}}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/receive"),
                &c.tech,
                full_tube("SST"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let out = post_results(
            &c,
            json!([{"accession": acc, "test": "GLU", "value": value, "instrument": "CHEM-1"}]),
        )
        .await;
        assert_eq!(out[0]["outcome"], "released", "{}", out[0]);
        orders.push(o["id"].as_i64().unwrap());
        if i == 0 {
            c.app.clock.advance(SignedDuration::from_hours(26));
            c.tech = c.app.token_for(Role::Technician).await;
        }
    }
    let path = format!("/api/v1/patients/{patient}/cumulative.pdf");
    let (s, pdf, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(meta, "application/pdf v cumulative");
    let text = pdf_text(&pdf);
    assert_has(
        &text,
        &[
            "Cumulative report",
            "王, 秀英",
            "MRN-901",
            "1950-02-01",
            "Glucose (mg/dL)",
            "110",
            "180",
            "H",
            "rising",
            &orders[0].to_string(),
            &orders[1].to_string(),
        ],
    );
    assert!(
        text.find("110").unwrap() < text.find("180").unwrap(),
        "oldest first"
    );
    let (_, again, _) = get_pdf(&c.app, &path, &c.tech).await;
    assert!(again == pdf, "the same results give the same bytes");

    // The batch print: both orders released since the start, one PDF, each report with
    // its own page numbers.
    let since = (start - SignedDuration::from_mins(1)).to_string();
    let batch = format!("/api/v1/reports/batch.pdf?location=OPD&since={since}");
    let (s, pdf, meta) = get_pdf(&c.app, &batch, &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(meta, "application/pdf v batch");
    let text = pdf_text(&pdf);
    assert_eq!(text.matches("FINAL REPORT").count(), 2, "{text}");
    assert_eq!(text.matches("Page 1 of 1").count(), 2, "{text}");
    assert_has(
        &text,
        &[
            "王, 秀英",
            "Đorđević, Milan",
            &format!("Order {}", orders[0]),
            &format!("Order {}", orders[1]),
        ],
    );
    // Only the second order was released in the last day.
    let since = (c.app.app.now() - SignedDuration::from_hours(1)).to_string();
    let (_, pdf, _) = get_pdf(
        &c.app,
        &format!("/api/v1/reports/batch.pdf?location=OPD&since={since}"),
        &c.tech,
    )
    .await;
    let text = pdf_text(&pdf);
    assert_eq!(text.matches("FINAL REPORT").count(), 1, "{text}");
    // Nothing since later: an empty batch says so.
    let later = (c.app.app.now() + SignedDuration::from_hours(1)).to_string();
    let (_, pdf, _) = get_pdf(
        &c.app,
        &format!("/api/v1/reports/batch.pdf?location=OPD&since={later}"),
        &c.tech,
    )
    .await;
    assert_has(
        &pdf_text(&pdf),
        &["No reports were released in this period."],
    );
    // Bad input names its field.
    let r = c
        .app
        .get(
            "/api/v1/reports/batch.pdf?location=OPD&since=yesterday",
            &c.tech,
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_time",
        Some("since"),
    );
    let r = c
        .app
        .get(
            &format!("/api/v1/reports/batch.pdf?location=NOPE&since={later}"),
            &c.tech,
        )
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    let r = c
        .app
        .get("/api/v1/reports/batch.pdf?location=OPD", &c.tech)
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    assert!(
        r.1["error"]["message"].as_str().unwrap().contains("since"),
        "{}",
        r.1
    );
    let log = c.app.app.store().access_log(0, 1000).await.unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "report.cumulative" && a.patient_ids == vec![patient])
    );
    assert!(
        log.iter()
            .any(|a| a.action == "report.batch" && a.patient_ids == vec![patient])
    );
    c.app.finish().await;
}

async fn reports_are_refused_to_whom_may_not_see_them(db: Db) {
    let c = setup(db).await;
    let (order, o) =
        received_order(&c, &["NA"], c.app.app.now() - SignedDuration::from_mins(5)).await;
    let patient = o["patient_id"].as_i64().unwrap();
    let path = format!("/api/v1/orders/{order}/report.pdf");
    // No token, and a role without order.read.
    let r = c.app.call(reqwest::Method::GET, &path, None, None).await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    let admin = c.app.token_for(Role::Admin).await;
    let r = c.app.get(&path, &admin).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // A physician sees their own patients only: another provider's order is not found.
    let other = c
        .app
        .app
        .create_provider(
            &Actor::cli("test"),
            NewProviderInput {
                npi: "1679576722".into(),
                family_name: "Other".into(),
                given_name: "Olga".into(),
                phone: "+1 555 0102".into(),
            },
        )
        .await
        .unwrap();
    let doctor = physician_token(&c.app, other.id).await;
    let r = c.app.get(&path, &doctor).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
    let r = c
        .app
        .get(
            &format!("/api/v1/patients/{patient}/cumulative.pdf"),
            &doctor,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
    // The ordering physician sees it.
    let own = physician_token(&c.app, c.provider).await;
    let (s, pdf, _) = get_pdf(&c.app, &path, &own).await;
    assert_eq!(s, StatusCode::OK);
    assert!(pdf_text(&pdf).contains("Okonkwo-Lindqvist, Zoë"));
    let r = c.app.get("/api/v1/orders/999999/report.pdf", &c.tech).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found", None);
    c.app.finish().await;
}

/// Makes `test` need a pathologist's sign-off (its result rules, changed by the director).
async fn requires_pathologist(c: &Ctx, director: &str, test: &str) {
    let (s, r) = c
        .app
        .get(&format!("/api/v1/result-rules/{test}"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let mut rules = r["rules"].clone();
    rules["requires_pathologist"] = json!(true);
    let (s, v) = c
        .app
        .put(
            &format!("/api/v1/result-rules/{test}"),
            director,
            json!({"version": r["version"], "reason": "pathologist review", "rules": rules}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// SHA-1 of `bytes`, base64 (FHIR R4 `Attachment.hash`).
fn sha1_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes))
}

async fn a_pathologist_sign_off_is_printed_and_carried_in_fhir(db: Db) {
    let c = setup(db).await;
    lab_settings(&c).await;
    let director = c.app.token_for(Role::Director).await;
    requires_pathologist(&c, &director, "GLU").await;
    let collected = c.app.app.now() - SignedDuration::from_mins(30);
    let (order, o) = received_order(&c, &["NA", "GLU"], collected).await;
    let sst = tube(&o, "SST");
    let out = post_results(
        &c,
        json!([
            {"accession": sst, "test": "NA", "value": "141", "instrument": "CHEM-1"},
            {"accession": sst, "test": "GLU", "value": "95", "instrument": "CHEM-1"},
        ]),
    )
    .await;
    let glu = out[1]["result_id"].as_i64().unwrap();
    assert_eq!(out[1]["status"], "held", "{out:?}");

    // Before the sign-off the report says nothing of one (and GLU is pending).
    let path = format!("/api/v1/orders/{order}/report.pdf");
    let (_, before, _) = get_pdf(&c.app, &path, &c.tech).await;
    let text = pdf_text(&before);
    assert!(!text.contains("sign-off"), "{text}");
    assert!(!text.contains("Signed off"), "{text}");

    // A technologist may verify, but not sign off: refused, nothing changes.
    let r = c
        .app
        .post(&format!("/api/v1/results/{glu}/verify"), &c.mt, json!({}))
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // The director signs it off.
    c.app.clock.advance(SignedDuration::from_mins(3));
    let signed_at = c.app.app.now();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{glu}/verify"),
            &director,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "released");
    assert_eq!(v["signed_off"]["by"], "director", "{v}");
    assert_eq!(v["signed_off"]["name"], "Test director");
    assert_eq!(v["signed_off"]["role"], "Laboratory director");
    assert_eq!(v["signed_off"]["at"], signed_at.to_string());
    // A result that needs none carries none.
    let (_, na) = c
        .app
        .get(&format!("/api/v1/results/{}", out[0]["result_id"]), &c.tech)
        .await;
    assert_eq!(na["signed_off"], Value::Null, "{na}");

    // The PDF names who signed off, in what role, and when: beside the test and at the end.
    let (s, pdf, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(meta, "application/pdf v2 final");
    let text = pdf_text(&pdf);
    let who = format!(
        "Test director (Laboratory director) at {}",
        shown(signed_at)
    );
    assert_has(
        &text,
        &[
            &format!("Signed off by {who}."),
            &format!("Pathologist sign-off: Glucose: {who}"),
        ],
    );
    assert!(!text.contains("Sodium: Test director"), "{text}");

    // FHIR: the DiagnosticReport's resultsInterpreter is the signer, and its presentedForm
    // the PDF just read (same version, same bytes: its size and SHA-1).
    let (s, dr) = c
        .app
        .get(&format!("/fhir/r4/DiagnosticReport/{order}"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{dr}");
    assert_eq!(dr["status"], "final", "{dr}");
    let interpreter = &dr["resultsInterpreter"][0];
    assert_eq!(interpreter["reference"], "#signer-1", "{dr}");
    assert!(
        interpreter["display"]
            .as_str()
            .unwrap()
            .starts_with("Test director (Laboratory director), signed off "),
        "{dr}"
    );
    assert_eq!(dr["contained"][0]["resourceType"], "Practitioner");
    assert_eq!(dr["contained"][0]["id"], "signer-1");
    assert_eq!(dr["contained"][0]["name"][0]["text"], "Test director");
    assert_eq!(
        dr["contained"][0]["qualification"][0]["code"]["text"],
        "Laboratory director"
    );
    let form = &dr["presentedForm"][0];
    assert_eq!(form["contentType"], "application/pdf", "{dr}");
    assert_eq!(
        form["url"],
        format!("/api/v1/orders/{order}/report.pdf?version=2")
    );
    assert_eq!(form["size"], pdf.len() as u64, "{dr}");
    assert_eq!(form["hash"], sha1_base64(&pdf), "{dr}");
    assert_eq!(
        form["title"],
        format!("Laboratory report, order {order}, version 2 (final)")
    );
    assert!(form["creation"].as_str().unwrap().ends_with('Z'), "{dr}");
    // The url serves those bytes.
    let (s, by_url, _) = get_pdf(&c.app, form["url"].as_str().unwrap(), &c.tech).await;
    assert_eq!(s, StatusCode::OK);
    assert!(by_url == pdf);
    // Searching gives the same attachment.
    let patient = o["patient_id"].as_i64().unwrap();
    let (s, bundle) = c
        .app
        .get(
            &format!("/fhir/r4/DiagnosticReport?patient={patient}"),
            &c.tech,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    assert_eq!(
        bundle["entry"][0]["resource"]["presentedForm"],
        dr["presentedForm"]
    );
    crate::fhir::validate(&[dr.clone(), bundle.clone()]);

    // A correction of a signed-off test needs a sign-off too, and carries the new one.
    let r = c
        .app
        .post(
            &format!("/api/v1/results/{glu}/correct"),
            &c.mt,
            json!({"value": "105", "reason": "wrong sample",
                   "signature": {"password": crate::support::PASSWORD}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    c.app.clock.advance(SignedDuration::from_mins(10));
    let corrected_at = c.app.app.now();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/results/{glu}/correct"),
            &director,
            json!({"value": "105", "reason": "wrong sample",
                   "signature": {"password": crate::support::PASSWORD}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["signed_off"]["at"], corrected_at.to_string(), "{v}");
    let (_, v3, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(meta, "application/pdf v3 corrected");
    let text = pdf_text(&v3);
    assert_has(
        &text,
        &[&format!(
            "Pathologist sign-off: Glucose: Test director (Laboratory director) at {}",
            shown(corrected_at)
        )],
    );
    // The report's new version is the FHIR attachment now.
    let (_, dr) = c
        .app
        .get(&format!("/fhir/r4/DiagnosticReport/{order}"), &c.tech)
        .await;
    assert_eq!(dr["status"], "corrected");
    assert_eq!(dr["presentedForm"][0]["hash"], sha1_base64(&v3), "{dr}");
    assert_eq!(dr["presentedForm"][0]["size"], v3.len() as u64);
    c.app.finish().await;
}
