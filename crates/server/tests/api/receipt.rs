//! Issue 10 items 4, 5, 6 and the citrate volumes of item 10, as the issue reproduced them:
//! `receive {}` accepted anything; a correctly filled citrate tube was refused as
//! under-filled; the container that arrived could not be recorded; an add-on landed on a
//! mislabeled tube, and planned demand passed for measured content.

use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::results::{Ctx, order_tests, setup, test_of, tube};
use crate::support::*;

crate::both_backends!(
    receipt_is_attested_never_assumed,
    a_citrate_tube_is_judged_against_its_line,
    the_container_that_arrived_decides_the_specimen_type_tested,
    add_ons_go_where_the_specimen_is,
    a_label_keeps_both_names_the_mrn_and_the_aliquot_s_tests,
);

/// An order of `tests` for the results' patient, every tube collected half an hour ago.
async fn collected_order(c: &Ctx, tests: &[&str]) -> (i64, Value) {
    let body = json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": tests, "priority": "routine"});
    let (s, o) = c.app.post("/api/v1/orders", &c.tech, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let at = c.app.app.now() - SignedDuration::from_mins(30);
    for sp in o["specimens"].as_array().unwrap() {
        let acc = sp["accession"].as_str().unwrap();
        let (s, v) = c
            .app
            .post(
                &format!("/api/v1/specimens/{acc}/collect"),
                &c.tech,
                json!({"collected_at": at.to_string(),
                       "patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"}}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    (o["id"].as_i64().unwrap(), o)
}

async fn receive(c: &Ctx, acc: &str, body: Value) -> (StatusCode, Value) {
    c.app
        .post(&format!("/api/v1/specimens/{acc}/receive"), &c.tech, body)
        .await
}

fn problem_codes(v: &Value) -> Vec<String> {
    v["error"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn receipt_is_attested_never_assumed(db: Db) {
    let c = setup(db).await;
    let (_, o) = collected_order(&c, &["BMP"]).await;
    let sst = tube(&o, "SST");
    // The issue: `receive {}` accepted anything. Now it is refused naming every missing
    // attestation, and only the refused attempt is recorded.
    let before = c.app.audit_len().await;
    let got = receive(&c, &sst, json!({})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "receipt_attestation_required",
        Some("label"),
    );
    let message = got.1["error"]["message"].as_str().unwrap();
    for field in ["label", "container", "volume_ul or fill"] {
        assert!(message.contains(field), "{message}");
    }
    c.app.assert_only_refused(before).await;
    // One attestation given: the others are still named.
    let got = receive(&c, &sst, json!({"label": "ok"})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "receipt_attestation_required",
        Some("container"),
    );
    assert!(
        !got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("label,")
    );
    // A label attested as missing is a receipt problem (unlabeled), not a default.
    let got = receive(
        &c,
        &sst,
        json!({"label": "missing", "container": "SST", "volume_ul": 2000}),
    )
    .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(problem_codes(&got.1), ["receipt_label_missing"]);
    for (body, code, field) in [
        (
            json!({"label": "fine", "container": "SST", "volume_ul": 2000}),
            "label_status",
            "label",
        ),
        (
            json!({"label": "ok", "container": "JAR", "volume_ul": 2000}),
            "unknown_container",
            "container",
        ),
        (
            json!({"label": "ok", "container": "SST", "volume_ul": 2000, "fill": "to_line"}),
            "fill_or_volume",
            "fill",
        ),
    ] {
        let got = receive(&c, &sst, body).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code, Some(field));
    }
    assert_eq!(specimen_status(&c, &sst).await, "collected");

    // Where the lab's setting says so, the requisition's two identifiers are mandatory.
    let admin = c.app.token_for(Role::Admin).await;
    let (s, v) = c
        .app
        .put(
            "/api/v1/settings/specimen.receipt_identification_required",
            &admin,
            json!({"value": "true"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = receive(&c, &sst, full_tube("SST")).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "receipt_attestation_required",
        Some("patient"),
    );
    let wrong = merged(
        full_tube("SST"),
        json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-10"}}),
    );
    assert_eq!(
        receive(&c, &sst, wrong).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let right = merged(
        full_tube("SST"),
        json!({"patient": {"mrn": "MRN-900", "birth_date": "1961-04-09"}}),
    );
    let (s, v) = receive(&c, &sst, right).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let details = &v["events"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(details["label"], "ok");
    assert_eq!(details["container"], "SST");
    assert_eq!(details["identified"], true);
    assert_eq!(v["volume_ul"], 2_200);
    c.app.finish().await;
}

async fn specimen_status(c: &Ctx, acc: &str) -> String {
    let (_, v) = c
        .app
        .get(&format!("/api/v1/specimens/{acc}"), &c.tech)
        .await;
    v["status"].as_str().unwrap().to_owned()
}

async fn a_citrate_tube_is_judged_against_its_line(db: Db) {
    let c = setup(db).await;
    let (_, o) = collected_order(&c, &["PTINR"]).await;
    let blu = tube(&o, "BLU");
    // One unit for every quantity of the tube: the plasma its tests need (PT and INR,
    // 300 µL each) and the plasma a correctly filled tube yields. The whole-blood draw
    // (2.7 mL, at least 90 %) is judged by eye against the line, never in µL.
    let planned = o["specimens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["container"] == "BLU")
        .unwrap();
    assert_eq!(planned["demand_ul"], 600);
    assert_eq!(planned["capacity_ul"], 1_200);
    assert_eq!(planned["volume_ul"], 0);
    // A citrate tube in µL: refused as input (a measured volume could not be compared with
    // the line), naming the field to give instead.
    let got = receive(
        &c,
        &blu,
        json!({"label": "ok", "container": "BLU", "volume_ul": 2700}),
    )
    .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "fill_line_required",
        Some("fill"),
    );
    // Below the line: a receipt problem, QNS.
    let got = receive(
        &c,
        &blu,
        json!({"label": "ok", "container": "BLU", "fill": "under"}),
    )
    .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(problem_codes(&got.1), ["receipt_underfilled"]);
    assert_eq!(got.1["error"]["problems"][0]["rejection_reason"], "qns");
    // The issue: a correctly filled tube received without a volume was refused as
    // under-filled. To the line, it is received, holding the plasma a full tube yields.
    let (s, v) = receive(
        &c,
        &blu,
        json!({"label": "ok", "container": "BLU", "fill": "to_line"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["volume_ul"], 1_200);
    assert_eq!(v["demand_ul"], 600);
    let details = &v["events"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(details["fill"], "to_line");
    c.app.finish().await;
}

async fn the_container_that_arrived_decides_the_specimen_type_tested(db: Db) {
    let c = setup(db).await;
    // Potassium accepts serum (SST) or lithium-heparin plasma (PST); the tube came as PST.
    let (order, o) = collected_order(&c, &["K"]).await;
    let acc = tube(&o, "SST");
    // A lavender EDTA tube is not accepted for potassium: the wrong-container check fires.
    let got = receive(&c, &acc, full_tube("LAV")).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(problem_codes(&got.1), ["receipt_wrong_container"]);
    let problem = &got.1["error"]["problems"][0];
    assert_eq!(problem["rejection_reason"], "wrong_container");
    assert!(
        problem["message"].as_str().unwrap().contains("SST or PST"),
        "{problem}"
    );
    let (s, v) = receive(&c, &acc, full_tube("PST")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["container"], "PST");
    assert_eq!(v["received_container"], "PST");
    assert_eq!(v["specimen_type"], "plasma");
    let details = &v["events"].as_array().unwrap().last().unwrap()["details"];
    assert_eq!(details["planned_container"], "SST");
    assert_eq!(details["planned_specimen_type"], "serum");
    // The result picks the plasma reference interval (plasma potassium runs lower).
    let (s, r) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [{"accession": acc, "test": "K", "value": "4.8"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let tests = order_tests(&c, order).await;
    let k = &test_of(&tests, "K")["result"];
    assert_eq!(k["reference_interval"]["text"], "3.4–4.5", "{k}");
    assert_eq!(k["flags"], json!(["H"]), "{k}");

    // A CBC accepts pink for lavender.
    let (_, o) = collected_order(&c, &["CBC"]).await;
    let lav = tube(&o, "LAV");
    let (s, v) = receive(&c, &lav, full_tube("PNK")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["specimen_type"], "whole_blood");
    c.app.finish().await;
}

async fn add_ons_go_where_the_specimen_is(db: Db) {
    let c = setup(db).await;
    let add = |id: i64, test: &'static str| {
        let c = &c;
        async move {
            let (s, v) = c
                .app
                .post(
                    &format!("/api/v1/orders/{id}/tests"),
                    &c.tech,
                    json!({"test": test}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let accession_of = |o: &Value, test: &str| {
        o["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["test_code"] == test)
            .unwrap()["accession"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // The issue: an add-on landed on a tube rejected as mislabeled. Never again: the
    // rejection planned a replacement tube for the redraw (its sodium moved there, item 11)
    // with a recollection task, and the add-on goes on that new tube.
    let (id, o) = collected_order(&c, &["NA"]).await;
    let sst = tube(&o, "SST");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{sst}/reject"),
            &c.tech,
            json!({"reason": "mislabeled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let o = add(id, "K").await;
    let k_tube = accession_of(&o, "K");
    assert_ne!(k_tube, sst, "never on the mislabeled tube");
    assert_eq!(accession_of(&o, "NA"), k_tube, "with the moved sodium");
    let new = o["specimens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["accession"] == k_tube.as_str())
        .unwrap();
    assert_eq!(new["status"], "planned");
    assert_eq!(new["demand_ul"], 100);
    let (_, tasks) = c
        .app
        .get("/api/v1/recollect-tasks?open=true", &c.tech)
        .await;
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["accession"], sst.as_str());
    assert_eq!(tasks[0]["reason"], "mislabeled");

    // A mislabeled tube whose tests are all finished (nothing moved) and whose recollection
    // was already done some other way: the add-on still gets a new tube and opens a new
    // recollection task.
    let (id, o) = collected_order(&c, &["NA"]).await;
    let sst = tube(&o, "SST");
    let (s, v) = receive(&c, &sst, full_tube("SST")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            "/api/v1/results",
            &c.tech,
            json!({"results": [{"accession": sst, "test": "NA", "value": "140"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{sst}/reject"),
            &c.tech,
            json!({"reason": "mislabeled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let open_tasks = || async {
        let (_, tasks) = c
            .app
            .get("/api/v1/recollect-tasks?open=true", &c.tech)
            .await;
        tasks
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["accession"] == sst.as_str())
            .map(|t| t["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let task = open_tasks().await[0];
    let (_, other) = collected_order(&c, &["GLU"]).await;
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/recollect-tasks/{task}/complete"),
            &c.tech,
            json!({"replacement_accession": tube(&other, "SST")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(open_tasks().await.is_empty());
    let o = add(id, "K").await;
    assert_ne!(accession_of(&o, "K"), sst, "never on the mislabeled tube");
    let reopened = open_tasks().await;
    assert_eq!(reopened.len(), 1, "a recollection for the add-on");
    assert_ne!(reopened[0], task);

    // An almost empty received tube does not take an add-on: its measured content counts,
    // not the planned capacity.
    let (id, o) = collected_order(&c, &["NA"]).await;
    let sst = tube(&o, "SST");
    let (s, v) = receive(
        &c,
        &sst,
        json!({"label": "ok", "container": "SST", "volume_ul": 60}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let o = add(id, "K").await;
    assert_ne!(accession_of(&o, "K"), sst, "50 µL needed, 10 µL free");

    // A full received tube takes the add-on: its content less the planned demand has room
    // (it used to be "capacity less volume", i.e. none, and a needless new draw).
    let (id, o) = collected_order(&c, &["VITD"]).await;
    let sst = tube(&o, "SST");
    let (s, v) = receive(
        &c,
        &sst,
        json!({"label": "ok", "container": "SST", "volume_ul": 2200}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let o = add(id, "TSH").await;
    assert_eq!(accession_of(&o, "TSH"), sst);
    let tube_view = o["specimens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["accession"] == sst.as_str())
        .unwrap();
    assert_eq!(tube_view["demand_ul"], 500 + 150);
    assert_eq!(tube_view["volume_ul"], 2200);
    c.app.finish().await;
}

/// Item 13: the long name lost its given name and the label had no MRN.
async fn a_label_keeps_both_names_the_mrn_and_the_aliquot_s_tests(db: Db) {
    let c = setup(db).await;
    register(
        &c.app,
        &c.tech,
        json!({"mrn": "MRN-951", "family_name": "Wolfeschlegelsteinhausenbergerdorff",
               "given_name": "Hubert Blaine", "birth_date": "1954-02-23", "sex": "M"}),
    )
    .await;
    let body = json!({"patient": {"mrn": "MRN-951", "birth_date": "1954-02-23"},
        "provider_id": c.provider, "location_id": c.location,
        "tests": ["PTINR"], "priority": "routine"});
    let (s, o) = c.app.post("/api/v1/orders", &c.tech, body).await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let blu = tube(&o, "BLU");
    let (s, svg) = c
        .app
        .get(
            &format!("/api/v1/specimens/{blu}/label?format=svg"),
            &c.tech,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let svg = svg.as_str().unwrap().to_owned();
    assert!(svg.contains("WOLFESCH"), "{svg}");
    assert!(svg.contains(", Hubert B.</text>"), "{svg}");
    assert!(svg.contains("MRN MRN-951"), "{svg}");
    assert!(svg.contains("DOB 1954-02-23"), "{svg}");
    assert!(
        svg.contains(">INR, PT</text>") || svg.contains(">PT, INR</text>"),
        "{svg}"
    );
    // Drawn, received, spun: an aliquot poured for INR lists INR on its label.
    let now = c.app.app.now();
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{blu}/collect"),
            &c.tech,
            json!({"collected_at": now.to_string(),
                   "patient": {"mrn": "MRN-951", "birth_date": "1954-02-23"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = receive(&c, &blu, full_tube("BLU")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Platelet-poor plasma: the citrate protocol, 1,500 g for 15 minutes.
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{blu}/centrifugations"),
            &c.tech,
            json!({"centrifuge_id": "CF-1", "rcf_g": 1500, "minutes": 15, "temperature_c": 20}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{blu}/aliquots"),
            &c.tech,
            json!({"volume_ul": 500, "tests": ["INR"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let child = format!("{blu}-01");
    let (s, svg) = c
        .app
        .get(
            &format!("/api/v1/specimens/{child}/label?format=svg"),
            &c.tech,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let svg = svg.as_str().unwrap().to_owned();
    assert!(svg.contains(">INR</text>"), "{svg}");
    assert!(svg.contains(", Hubert B.</text>"), "{svg}");
    c.app.finish().await;
}
