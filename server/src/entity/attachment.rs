//! Attachments (visit photos): content-addressed by SHA-256 and uploaded in
//! resumable chunks; the bytes live in the blob store, this row tracks them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    /// Lower-case hex SHA-256 of the content.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sha256: String,
    pub size_bytes: i64,
    pub content_type: String,
    /// `pending` or `complete`.
    pub status: String,
    pub received_bytes: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    /// The upload in progress; its chunks sit in the store's temporary area
    /// under this id. `None` once complete.
    pub upload_id: Option<Uuid>,
    /// JSON array of the end offsets (exclusive) of the chunks received, in
    /// order: chunk *i* covers `parts[i-1]..parts[i]`.
    pub parts: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
