//! The audit log: every review decision and resolution, each row chained to
//! the previous one by a SHA-256 hash so a changed or removed row shows.
//! Call [`record`] inside the transaction of the change it reports, after
//! its change-log rows (lock order: change log, then audit log).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ConnectionTrait, EntityTrait, QueryOrder, QuerySelect,
    Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entity::audit_log;
use crate::error::AppResult;

/// One audited action.
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor_id: Option<Uuid>,
    /// E.g. `visit.approve`.
    pub action: &'static str,
    pub entity: Option<&'static str>,
    pub record_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Appends `entry` to the chain.
pub async fn record(db: &impl ConnectionTrait, entry: Entry) -> AppResult<()> {
    let prev = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .limit(1)
        .lock_exclusive()
        .one(db)
        .await?
        .map(|row| row.hash);
    let at = Utc::now();
    let mut hasher = Sha256::new();
    for part in [
        prev.clone().unwrap_or_default(),
        at.to_rfc3339(),
        entry.actor_id.map(|id| id.to_string()).unwrap_or_default(),
        entry.action.to_owned(),
        entry.entity.unwrap_or_default().to_owned(),
        entry.record_id.map(|id| id.to_string()).unwrap_or_default(),
        entry.detail.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    audit_log::ActiveModel {
        id: NotSet,
        at: Set(at),
        actor_id: Set(entry.actor_id),
        action: Set(entry.action.to_owned()),
        entity: Set(entry.entity.map(str::to_owned)),
        record_id: Set(entry.record_id),
        detail: Set(Some(entry.detail)),
        prev_hash: Set(prev),
        hash: Set(hex::encode(hasher.finalize())),
    }
    .insert(db)
    .await?;
    Ok(())
}
