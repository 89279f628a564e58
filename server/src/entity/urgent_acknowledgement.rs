//! Acknowledgements of urgent risk alerts: who recorded, when, that they
//! know of a visit's urgent risk flag (`acknowledged`, 已知悉) or have
//! reported it (`reported`, 已上报). Server bookkeeping, never synced.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "urgent_acknowledgements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub visit_id: Uuid,
    /// `acknowledged` or `reported`.
    pub action: String,
    pub actor_id: Uuid,
    /// `supervisor` or `admin`.
    pub actor_role: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
