//! The messages of every connection ingested together.
//!
//! Each connection hands its message to one ingest worker and waits for the answer. The
//! worker takes every message waiting (up to [`MAX_GROUP`]) into **one transaction**: the keys
//! of the whole group are looked up with one query, each message is read and matched, the
//! results of all of them are posted by one call of result entry (which reads and writes them
//! as set operations), and the messages are stored with their acknowledgements by one
//! multi-row statement; then one durable commit, and only then is each connection answered.
//! While a group is being stored the next one gathers, so the more connections send, the
//! larger the groups and the fewer statements and commits per message (BENCHMARKS.md).
//!
//! **The answers are those of ingesting the messages one by one, in the order they arrived.**
//! Messages of different instruments are posted in consecutive runs, each as its instrument,
//! in order. A message sent twice within one group is stored once: the second copy is
//! answered with the first one's stored answer, as a resend is. A group with a control sample
//! in it (QC posted through the instrument connection changes what later results are judged
//! with) is ingested one message at a time; so is a group whose shared transaction fails (one
//! message's failure must not refuse the others).
//!
//! **A connection that goes away does not stop its message:** the worker owns it and stores
//! it; the sender, resending under the same control id, gets the stored answer.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::AckFacts;
use super::ingest::{
    AckFn, Inbound, IngestOutcome, Lookups, Posted, Prepared, answered, finish_inbound, rejected,
    stored_answer,
};
use crate::results::ResultOutcome;
use crate::worker::{GroupStats, WorkQueue, next_group};
use crate::{App, AppError, AppResult};

/// At most this many messages in one transaction.
pub const MAX_GROUP: usize = 256;

/// One message handed to the worker, with where its answer goes.
pub(crate) struct Job {
    inbound: Inbound,
    ack: AckFn,
    reply: oneshot::Sender<AppResult<IngestOutcome>>,
}

/// The worker's queue.
pub(crate) type IngestQueue = WorkQueue<Job>;

impl App {
    /// Ingests a result message from a connection (see the module doc of `ingest`): posted,
    /// stored with the acknowledgement `ack` builds, committed, then answered. `Err` means
    /// nothing was stored: the edge answers "try again" (HL7 AR/CR without storing, ASTM
    /// NAK) and the sender resends.
    pub async fn ingest<F>(&self, inbound: &Inbound, ack: F) -> AppResult<IngestOutcome>
    where
        F: Fn(&AckFacts<'_>) -> Vec<u8> + Send + Sync + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inbound: inbound.clone(),
            ack: Arc::new(ack),
            reply,
        };
        let app = self.clone();
        self.ingest_queue
            .send(job, move |rx| ingest_worker(app.clone(), rx))
            .await
            .map_err(|_| AppError::Internal("the ingest worker cannot start".into()))?;
        answer
            .await
            .map_err(|_| AppError::Internal("the ingest worker stopped".into()))?
    }

    /// How the worker has ingested messages (groups and messages alone).
    pub fn ingest_stats(&self) -> GroupStats {
        self.ingest_queue.stats()
    }

    /// Ingests a group: together when it can, else one message at a time.
    async fn ingest_group(&self, jobs: &[Job]) -> Vec<AppResult<IngestOutcome>> {
        if jobs.len() > 1 {
            match self.ingest_together(jobs).await {
                Ok(Some(outcomes)) => {
                    self.ingest_queue.count(jobs.len(), true);
                    return outcomes.into_iter().map(Ok).collect();
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, messages = jobs.len(),
                        "a group of messages could not be stored together; storing each alone");
                }
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            out.push(self.ingest_alone(&j.inbound, &j.ack).await);
        }
        self.ingest_queue.count(jobs.len(), false);
        out
    }

    /// The group in one transaction (see the module doc); `None` when it must go one message
    /// at a time (a control sample in it).
    async fn ingest_together(&self, jobs: &[Job]) -> AppResult<Option<Vec<IngestOutcome>>> {
        let settings = self.entry_settings().await?;
        let mut tx = self.store.begin().await?;
        let keys: Vec<(String, String, String)> = jobs
            .iter()
            .map(|j| {
                (
                    j.inbound.protocol.as_str().to_owned(),
                    j.inbound.sender.clone(),
                    j.inbound.control_id.clone(),
                )
            })
            .collect();
        let stored = tx.interface_messages_by_keys(&keys).await?;
        enum Plan {
            Stored(Box<IngestOutcome>),
            /// The same key earlier in the group.
            SameAs(usize),
            New,
        }
        let mut first: HashMap<&(String, String, String), usize> = HashMap::new();
        let mut plans = Vec::with_capacity(jobs.len());
        for (i, (job, found)) in jobs.iter().zip(stored).enumerate() {
            plans.push(match found {
                Some(m) => Plan::Stored(Box::new(stored_answer(m, &job.inbound, &job.ack))),
                None => match first.get(&keys[i]) {
                    Some(&f) => Plan::SameAs(f),
                    None => {
                        first.insert(&keys[i], i);
                        Plan::New
                    }
                },
            });
        }
        // Every tube's patient, read once for the wrong-patient checks.
        let mut accessions: Vec<String> = jobs
            .iter()
            .zip(&plans)
            .filter(|(_, p)| matches!(p, Plan::New))
            .flat_map(|(j, _)| j.inbound.specimens.iter())
            .filter(|s| s.patient_ids.iter().any(|i| !i.trim().is_empty()))
            .map(|s| s.accession.trim().to_owned())
            .collect();
        accessions.sort_unstable();
        accessions.dedup();
        let mut lookups = Lookups::default();
        lookups.owners = Some(tx.tube_owners(&accessions).await?.into_iter().collect());
        // Each new message read and matched, in order.
        let mut prepared: Vec<Option<Prepared>> = Vec::with_capacity(jobs.len());
        for (job, plan) in jobs.iter().zip(&plans) {
            prepared.push(match plan {
                Plan::New if job.inbound.rejected.is_empty() => {
                    let p = self
                        .prepare_inbound(&mut tx, &mut lookups, &job.inbound)
                        .await?;
                    if !p.controls.is_empty() {
                        return Ok(None);
                    }
                    Some(p)
                }
                _ => None,
            });
        }
        // Their results posted in consecutive runs of one instrument, in order.
        let mut outcomes: Vec<Vec<ResultOutcome>> = jobs.iter().map(|_| Vec::new()).collect();
        let mut i = 0;
        while i < jobs.len() {
            let Some(actor) = prepared[i].as_ref().and_then(|p| p.actor.clone()) else {
                i += 1;
                continue;
            };
            let mut run = Vec::new();
            let mut items = Vec::new();
            let mut j = i;
            while j < jobs.len() {
                match prepared[j].as_ref() {
                    Some(p) if p.actor.as_ref() == Some(&actor) => {
                        run.push((j, p.items.len()));
                        items.extend(p.items.iter().cloned());
                    }
                    Some(p) if p.actor.is_some() => break,
                    _ => {}
                }
                j += 1;
            }
            let mut answered_items = if items.is_empty() {
                Vec::new()
            } else {
                self.post_results_in(&mut tx, &actor, &items, settings)
                    .await?
            }
            .into_iter();
            for (m, n) in run {
                outcomes[m] = answered_items
                    .by_ref()
                    .take(n)
                    .enumerate()
                    .map(|(k, o)| ResultOutcome { index: k, ..o })
                    .collect();
            }
            i = j;
        }
        // Stored with their acknowledgements in one statement.
        let now = self.now();
        let mut records = Vec::new();
        let mut answers: Vec<Option<IngestOutcome>> = Vec::with_capacity(jobs.len());
        for (k, job) in jobs.iter().enumerate() {
            if !matches!(plans[k], Plan::New) {
                answers.push(None);
                continue;
            }
            let posted: Posted = match prepared[k].take() {
                Some(p) => finish_inbound(&job.inbound, p, std::mem::take(&mut outcomes[k]), 0),
                None => rejected(&job.inbound),
            };
            let (record, outcome) = answered(&job.inbound, &job.ack, posted, now)?;
            records.push(record);
            answers.push(Some(outcome));
        }
        let ids = tx.insert_interface_messages(&records).await?;
        tx.commit().await?;
        let mut ids = ids.into_iter();
        for a in answers.iter_mut().flatten() {
            a.message_id = ids
                .next()
                .ok_or_else(|| AppError::Internal("a message's id is missing".into()))?;
        }
        let mut out = Vec::with_capacity(jobs.len());
        for (k, plan) in plans.into_iter().enumerate() {
            out.push(match plan {
                Plan::Stored(o) => *o,
                Plan::New => answers[k]
                    .take()
                    .ok_or_else(|| AppError::Internal("a message was not answered".into()))?,
                Plan::SameAs(f) => {
                    let o: &IngestOutcome = out
                        .get(f)
                        .ok_or_else(|| AppError::Internal("a message was not answered".into()))?;
                    IngestOutcome {
                        message_id: o.message_id,
                        repeated: true,
                        status: o.status.clone(),
                        posted: o.posted,
                        errors: o.errors.clone(),
                        ack: o.ack.clone(),
                    }
                }
            });
        }
        Ok(Some(out))
    }
}

/// Takes every message waiting, ingests them as a group, answers each.
async fn ingest_worker(app: App, mut rx: mpsc::Receiver<Job>) {
    let mut held = None;
    while let Some(jobs) = next_group(&mut rx, &mut held, MAX_GROUP, |_| 1).await {
        let answers = app.ingest_group(&jobs).await;
        for (job, answer) in jobs.into_iter().zip(answers) {
            // The connection may be gone: its message is stored all the same.
            let _ = job.reply.send(answer);
        }
    }
}
