//! The web UI's sessions and the dashboard's polling: a page refreshing itself
//! (`X-Aliquot-Passive`) is not the user's activity, so a board left open still logs its user
//! off after the idle timeout; a person using the pages stays logged in.

use aliquot_domain::auth::Role;
use jiff::SignedDuration;
use reqwest::StatusCode;

use crate::support::{PASSWORD, TestApp, spawn_app};

crate::both_backends!(polling_does_not_keep_a_web_session_alive);

/// Logs in through the login form: the session cookie (`aliquot_session=…`).
async fn web_login(app: &TestApp, client: &reqwest::Client, user: &str) -> String {
    let r = client
        .post(format!("{}/login", app.base))
        .header("origin", &app.base)
        .form(&[("username", user), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn get(
    app: &TestApp,
    client: &reqwest::Client,
    cookie: &str,
    path: &str,
    passive: bool,
) -> (StatusCode, String) {
    let mut r = client
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie);
    if passive {
        r = r
            .header("x-aliquot-passive", "1")
            .header("hx-request", "true")
            .header("hx-current-url", format!("{}/dashboard", app.base));
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let to = r
        .headers()
        .get("hx-redirect")
        .or_else(|| r.headers().get("location"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r.text().await.unwrap();
    (status, if to.is_empty() { body } else { to })
}

async fn polling_does_not_keep_a_web_session_alive(db: crate::support::Db) {
    let app = spawn_app(db).await;
    app.create_user("technologist", Role::Technologist).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A board left open: polled every few minutes, nobody touches the page.
    let board = web_login(&app, &client, "technologist").await;
    // A person at the bench, using the pages as often.
    let bench = web_login(&app, &client, "technologist").await;
    let (status, body) = get(&app, &client, &board, "/dashboard", false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("X-Aliquot-Passive"),
        "the page polls passively"
    );
    for _ in 0..3 {
        app.clock.advance(SignedDuration::from_mins(9));
        let (status, body) = get(&app, &client, &board, "/dashboard/board", true).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("id=\"total-pending\""), "{body}");
        let (status, _) = get(&app, &client, &bench, "/dashboard", false).await;
        assert_eq!(status, StatusCode::OK);
    }
    // 31 minutes after the board's last real request: the idle timeout (30 minutes) logs it
    // off, polls or not; the bench's session, used 4 minutes ago, lives on.
    app.clock.advance(SignedDuration::from_mins(4));
    let (status, to) = get(&app, &client, &board, "/dashboard/board", true).await;
    assert_eq!(status, StatusCode::OK, "htmx is sent to the login page");
    assert_eq!(
        to, "/login?m=token_idle&next=/dashboard",
        "back to the page, not the fragment"
    );
    let (status, _) = get(&app, &client, &bench, "/dashboard/board", true).await;
    assert_eq!(status, StatusCode::OK);
    let (status, to) = get(&app, &client, &board, "/dashboard", false).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(to.starts_with("/login?m=token_idle"), "{to}");
    app.finish().await;
}
