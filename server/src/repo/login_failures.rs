//! Failed sign-ins per key (`user:<name>` or `addr:<ip>`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Set,
};

use crate::entity::login_failure;

/// The rows of `keys` that exist.
pub async fn find(
    db: &impl ConnectionTrait,
    keys: Vec<String>,
) -> Result<Vec<login_failure::Model>, DbErr> {
    login_failure::Entity::find()
        .filter(login_failure::Column::Key.is_in(keys))
        .all(db)
        .await
}

/// The row of `key`, created empty if missing, locked for the rest of the
/// caller's transaction (PostgreSQL; SQLite serialises writers anyway).
pub async fn lock(
    db: &impl ConnectionTrait,
    key: &str,
    now: DateTime<Utc>,
) -> Result<login_failure::Model, DbErr> {
    login_failure::Entity::insert(login_failure::ActiveModel {
        key: Set(key.to_owned()),
        failures: Set(0),
        window_started_at: Set(now),
        locked_until: Set(None),
    })
    .on_conflict(
        OnConflict::column(login_failure::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    login_failure::Entity::find_by_id(key.to_owned())
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("login failures of {key}")))
}

pub async fn save(
    db: &impl ConnectionTrait,
    row: login_failure::Model,
    failures: i32,
    window_started_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let mut active = row.into_active_model();
    active.failures = Set(failures);
    active.window_started_at = Set(window_started_at);
    active.locked_until = Set(locked_until);
    active.update(db).await.map(|_| ())
}

/// Forgets the failures of `key` (after a successful sign-in).
pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    login_failure::Entity::delete_by_id(key.to_owned())
        .exec(db)
        .await
        .map(|_| ())
}
