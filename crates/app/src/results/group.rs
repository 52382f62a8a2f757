//! Result batches of concurrent requests posted together.
//!
//! Every `POST /api/v1/results` (and every result entered in the web UI) hands its batch to one
//! worker and waits for the answer. The worker takes every batch waiting (up to
//! [`GROUP_ITEMS`] results) into **one transaction**: the batches of one user one after
//! another are posted by one call of the set-based result entry (`batch.rs`: one set of reads
//! for all of them, multi-row writes), then one commit, and only then is each request
//! answered. The writer is serialised (one writer connection, BENCHMARKS.md), so what counts
//! is how long each result holds it: one group's statements instead of each batch's.
//!
//! **The answers are those of posting the batches one after another, in the order they
//! arrived**, as a batch's own answers are those of posting its items one by one. A group
//! whose shared transaction fails is posted one batch at a time, so one batch's failure never
//! refuses another's results.
//!
//! **A request that goes away does not stop its batch** (as an instrument message's
//! connection does not, `connections/group.rs`): the worker posts it whole or not at all; the
//! client, sending the batch again, is answered `duplicate` for each result stored. A request
//! with an `Idempotency-Key` is posted on its own task instead, because its commit must mark
//! the key's claim applied in the same transaction.

use tokio::sync::{mpsc, oneshot};

use super::{ResultInput, ResultOutcome};
use crate::worker::{GroupStats, WorkQueue, next_group};
use crate::{Actor, App, AppError, AppResult};

/// At most this many results in one group (a larger batch is posted alone).
pub(crate) const GROUP_ITEMS: usize = 1000;

/// One request's batch handed to the worker, with where its answer goes.
pub(crate) struct Job {
    actor: Actor,
    items: Vec<ResultInput>,
    reply: oneshot::Sender<AppResult<Vec<ResultOutcome>>>,
}

/// The worker's queue.
pub(crate) type ResultQueue = WorkQueue<Job>;

impl App {
    /// Hands the batch to the worker and waits for its answers.
    pub(super) async fn post_results_queued(
        &self,
        actor: &Actor,
        items: Vec<ResultInput>,
    ) -> AppResult<Vec<ResultOutcome>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            actor: actor.clone(),
            items,
            reply,
        };
        let app = self.clone();
        self.result_queue
            .send(job, move |rx| results_worker(app.clone(), rx))
            .await
            .map_err(|_| AppError::Internal("the result worker cannot start".into()))?;
        answer
            .await
            .map_err(|_| AppError::Internal("the result worker stopped".into()))?
    }

    /// A group: together when it can, else one batch at a time.
    async fn post_result_group(&self, jobs: &[Job]) -> Vec<AppResult<Vec<ResultOutcome>>> {
        if jobs.len() > 1 {
            match self.post_results_together(jobs).await {
                Ok(answers) => {
                    self.result_queue.count(jobs.len(), true);
                    return answers.into_iter().map(Ok).collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, batches = jobs.len(),
                        "result batches could not be stored together; storing each alone");
                }
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            out.push(self.post_results_alone(&j.actor, &j.items).await);
        }
        self.result_queue.count(jobs.len(), false);
        out
    }

    /// How the worker has posted result batches (groups and batches alone).
    pub fn result_group_stats(&self) -> GroupStats {
        self.result_queue.stats()
    }

    /// The group in one transaction: each run of one user's batches by one call of result
    /// entry, every answer counted within its own batch.
    async fn post_results_together(&self, jobs: &[Job]) -> AppResult<Vec<Vec<ResultOutcome>>> {
        let settings = self.entry_settings().await?;
        let mut tx = self.store.begin().await?;
        let mut answers = Vec::with_capacity(jobs.len());
        let mut i = 0;
        while i < jobs.len() {
            let actor = &jobs[i].actor;
            let run = jobs[i..].iter().take_while(|j| j.actor == *actor).count();
            let mut items = Vec::new();
            let mut starts = Vec::with_capacity(run);
            for j in &jobs[i..i + run] {
                starts.push(items.len());
                items.extend(j.items.iter().cloned());
            }
            let mut posted = self
                .post_results_in_parts(&mut tx, actor, &items, &starts, settings)
                .await?
                .into_iter();
            for j in &jobs[i..i + run] {
                answers.push(posted.by_ref().take(j.items.len()).collect());
            }
            i += run;
        }
        tx.commit().await?;
        Ok(answers)
    }
}

/// Takes every batch waiting, posts them as a group, answers each.
async fn results_worker(app: App, mut rx: mpsc::Receiver<Job>) {
    let mut held = None;
    while let Some(jobs) = next_group(&mut rx, &mut held, GROUP_ITEMS, |j| j.items.len()).await {
        let answers = app.post_result_group(&jobs).await;
        for (job, answer) in jobs.into_iter().zip(answers) {
            // The request may be gone: its batch is stored all the same.
            let _ = job.reply.send(answer);
        }
    }
}
