//! The outbox: pending mutations, persisted in the same SQLite transaction
//! as the local edit they carry, so they survive restarts and crashes.
//!
//! The rule: a mutation leaves the outbox only when the server's answer for
//! its `mutation_id` has been recorded. Until then it is resent, unchanged,
//! with the same id (the server answers a retry from its idempotency store).
//! Once a mutation has been sent it is frozen; before that, a further edit of
//! the same record is folded into it (one mutation per record per push, and
//! a visit created and deleted offline never travels at all).
//!
//! Each push sends only the oldest pending mutation of each record. When its
//! answer brings the record's new server version, the record's later
//! mutations (never sent yet) are rebased on that version: they were made on
//! top of the device's own edit, so the server must not treat that edit as a
//! concurrent one (an item the device added and then removed must go).

use sea_orm::sqlx::{self, Row, SqliteConnection};
use sync_core::{
    protocol::{Mutation, MutationResult},
    record::Entity,
    rules::Actor,
};
use uuid::Uuid;

use crate::{
    local::{self, Folded},
    store::{self, RecordRow, Store, StoreError, corrupt, parse_entity, parse_uuid},
};

/// What happened to a new local mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Stored as a new outbox entry.
    New(Uuid),
    /// Folded into the record's unsent mutation with this id.
    Folded(Uuid),
    /// Cancelled an unsent create: nothing remains to push.
    Cancelled,
}

/// A mutation waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The mutation, as it will be sent.
    pub mutation: Mutation,
    /// How many pushes carried it so far (0: never sent, still foldable).
    pub attempts: u32,
}

/// A server answer the user must see: a refused mutation, or refused fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The refused mutation's id.
    pub mutation_id: Uuid,
    /// Which entity.
    pub entity: Entity,
    /// Which record.
    pub record_id: Uuid,
    /// Machine-readable reason (`locked`, `not_author`, ...).
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
    /// What the device sent (kept so nothing typed is lost).
    pub mutation: Mutation,
    /// The server's whole answer.
    pub result: MutationResult,
}

fn pending_from(row: &sqlx::sqlite::SqliteRow) -> Result<Pending, StoreError> {
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Pending {
        mutation: serde_json::from_str(row.try_get("mutation")?)?,
        attempts: u32::try_from(attempts).map_err(corrupt)?,
    })
}

/// Queues `m`, folding it into the record's last mutation if that one was
/// never sent. Call inside the transaction that stores the local edit.
pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
    m: &Mutation,
) -> Result<Queued, StoreError> {
    let last = sqlx::query(
        "SELECT seq, mutation, attempts FROM outbox WHERE entity = ? AND record_id = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(m.entity.as_str())
    .bind(m.record_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = last {
        let seq: i64 = row.try_get("seq")?;
        let earlier = pending_from(&row)?;
        if earlier.attempts == 0 {
            return match local::fold(&earlier.mutation, m) {
                Folded::One(folded) => {
                    sqlx::query("UPDATE outbox SET mutation = ? WHERE seq = ?")
                        .bind(serde_json::to_string(&folded)?)
                        .bind(seq)
                        .execute(&mut *conn)
                        .await?;
                    Ok(Queued::Folded(folded.mutation_id))
                }
                Folded::Nothing => {
                    sqlx::query("DELETE FROM outbox WHERE seq = ?")
                        .bind(seq)
                        .execute(&mut *conn)
                        .await?;
                    Ok(Queued::Cancelled)
                }
            };
        }
    }
    sqlx::query(
        "INSERT INTO outbox (mutation_id, entity, record_id, mutation) VALUES (?, ?, ?, ?)",
    )
    .bind(m.mutation_id.to_string())
    .bind(m.entity.as_str())
    .bind(m.record_id.to_string())
    .bind(serde_json::to_string(m)?)
    .execute(&mut *conn)
    .await?;
    Ok(Queued::New(m.mutation_id))
}

/// Queues `mutations` ahead of everything in the outbox, in their order,
/// never folded: after a restore, the writes the server lost come before
/// the edits made on top of them.
pub(crate) async fn enqueue_first(
    conn: &mut SqliteConnection,
    mutations: &[Mutation],
) -> Result<(), StoreError> {
    let first: i64 = sqlx::query_scalar("SELECT COALESCE(MIN(seq), 1) FROM outbox")
        .fetch_one(&mut *conn)
        .await?;
    let count = i64::try_from(mutations.len()).map_err(corrupt)?;
    for (seq, m) in (first - count..).zip(mutations) {
        sqlx::query(
            "INSERT INTO outbox (seq, mutation_id, entity, record_id, mutation) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(m.mutation_id.to_string())
        .bind(m.entity.as_str())
        .bind(m.record_id.to_string())
        .bind(serde_json::to_string(m)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// After a restore: the record's queued edits were made on versions the
/// server lost; they are based on the version it holds now (`version`, 0
/// when it holds none). Those never sent (a push refused as restored is
/// marked unsent again) are rebased further as the writes queued ahead of
/// them are answered; one sent before the restore keeps its id, and a
/// server that applied it before its backup answers it from its stored
/// outcome whatever the base.
pub(crate) async fn rebase_after_restore(
    conn: &mut SqliteConnection,
    entity: Entity,
    id: Uuid,
    version: u64,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT seq, mutation FROM outbox WHERE entity = ? AND record_id = ?")
        .bind(entity.as_str())
        .bind(id.to_string())
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        let mut m: Mutation = serde_json::from_str(row.try_get("mutation")?)?;
        if m.base_version > version {
            m.base_version = version;
            sqlx::query("UPDATE outbox SET mutation = ? WHERE seq = ?")
                .bind(serde_json::to_string(&m)?)
                .bind(seq)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// The pending mutations of one record, oldest first.
pub(crate) async fn pending_for(
    conn: &mut SqliteConnection,
    entity: Entity,
    id: Uuid,
) -> Result<Vec<Mutation>, StoreError> {
    let rows = sqlx::query(
        "SELECT mutation, attempts FROM outbox WHERE entity = ? AND record_id = ? ORDER BY seq",
    )
    .bind(entity.as_str())
    .bind(id.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| pending_from(r).map(|p| p.mutation))
        .collect()
}

/// The oldest pending mutation of each record, in the order they were made.
pub(crate) async fn heads(conn: &mut SqliteConnection) -> Result<Vec<Pending>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.mutation, o.attempts FROM outbox o \
         WHERE o.seq = (SELECT MIN(p.seq) FROM outbox p WHERE p.entity = o.entity AND p.record_id = o.record_id) \
         ORDER BY o.seq",
    )
    .fetch_all(conn)
    .await?;
    rows.iter().map(pending_from).collect()
}

/// Marks mutations as sent (frozen) before they go on the wire.
pub(crate) async fn mark_sent(conn: &mut SqliteConnection, ids: &[Uuid]) -> Result<(), StoreError> {
    for id in ids {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE mutation_id = ?")
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Undoes [`mark_sent`] for a push the server refused as a whole before
/// applying anything (`server_restored`): the mutations were never taken,
/// so they may still be rebased and folded into.
pub(crate) async fn unmark_sent(
    conn: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<(), StoreError> {
    for id in ids {
        sqlx::query("UPDATE outbox SET attempts = MAX(attempts - 1, 0) WHERE mutation_id = ?")
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Records the server's answer for one mutation: removes it from the
/// outbox, rebases the record's later mutations on the answered version, and
/// keeps a rejection visible. Returns false when the answer is for a
/// mutation the outbox no longer holds (a duplicate answer).
pub(crate) async fn record_answer(
    conn: &mut SqliteConnection,
    result: &MutationResult,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let id = result.mutation_id();
    let row = sqlx::query("SELECT mutation FROM outbox WHERE mutation_id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(false) };
    let m: Mutation = serde_json::from_str(row.try_get("mutation")?)?;
    sqlx::query("DELETE FROM outbox WHERE mutation_id = ?")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let refused = match result {
        MutationResult::Applied { version, .. } => {
            rebase(conn, &m, *version).await?;
            None
        }
        MutationResult::Merged {
            version, refusals, ..
        } => {
            rebase(conn, &m, *version).await?;
            refusals.first().map(|r| {
                (
                    local::reason_code(&r.reason),
                    format!("{}: {}", r.field, r.message),
                )
            })
        }
        MutationResult::Rejected {
            reason, message, ..
        } => {
            // The local copy showed this edit; show the server's copy plus
            // whatever else is still pending instead.
            if let Some(row) = store::load_row(conn, m.entity, m.record_id).await? {
                let pending = pending_for(conn, m.entity, m.record_id).await?;
                match local::rebuild(row.shadow.as_ref(), &pending, actor, row.base_version) {
                    Some(view) => {
                        let row = RecordRow { local: view, ..row };
                        store::save_row(conn, &row).await?;
                    }
                    None => store::delete_row(conn, m.entity, m.record_id).await?,
                }
            }
            Some((local::reason_code(reason), message.clone()))
        }
    };
    if let Some((reason, message)) = refused {
        sqlx::query(
            "INSERT OR REPLACE INTO rejections (mutation_id, entity, record_id, reason, message, mutation, result) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(m.entity.as_str())
        .bind(m.record_id.to_string())
        .bind(reason)
        .bind(message)
        .bind(serde_json::to_string(&m)?)
        .bind(serde_json::to_string(result)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// After the server answered with `version`, later edits of the record start from it.
async fn rebase(conn: &mut SqliteConnection, m: &Mutation, version: u64) -> Result<(), StoreError> {
    let v = i64::try_from(version).map_err(corrupt)?;
    let (entity, id) = (m.entity.as_str(), m.record_id.to_string());
    sqlx::query(
        "UPDATE records SET base_version = MAX(base_version, ?) WHERE entity = ? AND id = ?",
    )
    .bind(v)
    .bind(entity)
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    let later = sqlx::query(
        "SELECT seq, mutation FROM outbox WHERE entity = ? AND record_id = ? AND attempts = 0",
    )
    .bind(entity)
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?;
    for row in later {
        let seq: i64 = row.try_get("seq")?;
        let mut later: Mutation = serde_json::from_str(row.try_get("mutation")?)?;
        if later.base_version < version {
            later.base_version = version;
            sqlx::query("UPDATE outbox SET mutation = ? WHERE seq = ?")
                .bind(serde_json::to_string(&later)?)
                .bind(seq)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Every pending mutation, in the order they were made.
    pub async fn pending(&self) -> Result<Vec<Pending>, StoreError> {
        let rows = sqlx::query("SELECT mutation, attempts FROM outbox ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(pending_from).collect()
    }

    /// The refusals not yet dismissed by the user, oldest first.
    pub async fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        let rows = sqlx::query(
            "SELECT mutation_id, entity, record_id, reason, message, mutation, result \
             FROM rejections WHERE dismissed = 0 ORDER BY rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Rejection {
                    mutation_id: parse_uuid(r.try_get("mutation_id")?)?,
                    entity: parse_entity(r.try_get("entity")?)?,
                    record_id: parse_uuid(r.try_get("record_id")?)?,
                    reason: r.try_get("reason")?,
                    message: r.try_get("message")?,
                    mutation: serde_json::from_str(r.try_get("mutation")?)?,
                    result: serde_json::from_str(r.try_get("result")?)?,
                })
            })
            .collect()
    }

    /// Hides a rejection the user has read (it stays in the file).
    pub async fn dismiss_rejection(&self, mutation_id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE rejections SET dismissed = 1 WHERE mutation_id = ?")
            .bind(mutation_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
