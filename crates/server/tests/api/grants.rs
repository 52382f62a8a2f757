//! Separation of duties on both databases: one administrator cannot make an administrator
//! or a director (nor create one and log in as it); a second administrator approves or
//! rejects the request, never the requester, never the grantee; every step is audited.

use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

crate::both_backends!(
    a_privileged_role_takes_a_second_administrator,
    a_rejected_grant_changes_nothing,
);

async fn user_id(app: &TestApp, token: &str, username: &str) -> i64 {
    let (_, users) = app.get("/api/v1/users", token).await;
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no {username} in {users}"))["id"]
        .as_i64()
        .unwrap()
}

async fn role_of(app: &TestApp, token: &str, username: &str) -> Value {
    let (_, users) = app.get("/api/v1/users", token).await;
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap()["role"]
        .clone()
}

async fn a_privileged_role_takes_a_second_administrator(db: Db) {
    let app = spawn_app(db).await;
    // Two administrators, made at the console (the console is not bound: it bootstraps).
    app.create_user("ann", Role::Admin).await;
    app.create_user("bob", Role::Admin).await;
    let ann = app.login("ann").await;
    let bob = app.login("bob").await;

    // Ann alone cannot create a director, nor make one.
    let got = app
        .post(
            "/api/v1/users",
            &ann,
            json!({"username": "carl", "display_name": "Carl", "role": "director",
                   "password": PASSWORD}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "approval_required",
        Some("role"),
    );
    let (s, v) = app
        .post(
            "/api/v1/users",
            &ann,
            json!({"username": "carl", "display_name": "Carl", "role": "technologist",
                   "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let carl = v["id"].as_i64().unwrap();
    let carl_token = app.login("carl").await;
    let got = app
        .put(
            &format!("/api/v1/users/{carl}/role"),
            &ann,
            json!({"role": "director", "reason": "new laboratory director"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::CONFLICT,
        "approval_required",
        Some("role"),
    );
    assert_eq!(role_of(&app, &ann, "carl").await, "technologist");

    // She requests it instead; one request at a time; other roles need none.
    let got = app
        .post(
            "/api/v1/role-grants",
            &ann,
            json!({"user_id": carl, "role": "technician", "reason": "bench change"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "role_not_privileged",
        Some("role"),
    );
    let (s, grant) = app
        .post(
            "/api/v1/role-grants",
            &ann,
            json!({"user_id": carl, "role": "director", "reason": "new laboratory director"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{grant}");
    assert_eq!(grant["status"], "pending");
    assert_eq!(grant["requested_by"], "ann");
    let id = grant["id"].as_i64().unwrap();
    let got = app
        .post(
            "/api/v1/role-grants",
            &ann,
            json!({"user_id": carl, "role": "admin", "reason": "and admin too"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "grant_pending", None);
    assert_eq!(role_of(&app, &ann, "carl").await, "technologist");

    // Nobody requests for themselves; the requester does not approve; nor does the grantee
    // (who may not manage users anyway).
    let ann_id = user_id(&app, &ann, "ann").await;
    let got = app
        .post(
            "/api/v1/role-grants",
            &ann,
            json!({"user_id": ann_id, "role": "director", "reason": "me too"}),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    let approve = format!("/api/v1/role-grants/{id}/approve");
    let got = app.post(&approve, &ann, json!({})).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    let got = app.post(&approve, &carl_token, json!({})).await;
    assert_eq!(got.0, StatusCode::FORBIDDEN, "{}", got.1);
    let (_, pending) = app.get("/api/v1/role-grants?pending=true", &bob).await;
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");

    // Bob approves: the role changes, Carl's tokens are revoked.
    let (s, decided) = app
        .post(&approve, &bob, json!({"reason": "board minutes 2026-11"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"], "bob");
    assert_eq!(role_of(&app, &bob, "carl").await, "director");
    let got = app.get("/api/v1/auth/me", &carl_token).await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED);
    let got = app.post(&approve, &bob, json!({})).await;
    assert_error(&got, StatusCode::CONFLICT, "grant_decided", None);
    let (_, pending) = app.get("/api/v1/role-grants?pending=true", &bob).await;
    assert!(pending.as_array().unwrap().is_empty(), "{pending}");

    // The trail names both administrators.
    let (_, events) = app
        .get(
            &format!("/api/v1/audit/events?entity_type=user&entity_id={carl}&limit=100"),
            &bob,
        )
        .await;
    let by = |action: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} audited: {events}"))
            .clone()
    };
    let request = by("user.role_grant_request");
    assert_eq!(request["actor_name"], "ann");
    assert_eq!(request["reason"], "new laboratory director");
    let approval = by("user.role_grant_approve");
    assert_eq!(approval["actor_name"], "bob");
    assert_eq!(approval["new_value"]["role"], "director");
    assert_eq!(approval["new_value"]["requested_by"], "ann");
    assert_eq!(approval["old_value"]["role"], "technologist");
    app.finish().await;
}

async fn a_rejected_grant_changes_nothing(db: Db) {
    let app = spawn_app(db).await;
    app.create_user("ann", Role::Admin).await;
    app.create_user("bob", Role::Admin).await;
    app.create_user("dave", Role::Technician).await;
    let ann = app.login("ann").await;
    let bob = app.login("bob").await;
    let dave = user_id(&app, &ann, "dave").await;
    let (s, grant) = app
        .post(
            "/api/v1/role-grants",
            &ann,
            json!({"user_id": dave, "role": "admin", "reason": "covering nights"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{grant}");
    let id = grant["id"].as_i64().unwrap();
    let reject = format!("/api/v1/role-grants/{id}/reject");
    let got = app.post(&reject, &bob, json!({})).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let (s, decided) = app
        .post(
            &reject,
            &bob,
            json!({"reason": "nights are covered by the agency"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "rejected");
    assert_eq!(role_of(&app, &ann, "dave").await, "technician");
    let got = app
        .post(
            &format!("/api/v1/role-grants/{id}/approve"),
            &bob,
            json!({}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "grant_decided", None);
    // A new request may follow the rejected one.
    let (s, v) = app
        .post(
            "/api/v1/role-grants",
            &ann,
            json!({"user_id": dave, "role": "admin", "reason": "covering weekends"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, all) = app.get("/api/v1/role-grants", &bob).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    app.finish().await;
}
