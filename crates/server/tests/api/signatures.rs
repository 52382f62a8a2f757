//! Electronic signatures on both databases: a correction is always signed (password, or the
//! authenticator's code, never the same code twice); a release is signed when the lab
//! requires it; the meaning, signer, time and version are kept with the result and in the
//! audit trail; a wrong password is refused next to its field and counted as a failed login.

use aliquot_domain::auth::Role;
use aliquot_domain::totp;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::results::{received_order, setup, tube};
use crate::support::*;

crate::both_backends!(
    releases_are_signed_when_the_lab_requires_it,
    a_correction_signed_with_the_authenticator_code,
);

async fn post_results(c: &crate::results::Ctx, items: Value) -> Vec<Value> {
    let (s, v) = c
        .app
        .post("/api/v1/results", &c.tech, json!({"results": items}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"].as_array().unwrap().clone()
}

async fn releases_are_signed_when_the_lab_requires_it(db: Db) {
    let c = setup(db).await;
    let admin = c.app.token_for(Role::Admin).await;
    let now = c.app.app.now();
    let (_, o) = received_order(&c, &["K"], now - SignedDuration::from_mins(10)).await;
    let sst = tube(&o, "SST");
    let out = post_results(
        &c,
        json!([{"accession": sst, "test": "K", "value": "6.8", "instrument": "CHEM-1"}]),
    )
    .await;
    assert_eq!(out[0]["outcome"], "held", "{}", out[0]);
    let id = out[0]["result_id"].as_i64().unwrap();
    let (s, v) = c
        .app
        .put(
            "/api/v1/settings/results.verification_signature_required",
            &admin,
            json!({"value": "true"}),
        )
        .await;
    assert!(s.is_success(), "{v}");

    let verify = format!("/api/v1/results/{id}/verify");
    let got = c.app.post(&verify, &c.mt, json!({})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signature_required",
        Some("signature"),
    );
    let got = c
        .app
        .post(
            &verify,
            &c.mt,
            json!({"signature": {"password": "guessing again"}}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_signature",
        Some("signature.password"),
    );
    let (s, r) = c
        .app
        .post(&verify, &c.mt, json!({"signature": {"password": PASSWORD}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "released");
    let sig = &r["signature"];
    assert_eq!(sig["meaning"], "verified");
    assert_eq!(sig["signer"], "technologist");
    assert_eq!(sig["signer_name"], "Test technologist");
    assert_eq!(sig["method"], "password");
    assert_eq!(sig["version"], r["version"]);
    assert!(sig["at"].as_str().unwrap().ends_with('Z'));

    // In the audit trail with the release (its values shown to the director, who may read
    // patients); the failed attempt too, attributed.
    let director = c.app.token_for(Role::Director).await;
    let (_, events) = c
        .app
        .get(
            &format!("/api/v1/audit/events?entity_type=result&entity_id={id}&limit=100"),
            &director,
        )
        .await;
    let release = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "result.verify")
        .expect("result.verify audited");
    assert_eq!(release["new_value"]["signature"]["meaning"], "verified");
    assert_eq!(release["new_value"]["signature"]["signer"], "technologist");
    let (_, me) = c.app.get("/api/v1/auth/me", &c.mt).await;
    let (_, failures) = c
        .app
        .get(
            &format!(
                "/api/v1/audit/events?entity_type=user&entity_id={}&limit=100",
                me["id"]
            ),
            &admin,
        )
        .await;
    assert!(
        failures
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "result.signature_failed" && e["actor_name"] == "technologist"),
        "{failures}"
    );
    c.app.finish().await;
}

async fn a_correction_signed_with_the_authenticator_code(db: Db) {
    let c = setup(db).await;
    let now = c.app.app.now();
    let (_, o) = received_order(&c, &["NA"], now - SignedDuration::from_mins(10)).await;
    let sst = tube(&o, "SST");
    let out = post_results(
        &c,
        json!([{"accession": sst, "test": "NA", "value": "141", "instrument": "CHEM-1"}]),
    )
    .await;
    let id = out[0]["result_id"].as_i64().unwrap();
    if out[0]["outcome"] == "held" {
        let (s, v) = c
            .app
            .post(&format!("/api/v1/results/{id}/verify"), &c.mt, json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    // The technologist enrols an authenticator app.
    let (s, e) = c
        .app
        .call(
            Method::POST,
            "/api/v1/auth/mfa/enroll",
            None,
            Some(json!({"username": "technologist", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let secret = totp::base32_decode(e["secret"].as_str().unwrap()).unwrap();
    let code_now = || {
        use aliquot_app::Clock;
        totp::code_at(&secret, c.app.clock.now().as_second(), totp::DIGITS)
    };
    let (s, v) = c
        .app
        .call(
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            None,
            Some(json!({"username": "technologist", "password": PASSWORD, "code": code_now()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    c.app.clock.advance(SignedDuration::from_secs(30));

    let correct = format!("/api/v1/results/{id}/correct");
    let code = code_now();
    let (s, r) = c
        .app
        .post(
            &correct,
            &c.mt,
            json!({"value": "139", "reason": "transcribed from the wrong line",
                   "signature": {"totp": code}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "corrected");
    assert_eq!(r["signature"]["meaning"], "corrected");
    assert_eq!(r["signature"]["method"], "totp");
    // The same code cannot sign again.
    let got = c
        .app
        .post(
            &correct,
            &c.mt,
            json!({"value": "138", "reason": "second look",
                   "signature": {"totp": code}}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "totp_replayed",
        Some("signature.totp"),
    );
    // The versions keep each signature with the version it signed.
    let versions = r["versions"].as_array().unwrap();
    let last = versions.last().unwrap();
    assert_eq!(last["signature"]["meaning"], "corrected");
    assert_eq!(last["signature"]["version"], last["version"]);
    c.app.finish().await;
}
