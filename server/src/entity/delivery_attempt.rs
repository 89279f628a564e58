//! One attempt to deliver an outbox row to the provincial platform: when,
//! the HTTP status (none when the request never got an answer), how long
//! it took, what was decided and the start of the answer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "delivery_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub outbox_id: Uuid,
    /// 1 for the first attempt; counts restart after a replay.
    pub attempt: i32,
    pub started_at: DateTimeUtc,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    /// `delivered`, `retry` or `parked`.
    pub outcome: String,
    pub error: Option<String>,
    /// The first bytes of the platform's answer.
    pub response_excerpt: Option<String>,
    /// The signing key the request was signed with.
    pub key_id: String,
    /// The worker that made the attempt.
    pub worker_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
