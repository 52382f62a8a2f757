//! The idempotency claim of the request being served, if it came with an `Idempotency-Key`.
//!
//! The HTTP edge runs such a request inside [`with_claim`]; every write transaction committed
//! by that request's task then marks the claim *applied* in the same transaction (see
//! `Tx::commit`), so "this key's request changed something" is exactly as durable as the
//! change. A claim taken over by a retry (after the first holder was presumed dead) makes the
//! old holder's commit fail: the request is never applied twice.

use std::future::Future;

/// Which `idempotency_keys` row the current request holds, and with which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestClaim {
    pub id: i64,
    pub token: String,
}

tokio::task_local! {
    static CLAIM: RequestClaim;
}

/// Runs `f` holding `claim`: its commits mark the claim applied.
pub async fn with_claim<F: Future>(claim: RequestClaim, f: F) -> F::Output {
    CLAIM.scope(claim, f).await
}

/// Whether the current task holds a claim: its commits must run on this task.
pub fn held() -> bool {
    CLAIM.try_with(|_| ()).is_ok()
}

/// The claim held by the current task, if any.
pub(crate) fn current() -> Option<RequestClaim> {
    CLAIM.try_with(Clone::clone).ok()
}
