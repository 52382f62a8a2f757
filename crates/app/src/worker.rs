//! A queue served by one worker task that takes every job waiting as one group.
//!
//! Used where many callers' writes are cheaper stored together in one transaction than each
//! in its own (instrument messages, `connections/group.rs`; result batches,
//! `results/group.rs`). The worker is started on first use and again if it stopped (a panic);
//! a caller hands its job over and waits for the answer on its own channel. **A caller that
//! goes away does not stop its job**: the worker owns it and runs it to its end, so what a
//! dropped caller handed over is either stored whole or not at all, never half.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Jobs waiting for the worker (beyond this a caller waits to hand its job over).
const QUEUE: usize = 4096;

/// How a worker has stored its jobs since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Transactions that stored several jobs together.
    pub groups: u64,
    /// Jobs stored in those.
    pub grouped: u64,
    /// Jobs stored in a transaction of their own.
    pub alone: u64,
}

/// The sending side of a worker's queue, and the worker's counters.
pub(crate) struct WorkQueue<J> {
    sender: Arc<Mutex<Option<mpsc::Sender<J>>>>,
    stats: Arc<Mutex<GroupStats>>,
}

impl<J> Default for WorkQueue<J> {
    fn default() -> Self {
        WorkQueue {
            sender: Arc::new(Mutex::new(None)),
            stats: Arc::default(),
        }
    }
}

impl<J> Clone for WorkQueue<J> {
    fn clone(&self) -> Self {
        WorkQueue {
            sender: Arc::clone(&self.sender),
            stats: Arc::clone(&self.stats),
        }
    }
}

impl<J> WorkQueue<J> {
    /// The worker's counters.
    pub(crate) fn stats(&self) -> GroupStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `jobs` stored together (`true`) or each alone.
    pub(crate) fn count(&self, jobs: usize, together: bool) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if together {
            s.groups += 1;
            s.grouped += jobs as u64;
        } else {
            s.alone += jobs as u64;
        }
    }
}

impl<J: Send + 'static> WorkQueue<J> {
    /// Hands `job` to the worker, starting it with `start` when none runs (a worker that
    /// stopped is replaced once). `Err` gives the job back when no worker takes it.
    pub(crate) async fn send<F, W>(&self, job: J, start: F) -> Result<(), J>
    where
        F: Fn(mpsc::Receiver<J>) -> W,
        W: Future<Output = ()> + Send + 'static,
    {
        let mut job = job;
        for _ in 0..2 {
            let sender = self.sender(&start);
            match sender.send(job).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(j)) => {
                    job = j;
                    self.reset(&sender);
                }
            }
        }
        Err(job)
    }

    fn sender<F, W>(&self, start: &F) -> mpsc::Sender<J>
    where
        F: Fn(mpsc::Receiver<J>) -> W,
        W: Future<Output = ()> + Send + 'static,
    {
        let mut slot = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return s.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(start(rx));
        *slot = Some(tx.clone());
        tx
    }

    fn reset(&self, stopped: &mpsc::Sender<J>) {
        let mut slot = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|s| s.same_channel(stopped)) {
            *slot = None;
        }
    }
}

/// The next group: the first job (waiting for it) and every job already waiting behind it
/// while the group's weight stays at most `max` (the first job always goes, whatever its
/// weight). `None` when every sender is gone.
pub(crate) async fn next_group<J>(
    rx: &mut mpsc::Receiver<J>,
    held: &mut Option<J>,
    max: usize,
    weight: impl Fn(&J) -> usize,
) -> Option<Vec<J>> {
    let first = match held.take() {
        Some(j) => j,
        None => rx.recv().await?,
    };
    let mut total = weight(&first);
    let mut jobs = vec![first];
    while total < max {
        match rx.try_recv() {
            Ok(j) if total + weight(&j) <= max => {
                total += weight(&j);
                jobs.push(j);
            }
            // Too heavy for this group: it starts the next one.
            Ok(j) => {
                *held = Some(j);
                break;
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_takes_what_waits_up_to_its_weight_and_keeps_the_rest_in_order() {
        let (tx, mut rx) = mpsc::channel(16);
        for w in [3usize, 4, 2, 9, 1] {
            tx.send(w).await.unwrap();
        }
        drop(tx);
        let mut held = None;
        let mut groups = Vec::new();
        while let Some(g) = next_group(&mut rx, &mut held, 9, |w| *w).await {
            groups.push(g);
        }
        assert_eq!(groups, vec![vec![3, 4, 2], vec![9], vec![1]]);
    }

    #[tokio::test]
    async fn a_stopped_worker_is_replaced() {
        let q: WorkQueue<u8> = WorkQueue::default();
        // A worker that stops at once (as one that panicked).
        q.send(1, |rx| async move { drop(rx) }).await.ok();
        let (seen_tx, mut seen) = mpsc::channel(1);
        let start = move |mut rx: mpsc::Receiver<u8>| {
            let seen_tx = seen_tx.clone();
            async move {
                while let Some(j) = rx.recv().await {
                    seen_tx.send(j).await.ok();
                }
            }
        };
        tokio::task::yield_now().await;
        assert!(q.send(2, start).await.is_ok());
        assert_eq!(seen.recv().await, Some(2));
    }
}
