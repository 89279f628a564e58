//! Children on the register: a synced record (server version, per-field
//! clocks, tombstone) holding who the child is, their category and status,
//! their village, guardian and benefit standard.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "children")]
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
    pub name: String,
    /// `male` or `female`.
    pub gender: Option<String>,
    pub birth_date: Date,
    /// Identity-card number: plain in memory, sealed in the database
    /// (see [`crate::crypto`]), masked for roles that do not need it.
    pub id_number: Option<IdNumber>,
    /// `institutional_orphan`, `scattered_orphan`, `de_facto_unsupported`,
    /// `in_difficulty`, `left_behind`, `migrant` or `low_income_edge`.
    pub category: String,
    /// `active` or `exited`.
    pub status: String,
    /// `turned_18`, `adopted`, `moved_away`, `died` or `no_longer_eligible`.
    pub exit_reason: Option<String>,
    pub exit_date: Option<Date>,
    pub village_id: Uuid,
    pub guardian_name: Option<String>,
    pub guardian_relation: Option<String>,
    pub guardian_phone: Option<String>,
    pub address: Option<String>,
    pub school: Option<String>,
    pub health_notes: Option<String>,
    pub disability_notes: Option<String>,
    /// Monthly benefit standard in whole CNY.
    pub benefit_standard_cny: Option<i32>,
    /// Per-child override of the category's visit interval.
    pub visit_interval_days: Option<i32>,
    /// The provincial platform's id for this child.
    #[sea_orm(unique)]
    pub external_id: Option<String>,
    /// When the retention policy for exited children removed the personal
    /// fields (server bookkeeping, not synced).
    pub archived_at: Option<DateTimeUtc>,
}

/// Hides the identity-card number: children's records are minors' personal
/// information and must not leak into logs.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("category", &self.category)
            .field("status", &self.status)
            .field("village_id", &self.village_id)
            .field("deleted", &self.deleted)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::org_unit::Entity",
        from = "Column::VillageId",
        to = "super::org_unit::Column::Id"
    )]
    Village,
    #[sea_orm(has_many = "super::visit::Entity")]
    Visit,
    #[sea_orm(has_many = "super::register_event::Entity")]
    RegisterEvent,
    #[sea_orm(has_many = "super::case_plan_item::Entity")]
    CasePlanItem,
}

impl Related<super::org_unit::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Village.def()
    }
}

impl Related<super::visit::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Visit.def()
    }
}

impl Related<super::register_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RegisterEvent.def()
    }
}

impl Related<super::case_plan_item::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CasePlanItem.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// An identity-card number: plain in memory and in the API, sealed with
/// AES-256-GCM whenever it is written to the database, opened when read.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct IdNumber(pub String);

impl std::fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::crypto::mask(&self.0))
    }
}

fn sealed(number: &IdNumber) -> String {
    crate::crypto::ring()
        .expect("the identity-number key ring is installed by startup::build_state")
        .seal(&number.0)
}

fn opened(stored: &str) -> Result<IdNumber, crate::crypto::CryptoError> {
    crate::crypto::ring()?.open(stored).map(IdNumber)
}

impl From<IdNumber> for sea_orm::Value {
    fn from(number: IdNumber) -> Self {
        sea_orm::Value::String(Some(sealed(&number)))
    }
}

impl sea_orm::TryGetable for IdNumber {
    fn try_get_by<I: sea_orm::ColIdx>(
        res: &sea_orm::QueryResult,
        index: I,
    ) -> Result<Self, sea_orm::TryGetError> {
        let stored = String::try_get_by(res, index)?;
        opened(&stored).map_err(|err| sea_orm::TryGetError::DbErr(DbErr::Type(err.to_string())))
    }
}

impl sea_orm::sea_query::ValueType for IdNumber {
    fn try_from(value: sea_orm::Value) -> Result<Self, sea_orm::sea_query::ValueTypeErr> {
        match value {
            sea_orm::Value::String(Some(stored)) => {
                opened(&stored).map_err(|_| sea_orm::sea_query::ValueTypeErr)
            }
            _ => Err(sea_orm::sea_query::ValueTypeErr),
        }
    }

    fn type_name() -> String {
        "IdNumber".to_owned()
    }

    fn array_type() -> sea_orm::sea_query::ArrayType {
        sea_orm::sea_query::ArrayType::String
    }

    fn column_type() -> sea_orm::sea_query::ColumnType {
        sea_orm::sea_query::ColumnType::Text
    }
}

impl sea_orm::sea_query::Nullable for IdNumber {
    fn null() -> sea_orm::Value {
        sea_orm::Value::String(None)
    }
}
