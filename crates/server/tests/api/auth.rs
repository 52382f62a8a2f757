use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

crate::both_backends!(
    login_gives_a_token_that_works_until_logout,
    wrong_password_and_unknown_user_look_the_same,
    repeated_failures_lock_the_username_out,
    expired_and_idle_tokens_are_refused,
    forged_token_is_refused,
    disabled_user_cannot_log_in_and_loses_tokens,
    password_change_revokes_other_sessions,
);

async fn login_gives_a_token_that_works_until_logout(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("alice", Role::Technologist).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "Alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["user"]["role"], "technologist");
    assert!(body["user"].get("password_hash").is_none());

    let (status, me) = app.get("/api/v1/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice");

    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = app.get("/api/v1/auth/me", &token).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "token_revoked", None);

    // Login and logout are in the audit trail, attributed to the user.
    let admin = app.token_for(Role::Admin).await;
    let (_, events) = app.get("/api/v1/audit/events?limit=1000", &admin).await;
    let actions: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_name"] == "alice")
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["auth.login", "auth.logout"]);
    app.finish().await;
}

async fn wrong_password_and_unknown_user_look_the_same(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("bob", Role::Technician).await;
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "bob", "password": "not the password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "nobody", "password": "not the password"})),
        )
        .await;
    assert_error(
        &wrong,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        None,
    );
    assert_eq!(wrong.1, unknown.1);
    app.finish().await;
}

async fn repeated_failures_lock_the_username_out(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("carol", Role::Technician).await;
    let attempt = |password: &'static str| {
        app.call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "carol", "password": password})),
        )
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong password!").await.0, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused, with 429 and Retry-After.
    let locked = attempt(PASSWORD).await;
    assert_error(&locked, StatusCode::TOO_MANY_REQUESTS, "locked_out", None);
    // After the lock-out period the right password works again.
    app.clock.advance(SignedDuration::from_mins(16));
    assert_eq!(attempt(PASSWORD).await.0, StatusCode::OK);
    // The failures were audited.
    let admin = app.token_for(Role::Admin).await;
    let (_, events) = app.get("/api/v1/audit/events?limit=1000", &admin).await;
    let failed = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login_failed")
        .count();
    assert_eq!(failed, 5);
    app.finish().await;
}

async fn expired_and_idle_tokens_are_refused(db: Db) {
    let app = spawn_app(db).await;
    let token = app.token_for(Role::Technologist).await;
    // Used every 20 minutes: never idle, but expires after 8 hours.
    for _ in 0..23 {
        app.clock.advance(SignedDuration::from_mins(20));
        assert_eq!(app.get("/api/v1/auth/me", &token).await.0, StatusCode::OK);
    }
    app.clock.advance(SignedDuration::from_mins(20));
    let got = app.get("/api/v1/auth/me", &token).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "token_expired", None);

    let fresh = app.login("technologist").await;
    app.clock.advance(SignedDuration::from_mins(31));
    let got = app.get("/api/v1/auth/me", &fresh).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "token_idle", None);
    app.finish().await;
}

async fn forged_token_is_refused(db: Db) {
    let app = spawn_app(db).await;
    let real = app.token_for(Role::Admin).await;
    let mut forged = real.clone().into_bytes();
    forged[0] = if forged[0] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), "x", "", "' OR 1=1 --"] {
        let got = app.get("/api/v1/users", bad).await;
        assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{bad:?}: {}", got.1);
    }
    let got = app
        .client
        .get(format!("{}/api/v1/users", app.base))
        .header("authorization", format!("Basic {real}"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::UNAUTHORIZED);
    app.finish().await;
}

async fn disabled_user_cannot_log_in_and_loses_tokens(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let id = app.create_user("dave", Role::Technician).await;
    let dave = app.login("dave").await;
    let got = app
        .put(
            &format!("/api/v1/users/{id}/disabled"),
            &admin,
            json!({"disabled": true, "reason": "left the lab"}),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["disabled"], true);
    assert_eq!(
        app.get("/api/v1/auth/me", &dave).await.0,
        StatusCode::UNAUTHORIZED
    );
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "dave", "password": PASSWORD})),
        )
        .await;
    assert_error(
        &login,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        None,
    );
    app.finish().await;
}

async fn password_change_revokes_other_sessions(db: Db) {
    let app = spawn_app(db).await;
    let first = app.token_for(Role::Technician).await;
    let second = app.login("technician").await;
    let weak = app
        .post(
            "/api/v1/auth/password",
            &first,
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_error(
        &weak,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_too_short",
        Some("new_password"),
    );
    let wrong = app
        .post(
            "/api/v1/auth/password",
            &first,
            json!({"current_password": "not it at all", "new_password": "a much better passphrase"}),
        )
        .await;
    assert_error(
        &wrong,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_credentials",
        Some("current_password"),
    );
    let ok = app
        .post(
            "/api/v1/auth/password",
            &first,
            json!({"current_password": PASSWORD, "new_password": "a much better passphrase"}),
        )
        .await;
    assert_eq!(ok.0, StatusCode::NO_CONTENT, "{}", ok.1);
    assert_eq!(app.get("/api/v1/auth/me", &first).await.0, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/auth/me", &second).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.finish().await;
}
