//! Visit rules: the required visiting interval per child category, which
//! the district configures (a child may override it).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_rules")]
pub struct Model {
    /// A child category, e.g. `scattered_orphan`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    pub interval_days: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
