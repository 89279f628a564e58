//! Live "your scope changed" pokes for online devices
//! (`GET /api/v1/sync/events`, docs/SYNC-PROTOCOL.md §4c).
//!
//! A poke names the org units (villages, towns, districts) whose scopes a
//! committed change touched, and nothing else: no record, no field. The
//! device answers it with a pull, so the pull stays the one place records
//! leave the server and the scope rules live in one place.
//!
//! Pokes come from the change log, which every writer appends to:
//!
//! - on PostgreSQL, [`crate::repo::change_log::append`] also calls
//!   `pg_notify` inside the writer's transaction. PostgreSQL delivers it
//!   at COMMIT, to every server process that `LISTEN`s, and never for a
//!   transaction that rolled back. A listener that lost its connection
//!   reconnects and pokes every stream once, for what it may have missed.
//! - on SQLite one process owns the file and commits one writer at a
//!   time, so the log's sequence is its commit order: a watcher reads the
//!   rows past the last one it saw every [`SQLITE_POLL`].
//!
//! Each process holds at most `max_event_streams` streams open; each ends
//! when its access token expires (the device reconnects with a new one) or
//! when the process shuts down.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use uuid::Uuid;

use crate::repo;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "seedling_changes";
/// How often the SQLite watcher reads the change log.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);
/// Most org units one notification names; a change touching more pokes
/// every stream (PostgreSQL caps a payload at 8,000 bytes).
const MAX_UNITS: usize = 200;
/// Pokes a slow stream may fall behind by before it is poked once for all.
const BACKLOG: usize = 256;

/// What changed, as far as a device needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poke {
    /// The scopes rooted at these org units.
    Units(Arc<BTreeSet<Uuid>>),
    /// Possibly any scope (too many units to name, or notifications lost).
    All,
}

impl Poke {
    /// Whether a device whose scope is rooted at `root` should pull.
    pub fn reaches(&self, root: Uuid) -> bool {
        match self {
            Self::Units(units) => units.contains(&root),
            Self::All => true,
        }
    }

    /// The notification payload: the units' ids (simple form) separated
    /// by commas, or `*`.
    pub fn payload(units: &BTreeSet<Uuid>) -> String {
        if units.len() > MAX_UNITS {
            return "*".to_owned();
        }
        units
            .iter()
            .map(|id| id.simple().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads a payload; one it cannot read pokes every stream.
    pub fn parse(payload: &str) -> Self {
        let units: Option<BTreeSet<Uuid>> = payload
            .split(',')
            .map(|id| Uuid::try_parse(id.trim()).ok())
            .collect();
        match units {
            Some(units) if payload != "*" => Self::Units(Arc::new(units)),
            _ => Self::All,
        }
    }
}

/// The process's pokes and its open streams.
#[derive(Debug)]
pub struct Events {
    pokes: broadcast::Sender<Poke>,
    streams: Arc<Semaphore>,
    max_streams: usize,
    closing: watch::Sender<bool>,
}

/// One open stream's place: its pokes, and a signal when the process
/// shuts down. The slot is given back when it is dropped.
#[derive(Debug)]
pub struct Subscription {
    pub pokes: broadcast::Receiver<Poke>,
    pub closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

impl Events {
    pub fn new(max_streams: usize) -> Self {
        Self {
            pokes: broadcast::channel(BACKLOG).0,
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            closing: watch::channel(false).0,
        }
    }

    /// A place for one more stream, or `None` when all are taken.
    pub fn subscribe(&self) -> Option<Subscription> {
        let slot = Arc::clone(&self.streams).try_acquire_owned().ok()?;
        Some(Subscription {
            pokes: self.pokes.subscribe(),
            closing: self.closing.subscribe(),
            _slot: slot,
        })
    }

    /// Pokes every stream of this process.
    pub fn publish(&self, poke: Poke) {
        // No stream open is no error.
        let _ = self.pokes.send(poke);
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.max_streams - self.streams.available_permits()
    }

    /// Ends every stream (the process is shutting down).
    pub fn close(&self) {
        let _ = self.closing.send(true);
    }
}

/// Starts what feeds the pokes: the `LISTEN` loop on PostgreSQL, the
/// change-log watcher on SQLite. It runs until `stop` turns true.
pub fn spawn(
    events: Arc<Events>,
    db: DatabaseConnection,
    database_url: String,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let feed = async {
            match db.get_database_backend() {
                DatabaseBackend::Postgres => listen(&events, &database_url).await,
                _ => watch_log(&events, &db).await,
            }
        };
        tokio::select! {
            () = feed => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    })
}

/// `LISTEN`s on [`CHANNEL`], reconnecting after a failure; after a
/// reconnection every stream is poked once.
async fn listen(events: &Events, database_url: &str) {
    let mut wait = Duration::from_millis(200);
    loop {
        match PgListener::connect(database_url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    wait = Duration::from_millis(200);
                    // Whatever committed while nobody listened.
                    events.publish(Poke::All);
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(note)) => events.publish(Poke::parse(note.payload())),
                            // The connection was lost; the next call reconnects.
                            Ok(None) => events.publish(Poke::All),
                            Err(err) => {
                                tracing::debug!(error = %err, "events: the LISTEN connection failed");
                                break;
                            }
                        }
                    }
                }
                Err(err) => tracing::debug!(error = %err, "events: LISTEN failed"),
            },
            Err(err) => tracing::debug!(error = %err, "events: cannot connect to LISTEN"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Reads the change log's new rows every [`SQLITE_POLL`] and pokes their
/// units.
async fn watch_log(events: &Events, db: &DatabaseConnection) {
    let mut last = loop {
        match repo::change_log::head(db).await {
            Ok(head) => break head,
            Err(err) => {
                tracing::debug!(error = %err, "events: cannot read the change log's head");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut tick = tokio::time::interval(SQLITE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match repo::change_log::units_after(db, last).await {
            Ok((head, units)) => {
                last = head;
                if !units.is_empty() {
                    events.publish(Poke::Units(Arc::new(units)));
                }
            }
            Err(err) => tracing::debug!(error = %err, "events: cannot read the change log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_the_units_and_reads_back() {
        let units: BTreeSet<Uuid> = [Uuid::from_u128(1), Uuid::from_u128(2)].into();
        let payload = Poke::payload(&units);
        assert_eq!(Poke::parse(&payload), Poke::Units(Arc::new(units)));
        assert!(Poke::parse(&payload).reaches(Uuid::from_u128(2)));
        assert!(!Poke::parse(&payload).reaches(Uuid::from_u128(3)));
    }

    #[test]
    fn too_many_units_or_an_unreadable_payload_pokes_everyone() {
        let many: BTreeSet<Uuid> = (0..=MAX_UNITS as u128).map(Uuid::from_u128).collect();
        assert_eq!(Poke::payload(&many), "*");
        assert_eq!(Poke::parse("*"), Poke::All);
        assert_eq!(Poke::parse("not-a-uuid"), Poke::All);
        assert!(Poke::All.reaches(Uuid::from_u128(9)));
    }

    #[test]
    fn streams_are_bounded_and_give_their_slot_back() {
        let events = Events::new(2);
        let first = events.subscribe().expect("a slot");
        let _second = events.subscribe().expect("a slot");
        assert!(events.subscribe().is_none(), "only two");
        assert_eq!(events.open_streams(), 2);
        drop(first);
        assert_eq!(events.open_streams(), 1);
        assert!(events.subscribe().is_some());
    }
}
