//! Idempotency keys: claim, take over, mark applied, complete, release.

use jiff::Timestamp;
use sqlx::Executor;

use super::Db;
use crate::StoreResult;
use crate::backend::{opt_ts, ts, us};
use crate::records::IdempotencyRecord;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    user_id: i64,
    idem_key: String,
    fingerprint: String,
    claim_token: String,
    created_at: i64,
    claimed_at: i64,
    applied_at: Option<i64>,
    completed_at: Option<i64>,
    status: Option<i32>,
    content_type: Option<String>,
    body: Option<String>,
}

impl Row {
    fn into_record(self) -> StoreResult<IdempotencyRecord> {
        Ok(IdempotencyRecord {
            id: self.id,
            user_id: self.user_id,
            key: self.idem_key,
            fingerprint: self.fingerprint,
            claim_token: self.claim_token,
            created_at: ts(self.created_at)?,
            claimed_at: ts(self.claimed_at)?,
            applied_at: opt_ts(self.applied_at)?,
            completed_at: opt_ts(self.completed_at)?,
            status: self.status.map(i64::from),
            content_type: self.content_type,
            body: self.body,
        })
    }
}

pub(crate) async fn by_key<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    key: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    sqlx::query_as::<_, Row>(
        "SELECT id, user_id, idem_key, fingerprint, claim_token, created_at, claimed_at, \
         applied_at, completed_at, status, content_type, body \
         FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(e)
    .await?
    .map(Row::into_record)
    .transpose()
}

/// `Conflict` when the user already holds this key.
pub(crate) async fn insert<'e, E: Executor<'e, Database = Db>>(
    e: E,
    user_id: i64,
    key: &str,
    fingerprint: &str,
    token: &str,
    at: Timestamp,
) -> StoreResult<i64> {
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, claim_token, created_at, \
         claimed_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(user_id)
    .bind(key)
    .bind(fingerprint)
    .bind(token)
    .bind(us(at))
    .fetch_one(e)
    .await?;
    Ok(id)
}

/// Replaces a stale holder's token; false when someone else changed the claim first.
pub(crate) async fn take_over<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    old_token: &str,
    new_token: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET claim_token = $3, claimed_at = $4 \
         WHERE id = $1 AND claim_token = $2 AND applied_at IS NULL AND completed_at IS NULL",
    )
    .bind(id)
    .bind(old_token)
    .bind(new_token)
    .bind(us(at))
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the claim applied (in the transaction of the change); false when the claim is no
/// longer this holder's.
pub(crate) async fn mark_applied<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    token: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET applied_at = COALESCE(applied_at, $3) \
         WHERE id = $1 AND claim_token = $2 AND completed_at IS NULL",
    )
    .bind(id)
    .bind(token)
    .bind(us(at))
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Keeps the answer; false when the claim is no longer this holder's.
pub(crate) async fn complete<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    token: &str,
    status: i64,
    content_type: Option<&str>,
    body: &str,
    at: Timestamp,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET completed_at = $3, status = $4, content_type = $5, body = $6 \
         WHERE id = $1 AND claim_token = $2 AND completed_at IS NULL",
    )
    .bind(id)
    .bind(token)
    .bind(us(at))
    .bind(status as i32)
    .bind(content_type)
    .bind(body)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the key back (the request changed nothing and failed for a passing reason, so a
/// retry may run it); false when it was applied meanwhile or is another holder's.
pub(crate) async fn release<'e, E: Executor<'e, Database = Db>>(
    e: E,
    id: i64,
    token: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys \
         WHERE id = $1 AND claim_token = $2 AND applied_at IS NULL AND completed_at IS NULL",
    )
    .bind(id)
    .bind(token)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}
