//! Group commit: pushes that arrive while another is committing are
//! committed together, in one transaction.
//!
//! Every push joins the queue, then waits for either its answer or the
//! writer's turn. Whoever gets the turn takes the waiting pushes (up to
//! [`GROUP_MUTATIONS`] mutations) and commits them in a task of its own, so
//! a client that hangs up cannot cancel its neighbours' commit; the task
//! keeps taking groups until the queue is empty, then gives the turn back.
//! A push that finds its answer waiting never takes the turn.
//!
//! Inside a group the pushes are applied one after the other, in arrival
//! order, through one [`Batch`]: a later push sees what the earlier ones
//! changed, exactly as if they had committed one by one, and a mutation id
//! sent twice in a group (a phone's resend racing its original) finds the
//! first one's stored outcome. Each push is answered with exactly its own
//! results and gets its own audit entry. When the group's transaction
//! fails, nothing of it was written and each push is committed again on
//! its own, so one push's failure never becomes its neighbours'.
//!
//! The queue lives in this process only and holds requests in flight, not
//! sync state: server processes side by side each group their own pushes,
//! and the change-log writer lock orders their commits as before.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use sync_core::protocol::{Mutation, PROTOCOL_VERSION, PushResponse};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::{Acting, Batch, apply};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::service::audit;
use crate::service::commit_queue::CommitQueue;
use crate::service::sync::now_ms;
use crate::state::AppState;

/// The most mutations one group commits (a push larger than this still
/// commits, alone).
pub const GROUP_MUTATIONS: usize = 2_000;

/// The pushes waiting to be committed in this process.
#[derive(Debug, Default)]
pub struct PushQueue {
    queue: CommitQueue<Job>,
    groups: AtomicU64,
    grouped_pushes: AtomicU64,
    failed_groups: AtomicU64,
}

#[derive(Debug)]
struct Job {
    caller: AuthUser,
    mutations: Vec<Mutation>,
    answer: oneshot::Sender<AppResult<PushResponse>>,
}

impl PushQueue {
    /// Pushes queued and not yet taken into a group.
    pub fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// Whether a group is being committed now.
    pub fn committing(&self) -> bool {
        self.queue.committing()
    }

    /// Groups of two or more pushes committed together, and the pushes in
    /// them, since the process started.
    pub fn grouped(&self) -> (u64, u64) {
        (
            self.groups.load(Ordering::Acquire),
            self.grouped_pushes.load(Ordering::Acquire),
        )
    }

    /// Groups whose transaction failed, so that each push was committed
    /// on its own, since the process started.
    pub fn failed_groups(&self) -> u64 {
        self.failed_groups.load(Ordering::Acquire)
    }
}

/// Commits `mutations` (already in the order to apply) for `caller`, with
/// whatever other pushes are waiting, and answers this push's own results.
pub(super) async fn commit(
    state: &AppState,
    caller: &AuthUser,
    mutations: Vec<Mutation>,
) -> AppResult<PushResponse> {
    let (answer, answered) = oneshot::channel();
    let job = Job {
        caller: *caller,
        mutations,
        answer,
    };
    let drainer = state.clone();
    state
        .pushes
        .queue
        .join(job, answered, |turn| drain(drainer, turn))
        .await
        .unwrap_or_else(|_| Err(abandoned()))
}

fn abandoned() -> AppError {
    AppError::Internal("the push's group commit ended without an answer".to_owned())
}

/// Commits groups until no push is waiting, holding the writer's turn.
async fn drain(state: AppState, turn: OwnedMutexGuard<()>) {
    loop {
        let group = state
            .pushes
            .queue
            .take(GROUP_MUTATIONS, |job| job.mutations.len());
        if group.is_empty() {
            break;
        }
        commit_group(&state, group).await;
    }
    drop(turn);
}

async fn commit_group(state: &AppState, mut group: Vec<Job>) {
    if group.len() > 1 {
        let pushes: Vec<(&AuthUser, &[Mutation])> = group
            .iter()
            .map(|job| (&job.caller, job.mutations.as_slice()))
            .collect();
        match push_together(state, &pushes).await {
            Ok(responses) => {
                let queue = &state.pushes;
                queue.groups.fetch_add(1, Ordering::AcqRel);
                queue
                    .grouped_pushes
                    .fetch_add(group.len() as u64, Ordering::AcqRel);
                for (job, response) in group.into_iter().zip(responses) {
                    // The phone may have hung up; its outcomes are stored.
                    let _ = job.answer.send(Ok(response));
                }
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, pushes = group.len(), "a group of pushes failed; committing each alone");
                state.pushes.failed_groups.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    for job in group.drain(..) {
        let result = super::push_alone(state, &job.caller, &job.mutations).await;
        let _ = job.answer.send(result);
    }
}

/// Several pushes in one transaction: one prefetch for all, each push's
/// mutations applied in turn, one flush, one change-log append and an
/// audit entry per push (lock order: change log, then audit log).
pub(super) async fn push_together(
    state: &AppState,
    pushes: &[(&AuthUser, &[Mutation])],
) -> AppResult<Vec<PushResponse>> {
    let txn = crate::repo::begin_write(&state.db).await?;
    let mut batch = Batch::new();
    let all: Vec<&Mutation> = pushes
        .iter()
        .flat_map(|(_, mutations)| mutations.iter())
        .collect();
    batch.prefetch(&txn, &all).await?;
    let mut answered = Vec::with_capacity(pushes.len());
    let mut entries = Vec::with_capacity(pushes.len());
    for (caller, mutations) in pushes {
        let first_written = batch.written.len();
        let mut results = Vec::with_capacity(mutations.len());
        for mutation in *mutations {
            results
                .push(apply(&txn, caller, mutation.clone(), Acting::AsCaller, &mut batch).await?);
        }
        entries.extend(batch.audit_entry_since(first_written, caller));
        answered.push(results);
    }
    let now = Utc::now();
    batch.flush(&txn).await?;
    batch.append_changes(&txn, now).await?;
    // After the change-log append: the lock order is change log, then audit log.
    for entry in entries {
        audit::record_at(&txn, entry, now).await?;
    }
    txn.commit().await?;
    Ok(answered
        .into_iter()
        .map(|results| PushResponse {
            protocol_version: PROTOCOL_VERSION,
            server_hlc: batch.clock.tick(now_ms(now)),
            results,
        })
        .collect())
}
