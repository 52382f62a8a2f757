use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

crate::both_backends!(
    admin_creates_users_and_the_change_is_audited,
    usernames_are_unique_whatever_their_case,
    nobody_raises_their_own_role,
    role_change_needs_a_reason_and_revokes_tokens,
);

async fn admin_creates_users_and_the_change_is_audited(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let (status, user) = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "Nurse.Joy", "display_name": "Joy", "role": "phlebotomist", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["username"], "nurse.joy");
    let (_, list) = app.get("/api/v1/users", &admin).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "nurse.joy")
    );

    let (_, events) = app
        .get(
            &format!(
                "/api/v1/audit/events?entity_type=user&entity_id={}",
                user["id"]
            ),
            &admin,
        )
        .await;
    let e = &events[0];
    assert_eq!(e["action"], "user.create");
    assert_eq!(e["actor_name"], "admin");
    assert_eq!(e["actor_role"], "admin");
    assert_eq!(e["source"], "api");
    assert_eq!(e["new_value"]["role"], "phlebotomist");
    assert!(e["new_value"].get("password").is_none());
    assert!(!e["new_value"].to_string().contains("argon2"));
    // The new user can log in.
    app.login("nurse.joy").await;
    app.finish().await;
}

async fn usernames_are_unique_whatever_their_case(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let body = |name: &str| json!({"username": name, "display_name": "S", "role": "technician", "password": PASSWORD});
    assert_eq!(
        app.post("/api/v1/users", &admin, body("smith")).await.0,
        StatusCode::CREATED
    );
    let before = app.audit_len().await;
    let dup = app.post("/api/v1/users", &admin, body("SMITH")).await;
    assert_error(
        &dup,
        StatusCode::CONFLICT,
        "username_taken",
        Some("username"),
    );
    let lookalike = app.post("/api/v1/users", &admin, body("ſmith")).await;
    assert_error(
        &lookalike,
        StatusCode::UNPROCESSABLE_ENTITY,
        "username_characters",
        Some("username"),
    );
    assert_eq!(app.audit_len().await, before);
    app.finish().await;
}

async fn nobody_raises_their_own_role(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let tech = app.token_for(Role::Technician).await;
    let (_, me) = app.get("/api/v1/auth/me", &tech).await;
    let tech_id = me["id"].as_i64().unwrap();
    // A technician cannot change any role, their own included.
    let got = app
        .put(
            &format!("/api/v1/users/{tech_id}/role"),
            &tech,
            json!({"role": "admin", "reason": "promote me"}),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    // An administrator cannot change their own role either.
    let (_, me) = app.get("/api/v1/auth/me", &admin).await;
    let admin_id = me["id"].as_i64().unwrap();
    let got = app
        .put(
            &format!("/api/v1/users/{admin_id}/role"),
            &admin,
            json!({"role": "director", "reason": "self change"}),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden", None);
    let (_, me) = app.get("/api/v1/auth/me", &tech).await;
    assert_eq!(me["role"], "technician");
    app.finish().await;
}

async fn role_change_needs_a_reason_and_revokes_tokens(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let tech = app.token_for(Role::Technician).await;
    let (_, me) = app.get("/api/v1/auth/me", &tech).await;
    let id = me["id"].as_i64().unwrap();
    let no_reason = app
        .put(
            &format!("/api/v1/users/{id}/role"),
            &admin,
            json!({"role": "technologist", "reason": " "}),
        )
        .await;
    assert_error(
        &no_reason,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let ok = app
        .put(
            &format!("/api/v1/users/{id}/role"),
            &admin,
            json!({"role": "technologist", "reason": "completed MLS certification"}),
        )
        .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(ok.1["role"], "technologist");
    assert_eq!(
        app.get("/api/v1/auth/me", &tech).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, events) = app
        .get(
            &format!("/api/v1/audit/events?entity_type=user&entity_id={id}"),
            &admin,
        )
        .await;
    let change = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.role_change")
        .unwrap();
    assert_eq!(change["old_value"]["role"], "technician");
    assert_eq!(change["new_value"]["role"], "technologist");
    assert_eq!(change["reason"], "completed MLS certification");
    let missing = app
        .put(
            "/api/v1/users/987654/role",
            &admin,
            json!({"role": "technologist", "reason": "no such user"}),
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", None);
    app.finish().await;
}
