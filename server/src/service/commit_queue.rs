//! The queue behind group commit: writes that arrive while another batch
//! commits wait here, and whoever finds no batch committing takes the turn
//! and commits, in a task of its own, what waits (so a client that hangs
//! up cannot cancel its neighbours' commit). Pushes
//! (`sync::push::group`) and audited reads (`audit::reads`) each have one.
//!
//! The queue holds requests in flight in this process only, never state.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedMutexGuard, oneshot};

/// Jobs waiting in arrival order, and the turn to commit them.
#[derive(Debug)]
pub struct CommitQueue<J> {
    waiting: Mutex<Vec<J>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<J> Default for CommitQueue<J> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Vec::new()),
            turn: Arc::default(),
        }
    }
}

impl<J> CommitQueue<J> {
    /// Jobs queued and not yet taken into a batch.
    pub fn waiting(&self) -> usize {
        self.lock_waiting().len()
    }

    /// Whether a batch is being committed now.
    pub fn committing(&self) -> bool {
        self.turn.try_lock().is_err()
    }

    fn lock_waiting(&self) -> MutexGuard<'_, Vec<J>> {
        // A panic while holding this lock cannot leave the list half-made.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next batch: the waiting jobs in arrival order whose sizes add up
    /// to at most `max` (at least one job, whatever its size).
    pub fn take(&self, max: usize, size: impl Fn(&J) -> usize) -> Vec<J> {
        let mut waiting = self.lock_waiting();
        let (mut total, mut take) = (0, 0);
        for job in waiting.iter() {
            if take > 0 && total + size(job) > max {
                break;
            }
            total += size(job);
            take += 1;
        }
        waiting.drain(..take).collect()
    }

    /// Queues `job`, then waits for its answer on `answered`. Should the
    /// turn come first, `drain` is spawned with it (to commit batches
    /// until none waits, then drop the turn) and the answer awaited. `Err`
    /// when the job was dropped unanswered.
    pub async fn join<T, F>(
        &self,
        job: J,
        mut answered: oneshot::Receiver<T>,
        drain: impl FnOnce(OwnedMutexGuard<()>) -> F,
    ) -> Result<T, oneshot::error::RecvError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.lock_waiting().push(job);
        tokio::select! {
            biased;
            result = &mut answered => return result,
            turn = self.turn.clone().lock_owned() => {
                tokio::spawn(drain(turn));
            }
        }
        answered.await
    }
}
