//! Who uses the store and what leaves it with them: the session kept for
//! an app restart, the district's visit rules, and the two erasures —
//! [`Store::sign_out`] (the user leaves; the device id and clock stay) and
//! [`Store::wipe`] (a revoked phone, or another user: everything, with a
//! new device id).
//!
//! Erasing overwrites: deletes run with `PRAGMA secure_delete = ON`
//! (SQLite zeroes the freed content), then the file is compacted
//! (`VACUUM`) and the write-ahead log truncated
//! (`wal_checkpoint(TRUNCATE)`), so no child's name or visit survives in a
//! free page or an old WAL frame of the file.

use sea_orm::sqlx::{self, Row};
use sync_core::semantic::VisitIntervals;
use uuid::Uuid;

use super::{Store, StoreError, corrupt, meta_get, meta_set};
use crate::auth::Session;

/// The `meta` keys kept when a user signs out: the device's identity (the
/// server knows the device by it) and its clock (which must never go back).
const KEPT_AT_SIGN_OUT: [&str; 2] = ["device_id", "hlc"];

impl Store {
    /// Mutations waiting in the outbox (sent or not).
    pub async fn pending_count(&self) -> Result<usize, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        usize::try_from(n).map_err(corrupt)
    }

    /// Keeps the session (tokens, user, district zone) for the next start.
    pub async fn save_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        meta_set(&mut conn, "session", &serde_json::to_string(session)?).await
    }

    /// The session kept by the last sign-in or refresh, if any.
    pub async fn session(&self) -> Result<Option<Session>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        meta_get(&mut conn, "session")
            .await?
            .map(|s| serde_json::from_str(&s).map_err(StoreError::from))
            .transpose()
    }

    /// Keeps the district's visit rules (fetched while online).
    pub async fn save_visit_intervals(&self, intervals: &VisitIntervals) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        meta_set(
            &mut conn,
            "visit_intervals",
            &serde_json::to_string(intervals)?,
        )
        .await
    }

    /// The district's visit rules as last fetched, or the documented
    /// defaults before the first fetch.
    pub async fn visit_intervals(&self) -> Result<VisitIntervals, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(match meta_get(&mut conn, "visit_intervals").await? {
            Some(text) => serde_json::from_str(&text)?,
            None => VisitIntervals::default(),
        })
    }

    /// The user leaves the phone: every record (children, visits, plan
    /// items), the outbox, the rejections, the cursor, the session, the
    /// user and the visit rules are erased; the device id and the clock
    /// stay. Refused with [`StoreError::PendingWork`] while changes wait to
    /// be sent, unless `discard_pending` (they are then lost).
    pub async fn sign_out(&self, discard_pending: bool) -> Result<(), StoreError> {
        let pending = self.pending_count().await?;
        if pending > 0 && !discard_pending {
            return Err(StoreError::PendingWork { pending });
        }
        self.erase(None).await
    }

    /// Erases everything (records, outbox, rejections, cursor, session,
    /// identity): what a revoked device must do, and what another user
    /// starts from. A new device id is made at once.
    pub async fn wipe(&self) -> Result<(), StoreError> {
        self.erase(Some(Uuid::new_v4())).await
    }

    /// Deletes every row but the kept identity (`new_device`: none kept,
    /// and this id made), overwriting what it frees.
    async fn erase(&self, new_device: Option<Uuid>) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for stmt in [
            "DELETE FROM records",
            "DELETE FROM outbox",
            "DELETE FROM rejections",
        ] {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        match new_device {
            Some(device) => {
                sqlx::query("DELETE FROM meta").execute(&mut *tx).await?;
                meta_set(&mut tx, "device_id", &device.to_string()).await?;
            }
            None => {
                sqlx::query("DELETE FROM meta WHERE key NOT IN (?, ?)")
                    .bind(KEPT_AT_SIGN_OUT[0])
                    .bind(KEPT_AT_SIGN_OUT[1])
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        // The freed pages are zeroed; compacting drops them, and the WAL
        // (which held copies of the pages before the deletes) is emptied.
        sqlx::query("VACUUM").execute(&mut *conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
