//! The history of a visit: one row per server version, with who changed
//! which fields (value before and after) and when.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "visit_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub visit_id: Uuid,
    /// The visit's server version after this change.
    pub version: i64,
    pub actor_id: Option<Uuid>,
    /// `director`, `supervisor`, `admin` or `integration`.
    pub actor_role: Option<String>,
    pub mutation_id: Option<Uuid>,
    /// `created`, `edited`, `reviewed`, `amendment_accepted`,
    /// `conflict_resolved` or `deleted`.
    pub kind: String,
    /// Array of `{field, before, after}`.
    pub changes: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
