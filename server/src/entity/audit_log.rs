//! The audit log: who read or wrote what and when, each row chained to the
//! previous one by hash so tampering shows.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub entity: Option<String>,
    pub record_id: Option<Uuid>,
    pub detail: Option<Json>,
    pub prev_hash: Option<String>,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
