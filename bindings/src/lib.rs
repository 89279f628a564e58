//! `seedling-ffi`: the reference device client (`seedling-client`: store,
//! outbox, sync loop, the director's day) and sync-core's clock and
//! due-date rules, for Kotlin (Android), Swift (iOS) and Python, through
//! uniffi (proc-macro mode, library-mode generation).
//!
//! A thin wrapper: every decision is made by `seedling-client` or
//! `sync-core`; this crate converts types (ids and dates as text, JSON
//! values as JSON text), runs the client's async calls on its own tokio
//! runtime, and maps errors to one typed [`SeedlingError`].
//!
//! * [`client`] — the [`client::SeedlingClient`] object an app opens on a
//!   SQLite file;
//! * [`core`] — the pure functions: [`core::HlcClock`], HLC text, the
//!   district's day, `due_date` / `due_status`;
//! * [`error`] — [`SeedlingError`].
//!
//! **Threads.** Every method blocks the calling thread until done (a sync
//! may take seconds to minutes offline with retries): call from a
//! background thread (Kotlin `Dispatchers.IO`, Swift a detached task or a
//! background queue), never from the UI thread. Objects are `Arc`s and may
//! be shared across threads; calls on one client are safe concurrently
//! (the store has one connection; two `sync_now` calls run one after the
//! other).
//!
//! `docs/CLIENT.md` ("Native apps") shows how an Android and an iOS app
//! embed it and how the bindings are generated.

pub mod client;
pub mod core;
pub mod error;

pub use error::SeedlingError;

uniffi::setup_scaffolding!();
