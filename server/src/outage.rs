//! A database outage, logged once when it starts and once when it ends.
//!
//! While the database cannot be reached every request that needs it is
//! answered `503 database_unavailable` with `Retry-After`; logging each of
//! them would bury the one fact an operator needs (thousands of ERROR lines
//! a minute in a failover). The first refusal logs the outage with its
//! cause and starts a probe that pings the database every second; the first
//! ping that succeeds logs the end, how long it lasted and how many requests
//! were refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

/// How often the probe asks whether the database is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Marks an answer refused because the database could not be reached; the
/// request middleware hands it to [`DbOutage::refused`].
#[derive(Debug, Clone)]
pub struct DbUnreachable {
    pub cause: String,
}

/// The process's view of whether its database can be reached.
#[derive(Debug)]
pub struct DbOutage {
    db: DatabaseConnection,
    current: Mutex<Option<Outage>>,
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    since: Instant,
    refused: u64,
}

/// How an outage ended, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageEnded {
    pub lasted: Duration,
    pub refused: u64,
}

impl DbOutage {
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self {
            db,
            current: Mutex::new(None),
        })
    }

    /// Whether an outage is in progress.
    pub fn in_progress(&self) -> bool {
        self.lock().is_some()
    }

    /// A request was refused because the database could not be reached. The
    /// first refusal of an outage logs it and starts the probe.
    pub fn refused(self: &Arc<Self>, cause: &str) {
        if self.note_refusal() {
            tracing::error!(
                cause,
                "database unreachable: requests that need it are answered 503 \
                 database_unavailable until it answers again"
            );
            let outage = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROBE_EVERY).await;
                    if crate::repo::ping(&outage.db).await.is_ok() {
                        break;
                    }
                }
                if let Some(ended) = outage.end() {
                    tracing::warn!(
                        lasted_secs = ended.lasted.as_secs_f64(),
                        refused = ended.refused,
                        "database reachable again"
                    );
                }
            });
        }
    }

    /// Counts a refusal; true when it starts an outage.
    fn note_refusal(&self) -> bool {
        let mut current = self.lock();
        match current.as_mut() {
            Some(outage) => {
                outage.refused += 1;
                false
            }
            None => {
                *current = Some(Outage {
                    since: Instant::now(),
                    refused: 1,
                });
                true
            }
        }
    }

    /// Ends the outage in progress, if any.
    fn end(&self) -> Option<OutageEnded> {
        self.lock().take().map(|outage| OutageEnded {
            lasted: outage.since.elapsed(),
            refused: outage.refused,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outage>> {
        // The guarded value is two numbers: a panic elsewhere cannot leave it
        // half-written.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn outage() -> Arc<DbOutage> {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        DbOutage::new(db)
    }

    #[tokio::test]
    async fn an_outage_starts_once_counts_every_refusal_and_ends_once() {
        let outage = outage().await;
        assert!(outage.note_refusal(), "the first refusal starts the outage");
        assert!(!outage.note_refusal());
        assert!(!outage.note_refusal());
        assert!(outage.in_progress());
        let ended = outage.end().expect("an outage in progress");
        assert_eq!(ended.refused, 3);
        assert_eq!(outage.end(), None, "it ends once");
        assert!(outage.note_refusal(), "a later refusal starts a new outage");
    }

    #[tokio::test]
    async fn the_probe_ends_the_outage_when_the_database_answers() {
        let outage = outage().await;
        outage.refused("connection reset");
        assert!(outage.in_progress());
        for _ in 0..100 {
            tokio::time::sleep(PROBE_EVERY / 10).await;
            if !outage.in_progress() {
                return;
            }
        }
        panic!("the probe did not see the database answer");
    }
}
