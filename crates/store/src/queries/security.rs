//! Second factors (TOTP secrets and recovery codes) and role grants awaiting a second
//! administrator.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::{MfaRecord, RoleGrantRecord};

#[derive(sqlx::FromRow)]
struct MfaRow {
    user_id: i64,
    secret: String,
    enrolled_at: i64,
    confirmed_at: Option<i64>,
    last_step: Option<i64>,
    recovery_codes_left: i64,
}

pub(crate) async fn user_mfa<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
) -> StoreResult<Option<MfaRecord>> {
    let row = sqlx::query_as::<_, MfaRow>(
        "SELECT m.user_id, m.secret, m.enrolled_at, m.confirmed_at, m.last_step, \
         (SELECT COUNT(*) FROM mfa_recovery_codes c \
          WHERE c.user_id = m.user_id AND c.used_at IS NULL) AS recovery_codes_left \
         FROM user_mfa m WHERE m.user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(e)
    .await?;
    row.map(|r| {
        Ok(MfaRecord {
            user_id: r.user_id,
            secret: r.secret,
            enrolled_at: ts(r.enrolled_at)?,
            confirmed_at: opt_ts(r.confirmed_at)?,
            last_step: r.last_step,
            recovery_codes_left: r.recovery_codes_left,
        })
    })
    .transpose()
}

/// Starts (or restarts) a pending enrolment; false when a confirmed one exists.
pub(crate) async fn start_mfa<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    secret: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO user_mfa (user_id, secret, enrolled_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, \
         enrolled_at = excluded.enrolled_at, last_step = NULL \
         WHERE user_mfa.confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(secret)
    .bind(us(at))
    .execute(e)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Marks the time step `step` used, only if it is later than the last one used; with
/// `confirm`, the enrolment must be pending and becomes confirmed, otherwise it must be
/// confirmed. False: replayed, or not in that state.
pub(crate) async fn use_step<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    step: i64,
    confirm: Option<Timestamp>,
) -> StoreResult<bool> {
    let r = match confirm {
        Some(at) => {
            sqlx::query(
                "UPDATE user_mfa SET last_step = $2, confirmed_at = $3 \
                 WHERE user_id = $1 AND confirmed_at IS NULL \
                 AND (last_step IS NULL OR last_step < $2)",
            )
            .bind(user_id)
            .bind(step)
            .bind(us(at))
            .execute(e)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE user_mfa SET last_step = $2 \
                 WHERE user_id = $1 AND confirmed_at IS NOT NULL \
                 AND (last_step IS NULL OR last_step < $2)",
            )
            .bind(user_id)
            .bind(step)
            .execute(e)
            .await?
        }
    };
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn insert_recovery_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    code_hash: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
        .bind(user_id)
        .bind(code_hash)
        .execute(e)
        .await?;
    Ok(())
}

/// Uses a recovery code once; false when there is no such unused code.
pub(crate) async fn use_recovery_code<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    code_hash: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE mfa_recovery_codes SET used_at = $3 \
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(code_hash)
    .bind(us(at))
    .execute(e)
    .await?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn delete_recovery_codes<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(e)
        .await?;
    Ok(())
}

/// Removes a user's second factor; false when there was none.
pub(crate) async fn delete_mfa<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM user_mfa WHERE user_id = $1")
        .bind(user_id)
        .execute(e)
        .await?;
    Ok(r.rows_affected() > 0)
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: i64,
    user_id: i64,
    username: String,
    role: String,
    reason: String,
    requested_by: i64,
    requested_by_name: String,
    requested_at: i64,
    status: String,
    decided_by: Option<i64>,
    decided_by_name: Option<String>,
    decided_at: Option<i64>,
    decision_reason: Option<String>,
}

impl GrantRow {
    fn into_record(self) -> StoreResult<RoleGrantRecord> {
        Ok(RoleGrantRecord {
            id: self.id,
            user_id: self.user_id,
            username: self.username,
            role: self.role,
            reason: self.reason,
            requested_by: self.requested_by,
            requested_by_name: self.requested_by_name,
            requested_at: ts(self.requested_at)?,
            status: self.status,
            decided_by: self.decided_by,
            decided_by_name: self.decided_by_name,
            decided_at: opt_ts(self.decided_at)?,
            decision_reason: self.decision_reason,
        })
    }
}

macro_rules! grant_select {
    () => {
        "SELECT g.id, g.user_id, u.username, g.role, g.reason, g.requested_by, \
     r.username AS requested_by_name, g.requested_at, g.status, g.decided_by, \
     d.username AS decided_by_name, g.decided_at, g.decision_reason \
     FROM role_grants g JOIN users u ON u.id = g.user_id JOIN users r ON r.id = g.requested_by \
     LEFT JOIN users d ON d.id = g.decided_by"
    };
}

pub(crate) async fn role_grant<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
) -> StoreResult<Option<RoleGrantRecord>> {
    sqlx::query_as::<_, GrantRow>(concat!(grant_select!(), " WHERE g.id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await?
        .map(GrantRow::into_record)
        .transpose()
}

/// Grants, newest first; only the pending ones with `pending_only`.
pub(crate) async fn role_grants<'e, E: Executor<'e, Database = Db>>(
    e: E,
    pending_only: bool,
    limit: i64,
) -> StoreResult<Vec<RoleGrantRecord>> {
    sqlx::query_as::<_, GrantRow>(concat!(
        grant_select!(),
        " WHERE ($1 = 0 OR g.status = 'pending') ORDER BY g.id DESC LIMIT $2"
    ))
    .bind(i32::from(pending_only))
    .bind(limit)
    .fetch_all(e)
    .await?
    .into_iter()
    .map(GrantRow::into_record)
    .collect()
}

/// `Conflict` when the user already has a pending request.
pub(crate) async fn insert_role_grant<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    role: &str,
    reason: &str,
    requested_by: i64,
    at: Timestamp,
) -> StoreResult<i64> {
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO role_grants (user_id, role, reason, requested_by, requested_at, status) \
         VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING id",
    )
    .bind(user_id)
    .bind(role)
    .bind(reason)
    .bind(requested_by)
    .bind(us(at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Decides a pending grant; false when it was no longer pending.
pub(crate) async fn decide_role_grant<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    status: &str,
    decided_by: i64,
    reason: Option<&str>,
    at: Timestamp,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE role_grants SET status = $2, decided_by = $3, decided_at = $4, \
         decision_reason = $5 WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(decided_by)
    .bind(us(at))
    .bind(reason)
    .execute(e)
    .await?;
    Ok(r.rows_affected() > 0)
}
