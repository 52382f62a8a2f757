//! Idempotency keys (issue 9): a request sent again with the same `Idempotency-Key` (its
//! client lost the answer: a dropped connection, a timeout, a restart) is answered with the
//! first answer instead of being applied twice.
//!
//! A key belongs to a user. [`App::claim_request`] claims it before the request runs; while
//! the request runs, every transaction it commits marks the claim applied in that same
//! transaction (`aliquot_store::with_claim`); [`App::finish_request`] keeps the answer. A key
//! whose holder died before it applied anything is taken over after [`STALE_CLAIM`]; the
//! take-over changes the claim's token, so a holder that was only slow fails its commit
//! rather than apply the request a second time.

use aliquot_store::{RequestClaim, StoreError};
use jiff::SignedDuration;
use rand::RngCore;

use crate::{Actor, App, AppError, AppResult};

/// The name of the header, also the `field` of its errors.
pub const HEADER: &str = "Idempotency-Key";

/// A claim not applied for this long is presumed dead and may be taken over by a retry. Short
/// is safe: a take-over changes the token, so a holder that was only slow fails its commit.
pub const STALE_CLAIM: SignedDuration = SignedDuration::from_secs(30);

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Run it, holding this claim.
    Run(RequestClaim),
    /// It ran before: send this answer again.
    Replay {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
}

/// 1 to 255 printable ASCII characters (a UUID is the usual choice).
fn parse_key(key: &str) -> AppResult<&str> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(AppError::invalid(
            HEADER,
            "idempotency_key_invalid",
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
        ));
    }
    Ok(key)
}

fn busy(code: &'static str, message: &str) -> AppError {
    AppError::Conflict {
        field: Some(HEADER.into()),
        code,
        message: message.into(),
    }
}

impl App {
    /// Claims `key` for a request whose method, path and body hash to `fingerprint`.
    pub async fn claim_request(
        &self,
        actor: &Actor,
        key: &str,
        fingerprint: &str,
    ) -> AppResult<ClaimOutcome> {
        let key = parse_key(key)?;
        let Some(user_id) = actor.user_id else {
            return Err(AppError::Forbidden {
                message: "idempotency keys belong to logged-in users".into(),
            });
        };
        let now = self.clock.now();
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let in_progress = || {
            busy(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still running; retry later",
            )
        };
        let mut tx = self.store.begin().await?;
        let outcome = match tx.idempotency_by_key(user_id, key).await? {
            None => match tx
                .insert_idempotency(user_id, key, fingerprint, &token, now)
                .await
            {
                Ok(id) => ClaimOutcome::Run(RequestClaim { id, token }),
                Err(StoreError::Conflict(_)) => return Err(in_progress()),
                Err(e) => return Err(e.into()),
            },
            Some(r) if r.fingerprint != fingerprint => {
                return Err(AppError::invalid(
                    HEADER,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request",
                ));
            }
            Some(r) => match (r.status, r.body) {
                (Some(status), Some(body)) => ClaimOutcome::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    content_type: r.content_type,
                    body,
                },
                _ => {
                    let stale = r.claimed_at.checked_add(STALE_CLAIM).is_ok_and(|t| t < now);
                    if r.applied_at.is_some() {
                        return Err(if stale {
                            busy(
                                "idempotency_answer_lost",
                                "the request with this Idempotency-Key was applied, but its \
                                 answer was lost; look the result up instead of retrying",
                            )
                        } else {
                            in_progress()
                        });
                    }
                    if !stale
                        || !tx
                            .take_over_idempotency(r.id, &r.claim_token, &token, now)
                            .await?
                    {
                        return Err(in_progress());
                    }
                    ClaimOutcome::Run(RequestClaim { id: r.id, token })
                }
            },
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Keeps the answer of a claimed request. A server error is never kept as the answer: if
    /// the request changed nothing the key is given back, so that a retry runs it; if it did
    /// change something, the claim stays applied without an answer, and a retry is told so
    /// (`idempotency_answer_lost`) rather than shown a failure for a change that was made.
    pub async fn finish_request(
        &self,
        claim: &RequestClaim,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> AppResult<()> {
        let mut tx = self.store.begin().await?;
        if status >= 500 {
            tx.release_idempotency(claim.id, &claim.token).await?;
        } else {
            tx.complete_idempotency(
                claim.id,
                &claim.token,
                i64::from(status),
                content_type,
                body,
                self.clock.now(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
