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
    // (body, content type, status, error code, error field)
    type Case = (
        Vec<u8>,
        &'static str,
        StatusCode,
        &'static str,
        Option<&'static str>,
    );
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
    // An oversized body is refused from its declared length, before it is read. (Sent over a
    // raw socket: a client that keeps writing a body the server has refused races the close.)
    let got = oversized_post(&app.base, &admin, 2 * 1024 * 1024).await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None);

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

/// POSTs headers announcing `len` body bytes to /api/v1/users and reads the answer without
/// sending the body.
async fn oversized_post(base: &str, token: &str, len: usize) -> (StatusCode, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the server answered an oversized body without waiting for it")
    .unwrap();
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let (_, body) = text.split_once("\r\n\r\n").expect("no body");
    // The body may be chunked; the JSON object is between the first '{' and the last '}'.
    let json = &body[body.find('{').expect("no JSON")..=body.rfind('}').expect("no JSON")];
    (
        StatusCode::from_u16(status).unwrap(),
        serde_json::from_str(json).unwrap(),
    )
}
