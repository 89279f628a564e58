//! Applied mutations: the outcome of every pushed mutation under its
//! client-made id, so a retried push is answered with the same outcome and
//! never applied twice.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "applied_mutations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mutation_id: Uuid,
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub entity: String,
    pub record_id: Uuid,
    /// The outcome as answered to the device.
    pub outcome: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
