//! Log in, log out, switch user, and the home page.

use aliquot_app::{AppError, Source};
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::{self, WebSession};
use super::{FormData, Nav, message, nav, render};
use crate::AppState;
use crate::client::ClientAddr;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    lab_name: String,
    notice: Option<String>,
    error: Option<String>,
    username: String,
    next: String,
    /// The user already logged in on this terminal (the form then switches user).
    current: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    m: Option<String>,
    next: Option<String>,
}

fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/")
        .to_owned()
}

async fn current_user(state: &AppState, headers: &HeaderMap) -> Option<(String, String)> {
    let token = session::cookie_token(headers)?;
    let actor = state.app.authenticate(&token, Source::Web).await.ok()?;
    Some((actor.username, token))
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let notice = q.m.as_deref().map(|m| {
        match m {
            "token_idle" => "You were logged off after a period of inactivity. Log in again.",
            "token_expired" => "Your session has ended. Log in again.",
            "token_revoked" | "logged_out" => "You are logged out.",
            _ => "Log in to continue.",
        }
        .to_owned()
    });
    let lab = super::lab(&state).await;
    render(
        StatusCode::OK,
        &LoginPage {
            lab_name: lab.name,
            notice,
            error: None,
            username: String::new(),
            next: safe_next(q.next.as_deref()),
            current: current_user(&state, &headers).await.map(|(u, _)| u),
        },
    )
}

/// Logs in. A session already open on this browser is ended first: one form switches the
/// user of a shared bench terminal.
pub async fn login(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    uri: Uri,
    form: FormData,
) -> Response {
    let username = form.get("username").to_owned();
    let next = safe_next(Some(form.get("next")));
    let previous = current_user(&state, &headers).await;
    if let Some((_, token)) = &previous
        && let Ok(actor) = state.app.authenticate(token, Source::Web).await
    {
        let _ = state.app.logout(&actor, token).await;
    }
    let tls = session::is_tls(&headers, &uri);
    match state
        .app
        .login(&username, form.get("password"), Source::Web, client)
        .await
    {
        Ok(issued) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            let h = r.headers_mut();
            h.insert(
                header::SET_COOKIE,
                session::session_cookie(&issued.token, tls),
            );
            if let Ok(v) = HeaderValue::from_str(&next) {
                h.insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => {
            let status = match e {
                AppError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
                AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            };
            let lab = super::lab(&state).await;
            let mut r = render(
                status,
                &LoginPage {
                    lab_name: lab.name,
                    notice: None,
                    error: Some(message(&e)),
                    username,
                    next,
                    current: None,
                },
            );
            if let AppError::Locked { retry_after_secs } = e {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            if previous.is_some() {
                r.headers_mut()
                    .insert(header::SET_COOKIE, session::clear_cookie(tls));
            }
            r
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let _ = state.app.logout(&s.actor, &s.token).await;
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(
        header::SET_COOKIE,
        session::clear_cookie(session::is_tls(&headers, &uri)),
    );
    h.insert(
        header::LOCATION,
        HeaderValue::from_static("/login?m=logged_out"),
    );
    r
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    nav: Nav,
}

pub async fn home(State(state): State<AppState>, Extension(s): Extension<WebSession>) -> Response {
    let (nav, _) = nav(&state, &s, "/").await;
    render(StatusCode::OK, &HomePage { nav })
}
