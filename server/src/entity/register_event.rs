//! Register events: every change to a child's register entry (added,
//! category changed, transferred, exited) with its effective date and
//! source, so half-year figures can be reproduced for any period.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "register_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub child_id: Uuid,
    /// `added`, `category_changed`, `transferred` or `exited`.
    pub kind: String,
    pub effective_date: Date,
    /// `director`, `district` or `data_matching`.
    pub source: String,
    pub from_value: Option<String>,
    pub to_value: Option<String>,
    pub reason: Option<String>,
    pub recorded_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
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
        belongs_to = "super::user::Entity",
        from = "Column::RecordedBy",
        to = "super::user::Column::Id"
    )]
    RecordedBy,
}

impl Related<super::child::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Child.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
