//! Conflicts: every losing concurrent value, refused field, amendment or
//! semantic clash the merge noticed, kept for a supervisor to see and
//! resolve (nothing is silently discarded).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "conflicts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub entity: String,
    pub record_id: Uuid,
    /// The field concerned, if the conflict is about one field.
    pub field: Option<String>,
    /// `concurrent_edit`, `refused_field`, `amendment`, `delete_vs_edit`,
    /// `visit_to_transferred_child`, `visit_to_exited_child`,
    /// `possible_duplicate`, ...
    pub kind: String,
    pub local_value: Option<Json>,
    pub remote_value: Option<Json>,
    pub local_clock: Option<String>,
    pub remote_clock: Option<String>,
    /// The field rule that decided it.
    pub rule: Option<String>,
    pub winner: Option<String>,
    pub mutation_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub village_id: Option<Uuid>,
    /// `open` or `resolved`.
    pub status: String,
    pub resolution: Option<Json>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
