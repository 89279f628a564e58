//! Case-plan items: the per-child needs ledger of the "one child, one
//! plan" case service (living support, study tutoring, psychological
//! counselling, ...). A synced record.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "case_plan_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Server version: 1 when created, +1 per change.
    pub version: i64,
    /// Sync metadata: per field the clock and version of its last write
    /// (`sync_core::record::RecordMeta` as JSON).
    pub field_clocks: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Tombstone.
    pub deleted: bool,
    pub child_id: Uuid,
    pub village_id: Uuid,
    /// `living`, `study`, `psychology`, `health` or `safety`.
    pub area: String,
    pub description: String,
    /// `open`, `in_progress` or `done`.
    pub status: String,
    /// Who carries the item out (a person or a service, free text).
    pub owner: Option<String>,
    pub due_date: Option<Date>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::child::Entity",
        from = "Column::ChildId",
        to = "super::child::Column::Id"
    )]
    Child,
    #[sea_orm(
        belongs_to = "super::org_unit::Entity",
        from = "Column::VillageId",
        to = "super::org_unit::Column::Id"
    )]
    Village,
}

impl Related<super::child::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Child.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
