//! Separation of duties (issue 16 item 1): one administrator alone cannot make an
//! administrator or a director — not another account, and so not a second account of their
//! own that they then log in as.
//!
//! - Granting a role in [`PRIVILEGED_ROLES`] is a **request** (`request_role_grant`, with a
//!   reason) that a **second administrator** approves (`decide_role_grant`): the requester
//!   never decides their own request, and nobody decides a request for themselves. The role
//!   changes only on approval (the user's sessions are then revoked, as with any role change).
//! - `set_user_role` and `create_user` refuse a privileged role from the API and the web
//!   (409 `approval_required`): an account is created with another role, then the grant is
//!   requested.
//! - The console (`aliquot user add` on the server, [`Source::Cli`]) is not bound by it: it
//!   creates the first administrator, and is the way back when fewer than two administrators
//!   remain. Whoever runs it has the server itself (the database and the audit key); the
//!   audit trail names it `cli:<os user>`.
//! - Every request and decision is audited (`user.role_grant_request`,
//!   `user.role_grant_approve`, `user.role_grant_reject`); the grant stays readable
//!   (`GET /api/v1/role-grants`).

use aliquot_domain::auth::{Permission, Role};
use aliquot_store::RoleGrantRecord;
use jiff::Timestamp;
use serde_json::json;

use crate::{Actor, App, AppError, AppResult, Source, require_reason};

/// Roles granted only with a second administrator's approval.
pub const PRIVILEGED_ROLES: [Role; 2] = [Role::Admin, Role::Director];

/// Whether granting `role` needs a second administrator when `actor` grants it.
pub(crate) fn needs_approval(actor: &Actor, role: Role) -> bool {
    PRIVILEGED_ROLES.contains(&role) && actor.source != Source::Cli
}

pub(crate) fn approval_required(role: Role) -> AppError {
    AppError::Conflict {
        field: Some("role".into()),
        code: "approval_required",
        message: format!(
            "granting the {} role needs a second administrator: request it \
             (POST /api/v1/role-grants, or the users page) and another administrator approves",
            role.as_str()
        ),
    }
}

/// A role grant as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrantView {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: Timestamp,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub decision_reason: Option<String>,
}

impl From<RoleGrantRecord> for RoleGrantView {
    fn from(g: RoleGrantRecord) -> Self {
        RoleGrantView {
            id: g.id,
            user_id: g.user_id,
            username: g.username,
            role: g.role,
            reason: g.reason,
            requested_by: g.requested_by_name,
            requested_at: g.requested_at,
            status: g.status,
            decided_by: g.decided_by_name,
            decided_at: g.decided_at,
            decision_reason: g.decision_reason,
        }
    }
}

fn forbidden(message: &str) -> AppError {
    AppError::Forbidden {
        message: message.into(),
    }
}

impl App {
    /// Requests the administrator or director role for a user (never oneself), with a
    /// reason; a second administrator decides.
    pub async fn request_role_grant(
        &self,
        actor: &Actor,
        user_id: i64,
        role: &str,
        reason: Option<&str>,
    ) -> AppResult<RoleGrantView> {
        actor.require(Permission::UserManage)?;
        let requester = actor
            .user_id
            .ok_or_else(|| forbidden("a role grant is requested by a user"))?;
        if requester == user_id {
            return Err(forbidden("you cannot request a role for yourself"));
        }
        let role =
            Role::parse(role).map_err(|e| AppError::invalid("role", e.code(), e.to_string()))?;
        if !PRIVILEGED_ROLES.contains(&role) {
            return Err(AppError::invalid(
                "role",
                "role_not_privileged",
                format!(
                    "the {} role needs no approval: change it directly (PUT /api/v1/users/{{id}}/role)",
                    role.as_str()
                ),
            ));
        }
        let reason = require_reason(reason)?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let user = tx
            .user_by_id(user_id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        if user.role == role.as_str() {
            return Err(AppError::Conflict {
                field: Some("role".into()),
                code: "role_unchanged",
                message: format!("{} already has the {} role", user.username, role.as_str()),
            });
        }
        let id = tx
            .insert_role_grant(user_id, role.as_str(), &reason, requester, now)
            .await
            .map_err(|e| match e {
                aliquot_store::StoreError::Conflict(_) => AppError::Conflict {
                    field: None,
                    code: "grant_pending",
                    message: "a role grant for this user is already waiting for approval".into(),
                },
                other => other.into(),
            })?;
        tx.audit(self.entry(
            actor,
            "user.role_grant_request",
            "user",
            user_id,
            Some(json!({ "role": user.role })),
            Some(json!({ "grant_id": id, "role": role.as_str(), "status": "pending" })),
            Some(&reason),
        ));
        let grant = tx.role_grant(id).await?.ok_or(AppError::NotFound {
            entity: "role grant",
        })?;
        tx.commit().await?;
        Ok(grant.into())
    }

    /// Approves (the role changes and the user's sessions are revoked) or rejects a pending
    /// grant. Only another administrator than the requester, and never the grantee.
    pub async fn decide_role_grant(
        &self,
        actor: &Actor,
        grant_id: i64,
        approve: bool,
        reason: Option<&str>,
    ) -> AppResult<RoleGrantView> {
        actor.require(Permission::UserManage)?;
        let decider = actor
            .user_id
            .ok_or_else(|| forbidden("a role grant is decided by a user"))?;
        let reason = if approve {
            reason
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
        } else {
            // A rejection says why.
            Some(require_reason(reason)?)
        };
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let grant = tx.role_grant(grant_id).await?.ok_or(AppError::NotFound {
            entity: "role grant",
        })?;
        if grant.requested_by == decider {
            return Err(forbidden(
                "you requested this grant: another administrator decides it",
            ));
        }
        if grant.user_id == decider {
            return Err(forbidden("you cannot decide a role grant for yourself"));
        }
        if grant.status != "pending" {
            return Err(AppError::Conflict {
                field: None,
                code: "grant_decided",
                message: format!("this grant was already {}", grant.status),
            });
        }
        let status = if approve { "approved" } else { "rejected" };
        if !tx
            .decide_role_grant(grant_id, status, decider, reason.as_deref(), now)
            .await?
        {
            return Err(AppError::Conflict {
                field: None,
                code: "grant_decided",
                message: "this grant was decided meanwhile".into(),
            });
        }
        let user = tx
            .user_by_id(grant.user_id)
            .await?
            .ok_or(AppError::NotFound { entity: "user" })?;
        if approve {
            tx.set_user_role(grant.user_id, &grant.role).await?;
            tx.revoke_user_sessions(grant.user_id, None, now).await?;
        }
        tx.audit(self.entry(
            actor,
            if approve {
                "user.role_grant_approve"
            } else {
                "user.role_grant_reject"
            },
            "user",
            grant.user_id,
            Some(json!({ "role": user.role })),
            Some(json!({
                "grant_id": grant_id,
                "role": if approve { grant.role.as_str() } else { user.role.as_str() },
                "requested_role": grant.role,
                "requested_by": grant.requested_by_name,
                "status": status,
            })),
            reason.as_deref(),
        ));
        let decided = tx.role_grant(grant_id).await?.ok_or(AppError::NotFound {
            entity: "role grant",
        })?;
        tx.commit().await?;
        Ok(decided.into())
    }

    /// Role grants, newest first (`user.read`); only pending ones with `pending_only`.
    pub async fn role_grants(
        &self,
        actor: &Actor,
        pending_only: bool,
    ) -> AppResult<Vec<RoleGrantView>> {
        actor.require(Permission::UserRead)?;
        Ok(self
            .store
            .role_grants(pending_only, 500)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
