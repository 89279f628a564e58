//! The device's local store: one SQLite file (WAL) holding the records the
//! device knows, the outbox of pending mutations, the rejections the user
//! must see, the pull cursor, the device's hybrid logical clock and its
//! identity.
//!
//! Each record row keeps two copies: `shadow`, the server's copy as last
//! pulled (or `NULL` for a record the server has not sent yet), and `local`,
//! what the user sees — the shadow with the pending mutations applied on
//! top. `base_version` is the server version new edits start from. The
//! schema is described in `docs/CLIENT.md`.

mod schema;
mod session;

use std::{fmt, path::Path, str::FromStr, sync::Arc};

use sea_orm::sqlx::{
    self, Row, SqliteConnection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use sync_core::{
    clock::{DEFAULT_MAX_FORWARD_SKEW_MS, Hlc, HlcClock},
    protocol::ScopeChecksum,
    record::{Entity, Record},
    rules::{Actor, Role},
};
use uuid::Uuid;

/// Everything that can go wrong in the local store or a local edit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (disk full, file locked, ...).
    #[error("local database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored row could not be read back.
    #[error("local store is corrupt: {0}")]
    Corrupt(String),
    /// Edits need a signed-in user (see [`Store::sign_in`]).
    #[error("no user is signed in on this device")]
    NotSignedIn,
    /// No such record on the device.
    #[error("no {entity} {id} on this device")]
    NotFound {
        /// Which entity.
        entity: Entity,
        /// Which record.
        id: Uuid,
    },
    /// The edit breaks a rule (authority, a locked visit, a missing field,
    /// a bad value); nothing was stored or queued.
    #[error("edit refused ({reason}): {message}")]
    Refused {
        /// The machine-readable reason, as on the wire (`locked`, ...).
        reason: String,
        /// Human-readable explanation.
        message: String,
    },
    /// Signing out would lose work that was never sent
    /// ([`Store::sign_out`]); sync first, or sign out discarding it.
    #[error("{pending} change(s) on this phone were never sent")]
    PendingWork {
        /// Mutations waiting in the outbox.
        pending: usize,
    },
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Milliseconds since the Unix epoch, as the device's wall clock says.
pub type NowFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The device's local store. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    now: NowFn,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// A record as the user sees it, with its sync state.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRecord {
    /// The record with the pending edits applied.
    pub record: Record,
    /// The server version the device last pulled (0: not on the server yet).
    pub server_version: u64,
    /// True while mutations of this record wait in the outbox.
    pub pending: bool,
}

fn system_now() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn corrupt(what: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(s).map_err(corrupt)
}

pub(crate) fn parse_entity(s: &str) -> Result<Entity, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(corrupt)
}

impl Store {
    /// Opens (creating if needed) the store at `path`, with the system clock.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_clock(path, Arc::new(system_now)).await
    }

    /// Opens the store with an injected wall clock (tests, simulators).
    pub async fn open_with_clock(path: impl AsRef<Path>, now: NowFn) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        // One connection: a phone has one writer, and it keeps every edit and
        // its outbox entry strictly ordered.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        schema::create(&pool).await?;
        let store = Self { pool, now };
        let mut conn = store.pool.acquire().await?;
        if meta_get(&mut conn, "device_id").await?.is_none() {
            meta_set(&mut conn, "device_id", &Uuid::new_v4().to_string()).await?;
        }
        Ok(store)
    }

    /// Closes the file cleanly (optional: committed work survives a crash).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The wall clock in milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.now)()
    }

    /// This device's id (made on first open, kept across restarts).
    pub async fn device_id(&self) -> Result<Uuid, StoreError> {
        let mut conn = self.pool.acquire().await?;
        device_id(&mut conn).await
    }

    /// Records who uses the device after sign-in; edits are made as them.
    pub async fn sign_in(&self, actor: Actor) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        meta_set(&mut conn, "user_id", &actor.user_id.to_string()).await?;
        meta_set(&mut conn, "role", &serde_json::to_string(&actor.role)?).await
    }

    /// The signed-in user, if any.
    pub async fn user(&self) -> Result<Option<Actor>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        user(&mut conn).await
    }

    /// The last clock value the device issued or adopted.
    pub async fn last_hlc(&self) -> Result<Hlc, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(load_clock(&mut conn).await?.last())
    }

    /// The pull cursor (`None` before the first pull).
    pub async fn cursor(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        meta_get(&mut conn, "cursor").await
    }

    /// One record as the user sees it (deleted ones included, with their tombstone).
    pub async fn get(&self, entity: Entity, id: Uuid) -> Result<Option<LocalRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE r.entity = ? AND r.id = ?"
        )))
        .bind(entity.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| local_record(&r)).transpose()
    }

    /// The live (not deleted) records of an entity, ordered by id.
    pub async fn list(&self, entity: Entity) -> Result<Vec<LocalRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE r.entity = ? AND r.deleted = 0 ORDER BY r.id"
        )))
        .bind(entity.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(local_record).collect()
    }

    /// The live visits to one child, ordered by id.
    pub async fn visits_of_child(&self, child_id: Uuid) -> Result<Vec<LocalRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE r.entity = 'visit' AND r.child_id = ? AND r.deleted = 0 ORDER BY r.id"
        )))
        .bind(child_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(local_record).collect()
    }

    /// The checksum of the server copies this device holds (live records
    /// only), comparable with a pull page's `scope_checksum`.
    pub async fn scope_checksum(&self) -> Result<ScopeChecksum, StoreError> {
        Ok(ScopeChecksum::of(self.shadows().await?))
    }

    /// `(entity, id, version)` of every live server copy this device
    /// holds: what the scope's manifest is compared with.
    pub async fn shadows(&self) -> Result<Vec<(Entity, Uuid, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity, id, shadow_version FROM records WHERE shadow IS NOT NULL AND shadow_deleted = 0",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get("shadow_version")?;
                Ok((
                    parse_entity(r.try_get("entity")?)?,
                    parse_uuid(r.try_get("id")?)?,
                    u64::try_from(version).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    /// Every server copy this device holds, deleted ones included.
    pub(crate) async fn shadow_records(&self) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query("SELECT shadow FROM records WHERE shadow IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.try_get("shadow")?)?))
            .collect()
    }
}

const SELECT_RECORD: &str = "SELECT r.local, r.shadow_version, \
     EXISTS (SELECT 1 FROM outbox o WHERE o.entity = r.entity AND o.record_id = r.id) AS pending \
     FROM records r";

fn local_record(row: &sqlx::sqlite::SqliteRow) -> Result<LocalRecord, StoreError> {
    let version: i64 = row.try_get("shadow_version")?;
    Ok(LocalRecord {
        record: serde_json::from_str(row.try_get("local")?)?,
        server_version: u64::try_from(version).map_err(corrupt)?,
        pending: row.try_get::<bool, _>("pending")?,
    })
}

pub(crate) async fn meta_get(
    conn: &mut SqliteConnection,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.try_get("value")).transpose()?)
}

pub(crate) async fn meta_set(
    conn: &mut SqliteConnection,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn meta_delete(conn: &mut SqliteConnection, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM meta WHERE key = ?")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn device_id(conn: &mut SqliteConnection) -> Result<Uuid, StoreError> {
    let id = meta_get(conn, "device_id")
        .await?
        .ok_or_else(|| corrupt("no device id"))?;
    parse_uuid(&id)
}

pub(crate) async fn user(conn: &mut SqliteConnection) -> Result<Option<Actor>, StoreError> {
    let (Some(id), Some(role)) = (
        meta_get(conn, "user_id").await?,
        meta_get(conn, "role").await?,
    ) else {
        return Ok(None);
    };
    let role: Role = serde_json::from_str(&role)?;
    Ok(Some(Actor::new(parse_uuid(&id)?, role)))
}

/// The device clock as persisted; a fresh device starts at zero.
pub(crate) async fn load_clock(conn: &mut SqliteConnection) -> Result<HlcClock, StoreError> {
    let last = match meta_get(conn, "hlc").await? {
        Some(text) => Hlc::from_str(&text).map_err(corrupt)?,
        None => Hlc::new(0, 0, device_id(conn).await?),
    };
    Ok(HlcClock::resume(last, DEFAULT_MAX_FORWARD_SKEW_MS))
}

/// Persists the clock; call in the same transaction as the write it stamped.
pub(crate) async fn save_clock(
    conn: &mut SqliteConnection,
    clock: &HlcClock,
) -> Result<(), StoreError> {
    meta_set(conn, "hlc", &clock.last().to_string()).await
}

/// The raw state of one record row.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    pub shadow: Option<Record>,
    pub local: Record,
    pub base_version: u64,
}

pub(crate) async fn load_row(
    conn: &mut SqliteConnection,
    entity: Entity,
    id: Uuid,
) -> Result<Option<RecordRow>, StoreError> {
    let row =
        sqlx::query("SELECT shadow, local, base_version FROM records WHERE entity = ? AND id = ?")
            .bind(entity.as_str())
            .bind(id.to_string())
            .fetch_optional(conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let shadow: Option<String> = row.try_get("shadow")?;
    let base: i64 = row.try_get("base_version")?;
    Ok(Some(RecordRow {
        shadow: shadow.map(|s| serde_json::from_str(&s)).transpose()?,
        local: serde_json::from_str(row.try_get("local")?)?,
        base_version: u64::try_from(base).map_err(corrupt)?,
    }))
}

/// Writes a record row (insert or replace).
pub(crate) async fn save_row(
    conn: &mut SqliteConnection,
    row: &RecordRow,
) -> Result<(), StoreError> {
    let rec = &row.local;
    let child = rec
        .get_str("child_id")
        .map(str::to_owned)
        .or_else(|| (rec.entity == Entity::Child).then(|| rec.id.to_string()));
    let shadow_version = row.shadow.as_ref().map_or(0, |s| s.version);
    sqlx::query(
        "INSERT INTO records (entity, id, shadow, shadow_version, shadow_deleted, base_version, local, deleted, child_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (entity, id) DO UPDATE SET shadow = excluded.shadow, \
         shadow_version = excluded.shadow_version, shadow_deleted = excluded.shadow_deleted, \
         base_version = excluded.base_version, local = excluded.local, \
         deleted = excluded.deleted, child_id = excluded.child_id",
    )
    .bind(rec.entity.as_str())
    .bind(rec.id.to_string())
    .bind(row.shadow.as_ref().map(serde_json::to_string).transpose()?)
    .bind(i64::try_from(shadow_version).map_err(corrupt)?)
    .bind(row.shadow.as_ref().is_some_and(Record::is_deleted))
    .bind(i64::try_from(row.base_version).map_err(corrupt)?)
    .bind(serde_json::to_string(rec)?)
    .bind(rec.is_deleted())
    .bind(child)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a record the server no longer holds for this device, unless it
/// has edits waiting in the outbox (the server decides about those).
/// Returns whether it was deleted.
pub(crate) async fn drop_unless_pending(
    conn: &mut SqliteConnection,
    entity: Entity,
    id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "DELETE FROM records WHERE entity = ? AND id = ? AND NOT EXISTS \
         (SELECT 1 FROM outbox o WHERE o.entity = records.entity AND o.record_id = records.id)",
    )
    .bind(entity.as_str())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn delete_row(
    conn: &mut SqliteConnection,
    entity: Entity,
    id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM records WHERE entity = ? AND id = ?")
        .bind(entity.as_str())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets the server version a record's edits were based on: after a
/// restore the server's versions went back, and the next copy received sets
/// it afresh.
pub(crate) async fn forget_base_version(
    conn: &mut SqliteConnection,
    entity: Entity,
    id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE records SET base_version = 0 WHERE entity = ? AND id = ?")
        .bind(entity.as_str())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
