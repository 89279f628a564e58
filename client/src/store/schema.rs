//! The local store's tables, created on open. Additive changes only: a
//! phone's store must open after an app update without losing its outbox.

use sea_orm::sqlx::{self, SqlitePool};

const SCHEMA: &[&str] = &[
    // Identity, clock and cursor: device_id, user_id, role, hlc, cursor.
    "CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )",
    // One row per record the device knows.
    "CREATE TABLE IF NOT EXISTS records (
        entity         TEXT NOT NULL,
        id             TEXT NOT NULL,
        shadow         TEXT,                       -- server copy (JSON Record), NULL until pulled
        shadow_version INTEGER NOT NULL DEFAULT 0,
        shadow_deleted INTEGER NOT NULL DEFAULT 0,
        base_version   INTEGER NOT NULL DEFAULT 0, -- version new edits start from
        local          TEXT NOT NULL,              -- shadow + pending edits (JSON Record)
        deleted        INTEGER NOT NULL DEFAULT 0, -- local copy carries a tombstone
        child_id       TEXT,                       -- for visits and plan items: the child
        PRIMARY KEY (entity, id)
    )",
    "CREATE INDEX IF NOT EXISTS records_by_child ON records (child_id) WHERE child_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS records_live ON records (entity, deleted)",
    // Pending mutations, in the order they were made.
    "CREATE TABLE IF NOT EXISTS outbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        mutation_id TEXT NOT NULL UNIQUE,
        entity      TEXT NOT NULL,
        record_id   TEXT NOT NULL,
        mutation    TEXT NOT NULL,                 -- JSON sync_core Mutation
        attempts    INTEGER NOT NULL DEFAULT 0     -- > 0: sent once, frozen
    )",
    "CREATE INDEX IF NOT EXISTS outbox_by_record ON outbox (entity, record_id, seq)",
    // Answers the user must see: refused mutations and refused fields.
    "CREATE TABLE IF NOT EXISTS rejections (
        mutation_id TEXT PRIMARY KEY,
        entity      TEXT NOT NULL,
        record_id   TEXT NOT NULL,
        reason      TEXT NOT NULL,
        message     TEXT NOT NULL,
        mutation    TEXT NOT NULL,                 -- what the device sent
        result      TEXT NOT NULL,                 -- the server's answer
        dismissed   INTEGER NOT NULL DEFAULT 0
    )",
];

/// Creates the tables that do not exist yet.
pub(crate) async fn create(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(&mut *tx).await?;
    }
    tx.commit().await
}
