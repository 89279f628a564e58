//! Visit records: a director's home visit, phone follow-up or school visit
//! to one child, made on the phone with a client-made id and synced; the
//! town supervisor reviews it.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "visits")]
pub struct Model {
    /// Made by the device.
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
    pub author_id: Uuid,
    pub device_id: Option<Uuid>,
    /// The child's village when the visit was made (denormalised for scope).
    pub village_id: Uuid,
    /// `home_visit`, `phone_follow_up`, `school_visit` or `other`.
    pub kind: String,
    /// When the visit happened, as entered by the director (domain data,
    /// not a clock).
    pub visited_at: DateTimeUtc,
    /// `{lat, lon, accuracy_m}`.
    pub location: Option<Json>,
    /// Object with optional `living`, `study`, `health`, `psychology`,
    /// `safety` strings.
    pub observations: Option<Json>,
    /// Array of `{id, area, description}`.
    pub needs: Json,
    /// Array of `{id, kind, note}`.
    pub risk_flags: Json,
    /// Array of `{id, sha256}`.
    pub photos: Json,
    pub follow_up: Option<String>,
    pub next_planned_date: Option<Date>,
    /// `draft`, `submitted`, `returned` or `approved`.
    pub review_status: String,
    pub review_comment: Option<String>,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTimeUtc>,
}

/// Leaves out the observations, needs and risk flags: they describe a
/// minor's circumstances and must not leak into logs.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visit")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("child_id", &self.child_id)
            .field("author_id", &self.author_id)
            .field("kind", &self.kind)
            .field("visited_at", &self.visited_at)
            .field("review_status", &self.review_status)
            .field("deleted", &self.deleted)
            .finish_non_exhaustive()
    }
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
        from = "Column::AuthorId",
        to = "super::user::Column::Id"
    )]
    Author,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::ReviewedBy",
        to = "super::user::Column::Id"
    )]
    Reviewer,
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

impl Related<super::org_unit::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Village.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
