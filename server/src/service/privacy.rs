//! Minors' personal data: re-encrypting identity-card numbers after a key
//! rotation, the subject-access export of one child, and the retention of
//! exited children's records.

pub mod export;
pub mod retention;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;

/// What a reseal did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ResealReport {
    /// Children with a number.
    pub checked: u64,
    /// Numbers sealed anew under the current key (older key, or plain).
    pub resealed: u64,
    pub current_key: String,
}

/// Seals every stored identity-card number under the current key, in pages
/// of one transaction each, so the old key can then be removed. Safe to
/// run again; audited.
pub async fn reseal_id_numbers(db: &DatabaseConnection) -> AppResult<ResealReport> {
    const PAGE: u64 = 500;
    let ring = crypto::ring().map_err(|err| AppError::Internal(err.to_string()))?;
    let mut report = ResealReport {
        current_key: ring.current().to_owned(),
        ..ResealReport::default()
    };
    let mut after = Uuid::nil();
    loop {
        let txn = crate::repo::begin_write(db).await?;
        let page = repo::id_numbers::stored_page(&txn, after, PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (id, stored) in page {
            report.checked += 1;
            if ring.is_current(&stored) {
                continue;
            }
            let plain = ring
                .open(&stored)
                .map_err(|err| AppError::Internal(format!("child {id}: {err}")))?;
            repo::id_numbers::replace(&txn, id, ring.seal(&plain)).await?;
            report.resealed += 1;
        }
        txn.commit().await?;
    }
    let txn = crate::repo::begin_write(db).await?;
    audit::record(
        &txn,
        audit::Entry {
            actor_id: None,
            action: "id_numbers.reseal",
            entity: Some("child"),
            record_id: None,
            detail: json!({ "checked": report.checked, "resealed": report.resealed, "key": report.current_key }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(report)
}
