//! Review and release (issue 15 item 8): every held result across departments with each
//! reason it was held for, verify and release one result or a whole order, re-run (a repeat
//! value, posted as at the bench), the order and its report PDF; and a result's own page with
//! its versions and the correction form, whose reason is mandatory. Every action is the REST
//! API's use case (`verify_result`, `verify_order`, `post_results`, `correct_result`).

use aliquot_app::{AppError, CorrectionInput, ResultInput, ResultView};
use aliquot_domain::auth::Permission;
use aliquot_domain::results::rules::Flag;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::WebSession;
use super::{FormData, Nav, app_error_page, message, nav, render, when};
use crate::AppState;
use crate::client::ClientAddr;

/// A hold reason's kind in words (the code is the domain's, `autoverify::CHECKS`).
pub(crate) fn hold_label(code: &str) -> &'static str {
    match code {
        "autoverification_suspended" => "Autoverification suspended",
        "manual_review" => "Autoverification rule",
        "specimen_not_stable" => "Specimen stability",
        "instrument_flag" => "Instrument flag",
        "qc" => "QC lock",
        "calibration" => "Calibration overdue",
        "above_reportable_range" => "Above reportable range",
        "dilution_not_validated" => "Dilution not validated",
        "serum_index" => "Serum index",
        "critical" => "Critical value",
        "delta" => "Delta check",
        "implausible" => "Implausible",
        "autoverify_limits" => "Autoverification limits",
        "inconsistent" => "Consistency check",
        "pathologist_review" => "Pathologist review",
        _ => "Held",
    }
}

pub(crate) struct Reason {
    pub label: &'static str,
    pub message: String,
}

pub(crate) struct HeldRow {
    pub result_id: i64,
    pub accession: String,
    pub test: String,
    pub department: String,
    pub value: String,
    pub flags: String,
    pub critical: bool,
    pub age: String,
    pub reasons: Vec<Reason>,
}

pub(crate) struct HeldOrder {
    pub order_id: i64,
    pub stat: bool,
    pub priority: String,
    pub rows: Vec<HeldRow>,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage {
    nav: Nav,
    notice: Option<String>,
    error: Option<String>,
    orders: Vec<HeldOrder>,
    held: usize,
    can_enter: bool,
    /// The lab requires a signature to release: the release forms ask for it.
    sign_release: bool,
}

fn is_critical(flags: &[String]) -> bool {
    flags
        .iter()
        .any(|f| Flag::parse(f).is_some_and(Flag::is_critical))
}

async fn review_page(
    state: &AppState,
    s: &WebSession,
    notice: Option<String>,
    mut error: Option<String>,
) -> Response {
    let (nav, _) = nav(state, s, "/review").await;
    let list = match state.app.review_list(&s.actor).await {
        Ok(l) => l,
        Err(e) => {
            error.get_or_insert(message(&e));
            Vec::new()
        }
    };
    let held = list.len();
    // Grouped by order, in the list's order (STAT first, then the oldest).
    let mut orders: Vec<HeldOrder> = Vec::new();
    for r in list {
        let i = r.item;
        let row = HeldRow {
            result_id: i.result_id.unwrap_or_default(),
            critical: is_critical(&i.flags),
            accession: i.accession,
            test: i.test_code,
            department: r.department.unwrap_or_default(),
            value: i.value.unwrap_or_default(),
            flags: i.flags.join(" "),
            age: format!("{} min", i.age_minutes),
            reasons: i
                .hold_reasons
                .into_iter()
                .map(|h| Reason {
                    label: hold_label(&h.code),
                    message: h.message,
                })
                .collect(),
        };
        match orders.iter_mut().find(|o| o.order_id == i.order_id) {
            Some(o) => o.rows.push(row),
            None => orders.push(HeldOrder {
                order_id: i.order_id,
                stat: i.priority == "stat",
                priority: i.priority,
                rows: vec![row],
            }),
        }
    }
    render(
        StatusCode::OK,
        &ReviewPage {
            nav,
            notice,
            error,
            orders,
            held,
            can_enter: s.actor.role.allows(Permission::ResultEnter),
            sign_release: state
                .app
                .verification_signature_required()
                .await
                .unwrap_or(true),
        },
    )
}

pub async fn review(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    review_page(&state, &s, None, None).await
}

/// Verifies and releases one held result (the version the reviewer saw).
pub async fn verify(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let version = form.get("version").parse().ok();
    let signature = super::signature_from(&form, client);
    let (notice, error) = match state
        .app
        .verify_result(&s.actor, id, version, None, signature.as_ref())
        .await
    {
        Ok(r) => (
            Some(format!("{}: verified and released.", r.test_code)),
            None,
        ),
        Err(e) => (None, Some(message(&e))),
    };
    review_page(&state, &s, notice, error).await
}

/// Releases every held result of an order the reviewer may release.
pub async fn verify_order(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let signature = super::signature_from(&form, client);
    let (notice, error) = match state
        .app
        .verify_order(&s.actor, id, None, signature.as_ref())
        .await
    {
        Ok(o) => {
            let still: Vec<String> = o
                .tests
                .iter()
                .filter(|t| t.result.as_ref().is_some_and(|r| r.status == "held"))
                .map(|t| t.test_code.clone())
                .collect();
            let text = if still.is_empty() {
                format!("Order #{id}: every held result is released.")
            } else {
                format!(
                    "Order #{id}: released what you may release; still held: {}.",
                    still.join(", ")
                )
            };
            (Some(text), None)
        }
        Err(e) => (None, Some(message(&e))),
    };
    review_page(&state, &s, notice, error).await
}

/// A re-run: the repeat's value posted as at the bench; it becomes the result's next version
/// and is judged again.
pub async fn rerun(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let test = form.get("test").to_owned();
    let item = ResultInput {
        accession: form.get("accession").to_owned(),
        test: test.clone(),
        value: form.get("value").to_owned(),
        ..ResultInput::default()
    };
    let (notice, error) = match state.app.post_results(&s.actor, vec![item]).await {
        Ok(mut out) => match out.pop() {
            Some(o) if o.error.is_none() => (
                Some(match o.outcome {
                    "released" => format!("{test}: the re-run is released."),
                    "duplicate" => format!("{test}: the same value again; nothing changed."),
                    _ => format!(
                        "{test}: the re-run is held: {}.",
                        o.hold_reasons
                            .iter()
                            .map(|r| r.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                }),
                None,
            ),
            Some(o) => (
                None,
                o.error.as_ref().map(|e| format!("{test}: {}", message(e))),
            ),
            None => (None, None),
        },
        Err(e) => (None, Some(message(&e))),
    };
    review_page(&state, &s, notice, error).await
}

// ── one result: versions and the correction form ──

pub(crate) struct VersionRow {
    pub version: i64,
    pub status: String,
    pub value: String,
    pub flags: String,
    pub reason: String,
    pub at: String,
    pub by: String,
    /// "Signed (corrected) by Dr X, 2026-… (password)", or empty.
    pub signature: String,
}

#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage {
    nav: Nav,
    id: i64,
    order_id: i64,
    test: String,
    value: String,
    units: String,
    flags: String,
    status: String,
    interval: String,
    reasons: Vec<Reason>,
    versions: Vec<VersionRow>,
    call: Option<String>,
    notice: Option<String>,
    /// The correction form, for a released result and a caller who may correct it.
    can_correct: bool,
    form_value: String,
    form_reason: String,
    form_comment: String,
    /// An error of the correction, next to its field (`value`, `units`, `reason`) or above
    /// the form.
    value_error: Option<String>,
    reason_error: Option<String>,
    signature_error: Option<String>,
    form_error: Option<String>,
}

#[derive(Deserialize)]
pub struct ResultQuery {
    m: Option<String>,
}

fn result_page(nav: Nav, tz: &jiff::tz::TimeZone, r: ResultView, can_verify: bool) -> ResultPage {
    ResultPage {
        nav,
        id: r.id,
        order_id: r.order_id,
        test: r.test_code,
        units: r.units.unwrap_or_default(),
        flags: r.flags.join(" "),
        can_correct: can_verify && (r.status == "released" || r.status == "corrected"),
        status: r.status,
        interval: r.reference_interval.map(|i| i.text).unwrap_or_default(),
        reasons: r
            .hold_reasons
            .into_iter()
            .map(|h| Reason {
                label: hold_label(&h.code),
                message: h.message,
            })
            .collect(),
        versions: r
            .versions
            .into_iter()
            .rev()
            .map(|v| VersionRow {
                version: v.version,
                status: v.status,
                value: format!("{} {}", v.value, v.units.unwrap_or_default())
                    .trim()
                    .to_owned(),
                flags: v.flags.join(" "),
                reason: v.reason.unwrap_or_default(),
                at: when(v.at, tz),
                by: v.by,
                signature: v
                    .signature
                    .map(|s| {
                        format!(
                            "{} by {} ({}), {}, with {}",
                            s.meaning,
                            s.signer_name,
                            s.signer,
                            when(s.at, tz),
                            if s.method == "totp" {
                                "authenticator code"
                            } else {
                                "password"
                            }
                        )
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        call: r
            .critical_call
            .map(|c| match (c.called_at, c.notified_name) {
                (Some(at), Some(name)) => format!(
                    "called {} to {name} ({}) by {}",
                    when(at, tz),
                    c.notified_role.unwrap_or_default(),
                    c.called_by.unwrap_or_default()
                ),
                _ if c.overdue => "critical value: the call is OVERDUE".to_owned(),
                _ => format!("critical value: call due by {}", when(c.due_at, tz)),
            }),
        value: r.value,
        notice: None,
        form_value: String::new(),
        form_reason: String::new(),
        form_comment: String::new(),
        value_error: None,
        reason_error: None,
        signature_error: None,
        form_error: None,
    }
}

/// `GET /results/{id}`: the result, its versions (a correction keeps the original visible)
/// and, for a released one, the correction form.
pub async fn result(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    Query(q): Query<ResultQuery>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/review").await;
    let r = match state.app.result(&s.actor, id).await {
        Ok(r) => r,
        Err(e) => return app_error_page(&e),
    };
    let mut page = result_page(
        nav,
        &lab.tz,
        r,
        s.actor.role.allows(Permission::ResultVerify),
    );
    page.notice = (q.m.as_deref() == Some("corrected"))
        .then(|| "Corrected: the new version is released and the provider notified.".into());
    render(StatusCode::OK, &page)
}

/// `POST /results/{id}/correct`: a new version with its mandatory reason. Refused input is
/// shown next to its field, with what was typed kept.
pub async fn correct(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let input = CorrectionInput {
        value: form.get("value").to_owned(),
        units: None,
        reason: form.opt("reason"),
        comment: form.opt("comment"),
        signature: super::signature_from(&form, client),
    };
    match state.app.correct_result(&s.actor, id, input).await {
        Ok(_) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/results/{id}?m=corrected")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => {
            let (nav, lab) = nav(&state, &s, "/review").await;
            let r = match state.app.result(&s.actor, id).await {
                Ok(r) => r,
                Err(e2) => return app_error_page(&e2),
            };
            let mut page = result_page(
                nav,
                &lab.tz,
                r,
                s.actor.role.allows(Permission::ResultVerify),
            );
            page.form_value = form.get("value").to_owned();
            page.form_reason = form.get("reason").to_owned();
            page.form_comment = form.get("comment").to_owned();
            let field = match &e {
                AppError::Invalid { field, .. } | AppError::Conflict { field, .. } => {
                    field.clone().unwrap_or_default()
                }
                _ => String::new(),
            };
            let text = message(&e);
            match field.as_str() {
                "reason" => page.reason_error = Some(text),
                "value" | "units" => page.value_error = Some(text),
                f if f.starts_with("signature") => page.signature_error = Some(text),
                _ => page.form_error = Some(text),
            }
            let status = match e {
                AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                AppError::Conflict { .. } => StatusCode::CONFLICT,
                AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
                _ => StatusCode::OK,
            };
            render(status, &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hold_reason_of_the_domain_has_words() {
        for code in [
            "autoverification_suspended",
            "manual_review",
            "specimen_not_stable",
            "instrument_flag",
            "qc",
            "calibration",
            "above_reportable_range",
            "dilution_not_validated",
            "serum_index",
            "critical",
            "delta",
            "implausible",
            "autoverify_limits",
            "inconsistent",
            "pathologist_review",
        ] {
            assert_ne!(hold_label(code), "Held", "{code}");
        }
    }
}
