//! Administration (issue 15 item 11): users and roles (create, change role, disable or
//! enable, each with its reason), the lab settings, the test catalogue (read only), the audit
//! trail with the verification of its hash chain, and the access log. Every page is a use
//! case of the REST API with its own permission; the administrator holds no `patient.read`,
//! so the audit use case shows it only the changed fields' names and hashes of entries that
//! may hold patient data, as the API does.

use aliquot_app::{AppError, NewUserInput};
use aliquot_domain::auth::{Permission, Role};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::session::WebSession;
use super::{FormData, Nav, app_error_page, message, nav, render, when};
use crate::AppState;

/// Rows per page of the audit trail and the access log.
const PAGE: i64 = 50;

pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub disabled: bool,
    pub created: String,
    pub me: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserRow>,
    roles: Vec<&'static str>,
    can_manage: bool,
    notice: Option<String>,
    error: Option<String>,
    /// The field the error is about (shown next to it in the create form).
    error_field: String,
    form_username: String,
    form_display_name: String,
    form_role: String,
    /// Administrator and director grants waiting for a second administrator.
    grants: Vec<GrantRow>,
}

pub(crate) struct GrantRow {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: String,
    /// The viewer requested it (or is its grantee): another administrator decides.
    pub mine: bool,
}

async fn users_page(
    state: &AppState,
    s: &WebSession,
    notice: Option<String>,
    error: Option<AppError>,
    form: Option<&FormData>,
) -> Response {
    let (nav, lab) = nav(state, s, "/admin").await;
    let users = match state.app.list_users(&s.actor).await {
        Ok(u) => u,
        Err(e) => return app_error_page(&e),
    };
    let grants = match state.app.role_grants(&s.actor, true).await {
        Ok(g) => g,
        Err(e) => return app_error_page(&e),
    };
    let me = s.actor.username.as_str();
    let error_field = match &error {
        Some(AppError::Invalid { field, .. } | AppError::Conflict { field, .. }) => {
            field.clone().unwrap_or_default()
        }
        _ => String::new(),
    };
    let status = match &error {
        Some(AppError::Invalid { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
        Some(AppError::Conflict { .. }) => StatusCode::CONFLICT,
        Some(AppError::Forbidden { .. }) => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    };
    render(
        status,
        &UsersPage {
            nav,
            users: users
                .into_iter()
                .map(|u| UserRow {
                    me: Some(u.id) == s.actor.user_id,
                    id: u.id,
                    username: u.username,
                    display_name: u.display_name,
                    role: u.role.as_str().to_owned(),
                    disabled: u.disabled,
                    created: when(u.created_at, &lab.tz),
                })
                .collect(),
            roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
            can_manage: s.actor.role.allows(Permission::UserManage),
            notice,
            error: error.as_ref().map(message),
            error_field,
            form_username: form
                .map(|f| f.get("username").to_owned())
                .unwrap_or_default(),
            form_display_name: form
                .map(|f| f.get("display_name").to_owned())
                .unwrap_or_default(),
            form_role: form.map(|f| f.get("role").to_owned()).unwrap_or_default(),
            grants: grants
                .into_iter()
                .map(|g| GrantRow {
                    mine: g.requested_by == me || g.username == me,
                    id: g.id,
                    username: g.username,
                    role: g.role,
                    reason: g.reason,
                    requested_by: g.requested_by,
                    requested_at: when(g.requested_at, &lab.tz),
                })
                .collect(),
        },
    )
}

/// `GET /admin`: the users and their roles.
pub async fn users(State(state): State<AppState>, Extension(s): Extension<WebSession>) -> Response {
    users_page(&state, &s, None, None, None).await
}

/// `POST /admin/users`: a new account.
pub async fn create_user(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let input = NewUserInput {
        username: form.get("username").to_owned(),
        display_name: form.get("display_name").to_owned(),
        role: form.get("role").to_owned(),
        password: form
            .0
            .iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    };
    match state.app.create_user(&s.actor, input).await {
        Ok(u) => {
            users_page(
                &state,
                &s,
                Some(format!("User {} created as {}.", u.username, u.role)),
                None,
                None,
            )
            .await
        }
        Err(e) => users_page(&state, &s, None, Some(e), Some(&form)).await,
    }
}

/// `POST /admin/users/{id}/role`: another role, with a reason (the user's sessions end).
pub async fn set_role(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    // The administrator and director roles take a second administrator: the form requests.
    let privileged = Role::parse(form.get("role"))
        .is_ok_and(|r| aliquot_app::security::PRIVILEGED_ROLES.contains(&r));
    if privileged {
        return match state
            .app
            .request_role_grant(
                &s.actor,
                id,
                form.get("role"),
                form.opt("reason").as_deref(),
            )
            .await
        {
            Ok(g) => {
                users_page(
                    &state,
                    &s,
                    Some(format!(
                        "The {} role for {} is requested: another administrator approves it \
                         under Pending role grants.",
                        g.role, g.username
                    )),
                    None,
                    None,
                )
                .await
            }
            Err(e) => users_page(&state, &s, None, Some(e), None).await,
        };
    }
    match state
        .app
        .set_user_role(
            &s.actor,
            id,
            form.get("role"),
            form.opt("reason").as_deref(),
        )
        .await
    {
        Ok(u) => {
            users_page(
                &state,
                &s,
                Some(format!(
                    "{} is now {}; their sessions were ended.",
                    u.username, u.role
                )),
                None,
                None,
            )
            .await
        }
        Err(e) => users_page(&state, &s, None, Some(e), None).await,
    }
}

/// `POST /admin/grants/{id}/approve`: a second administrator approves a pending grant.
pub async fn approve_grant(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    decide_grant(&state, &s, id, true, &form).await
}

/// `POST /admin/grants/{id}/reject`: a second administrator rejects it, with a reason.
pub async fn reject_grant(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    decide_grant(&state, &s, id, false, &form).await
}

async fn decide_grant(
    state: &AppState,
    s: &WebSession,
    id: i64,
    approve: bool,
    form: &FormData,
) -> Response {
    let (state, s) = (state.clone(), s.clone());
    match state
        .app
        .decide_role_grant(&s.actor, id, approve, form.opt("reason").as_deref())
        .await
    {
        Ok(g) => {
            let text = if approve {
                format!(
                    "{} is now {}; their sessions were ended.",
                    g.username, g.role
                )
            } else {
                format!("The {} role for {} was rejected.", g.role, g.username)
            };
            users_page(&state, &s, Some(text), None, None).await
        }
        Err(e) => users_page(&state, &s, None, Some(e), None).await,
    }
}

/// `POST /admin/users/{id}/disabled`: disable (or enable again) an account, with a reason.
pub async fn set_disabled(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Path(id): Path<i64>,
    form: FormData,
) -> Response {
    let disabled = form.get("disabled") == "true";
    match state
        .app
        .set_user_disabled(&s.actor, id, disabled, form.opt("reason").as_deref())
        .await
    {
        Ok(u) => {
            users_page(
                &state,
                &s,
                Some(if disabled {
                    format!("{} is disabled; their sessions were ended.", u.username)
                } else {
                    format!("{} may log in again.", u.username)
                }),
                None,
                None,
            )
            .await
        }
        Err(e) => users_page(&state, &s, None, Some(e), None).await,
    }
}

// ── settings ──

pub(crate) struct SettingRow {
    pub key: &'static str,
    pub help: &'static str,
    pub value: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct SettingsPage {
    nav: Nav,
    settings: Vec<SettingRow>,
    can_write: bool,
    notice: Option<String>,
    error: Option<String>,
}

async fn settings_page(
    state: &AppState,
    s: &WebSession,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let (nav, lab) = nav(state, s, "/admin").await;
    let current = match state.app.settings(&s.actor).await {
        Ok(v) => v,
        Err(e) => return app_error_page(&e),
    };
    let settings = aliquot_app::setting_rules()
        .iter()
        .map(|(key, help, _)| {
            let set = current.iter().find(|c| c.key == *key);
            SettingRow {
                key,
                help,
                value: set.map(|c| c.value.clone()).unwrap_or_default(),
                updated: set.map(|c| when(c.updated_at, &lab.tz)).unwrap_or_default(),
            }
        })
        .collect();
    render(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        &SettingsPage {
            nav,
            settings,
            can_write: s.actor.role.allows(Permission::SettingsWrite),
            notice,
            error,
        },
    )
}

pub async fn settings(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    settings_page(&state, &s, None, None).await
}

/// `POST /admin/settings`: one setting; changing one already set needs a reason.
pub async fn put_setting(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    form: FormData,
) -> Response {
    let key = form.get("key").to_owned();
    match state
        .app
        .put_setting(
            &s.actor,
            &key,
            form.get("value"),
            form.opt("reason").as_deref(),
        )
        .await
    {
        Ok(v) => {
            settings_page(
                &state,
                &s,
                Some(format!("{} is now {}.", v.key, v.value)),
                None,
            )
            .await
        }
        Err(e) => settings_page(&state, &s, None, Some(format!("{key}: {}", message(&e)))).await,
    }
}

// ── the catalogue ──

pub(crate) struct CatalogRow {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub loinc: String,
    pub department: String,
    pub specimen: String,
    pub units: String,
    pub version: i64,
    pub retired: bool,
}

#[derive(Template)]
#[template(path = "admin_catalog.html")]
struct CatalogPage {
    nav: Nav,
    rows: Vec<CatalogRow>,
}

pub async fn catalog(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
) -> Response {
    let (nav, _) = nav(&state, &s, "/admin").await;
    let entries = match state.app.catalog(&s.actor, true).await {
        Ok(e) => e,
        Err(e) => return app_error_page(&e),
    };
    let rows = entries
        .into_iter()
        .map(|e| {
            let d = e.definition;
            CatalogRow {
                kind: d.kind.clone().unwrap_or_else(|| "test".into()),
                code: d.code,
                name: d.name,
                loinc: d.loinc.unwrap_or_default(),
                department: d.department.unwrap_or_default(),
                specimen: format!(
                    "{} {}",
                    d.specimen_type.unwrap_or_default().replace('_', " "),
                    d.container.unwrap_or_default()
                )
                .trim()
                .to_owned(),
                units: d.units.unwrap_or_default(),
                version: e.version,
                retired: e.retired_at.is_some(),
            }
        })
        .collect();
    render(StatusCode::OK, &CatalogPage { nav, rows })
}

// ── the audit trail and the access log ──

#[derive(Deserialize)]
pub struct PageQuery {
    after: Option<i64>,
    verify: Option<String>,
}

pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub entity: String,
    pub reason: String,
    pub change: String,
    pub hash: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    nav: Nav,
    rows: Vec<AuditRow>,
    after: i64,
    next: Option<i64>,
    /// The chain's verification, when asked for: intact or where it breaks.
    verification: Option<(bool, String)>,
}

/// `GET /admin/audit`: the audit trail, oldest first from `after`; `?verify=1` walks the
/// hash chain.
pub async fn audit(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<PageQuery>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/admin").await;
    let after = q.after.unwrap_or(0).max(0);
    let rows = match state.app.audit_events(&s.actor, after, PAGE, None).await {
        Ok(r) => r,
        Err(e) => return app_error_page(&e),
    };
    let verification = if q.verify.is_some() {
        let audit = match state.app.verify_audit(&s.actor, None).await {
            Ok(r) => match &r.first_break {
                None => (
                    true,
                    format!(
                        "The chain is intact: {} entries, head #{} {}.",
                        r.rows, r.head_seq, r.head_hash
                    ),
                ),
                Some(b) => (
                    false,
                    format!("The chain breaks at entry #{}: {}.", b.seq, b.problem),
                ),
            },
            Err(e) => (false, message(&e)),
        };
        // The access log's chain (issue 16 item 4), in the same sentence.
        let access = match state.app.verify_access_log(&s.actor).await {
            Ok(r) => match &r.first_break {
                None => (
                    true,
                    format!(
                        "The access log's chain is intact: {} rows, head #{}.",
                        r.rows, r.head_seq
                    ),
                ),
                Some(b) => (
                    false,
                    format!(
                        "The access log's chain breaks at row #{}: {}.",
                        b.seq, b.problem
                    ),
                ),
            },
            Err(e) => (false, message(&e)),
        };
        Some((audit.0 && access.0, format!("{} {}", audit.1, access.1)))
    } else {
        None
    };
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let rows = rows
        .into_iter()
        .map(|r| {
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref().map(|v| v.to_string()).unwrap_or_default()
            };
            let old = show(&r.entry.old_value);
            let new = show(&r.entry.new_value);
            AuditRow {
                seq: r.seq,
                at: when(r.entry.at, &lab.tz),
                actor: format!(
                    "{}{}",
                    r.entry.actor_name,
                    r.entry
                        .actor_role
                        .as_deref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ),
                source: r.entry.source,
                action: r.entry.action,
                entity: format!("{} {}", r.entry.entity_type, r.entry.entity_id),
                reason: r.entry.reason.unwrap_or_default(),
                change: match (old.is_empty(), new.is_empty()) {
                    (true, true) => String::new(),
                    (true, false) => new,
                    (false, true) => format!("{old} → (none)"),
                    (false, false) => format!("{old} → {new}"),
                },
                hash: r.hash.chars().take(12).collect(),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &AuditPage {
            nav,
            rows,
            after,
            next,
            verification,
        },
    )
}

pub(crate) struct AccessRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub entity: String,
    pub patients: String,
}

#[derive(Template)]
#[template(path = "admin_access.html")]
struct AccessPage {
    nav: Nav,
    rows: Vec<AccessRow>,
    next: Option<i64>,
}

/// `GET /admin/access-log`: who read which patients' data, oldest first from `after`.
pub async fn access_log(
    State(state): State<AppState>,
    Extension(s): Extension<WebSession>,
    Query(q): Query<PageQuery>,
) -> Response {
    let (nav, lab) = nav(&state, &s, "/admin").await;
    let after = q.after.unwrap_or(0).max(0);
    let rows = match state.app.access_log(&s.actor, after, PAGE).await {
        Ok(r) => r,
        Err(e) => return app_error_page(&e),
    };
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let rows = rows
        .into_iter()
        .map(|r| AccessRow {
            id: r.id,
            at: when(r.at, &lab.tz),
            actor: r.actor_name,
            source: r.source,
            action: r.action,
            entity: format!("{} {}", r.entity_type, r.entity_id),
            patients: r
                .patient_ids
                .iter()
                .map(|p| format!("#{p}"))
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect();
    render(StatusCode::OK, &AccessPage { nav, rows, next })
}
