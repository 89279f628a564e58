//! End-to-end tests: the real server over real databases. Each scenario runs
//! on SQLite and on PostgreSQL.

mod attachments;
mod audit;
mod auth;
mod authz;
mod cursor;
mod demo;
mod devices;
mod errors;
mod events;
mod field_app;
mod fleet;
mod group_commit;
mod integration;
mod lock_order;
mod metrics;
mod operations;
mod privacy;
mod push_fuzz;
mod repair;
mod reports;
mod restore;
mod retention;
mod review;
mod rxdb;
mod scope;
mod slow_clients;
mod storage_faults;
mod sync;
mod throttle;
mod unhealthy_database;
mod watermelon;
