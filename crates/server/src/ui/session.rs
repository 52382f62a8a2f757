//! The web session: a cookie holding the session's token, a CSRF token derived from it, and
//! the guard that checks both on every UI route.
//!
//! Invariants (see ARCHITECTURE.md, "web UI"):
//! - The cookie is `HttpOnly; SameSite=Strict; Path=/`, plus `Secure` when the request came
//!   over TLS (`https` scheme, or `X-Forwarded-Proto: https` from a terminating proxy).
//! - Its value is a session token issued by `App::login(…, Source::Web)`: the database keeps
//!   only its hash, under the web prefix, so it is refused as a bearer token by the API and a
//!   bearer token is refused as a cookie here. Expiry, revocation and the idle timeout are the
//!   app's (`App::authenticate`), shared with the API.
//! - Every unsafe request (not GET/HEAD) must come from this site (`Origin`, else `Referer`,
//!   equal to the `Host`) and, once logged in, carry the session's CSRF token (form field
//!   `csrf` or header `X-CSRF-Token`): SHA-256 of a fixed prefix and the session token, so it
//!   differs per session and can't be computed without the HttpOnly cookie.
//! - The UI ignores `Authorization` headers; the API ignores cookies.

use aliquot_app::{Actor, AppError, Source};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{UI_ROUTES, error_page};
use crate::AppState;
use crate::access::Access;

pub const COOKIE: &str = "aliquot_session";
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sent by a page's own polling: the request does not keep the session from its idle timeout.
pub const PASSIVE_HEADER: &str = "x-aliquot-passive";

/// The logged-in user of a UI request.
#[derive(Clone)]
pub struct WebSession {
    pub actor: Actor,
    pub token: String,
    pub csrf: String,
}

/// The CSRF token of a session.
pub fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"aliquot-web-csrf\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// Equal without an early exit (the comparison time does not tell how much matched).
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the request came over TLS: this server's own (`OverTls`), an `https` URI, or a
/// terminating proxy's `X-Forwarded-Proto: https`.
pub fn is_tls(own_tls: bool, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    own_tls
        || uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session (no `Max-Age`: it ends with the browser; the server
/// enforces the token's lifetime and idle timeout).
pub fn session_cookie(token: &str, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("aliquot_session=; Path=/; Max-Age=0"))
}

pub fn clear_cookie(tls: bool) -> HeaderValue {
    if tls {
        HeaderValue::from_static(
            "aliquot_session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
        )
    } else {
        HeaderValue::from_static("aliquot_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

/// Whether an unsafe request comes from a page of this site: `Origin` (sent by every current
/// browser on a POST) or else `Referer` must name the `Host` the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let matches = |url: &str| {
        ["http://", "https://"].iter().any(|scheme| {
            url.strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix(host))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(matches);
    }
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(matches)
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Sends the browser to the login page (with why, and where it was going for a GET).
fn to_login(req: &Request, why: Option<&str>, clear: bool) -> Response {
    let mut target = String::from("/login");
    let mut sep = '?';
    if let Some(why) = why {
        target.push_str(&format!("{sep}m={why}"));
        sep = '&';
    }
    if req.method() == Method::GET {
        // An htmx request fetches a fragment: back to the page it was made from.
        let path = if is_htmx(req.headers()) {
            req.headers()
                .get("hx-current-url")
                .and_then(|v| v.to_str().ok())
                .and_then(|u| u.split_once("://"))
                .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
                .map(|p| p.split(['?', '#']).next().unwrap_or("/").to_owned())
                .unwrap_or_else(|| "/".to_owned())
        } else {
            req.uri().path().to_owned()
        };
        if path != "/" && path.starts_with('/') && !path.starts_with("//") {
            target.push_str(&format!("{sep}next={path}"));
        }
    }
    let tls = is_tls(
        req.extensions().get::<crate::conn::OverTls>().is_some(),
        req.headers(),
        req.uri(),
    );
    let mut response = if is_htmx(req.headers()) {
        let mut r = StatusCode::OK.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert("hx-redirect", v);
        }
        r
    } else {
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    if clear {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, clear_cookie(tls));
    }
    response
}

/// The form's CSRF field, read from a buffered urlencoded body.
fn csrf_in_form(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

/// Authenticates and authorises a UI request against [`UI_ROUTES`], and checks the origin
/// and CSRF token of unsafe requests.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(spec) = path.as_deref().and_then(|p| {
        UI_ROUTES
            .iter()
            .find(|r| r.path == p && r.method == req.method().as_str())
    }) else {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This page has no access rule.",
        );
    };
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);
    if unsafe_method && !same_origin(req.headers()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was not sent from an Aliquot page. Go back, reload the page and try again.",
        );
    }
    if spec.access == Access::Public {
        return next.run(req).await;
    }
    let Some(token) = cookie_token(req.headers()) else {
        return to_login(&req, None, false);
    };
    // A page refreshing itself (`X-Aliquot-Passive` on a GET) is not the user's activity.
    let passive = req.method() == Method::GET && req.headers().contains_key(PASSIVE_HEADER);
    let authenticated = if passive {
        state.app.authenticate_passive(&token, Source::Web).await
    } else {
        state.app.authenticate(&token, Source::Web).await
    };
    let actor = match authenticated {
        Ok(a) => a,
        Err(AppError::Unauthorized { code, .. }) => return to_login(&req, Some(code), true),
        Err(e) => return super::app_error_page(&e),
    };
    if let Access::Permission(p) = spec.access
        && actor.require(p).is_err()
    {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role may not use this page. Log in as another user to continue.",
        );
    }
    let csrf = csrf_for(&token);
    let mut req = req;
    if unsafe_method {
        let from_header = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let presented = match from_header {
            Some(h) => Some(h),
            None => {
                let (parts, body) = req.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await else {
                    return error_page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Too large",
                        "The form was too large.",
                    );
                };
                let found = csrf_in_form(&bytes);
                req = Request::from_parts(parts, Body::from(bytes));
                found
            }
        };
        if !presented.is_some_and(|p| same_secret(&p, &csrf)) {
            return error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form does not belong to your session (it may be from before a log-in). \
                 Reload the page and try again.",
            );
        }
    }
    req.extensions_mut()
        .insert(WebSession { actor, token, csrf });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_must_name_the_host() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&ok));
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:8080.evil.example",
            "http://127.0.0.1:80",
            "null",
        ] {
            let h = headers(&[("host", "127.0.0.1:8080"), ("origin", bad)]);
            assert!(!same_origin(&h), "{bad}");
        }
        let referer = headers(&[
            ("host", "lab:8080"),
            ("referer", "https://lab:8080/receive"),
        ]);
        assert!(same_origin(&referer));
        assert!(!same_origin(&headers(&[("host", "lab:8080")])));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; aliquot_session=abc ; b=2")]);
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
        assert_eq!(
            cookie_token(&headers(&[("cookie", "aliquot_session=")])),
            None
        );
    }

    #[test]
    fn csrf_differs_per_session_and_is_checked_whole() {
        let a = csrf_for("a");
        assert_ne!(a, csrf_for("b"));
        assert!(same_secret(&a, &csrf_for("a")));
        assert!(!same_secret(&a, &a[..10]));
        let cookie = session_cookie("t", true);
        let text = cookie.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(text.contains(part), "{text}");
        }
        assert!(
            !session_cookie("t", false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
