//! Visit rules: the required visiting interval per child category, which
//! each district configures (a child may override it with its own
//! `visit_interval_days`). A category without a row uses `sync-core`'s
//! assumed default (`semantic::VisitIntervals::default()`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "visit_rules")]
pub struct Model {
    /// The district (org unit) the rule belongs to.
    #[sea_orm(primary_key, auto_increment = false)]
    pub district_id: Uuid,
    /// A child category, e.g. `scattered_orphan`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    pub interval_days: i32,
    pub updated_at: DateTimeUtc,
    /// Who set it; `None` for rules filled from the defaults.
    pub updated_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
