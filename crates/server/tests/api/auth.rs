use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    login_gives_a_token_that_works_until_logout,
    wrong_password_and_unknown_user_look_the_same,
    repeated_failures_delay_progressively,
    an_attacker_cannot_lock_the_owner_out,
    spraying_usernames_from_one_address_is_slowed,
    password_change_guesses_are_throttled,
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

/// A login attempt from `from` (a loopback address: every 127.x.y.z reaches the server):
/// status, error code and `Retry-After` in seconds.
async fn login_from(
    app: &TestApp,
    from: &str,
    username: &str,
    password: &str,
) -> (StatusCode, Value, Option<u64>) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = client
        .post(format!("{}/api/v1/auth/token", app.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, resp.json().await.unwrap_or(Value::Null), retry)
}

async fn audit_actions(app: &TestApp, of: &str) -> Vec<String> {
    let admin = app.token_for(Role::Admin).await;
    let (_, events) = app.get("/api/v1/audit/events?limit=1000", &admin).await;
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_name"] == of)
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

const ATTACKER: &str = "127.0.0.66";
const OWNER: &str = "127.0.0.1";

/// Failures of one account from one address make that address wait, longer each time
/// (1 s, 2 s, 4 s …), with 429 and Retry-After; the right password waits too.
async fn repeated_failures_delay_progressively(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("carol", Role::Technician).await;
    for _ in 0..5 {
        let got = login_from(&app, ATTACKER, "carol", "wrong password!").await;
        assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{}", got.1);
    }
    for expected in [1, 2, 4, 8] {
        let got = login_from(&app, ATTACKER, "carol", PASSWORD).await;
        assert_eq!(got.0, StatusCode::TOO_MANY_REQUESTS, "{}", got.1);
        assert_eq!(got.1["error"]["code"], "too_many_attempts");
        assert_eq!(got.2, Some(expected), "Retry-After");
        app.clock
            .advance(SignedDuration::from_secs(expected as i64));
        let got = login_from(&app, ATTACKER, "carol", "wrong password!").await;
        assert_eq!(
            got.0,
            StatusCode::UNAUTHORIZED,
            "after waiting {expected} s"
        );
    }
    // After the wait the right password works, and clears the pair's count.
    app.clock.advance(SignedDuration::from_secs(16));
    assert_eq!(
        login_from(&app, ATTACKER, "carol", PASSWORD).await.0,
        StatusCode::OK
    );
    assert_eq!(
        login_from(&app, ATTACKER, "carol", "wrong password!")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    app.finish().await;
}

/// The scenario: an attacker keeps hammering `admin` from one address; the owner at
/// another address logs in at once, and the flood writes a bounded number of rows.
async fn an_attacker_cannot_lock_the_owner_out(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("admin", Role::Admin).await;
    let before = app.audit_len().await;
    let mut refused = 0;
    for i in 0..300 {
        let got = login_from(&app, ATTACKER, "admin", "guess guess guess").await;
        match got.0 {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert!(got.2.is_some_and(|s| s >= 1), "Retry-After");
            }
            other => panic!("attempt {i}: {other} {}", got.1),
        }
        // The owner, elsewhere, is never delayed.
        if i % 50 == 0 {
            let own = login_from(&app, OWNER, "admin", PASSWORD).await;
            assert_eq!(own.0, StatusCode::OK, "owner at attempt {i}: {}", own.1);
        }
        app.clock.advance(SignedDuration::from_millis(500));
    }
    assert!(refused > 250, "most attempts waited: {refused}");
    let own = login_from(&app, OWNER, "admin", PASSWORD).await;
    assert_eq!(own.0, StatusCode::OK);
    // Bounded: one row for the first failure and one for the throttling decision, plus the
    // owner's logins; refused attempts write nothing.
    let actions = audit_actions(&app, "admin").await;
    let failed = actions.iter().filter(|a| *a == "auth.login_failed").count();
    let throttled = actions.iter().filter(|a| *a == "auth.throttled").count();
    assert_eq!((failed, throttled), (1, 1), "{actions:?}");
    let logins = actions.iter().filter(|a| *a == "auth.login").count();
    // The admin token fetched by audit_actions is one more login.
    assert!(app.audit_len().await - before <= 2 + logins as i64 + 1);
    let counts = app
        .app
        .store()
        .login_attempts(ATTACKER, "admin", jiff::Timestamp::UNIX_EPOCH)
        .await
        .unwrap();
    assert!(counts.pair.is_some_and(|(n, _)| n < 50), "{counts:?}");
    app.finish().await;
}

/// Spraying many usernames from one address is slowed too.
async fn spraying_usernames_from_one_address_is_slowed(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("erin", Role::Technician).await;
    for i in 0..20 {
        let got = login_from(&app, ATTACKER, &format!("user{i}"), "guess guess guess").await;
        assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{i}: {}", got.1);
    }
    let got = login_from(&app, ATTACKER, "erin", PASSWORD).await;
    assert_eq!(got.0, StatusCode::TOO_MANY_REQUESTS, "{}", got.1);
    assert_eq!(got.2, Some(1));
    // Another address is not slowed.
    assert_eq!(
        login_from(&app, OWNER, "erin", PASSWORD).await.0,
        StatusCode::OK
    );
    app.finish().await;
}

/// A stolen session cannot guess the current password freely: wrong guesses are throttled
/// like logins (also the right one while waiting), from the session's address.
async fn password_change_guesses_are_throttled(db: Db) {
    let app = spawn_app(db).await;
    let token = app.token_for(Role::Technician).await;
    let change = |current: &'static str| {
        app.post(
            "/api/v1/auth/password",
            &token,
            json!({"current_password": current, "new_password": "a much better passphrase"}),
        )
    };
    for _ in 0..5 {
        let got = change("not it at all").await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_credentials",
            Some("current_password"),
        );
    }
    let got = change(PASSWORD).await;
    assert_error(
        &got,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        None,
    );
    let actions = audit_actions(&app, "technician").await;
    assert_eq!(
        actions
            .iter()
            .filter(
                |a| a.as_str() == "user.password_change_failed" || a.as_str() == "auth.throttled"
            )
            .count(),
        2,
        "{actions:?}"
    );
    app.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(change(PASSWORD).await.0, StatusCode::NO_CONTENT);
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
