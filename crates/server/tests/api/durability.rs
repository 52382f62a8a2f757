//! Issue 9: writes survive clients that go away. A retry with the same `Idempotency-Key` is
//! answered with the first answer, never applied twice; a client that closes its socket right
//! after sending a write neither breaks the writer for everyone else nor, when it retries,
//! produces a duplicate.

use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::*;

crate::both_backends!(
    a_retry_with_the_same_key_is_answered_not_applied_twice,
    clients_that_disconnect_mid_write_never_duplicate_on_retry,
);

async fn setup(db: Db) -> (TestApp, String, Value) {
    let app = spawn_app(db).await;
    let (provider, location) = seed_ordering(&app).await;
    let token = app.token_for(Role::Technician).await;
    register(
        &app,
        &token,
        patient_body("MRN-900", "Okafor", "Ada", "1981-03-02"),
    )
    .await;
    let order = json!({"patient": {"mrn": "MRN-900", "birth_date": "1981-03-02"},
                       "provider_id": provider, "location_id": location,
                       "tests": ["BMP"], "priority": "stat"});
    (app, token, order)
}

fn with_placer(order: &Value, placer: &str) -> Value {
    let mut o = order.clone();
    o["placer_order_number"] = json!(placer);
    o
}

async fn post_keyed(
    app: &TestApp,
    token: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value, bool) {
    let resp = app
        .client
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        replayed,
    )
}

/// How many orders carry this placer order number.
async fn orders_placed(app: &TestApp, token: &str, placer: &str) -> usize {
    let (status, b) = app
        .get(
            &format!("/api/v1/orders?placer_order_number={placer}"),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b}");
    b.as_array().map_or(0, Vec::len)
}

async fn a_retry_with_the_same_key_is_answered_not_applied_twice(db: Db) {
    let (app, token, order) = setup(db).await;
    let body = with_placer(&order, "PL-1");
    let (s1, b1, r1) = post_keyed(&app, &token, "key-0001", &body).await;
    assert_eq!(s1, StatusCode::CREATED, "{b1}");
    assert!(!r1);
    let audit = app.audit_len().await;
    let (s2, b2, r2) = post_keyed(&app, &token, "key-0001", &body).await;
    assert_eq!((s2, &b2, r2), (StatusCode::CREATED, &b1, true));
    assert_eq!(orders_placed(&app, &token, "PL-1").await, 1);
    assert_eq!(app.audit_len().await, audit, "a replay changes nothing");

    // The same key for another request is refused, naming the header.
    let (s, b, _) = post_keyed(&app, &token, "key-0001", &with_placer(&order, "PL-2")).await;
    assert_error(
        &(s, b),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    );
    assert_eq!(orders_placed(&app, &token, "PL-2").await, 0);
    // A malformed key likewise.
    let (s, b, _) = post_keyed(&app, &token, "two words", &body).await;
    assert_error(
        &(s, b),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_invalid",
        Some("Idempotency-Key"),
    );

    // A refusal is an answer too: the retry gets the same 4xx, and nothing is written.
    let mut bad = with_placer(&order, "PL-3");
    bad["patient"]["birth_date"] = json!("1981-03-03");
    let (s1, b1, _) = post_keyed(&app, &token, "key-0002", &bad).await;
    assert!(s1.is_client_error(), "{s1} {b1}");
    let (s2, b2, r2) = post_keyed(&app, &token, "key-0002", &bad).await;
    assert_eq!((s2, &b2, r2), (s1, &b1, true));
    assert_eq!(orders_placed(&app, &token, "PL-3").await, 0);

    // Keys are per user: another user's same key is another request.
    let other = app.token_for(Role::Technologist).await;
    let (s, b, r) = post_keyed(&app, &other, "key-0001", &with_placer(&order, "PL-4")).await;
    assert_eq!((s, r), (StatusCode::CREATED, false), "{b}");
    app.finish().await;
}

/// The request bytes of a keyed order placement.
fn raw_request(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    let host = app.base.trim_start_matches("http://");
    let key = key.map_or(String::new(), |k| format!("idempotency-key: {k}\r\n"));
    format!(
        "POST /api/v1/orders HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n{key}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends a request on a raw socket and closes it at once, without reading the answer.
async fn send_and_vanish(app: &TestApp, bytes: &[u8]) {
    let addr = app.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    // Closed at once: hyper (no half-closed HTTP/1 connections) drops the request's future.
    drop(s);
}

async fn clients_that_disconnect_mid_write_never_duplicate_on_retry(db: Db) {
    let (app, token, order) = setup(db).await;
    // 60 clients send a keyed order and vanish while 60 others place orders normally.
    let vanishing = (0..60).map(|i| {
        let bytes = raw_request(
            &app,
            &token,
            Some(&format!("vanish-{i:03}")),
            &with_placer(&order, &format!("V-{i:03}")),
        );
        let app = &app;
        async move { send_and_vanish(app, &bytes).await }
    });
    let normal = (0..60).map(|i| {
        let app = &app;
        let token = &token;
        let body = with_placer(&order, &format!("N-{i:03}"));
        async move {
            let (s, b) = app.post("/api/v1/orders", token, body).await;
            assert_eq!(s, StatusCode::CREATED, "a normal request failed: {b}");
        }
    });
    futures_util::future::join(
        futures_util::future::join_all(vanishing),
        futures_util::future::join_all(normal),
    )
    .await;

    // Each vanished client retries with its key: one order each, never two.
    for i in 0..60 {
        let key = format!("vanish-{i:03}");
        let placer = format!("V-{i:03}");
        let body = with_placer(&order, &placer);
        let (status, b) = loop {
            let (s, b, _) = post_keyed(&app, &token, &key, &body).await;
            if s == StatusCode::CONFLICT && b["error"]["code"] == "idempotency_key_in_use" {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            break (s, b);
        };
        assert_eq!(status, StatusCode::CREATED, "{b}");
        assert_eq!(orders_placed(&app, &token, &placer).await, 1, "{placer}");
    }
    for i in 0..60 {
        assert_eq!(orders_placed(&app, &token, &format!("N-{i:03}")).await, 1);
    }
    // The writer is healthy: the next write succeeds, and the audit chain holds.
    let (s, b) = app
        .post("/api/v1/orders", &token, with_placer(&order, "AFTER"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let report = app.app.store().verify_audit_chain().await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    app.finish().await;
}
