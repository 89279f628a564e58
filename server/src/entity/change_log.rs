//! The change log: one row per committed change to a synced record, in
//! server sequence order, with the village and town it belongs to so a pull
//! can select a device's scope.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_log")]
pub struct Model {
    /// Server sequence (auto-increment).
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// Entity name, e.g. `child`, `visit`, `case_plan_item`.
    pub entity: String,
    pub record_id: Uuid,
    /// The record's version after the change.
    pub version: i64,
    /// `upsert` (the record is in this scope, possibly deleted) or `purge`
    /// (it left the one scope set on this row).
    pub op: String,
    pub village_id: Option<Uuid>,
    pub town_id: Option<Uuid>,
    pub district_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
