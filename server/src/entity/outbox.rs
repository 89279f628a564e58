//! The integration outbox: messages for the provincial platform, written in
//! the same transaction as the change they report and delivered by a
//! worker that claims rows with locks.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    /// Also the idempotency key sent to the platform.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    /// The record the message is about.
    pub aggregate_id: Uuid,
    pub payload: Json,
    /// `pending`, `delivering`, `delivered` or `parked`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
