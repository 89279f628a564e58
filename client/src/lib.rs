//! Seedling's reference device client: what a phone app embeds (or ports)
//! to work offline and sync safely.
//!
//! * [`auth`] — sign-in, refresh, sign-out and the district's visit rules,
//!   with the rule for who may use the phone's store;
//! * [`tasks`] — the director's day: returned visits and due children;
//! * [`store`] — the local SQLite file: records (server copy and the
//!   user's view), the device clock, cursor and identity;
//! * [`edit`] — the local editing API (record a visit, change fields, add
//!   or remove needs and risk flags, delete), applied through `sync_core`;
//! * [`outbox`] — pending mutations, stored with the edit, removed only
//!   once the server's answer is recorded;
//! * [`transport`] — the [`transport::Transport`] trait and the REST
//!   [`transport::HttpTransport`];
//! * [`sync`] — the push-then-pull loop with retry, back-off and jitter;
//! * [`backoff`] — retry timing and an injectable sleeper;
//! * [`faulty`] — a transport wrapper that injects network faults;
//! * [`sim`] — the fleet simulator behind the `seedling-sim` binary;
//! * [`stats`] — latency percentiles and server memory readings for the
//!   simulator's and the benchmarks' reports;
//! * `fake` (feature `testing`) — an in-memory server for tests.
//!
//! `docs/CLIENT.md` explains how a phone app uses it.

pub mod auth;
pub mod backoff;
pub mod edit;
pub mod events;
#[cfg(feature = "testing")]
pub mod fake;
pub mod faulty;
mod local;
pub mod outbox;
pub mod sim;
pub mod stats;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod transport;

pub use auth::{Auth, AuthError, Session};
pub use backoff::{Backoff, Jitter, RecordingSleeper, Sleeper, TokioSleeper};
pub use edit::{Change, NewVisit};
pub use outbox::{Pending, Queued, Rejection};
pub use store::{LocalRecord, Store, StoreError};
pub use sync::{Divergence, SyncError, SyncOptions, SyncReport, Syncer};
pub use tasks::{ChildDue, DayTasks};
pub use transport::{HttpTransport, Transport, TransportError};
