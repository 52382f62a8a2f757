use aliquot_domain::auth::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

crate::both_backends!(
    settings_are_validated_and_corrections_need_a_reason,
    concurrent_audited_writes_keep_one_unbroken_chain,
    health_and_metrics,
    the_audit_trail_shows_patient_data_only_to_those_who_may_read_it,
);

/// The administrator audits every change but sees no patient data: a patient's entry shows
/// the changed fields and the SHA-256 of the stored value; the director (who may read
/// patients) sees the values, and that read is in the access log.
async fn the_audit_trail_shows_patient_data_only_to_those_who_may_read_it(db: Db) {
    let app = spawn_app(db).await;
    let tech = app.token_for(Role::Technician).await;
    let id = register(
        &app,
        &tech,
        patient_body("MRN-4242", "Đorđević", "Milica", "1990-05-06"),
    )
    .await;
    let path = format!("/api/v1/audit/events?entity_type=patient&entity_id={id}");
    let admin = app.token_for(Role::Admin).await;
    let (s, events) = app.get(&path, &admin).await;
    assert_eq!(s, StatusCode::OK, "{events}");
    let text = events.to_string();
    for secret in ["Đorđević", "Milica", "1990-05-06", "MRN-4242"] {
        assert!(
            !text.contains(secret),
            "{secret} shown to the administrator: {text}"
        );
    }
    let new = &events[0]["new_value"];
    assert_eq!(new["redacted"], true, "{events}");
    assert!(new["fields"].as_array().unwrap().len() > 3, "{new}");
    assert_eq!(new["sha256"].as_str().unwrap().len(), 64);
    let before = app.app.store().access_log(0, 1000).await.unwrap().len();
    // The administrator's read showed no patient: nothing logged.
    let director = app.token_for(Role::Director).await;
    let (s, events) = app.get(&path, &director).await;
    assert_eq!(s, StatusCode::OK, "{events}");
    assert!(events.to_string().contains("Đorđević"), "{events}");
    let log = app.app.store().access_log(0, 1000).await.unwrap();
    assert_eq!(log.len(), before + 1);
    let last = log.last().unwrap();
    assert_eq!(last.action, "audit.read");
    assert_eq!(last.patient_ids, vec![id]);
    // Settings are not patient data: shown in full to the administrator.
    let (_, settings) = app
        .get("/api/v1/audit/events?entity_type=user&entity_id=1", &admin)
        .await;
    assert_eq!(
        settings[0]["new_value"]["username"], "technician",
        "{settings}"
    );
    app.finish().await;
}

async fn settings_are_validated_and_corrections_need_a_reason(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    let first = app
        .put(
            "/api/v1/settings/lab.timezone",
            &admin,
            json!({"value": "Europe/Amsterdam"}),
        )
        .await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    let bad = app
        .put(
            "/api/v1/settings/lab.timezone",
            &admin,
            json!({"value": "Mars/Olympus", "reason": "typo fix"}),
        )
        .await;
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_setting",
        Some("value"),
    );
    let no_reason = app
        .put(
            "/api/v1/settings/lab.timezone",
            &admin,
            json!({"value": "America/Chicago"}),
        )
        .await;
    assert_error(
        &no_reason,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
        Some("reason"),
    );
    let unknown = app
        .put(
            "/api/v1/settings/lab.colour",
            &admin,
            json!({"value": "blue"}),
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found", None);
    let ok = app
        .put(
            "/api/v1/settings/lab.timezone",
            &admin,
            json!({"value": "America/Chicago", "reason": "lab moved"}),
        )
        .await;
    assert_eq!(ok.0, StatusCode::OK);
    let tech = app.token_for(Role::Technician).await;
    let (_, list) = app.get("/api/v1/settings", &tech).await;
    assert_eq!(list[0]["key"], "lab.timezone");
    assert_eq!(list[0]["value"], "America/Chicago");
    let (_, events) = app
        .get(
            "/api/v1/audit/events?entity_type=setting&entity_id=lab.timezone",
            &admin,
        )
        .await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["old_value"], "Europe/Amsterdam");
    assert_eq!(events[1]["new_value"], "America/Chicago");
    assert_eq!(events[1]["reason"], "lab moved");
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);
    app.finish().await;
}

async fn concurrent_audited_writes_keep_one_unbroken_chain(db: Db) {
    let app = spawn_app(db).await;
    let admin = app.token_for(Role::Admin).await;
    app.put(
        "/api/v1/settings/lab.name",
        &admin,
        json!({"value": "Start"}),
    )
    .await;
    let before = app.audit_len().await;
    let writes = (0..64).map(|i| {
        let app = &app;
        let admin = &admin;
        async move {
            app.put(
                "/api/v1/settings/lab.name",
                admin,
                json!({"value": format!("Lab {i}"), "reason": "concurrency test"}),
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(app.audit_len().await, before + 64);
    let (_, report) = app.get("/api/v1/audit/verify", &admin).await;
    assert_eq!(report["intact"], true, "{report}");
    app.finish().await;
}

async fn health_and_metrics(db: Db) {
    let app = spawn_app(db).await;
    let (status, health) = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    let expected = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    assert_eq!(health["database"], expected);
    let admin = app.token_for(Role::Admin).await;
    let resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().await.unwrap();
    assert!(text.contains("aliquot_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/auth/token\""));
    app.finish().await;
}
