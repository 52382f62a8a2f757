//! Log in, log out, switch user, and the home page.

use aliquot_app::{AppError, SecondFactor, Source};
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
    /// The user has an authenticator app: the form asks for its code.
    ask_code: bool,
}

/// Enrolling an authenticator app: the password form, then the secret with the form for the
/// first code, then the recovery codes (each shown once).
#[derive(Template)]
#[template(path = "mfa_enrol.html")]
struct MfaEnrolPage {
    lab_name: String,
    error: Option<String>,
    username: String,
    /// Set once the enrolment has started: shown once.
    secret: Option<String>,
    otpauth_uri: Option<String>,
    /// Set once confirmed: shown once.
    recovery_codes: Vec<String>,
}

impl MfaEnrolPage {
    fn new(lab_name: String, username: String) -> Self {
        MfaEnrolPage {
            lab_name,
            error: None,
            username,
            secret: None,
            otpauth_uri: None,
            recovery_codes: Vec::new(),
        }
    }
}

pub async fn mfa_page(State(state): State<AppState>) -> Response {
    let lab = super::lab(&state).await;
    render(StatusCode::OK, &MfaEnrolPage::new(lab.name, String::new()))
}

fn refused_status(e: &AppError) -> StatusCode {
    match e {
        AppError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AppError::Conflict { .. } => StatusCode::CONFLICT,
        AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::UNAUTHORIZED,
    }
}

pub async fn mfa_start(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    form: FormData,
) -> Response {
    let username = form.get("username").to_owned();
    let lab = super::lab(&state).await;
    let mut page = MfaEnrolPage::new(lab.name, username.clone());
    match state
        .app
        .start_mfa_enrolment(&username, form.get("password"), Source::Web, client)
        .await
    {
        Ok(e) => {
            page.secret = Some(e.secret);
            page.otpauth_uri = Some(e.otpauth_uri);
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            let status = refused_status(&e);
            page.error = Some(message(&e));
            render(status, &page)
        }
    }
}

pub async fn mfa_confirm(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    form: FormData,
) -> Response {
    let username = form.get("username").to_owned();
    let lab = super::lab(&state).await;
    let mut page = MfaEnrolPage::new(lab.name, username.clone());
    match state
        .app
        .confirm_mfa_enrolment(
            &username,
            form.get("password"),
            form.get("code"),
            Source::Web,
            client,
        )
        .await
    {
        Ok(codes) => {
            page.recovery_codes = codes;
            render(StatusCode::OK, &page)
        }
        Err(e) => {
            let status = refused_status(&e);
            page.error = Some(message(&e));
            // Still pending: the same secret stays on the page (the user's own, just shown).
            let secret = form.get("secret");
            if !secret.is_empty() && !matches!(e, AppError::Conflict { .. }) {
                page.secret = Some(secret.to_owned());
                page.otpauth_uri = Some(form.get("uri").to_owned()).filter(|u| !u.is_empty());
            }
            render(status, &page)
        }
    }
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
            ask_code: false,
        },
    )
}

/// Logs in. A session already open on this browser is ended first: one form switches the
/// user of a shared bench terminal.
pub async fn login(
    State(state): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    over_tls: Option<Extension<crate::conn::OverTls>>,
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
    let tls = session::is_tls(over_tls.is_some(), &headers, &uri);
    match state
        .app
        .login_with(
            &username,
            form.get("password"),
            SecondFactor::from_typed(form.get("code")),
            Source::Web,
            client,
        )
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
            let ask_code = matches!(
                e,
                AppError::Unauthorized {
                    code: "mfa_required" | "invalid_second_factor" | "totp_replayed",
                    ..
                }
            );
            let error = match &e {
                AppError::Unauthorized {
                    code: "mfa_required",
                    ..
                } => "Enter your password again with the 6-digit code from your authenticator \
                      app (or a recovery code)."
                    .to_owned(),
                AppError::Unauthorized {
                    code: "mfa_enrolment_required",
                    ..
                } => "Your role requires a second factor. Enrol an authenticator app first \
                      (Set up an authenticator app, below)."
                    .to_owned(),
                other => message(other),
            };
            let lab = super::lab(&state).await;
            let mut r = render(
                status,
                &LoginPage {
                    lab_name: lab.name,
                    notice: None,
                    error: Some(error),
                    username,
                    next,
                    current: None,
                    ask_code,
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
    over_tls: Option<Extension<crate::conn::OverTls>>,
    uri: Uri,
) -> Response {
    let _ = state.app.logout(&s.actor, &s.token).await;
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(
        header::SET_COOKIE,
        session::clear_cookie(session::is_tls(over_tls.is_some(), &headers, &uri)),
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
