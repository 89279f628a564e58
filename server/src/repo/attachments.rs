//! Queries on attachments (visit photos), and on the visits that reference
//! a photo. Progress of an upload moves by conditional single-statement
//! updates, so concurrent requests for the same photo (a retry racing the
//! original, two phones with the same picture) never both advance it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::{attachment, visit};

pub const PENDING: &str = "pending";
pub const COMPLETE: &str = "complete";

pub async fn find(
    db: &impl ConnectionTrait,
    sha256: &str,
) -> Result<Option<attachment::Model>, DbErr> {
    attachment::Entity::find_by_id(sha256.to_owned())
        .one(db)
        .await
}

/// Starts tracking an upload unless one for the same hash already exists
/// (then the existing row stands and the caller re-reads it).
pub async fn insert_if_absent(
    db: &impl ConnectionTrait,
    model: attachment::Model,
) -> Result<(), DbErr> {
    attachment::Entity::insert(attachment::ActiveModel::from(model))
        .on_conflict(
            OnConflict::column(attachment::Column::Sha256)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Records the chunk ending at `received` as the next one of `upload`, only
/// if the upload still stands at `expected`. False when another request
/// moved it first.
pub async fn advance(
    db: &impl ConnectionTrait,
    sha256: &str,
    upload: Uuid,
    expected: u64,
    received: u64,
    parts: String,
) -> Result<bool, DbErr> {
    let result = attachment::Entity::update_many()
        .col_expr(
            attachment::Column::ReceivedBytes,
            Expr::value(received as i64),
        )
        .col_expr(attachment::Column::Parts, Expr::value(parts))
        .filter(attachment::Column::Sha256.eq(sha256))
        .filter(attachment::Column::UploadId.eq(upload))
        .filter(attachment::Column::Status.eq(PENDING))
        .filter(attachment::Column::ReceivedBytes.eq(expected as i64))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Marks upload `upload` complete. False when it was not pending any more.
pub async fn complete(
    db: &impl ConnectionTrait,
    sha256: &str,
    upload: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = attachment::Entity::update_many()
        .col_expr(attachment::Column::Status, Expr::value(COMPLETE))
        .col_expr(attachment::Column::CompletedAt, Expr::value(now))
        .col_expr(
            attachment::Column::UploadId,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(attachment::Column::Parts, Expr::value("[]"))
        .filter(attachment::Column::Sha256.eq(sha256))
        .filter(attachment::Column::UploadId.eq(upload))
        .filter(attachment::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Forgets upload `upload` (its bytes did not match its hash).
pub async fn discard(db: &impl ConnectionTrait, sha256: &str, upload: Uuid) -> Result<(), DbErr> {
    attachment::Entity::delete_many()
        .filter(attachment::Column::Sha256.eq(sha256))
        .filter(attachment::Column::UploadId.eq(upload))
        .filter(attachment::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets a finished photo whose bytes the store lost, so it can be
/// uploaded again.
pub async fn forget_lost(db: &impl ConnectionTrait, sha256: &str) -> Result<(), DbErr> {
    attachment::Entity::delete_many()
        .filter(attachment::Column::Sha256.eq(sha256))
        .filter(attachment::Column::Status.eq(COMPLETE))
        .exec(db)
        .await?;
    Ok(())
}

/// The village and child of each live visit whose photos include
/// `sha256`, each pair once.
///
/// Photos are a JSON array of `{id, sha256}` on the visit; the hash is
/// validated hex, so a text match on `"<hash>"` is exact and cannot be
/// steered by the caller. It scans the visits table (fine for a district;
/// see docs/API.md for the index a province would want).
pub async fn referencing(
    db: &impl ConnectionTrait,
    sha256: &str,
) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    let pattern = format!("%\"{sha256}\"%");
    visit::Entity::find()
        .select_only()
        .column(visit::Column::VillageId)
        .column(visit::Column::ChildId)
        .distinct()
        .filter(visit::Column::Deleted.eq(false))
        .filter(
            Expr::col(visit::Column::Photos)
                .cast_as("TEXT")
                .like(pattern),
        )
        .into_tuple::<(Uuid, Uuid)>()
        .all(db)
        .await
}
