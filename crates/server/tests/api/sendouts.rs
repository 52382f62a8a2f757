//! Send-outs to reference laboratories (issue 14 item 4), through the API on both databases:
//! the registry, a tube's test sent out → packed into a shipment with its manifest (JSON and
//! CSV, access-logged) → shipped with a tracking number → received by the reference
//! laboratory → its result entered as received (in its own code) → the send-out and the
//! shipment closed, the outstanding list (overdue past the laboratory's turnaround), the
//! performing laboratory on the result, in the PDF report beside the result and in the FHIR
//! Observation's `performer`.

use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::reports::{get_pdf, pdf_text};
use crate::results::{Ctx, received_order, setup, tube};
use crate::support::*;

crate::both_backends!(
    send_out_ship_result_back_and_report_the_performing_lab,
    the_registry_and_shipment_refusals,
);

const CLIA: &str = "24D0404292";

fn mayo() -> Value {
    json!({"code": "MAYO", "name": "Mayo Clinic Laboratories",
        "address": "3050 Superior Drive NW, Rochester, MN 55901", "clia": "24d0404292",
        "phone": "+1 800 533 1710", "expected_tat_hours": 72,
        "test_codes": [{"code": "VITDX", "test": "VITD"}]})
}

async fn lab_settings(c: &Ctx) {
    let admin = c.app.token_for(Role::Admin).await;
    for (key, value) in [
        ("lab.name", "Aliquot Test Laboratory"),
        ("lab.address", "1200 Main Street, Springfield, IL 62701"),
        ("lab.clia", "14D0123456"),
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
}

async fn post_result(c: &Ctx, item: Value) -> Value {
    let (s, v) = c
        .app
        .post("/api/v1/results", &c.tech, json!({"results": [item]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"][0].clone()
}

async fn shipment(c: &Ctx, id: i64) -> Value {
    let (s, v) = c.app.get(&format!("/api/v1/shipments/{id}"), &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn send_out_ship_result_back_and_report_the_performing_lab(db: Db) {
    let mut c = setup(db).await;
    lab_settings(&c).await;
    let admin = c.app.token_for(Role::Admin).await;
    let (s, lab) = c.app.post("/api/v1/reference-labs", &admin, mayo()).await;
    assert_eq!(s, StatusCode::CREATED, "{lab}");
    assert_eq!(lab["clia"], CLIA);
    assert_eq!(lab["version"], 1);
    let (s, _) = c
        .app
        .post(
            "/api/v1/reference-labs",
            &admin,
            merged(mayo(), json!({"code": "ARUP", "name": "ARUP Laboratories"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Vitamin D goes to Mayo; sodium on the same tube stays in house.
    let collected = c.app.app.now() - SignedDuration::from_mins(30);
    let (order, o) = received_order(&c, &["VITD", "NA"], collected).await;
    let sst = tube(&o, "SST");
    let (s, v) = c
        .app
        .post(
            &format!("/api/v1/specimens/{sst}/send-out"),
            &c.tech,
            json!({"reference_lab": "MAYO", "tests": ["VITD"], "temperature": "refrigerated"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "received", "partial: sodium stays");

    // Not packed yet: still in the lab, no result can have come back.
    let r = post_result(
        &c,
        json!({"accession": sst, "test": "VITDX", "reference_lab": "MAYO", "value": "32"}),
    )
    .await;
    assert_eq!(r["outcome"], "refused", "{r}");
    assert_eq!(r["error"]["code"], "shipment_not_shipped", "{r}");

    // Outstanding from the moment it was sent out.
    let (s, out) = c.app.get("/api/v1/send-outs/outstanding", &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out[0]["test"], "VITD");
    assert_eq!(out[0]["reference_lab"], "MAYO");
    assert_eq!(out[0]["overdue"], false);
    assert_eq!(out[0]["manifest"], Value::Null);

    // Packed: nothing frozen to pack; the refrigerated box holds the tube.
    let got = c
        .app
        .post(
            "/api/v1/shipments",
            &c.tech,
            json!({"reference_lab": "MAYO", "temperature": "frozen"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing_to_ship",
        Some("reference_lab"),
    );
    let got = c
        .app
        .post(
            "/api/v1/shipments",
            &c.tech,
            json!({"reference_lab": "MAYO", "temperature": "frozen", "accessions": [sst]}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "temperature_mismatch",
        Some("accessions[0]"),
    );
    let (s, sh) = c
        .app
        .post(
            "/api/v1/shipments",
            &c.tech,
            json!({"reference_lab": "MAYO", "temperature": "refrigerated"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sh}");
    let id = sh["id"].as_i64().unwrap();
    assert_eq!(sh["status"], "created");
    assert_eq!(sh["packed_by"], "technician");
    assert_eq!(sh["items"][0]["accession"], sst.as_str());
    assert_eq!(sh["items"][0]["tests"], json!(["VITD"]));
    let manifest = sh["manifest"].as_str().unwrap().to_owned();
    assert!(manifest.starts_with("SO"), "{manifest}");
    // Packed once: nothing left.
    let got = c
        .app
        .post(
            "/api/v1/shipments",
            &c.tech,
            json!({"reference_lab": "MAYO", "temperature": "refrigerated"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing_to_ship",
        Some("reference_lab"),
    );
    // Packed but not shipped: still refused.
    let r = post_result(
        &c,
        json!({"accession": sst, "test": "VITDX", "reference_lab": "MAYO", "value": "32"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "shipment_not_shipped", "{r}");

    // The manifest: tubes, tests in both codes, the patient's demographics; access-logged.
    let before = c
        .app
        .app
        .store()
        .access_log(0, 100_000)
        .await
        .unwrap()
        .len();
    let (s, m) = c
        .app
        .get(&format!("/api/v1/shipments/{id}/manifest"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["manifest"], manifest.as_str());
    assert_eq!(m["reference_lab"]["clia"], CLIA);
    assert_eq!(m["reference_lab_code"], "MAYO");
    assert_eq!(m["sender"]["clia"], "14D0123456");
    assert_eq!(m["temperature"], "refrigerated");
    let item = &m["items"][0];
    assert_eq!(item["accession"], sst.as_str());
    assert_eq!(item["family_name"], "Okonkwo-Lindqvist");
    assert_eq!(item["given_name"], "Zoë");
    assert_eq!(item["mrn"], "MRN-900");
    assert_eq!(item["birth_date"], "1961-04-09");
    assert_eq!(item["specimen_type"], "serum");
    assert_eq!(
        item["tests"],
        json!([{"code": "VITD", "name": "25-Hydroxyvitamin D2+D3", "reference_code": "VITDX"}])
    );
    let resp = c
        .app
        .client
        .get(format!(
            "{}/api/v1/shipments/{id}/manifest?format=csv",
            c.app.base
        ))
        .bearer_auth(&c.tech)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("manifest,reference_lab,temperature,"));
    assert!(
        lines[1].starts_with(&format!("{manifest},MAYO,refrigerated,")),
        "{csv}"
    );
    assert!(
        lines[1].contains(&format!(
            "{sst},Okonkwo-Lindqvist,Zoë,MRN-900,1961-04-09,F,serum,SST"
        )),
        "{csv}"
    );
    assert!(
        lines[1].ends_with(",VITD,25-Hydroxyvitamin D2+D3,VITDX"),
        "{csv}"
    );
    let log = c.app.app.store().access_log(0, 100_000).await.unwrap();
    let reads: Vec<_> = log[before..]
        .iter()
        .filter(|a| a.action == "shipment.manifest")
        .collect();
    assert_eq!(reads.len(), 2, "JSON and CSV reads are both logged");
    let got = c
        .app
        .get(
            &format!("/api/v1/shipments/{id}/manifest?format=pdf"),
            &c.tech,
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_format",
        Some("format"),
    );

    // Shipped with the courier's tracking number, over the version read.
    let ship = format!("/api/v1/shipments/{id}/ship");
    let got = c
        .app
        .post(
            &ship,
            &c.tech,
            json!({"version": 1, "courier": "FedEx", "tracking": " "}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_text",
        Some("tracking"),
    );
    let got = c
        .app
        .post(
            &ship,
            &c.tech,
            json!({"version": 7, "courier": "FedEx", "tracking": "7712"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "version_changed",
        Some("version"),
    );
    let (s, sh) = c
        .app
        .post(
            &ship,
            &c.tech,
            json!({"version": 1, "courier": "FedEx", "tracking": "7712 3456 9901"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sh}");
    assert_eq!(sh["status"], "shipped");
    assert_eq!(sh["tracking"], "7712 3456 9901");
    let shipped_at: jiff::Timestamp = sh["shipped_at"].as_str().unwrap().parse().unwrap();

    // The PDF manifest to put in the box: the same facts, page X of Y, access-logged too.
    let before = c
        .app
        .app
        .store()
        .access_log(0, 100_000)
        .await
        .unwrap()
        .len();
    let path = format!("/api/v1/shipments/{id}/manifest.pdf");
    let (s, pdf, meta) = get_pdf(&c.app, &path, &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(meta, "application/pdf v manifest");
    let text = pdf_text(&pdf);
    let shown = |t: jiff::Timestamp| {
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string()
    };
    for expected in [
        "Shipment manifest",
        manifest.as_str(),
        // From: the sending laboratory.
        "Aliquot Test Laboratory",
        "1200 Main Street, Springfield, IL 62701",
        "CLIA 14D0123456",
        // To: the reference laboratory.
        "Mayo Clinic Laboratories (MAYO)",
        "3050 Superior Drive NW, Rochester, MN 55901",
        &format!("CLIA {CLIA}"),
        // Temperature, courier and tracking, packed and shipped.
        "Refrigerated",
        "FedEx · 7712 3456 9901",
        "by technician",
        &shown(shipped_at),
        "Shipped",
        // The tube, its patient's demographics, its tests in both codes.
        "1 tube, 1 test",
        sst.as_str(),
        "Okonkwo-Lindqvist, Zoë",
        "MRN MRN-900",
        "1961-04-09",
        "Female",
        "Serum",
        "VITD · 25-Hydroxyvitamin D2+D3 · VITDX",
        // Signatures and page numbers.
        "Received by (signature, time, temperature)",
        "Page 1 of 1",
    ] {
        assert!(
            text.contains(expected),
            "the manifest lacks {expected:?}:\n{text}"
        );
    }
    // The same shipment in the same state prints the same bytes.
    let (_, again, _) = get_pdf(&c.app, &path, &c.tech).await;
    assert!(again == pdf, "a reprint must be byte-identical");
    let log = c.app.app.store().access_log(0, 100_000).await.unwrap();
    let reads = log[before..]
        .iter()
        .filter(|a| a.action == "shipment.manifest")
        .count();
    assert_eq!(reads, 2, "each PDF read is logged");
    // Only those who handle specimens read it.
    let admin = c.app.token_for(Role::Admin).await;
    let r = c.app.get(&path, &admin).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    let r = c
        .app
        .get("/api/v1/shipments/999999/manifest.pdf", &c.tech)
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    let got = c
        .app
        .post(
            &ship,
            &c.tech,
            json!({"version": 2, "courier": "FedEx", "tracking": "x"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "shipment_transition_illegal",
        Some("status"),
    );

    // Delivered the next morning: not before it left.
    c.app.clock.advance(SignedDuration::from_hours(18));
    c.tech = c.app.token_for(Role::Technician).await;
    let receive = format!("/api/v1/shipments/{id}/receive");
    let early = shipped_at - SignedDuration::from_mins(1);
    let got = c
        .app
        .post(
            &receive,
            &c.tech,
            json!({"version": 2, "received_at": early.to_string()}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "received_before_shipped",
        Some("received_at"),
    );
    let delivered = shipped_at + SignedDuration::from_hours(16);
    let (s, sh) = c
        .app
        .post(
            &receive,
            &c.tech,
            json!({"version": 2, "received_at": delivered.to_string(), "note": "signed by J. Doe"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sh}");
    assert_eq!(sh["status"], "received");
    assert_eq!(sh["received_at"], delivered.to_string());

    // Four days out: past Mayo's 72 hours.
    c.app.clock.advance(SignedDuration::from_hours(80));
    c.tech = c.app.token_for(Role::Technician).await;
    c.mt = c.app.token_for(Role::Technologist).await;
    let (_, out) = c.app.get("/api/v1/send-outs/outstanding", &c.tech).await;
    assert_eq!(out[0]["overdue"], true, "{out}");
    assert_eq!(out[0]["manifest"], manifest.as_str());
    assert_eq!(out[0]["shipment_status"], "received");
    assert_eq!(out[0]["tracking"], "7712 3456 9901");
    assert!(out[0]["age_minutes"].as_i64().unwrap() >= 98 * 60, "{out}");

    // The result as received, in Mayo's code; ARUP never had the tube.
    let r = post_result(
        &c,
        json!({"accession": sst, "test": "VITD", "reference_lab": "ARUP", "value": "32"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "not_sent_to_reference_lab", "{r}");
    assert_eq!(r["error"]["field"], "results[0].reference_lab", "{r}");
    let r = post_result(
        &c,
        json!({"accession": sst, "test": "VITDX", "reference_lab": "MAYO", "value": "32",
               "comment": "LC-MS/MS"}),
    )
    .await;
    assert!(r["result_id"].is_i64(), "{r}");
    let vitd = r["result_id"].as_i64().unwrap();
    // Sodium is measured in house.
    let r = post_result(
        &c,
        json!({"accession": sst, "test": "NA", "value": "141", "instrument": "CHEM-1"}),
    )
    .await;
    let na = r["result_id"].as_i64().unwrap();
    let (s, v) = c
        .app
        .post(&format!("/api/v1/orders/{order}/verify"), &c.mt, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, res) = c.app.get(&format!("/api/v1/results/{vitd}"), &c.tech).await;
    assert_eq!(res["status"], "released", "{res}");
    assert_eq!(
        res["performing_lab"],
        json!({"code": "MAYO", "name": "Mayo Clinic Laboratories",
               "address": "3050 Superior Drive NW, Rochester, MN 55901", "clia": CLIA})
    );
    let (_, res) = c.app.get(&format!("/api/v1/results/{na}"), &c.tech).await;
    assert_eq!(res["performing_lab"], Value::Null, "{res}");

    // Results back: the send-out closes, the shipment is resulted, nothing is outstanding.
    let sh = shipment(&c, id).await;
    assert_eq!(sh["status"], "resulted", "{sh}");
    let kinds: Vec<&str> = sh["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pack", "ship", "receive", "results_back"]);
    assert_eq!(sh["events"][2]["details"]["note"], "signed by J. Doe");
    assert!(sh["items"][0]["resulted_at"].is_string(), "{sh}");
    let (_, open) = c.app.get("/api/v1/send-outs?open=true", &c.tech).await;
    assert_eq!(open, json!([]));
    let (_, out) = c.app.get("/api/v1/send-outs/outstanding", &c.tech).await;
    assert_eq!(out, json!([]));
    let (_, done) = c
        .app
        .get("/api/v1/shipments?status=resulted", &c.tech)
        .await;
    assert_eq!(done.as_array().unwrap().len(), 1);
    // Every step is in the audit trail.
    let actions: Vec<String> = c
        .app
        .app
        .store()
        .audit_events(0, 100_000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry.action)
        .collect();
    for a in [
        "reference_lab.register",
        "shipment.pack",
        "shipment.ship",
        "shipment.receive",
        "send_out.results_back",
        "shipment.results_back",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited");
    }

    // The report prints the performing laboratory beside the result (CLIA 493.1291(i)).
    let resp = c
        .app
        .client
        .get(format!("{}/api/v1/orders/{order}/report.pdf", c.app.base))
        .bearer_auth(&c.tech)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = pdf_text(&resp.bytes().await.unwrap());
    for e in [
        "25-Hydroxyvitamin D2+D3",
        "Performed by Mayo Clinic Laboratories, 3050 Superior Drive NW, Rochester, MN 55901, CLIA 24D0404292.",
        "Performed by: Aliquot Test Laboratory, CLIA 14D0123456; Mayo Clinic Laboratories",
        "Okonkwo-Lindqvist, Zoë",
    ] {
        assert!(text.contains(e), "the report lacks {e:?}:\n{text}");
    }

    // FHIR: the Observation names its performer, with the CLIA number; it validates.
    let (s, obs) = c
        .app
        .get(&format!("/fhir/r4/Observation/{vitd}"), &c.tech)
        .await;
    assert_eq!(s, StatusCode::OK, "{obs}");
    assert_eq!(
        obs["performer"],
        json!([{"reference": "#performer", "type": "Organization",
                "display": "Mayo Clinic Laboratories"}])
    );
    assert_eq!(obs["contained"][0]["resourceType"], "Organization");
    assert_eq!(
        obs["contained"][0]["identifier"][0],
        json!({"system": "urn:oid:2.16.840.1.113883.4.7", "value": CLIA})
    );
    let (_, in_house) = c
        .app
        .get(&format!("/fhir/r4/Observation/{na}"), &c.tech)
        .await;
    assert!(in_house.get("performer").is_none(), "{in_house}");
    crate::fhir::validate(&[obs, in_house]);
    c.app.finish().await;
}

async fn the_registry_and_shipment_refusals(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let path = "/api/v1/reference-labs";
    let before = c.app.audit_len().await;
    for (patch, status, code, field) in [
        (
            json!({"clia": "24-0404292"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_clia",
            "clia",
        ),
        (
            json!({"code": "MAYO CLINIC"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_reference_lab_code",
            "code",
        ),
        (
            json!({"expected_tat_hours": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_expected_tat",
            "expected_tat_hours",
        ),
        (
            json!({"test_codes": [{"code": "X", "test": "NOPE"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_test",
            "test_codes[0].test",
        ),
        (
            json!({"test_codes": [{"code": "X", "test": "VITD"}, {"code": "X", "test": "NA"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "duplicate_test_code",
            "test_codes[1].code",
        ),
        (
            json!({"address": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
            "address",
        ),
    ] {
        let got = c.app.post(path, &admin, merged(mayo(), patch)).await;
        assert_error(&got, status, code, Some(field));
    }
    // Only who may write the catalogue registers one.
    let got = c.app.post(path, &c.tech, mayo()).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    assert_eq!(c.app.audit_len().await, before, "nothing written");
    let (s, _) = c.app.post(path, &admin, mayo()).await;
    assert_eq!(s, StatusCode::CREATED);
    let got = c.app.post(path, &admin, mayo()).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "reference_lab_exists",
        Some("code"),
    );

    // Replaced whole, with a reason, over the version read; retired, it takes nothing more.
    let put = |body: Value| c.app.put("/api/v1/reference-labs/MAYO", &admin, body);
    let got = put(json!({"version": 1, "reference_lab": mayo()})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let got = put(json!({"version": 3, "reason": "new menu", "reference_lab": mayo()})).await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "version_changed",
        Some("version"),
    );
    let (s, v) = put(json!({"version": 1, "reason": "faster courier",
        "reference_lab": merged(mayo(), json!({"expected_tat_hours": 48}))}))
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["expected_tat_hours"], 48);
    let (s, v) = c.app.get("/api/v1/reference-labs/MAYO", &c.tech).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["test_codes"], json!([{"code": "VITDX", "test": "VITD"}]));
    let (s, _) = put(
        json!({"version": 2, "reason": "contract ended", "retired": true,
        "reference_lab": mayo()}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, o) = received_order(&c, &["VITD"], c.app.app.now()).await;
    let sst = tube(&o, "SST");
    let got = c
        .app
        .post(
            &format!("/api/v1/specimens/{sst}/send-out"),
            &c.tech,
            json!({"reference_lab": "MAYO", "temperature": "refrigerated"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_reference_lab",
        Some("reference_lab"),
    );
    let got = c.app.get("/api/v1/reference-labs/NOPE", &c.tech).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);

    // Shipments: unknown, a bad status filter, and roles that may not handle specimens.
    let got = c.app.get("/api/v1/shipments/999", &c.tech).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    let got = c.app.get("/api/v1/shipments?status=lost", &c.tech).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_shipment_status",
        Some("status"),
    );
    let phleb = c.app.token_for(Role::Phlebotomist).await;
    for p in ["/api/v1/shipments", "/api/v1/send-outs/outstanding"] {
        let got = c.app.get(p, &phleb).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    }
    c.app.finish().await;
}
