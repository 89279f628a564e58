//! The exchange with the provincial child-protection platform
//! (docs/INTEGRATION.md).
//!
//! - [`outbound`]: the messages written to the outbox in the same
//!   transaction as the change they report, and the JSON envelope they
//!   travel in.
//! - [`signing`]: HMAC-SHA256 over timestamp and body, with a key id.
//! - [`worker`]: the delivery worker: claims due rows (any number of
//!   processes side by side), posts them signed with an idempotency key,
//!   retries with back-off and jitter, keeps each child's order, parks a
//!   row after repeated failure and records every attempt.
//! - [`admin`]: delivery status, parked rows, replay, pause and resume.
//! - [`inbound`]: client-credential sign-in and roster batches from the
//!   platform, applied through `sync-core` with the platform's authority.
//! - [`feed`]: the change feed for a platform that prefers to pull.

pub mod admin;
pub mod feed;
pub mod inbound;
pub mod outbound;
pub mod signing;
pub mod worker;
