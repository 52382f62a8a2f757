//! The second factor (TOTP, RFC 6238) over the API, on both databases: enrolment shows the
//! secret once and is confirmed by a first code; logins then need a code, refuse it again
//! within its step and count wrong codes like wrong passwords; recovery codes work once; the
//! lab can require a second factor of administrators and directors; another administrator
//! resets a lost one, audited.

use aliquot_domain::auth::Role;
use aliquot_domain::totp;
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    enrolment_then_login_needs_the_code_and_refuses_its_replay,
    wrong_codes_are_throttled_like_passwords,
    the_lab_can_require_a_second_factor_of_admins_and_directors,
    another_admin_resets_a_lost_factor_audited,
);

async fn public(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, path, None, Some(body)).await
}

/// Enrols `username` and returns (secret bytes, recovery codes).
async fn enrol(app: &TestApp, username: &str) -> (Vec<u8>, Vec<String>) {
    let (s, e) = public(
        app,
        "/api/v1/auth/mfa/enroll",
        json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let secret = totp::base32_decode(e["secret"].as_str().unwrap()).unwrap();
    let code = code_now(app, &secret);
    let (s, c) = public(
        app,
        "/api/v1/auth/mfa/confirm",
        json!({"username": username, "password": PASSWORD, "code": code}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let codes = c["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

fn code_now(app: &TestApp, secret: &[u8]) -> String {
    use aliquot_app::Clock;
    totp::code_at(secret, app.clock.now().as_second(), totp::DIGITS)
}

async fn login_with(app: &TestApp, username: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"username": username, "password": PASSWORD});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    public(app, "/api/v1/auth/token", body).await
}

async fn enrolment_then_login_needs_the_code_and_refuses_its_replay(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("ann", Role::Admin).await;

    // The password is checked again to enrol.
    let got = public(
        &app,
        "/api/v1/auth/mfa/enroll",
        json!({"username": "ann", "password": "not the password"}),
    )
    .await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_credentials", None);

    let (s, e) = public(
        &app,
        "/api/v1/auth/mfa/enroll",
        json!({"username": "ann", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let secret_b32 = e["secret"].as_str().unwrap().to_owned();
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret_b32}")), "{uri}");
    assert!(uri.contains(":ann?"), "{uri}");
    let secret = totp::base32_decode(&secret_b32).unwrap();
    assert_eq!(secret.len(), totp::SECRET_BYTES);

    // Pending: not required at login yet.
    assert_eq!(login_with(&app, "ann", json!({})).await.0, StatusCode::OK);

    // A wrong first code does not confirm.
    let wrong = format!(
        "{:06}",
        (code_now(&app, &secret).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let got = public(
        &app,
        "/api/v1/auth/mfa/confirm",
        json!({"username": "ann", "password": PASSWORD, "code": wrong}),
    )
    .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_totp",
        Some("code"),
    );
    let first = code_now(&app, &secret);
    let (s, c) = public(
        &app,
        "/api/v1/auth/mfa/confirm",
        json!({"username": "ann", "password": PASSWORD, "code": first}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let recovery: Vec<String> = c["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    // A confirmed factor is not replaced by a new enrolment.
    let got = public(
        &app,
        "/api/v1/auth/mfa/enroll",
        json!({"username": "ann", "password": PASSWORD}),
    )
    .await;
    assert_error(&got, StatusCode::CONFLICT, "mfa_already_enrolled", None);

    // Logins now need the code.
    let got = login_with(&app, "ann", json!({})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "mfa_required", None);
    let got = login_with(&app, "ann", json!({"totp": wrong})).await;
    assert_error(
        &got,
        StatusCode::UNAUTHORIZED,
        "invalid_second_factor",
        None,
    );
    // The confirming code is used: refused again within its step.
    let got = login_with(&app, "ann", json!({"totp": first})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "totp_replayed", None);

    app.clock.advance(SignedDuration::from_secs(30));
    let code = code_now(&app, &secret);
    let (s, body) = login_with(&app, "ann", json!({"totp": code})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let got = login_with(&app, "ann", json!({"totp": code})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "totp_replayed", None);

    // A recovery code works once (typed in capitals, without dashes).
    let typed = recovery[3].replace('-', "").to_uppercase();
    let (s, body) = login_with(&app, "ann", json!({"recovery_code": typed})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let got = login_with(&app, "ann", json!({"recovery_code": recovery[3]})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "totp_replayed", None);

    let (s, status) = app.get("/api/v1/auth/mfa", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["pending"], false);
    assert_eq!(status["required"], false);
    assert_eq!(status["recovery_codes_left"], 9);

    // Audited, attributed, and neither the secret nor a recovery code is in the trail.
    let (_, events) = app.get("/api/v1/audit/events?limit=1000", &token).await;
    let text = events.to_string();
    assert!(!text.contains(&secret_b32));
    for code in &recovery {
        assert!(!text.contains(code.as_str()));
    }
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_name"] == "ann")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["user.mfa_enrol_start", "user.mfa_enrol", "auth.mfa_failed"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    app.finish().await;
}

async fn wrong_codes_are_throttled_like_passwords(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("dora", Role::Director).await;
    let (secret, _) = enrol(&app, "dora").await;
    app.clock.advance(SignedDuration::from_secs(60));
    let right = code_now(&app, &secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 7) % 1_000_000);
    for _ in 0..5 {
        let got = login_with(&app, "dora", json!({"totp": wrong})).await;
        assert_error(
            &got,
            StatusCode::UNAUTHORIZED,
            "invalid_second_factor",
            None,
        );
    }
    // The next attempt waits, even with the right code.
    let got = login_with(&app, "dora", json!({"totp": right})).await;
    assert_error(
        &got,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        None,
    );
    app.clock.advance(SignedDuration::from_secs(2));
    let code = code_now(&app, &secret);
    let (s, body) = login_with(&app, "dora", json!({"totp": code})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    app.finish().await;
}

async fn the_lab_can_require_a_second_factor_of_admins_and_directors(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    app.create_user("dirk", Role::Director).await;
    app.create_user("tess", Role::Technologist).await;
    let (s, v) = app
        .put(
            "/api/v1/settings/auth.mfa_required",
            &admin,
            json!({"value": "true"}),
        )
        .await;
    assert!(s.is_success(), "{v}");

    // A director without a factor cannot log in until they enrol; a technologist can.
    let got = login_with(&app, "dirk", json!({})).await;
    assert_error(
        &got,
        StatusCode::UNAUTHORIZED,
        "mfa_enrolment_required",
        None,
    );
    assert_eq!(login_with(&app, "tess", json!({})).await.0, StatusCode::OK);

    // Enrolment is open to them (password checked), then the code logs them in.
    let (secret, _) = enrol(&app, "dirk").await;
    app.clock.advance(SignedDuration::from_secs(30));
    let code = code_now(&app, &secret);
    let (s, body) = login_with(&app, "dirk", json!({"totp": code})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    let (_, status) = app.get("/api/v1/auth/mfa", token).await;
    assert_eq!(status["required"], true);
    assert_eq!(status["enrolled"], true);
    app.finish().await;
}

async fn another_admin_resets_a_lost_factor_audited(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let admin_id = app
        .app
        .store()
        .user_by_username("admin")
        .await
        .unwrap()
        .unwrap()
        .id;
    let bob = app.create_user("bob", Role::Admin).await;
    enrol(&app, "bob").await;
    let got = login_with(&app, "bob", json!({})).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "mfa_required", None);

    // A reason is required; nobody resets their own.
    let got = app
        .post(
            &format!("/api/v1/users/{bob}/mfa/reset"),
            &admin,
            json!({"reason": " "}),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    let got = app
        .post(
            &format!("/api/v1/users/{admin_id}/mfa/reset"),
            &admin,
            json!({"reason": "lost phone"}),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    // A technologist may not reset anyone's.
    let tech = app.token_for(Role::Technologist).await;
    let got = app
        .post(
            &format!("/api/v1/users/{bob}/mfa/reset"),
            &tech,
            json!({"reason": "lost phone"}),
        )
        .await;
    assert_eq!(got.0, StatusCode::FORBIDDEN);

    let (s, v) = app
        .post(
            &format!("/api/v1/users/{bob}/mfa/reset"),
            &admin,
            json!({"reason": "lost phone"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(login_with(&app, "bob", json!({})).await.0, StatusCode::OK);
    let got = app
        .post(
            &format!("/api/v1/users/{bob}/mfa/reset"),
            &admin,
            json!({"reason": "again"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "no_second_factor", None);

    let (_, events) = app
        .get(
            &format!("/api/v1/audit/events?entity_type=user&entity_id={bob}&limit=100"),
            &admin,
        )
        .await;
    let reset = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.mfa_reset")
        .expect("user.mfa_reset audited");
    assert_eq!(reset["actor_name"], "admin");
    assert_eq!(reset["reason"], "lost phone");
    app.finish().await;
}
