//! Malformed JSON, unknown fields, wrong types, oversized bodies: a 4xx JSON error naming the
//! problem, nothing written.

use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

crate::both_backends!(bad_bodies_are_refused_and_change_nothing);

async fn bad_bodies_are_refused_and_change_nothing(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let before = app.audit_len().await;
    let users_before = app.app.store().list_users().await.unwrap().len();
    let url = format!("{}/api/v1/users", app.base);
    let raw = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    type Case<'a> = (Vec<u8>, &'a str, StatusCode, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (b"{\"username\": ".to_vec(), "application/json", StatusCode::BAD_REQUEST, "invalid_json", None),
        (b"\xff\xfe\x00garbage".to_vec(), "application/json", StatusCode::BAD_REQUEST, "invalid_json", None),
        (
            json!({"username": "eve", "display_name": "Eve", "role": "technician", "password": PASSWORD, "is_admin": true})
                .to_string()
                .into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("is_admin"),
        ),
        (
            json!({"username": 42, "display_name": "Eve", "role": "technician", "password": PASSWORD}).to_string().into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("username"),
        ),
        (
            json!({"display_name": "Eve", "role": "technician", "password": PASSWORD}).to_string().into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("username"),
        ),
        (
            json!({"username": "eve", "display_name": "Eve", "role": "technician", "password": PASSWORD}).to_string().into_bytes(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        ),
        (
            format!("{{\"username\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
        ),
        (
            // 10,000 levels of nesting: refused at the first bracket, no deep recursion.
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
        (
            json!({"username": "eve", "display_name": "Eve", "role": "superuser", "password": PASSWORD}).to_string().into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_role",
            Some("role"),
        ),
        (
            json!({"username": "e", "display_name": "Eve", "role": "technician", "password": PASSWORD}).to_string().into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "username_length",
            Some("username"),
        ),
        (
            json!({"username": "eve", "display_name": "Eve", "role": "technician", "password": "password1234"}).to_string().into_bytes(),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_weak",
            Some("password"),
        ),
    ];
    for (body, ct, status, code, field) in cases {
        let resp = raw(body, ct).await.unwrap();
        let got_status = resp.status();
        let got: serde_json::Value = resp.json().await.unwrap();
        assert_error(&(got_status, got), status, code, field);
    }
    // Path and query parameters of the wrong type are JSON errors too.
    let got = app
        .put(
            "/api/v1/users/abc/role",
            &admin,
            json!({"role": "technician", "reason": "x y z"}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_path", None);
    let got = app
        .get("/api/v1/audit/events?after=yesterday", &admin)
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_query", None);
    let got = app.get("/api/v1/nowhere", &admin).await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found", None);
    let got = app
        .call(reqwest::Method::DELETE, "/api/v1/users", Some(&admin), None)
        .await;
    assert_error(
        &got,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );

    assert_eq!(
        app.audit_len().await,
        before,
        "a refused request wrote to the audit trail"
    );
    assert_eq!(
        app.app.store().list_users().await.unwrap().len(),
        users_before
    );
    app.finish().await;
}
