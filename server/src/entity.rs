//! SeaORM entities: one module per table. Only `repo` builds queries with
//! them; services receive plain models.

pub mod applied_mutation;
pub mod attachment;
pub mod audit_log;
pub mod benefit_standard;
pub mod case_plan_item;
pub mod change_log;
pub mod child;
pub mod conflict;
pub mod delivery_attempt;
pub mod device;
pub mod integration_batch;
pub mod integration_setting;
pub mod login_failure;
pub mod org_unit;
pub mod outbox;
pub mod refresh_token;
pub mod register_event;
pub mod server_meta;
pub mod sync_lock;
pub mod urgent_acknowledgement;
pub mod user;
pub mod visit;
pub mod visit_rule;
pub mod visit_version;
