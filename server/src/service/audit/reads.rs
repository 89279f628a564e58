//! Reads put on the trail together: entries that wait while another batch
//! commits are appended in one transaction, under one take of the writer
//! lock, each waiter answered once its entry has committed.
//!
//! A pull page, a report or a review read is answered only after its entry
//! is on the trail. Appended one transaction each, the reads of a burst
//! queue one by one behind the audit writer lock (and on SQLite behind the
//! one writer), each paying a commit. Here the first to find no batch
//! committing takes the turn and commits, in a task of its own, every entry
//! waiting (up to [`BATCH_ENTRIES`]), then the next batch, until none is
//! waiting; the chain is the same as if they had been appended one by one,
//! in arrival order. When a batch's transaction fails, its entries are
//! appended again one by one until one of them fails too; since no entry
//! fails for its own content, the rest are then answered that error at once.
//! Every row of a batch carries the batch's time.
//!
//! The queue holds requests in flight in this process only; server
//! processes side by side each batch their own reads, and the writer lock
//! orders their appends as before.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::Entry;
use crate::error::{AppError, AppResult};
use crate::service::commit_queue::CommitQueue;
use crate::state::AppState;

/// The most entries one transaction appends.
pub const BATCH_ENTRIES: usize = 500;

/// The read entries waiting to be appended in this process.
#[derive(Debug, Default)]
pub struct ReadAudits {
    queue: CommitQueue<Waiting>,
    batches: AtomicU64,
    batched_entries: AtomicU64,
}

#[derive(Debug)]
struct Waiting {
    entry: Entry,
    answer: oneshot::Sender<AppResult<()>>,
}

impl ReadAudits {
    /// Entries queued and not yet taken into a batch.
    pub fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// Whether a batch is being appended now.
    pub fn committing(&self) -> bool {
        self.queue.committing()
    }

    /// Batches of two or more entries appended together, and the entries
    /// in them, since the process started.
    pub fn batched(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Acquire),
            self.batched_entries.load(Ordering::Acquire),
        )
    }
}

/// Appends `entry` with whatever other entries are waiting, and returns once
/// it has committed.
pub(super) async fn append(state: &AppState, entry: Entry) -> AppResult<()> {
    let (answer, answered) = oneshot::channel();
    let drainer = state.clone();
    state
        .read_audits
        .queue
        .join(Waiting { entry, answer }, answered, |turn| {
            drain(drainer, turn)
        })
        .await
        .unwrap_or_else(|_| Err(abandoned()))
}

fn abandoned() -> AppError {
    AppError::Internal("the audit entry's batch ended without an answer".to_owned())
}

/// Appends batches until no entry is waiting, holding the turn.
async fn drain(state: AppState, turn: OwnedMutexGuard<()>) {
    loop {
        let batch = state.read_audits.queue.take(BATCH_ENTRIES, |_| 1);
        if batch.is_empty() {
            break;
        }
        commit_batch(&state, batch).await;
    }
    drop(turn);
}

async fn commit_batch(state: &AppState, batch: Vec<Waiting>) {
    if batch.len() > 1 {
        let entries = batch.iter().map(|w| w.entry.clone()).collect();
        match commit(state, entries).await {
            Ok(()) => {
                let queue = &state.read_audits;
                queue.batches.fetch_add(1, Ordering::AcqRel);
                queue
                    .batched_entries
                    .fetch_add(batch.len() as u64, Ordering::AcqRel);
                for waiting in batch {
                    // The reader may have hung up; its entry is on the trail.
                    let _ = waiting.answer.send(Ok(()));
                }
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, entries = batch.len(), "a batch of audit entries failed; appending each alone");
            }
        }
    }
    // No entry fails for its own content: once one fails alone, the trail
    // cannot be written now, and the rest are answered at once rather than
    // each waiting out its own timeout.
    let mut failed: Option<String> = None;
    for waiting in batch {
        let result = match &failed {
            Some(message) => Err(AppError::Internal(format!(
                "the audit trail cannot be written now: {message}"
            ))),
            None => commit(state, vec![waiting.entry]).await,
        };
        if let Err(err) = &result {
            failed.get_or_insert_with(|| err.to_string());
        }
        let _ = waiting.answer.send(result);
    }
}

/// One write transaction holding no change-log lock (the lock order,
/// change log then audit log, holds).
async fn commit(state: &AppState, entries: Vec<Entry>) -> AppResult<()> {
    let txn = crate::repo::begin_write(&state.db).await?;
    super::record_many_at(&txn, entries, Utc::now()).await?;
    txn.commit().await?;
    Ok(())
}
