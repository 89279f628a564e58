//! Seedling's schema, as one ordered set of sea-orm migrations that runs
//! unchanged on SQLite and PostgreSQL.
//!
//! Migrations keep their own identifiers (`Iden` enums) and never import the
//! server's entities, so an old migration keeps meaning what it meant when it
//! shipped.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_org_and_users;
mod m20261129_000002_register;
mod m20261129_000003_visits;
mod m20261129_000004_sync;
mod m20261129_000005_change_log_order;
mod m20261129_000006_attachments;
mod m20261129_000007_audit_chain;
mod m20261129_000009_visit_versions;
mod m20261129_000010_counted_visits_index;
mod m20261129_000010_district_visit_rules;
mod m20261129_000011_integration_delivery;
mod m20261129_000012_login_throttle;
mod m20261129_000015_child_archive;
mod m20261129_000020_counted_visits_by_time;
mod m20261206_000001_device_key;
mod m20261206_000002_session_end;
mod m20261207_000001_urgent_acknowledgements;
mod m20261207_000005_server_epoch;
mod m20261207_000010_visits_by_day_covering;

/// The ordered list of Seedling's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_org_and_users::Migration),
            Box::new(m20261129_000002_register::Migration),
            Box::new(m20261129_000003_visits::Migration),
            Box::new(m20261129_000004_sync::Migration),
            Box::new(m20261129_000005_change_log_order::Migration),
            Box::new(m20261129_000006_attachments::Migration),
            Box::new(m20261129_000007_audit_chain::Migration),
            Box::new(m20261129_000009_visit_versions::Migration),
            Box::new(m20261129_000010_district_visit_rules::Migration),
            Box::new(m20261129_000010_counted_visits_index::Migration),
            Box::new(m20261129_000011_integration_delivery::Migration),
            Box::new(m20261129_000012_login_throttle::Migration),
            Box::new(m20261129_000015_child_archive::Migration),
            Box::new(m20261129_000020_counted_visits_by_time::Migration),
            Box::new(m20261206_000001_device_key::Migration),
            Box::new(m20261206_000002_session_end::Migration),
            Box::new(m20261207_000001_urgent_acknowledgements::Migration),
            Box::new(m20261207_000005_server_epoch::Migration),
            Box::new(m20261207_000010_visits_by_day_covering::Migration),
        ]
    }
}
