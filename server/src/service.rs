//! Services: the domain operations. Each public function is one
//! transaction, and this is the only layer that combines persistence with
//! `sync-core`.

pub mod accounts;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod commit_queue;
pub mod demo;
pub mod devices;
pub mod integration;
pub mod metrics;
pub mod org;
pub mod privacy;
pub mod province;
pub mod reports;
pub mod review;
pub mod sync;
pub mod visit_rules;
