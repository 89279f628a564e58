//! The sync loop. One [`Syncer::sync_once`] pushes the outbox (urgent
//! records first, in batches, only each record's oldest pending mutation per
//! round), records every answer, then pulls pages until the server has no
//! more, applying changes and purges and comparing the scope checksum.
//! [`Syncer::sync`] retries a failed round with exponential back-off and
//! jitter; fatal errors stop at once (sign in again, update the app) and a
//! revoked device wipes its store.
//!
//! When the scope checksum differs, [`Syncer::repair`] reads the scope's
//! manifest (ids and versions), fetches only the records that differ and
//! drops the ones the scope no longer holds.
//!
//! A pull never overwrites pending work: a pulled record with mutations
//! still in the outbox becomes the new server copy, and the pending
//! mutations are replayed on top of it for the user to see.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use sea_orm::sqlx::{self, Row, SqliteConnection};
use sync_core::{
    clock::{Hlc, HlcClock},
    protocol::{
        DEFAULT_MANIFEST_LIMIT, FetchRequest, MAX_FETCH_RECORDS, ManifestEntry, ManifestRequest,
        Mutation, PROTOCOL_VERSION, PullEncoding, PullRequest, PushRequest, RecordRef, Repair,
        ScopeChecksum, check_protocol_version, lost_writes, urgent_first,
    },
    record::{Entity, Field, Record},
    rules::Actor,
};
use uuid::Uuid;

use crate::{
    backoff::{Backoff, Jitter, Sleeper},
    local, outbox,
    store::{self, RecordRow, Store, StoreError, parse_entity, parse_uuid},
    transport::{Transport, TransportError},
};

/// Rounds of pushes or pages of pulls in one sync before giving up (a
/// server that keeps saying `has_more` must not trap the phone).
const MAX_ROUNDS: usize = 10_000;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The network or the server (see [`TransportError`] for what to do).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Tuning of the sync loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Mutations per push request.
    pub batch_size: usize,
    /// Records per pull page.
    pub page_limit: u32,
    /// Retry timing.
    pub backoff: Backoff,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            page_limit: sync_core::protocol::DEFAULT_PULL_LIMIT,
            backoff: Backoff::default(),
        }
    }
}

/// How many `server_busy` answers one sync waits out before it counts them
/// as failed attempts (at the server's usual `Retry-After: 1`, a few
/// minutes).
pub const MAX_BUSY_WAITS: u32 = 120;

/// The device's copy differs from the server's view of its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    /// Checksum of the server copies on the device.
    pub local: ScopeChecksum,
    /// Checksum the server sent.
    pub server: ScopeChecksum,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Push requests sent.
    pub push_requests: usize,
    /// Answers recorded: applied as sent.
    pub applied: usize,
    /// Answers recorded: merged with concurrent changes.
    pub merged: usize,
    /// Answers recorded: rejected (see [`Store::rejections`]).
    pub rejected: usize,
    /// Conflicts reported in merged answers.
    pub conflicts: usize,
    /// Pull pages received.
    pub pages: usize,
    /// Records received.
    pub pulled: usize,
    /// Records purged (or, in a repair, dropped as no longer in the scope).
    pub purged: usize,
    /// Manifest pages read by a repair.
    pub manifest_pages: usize,
    /// Records fetched whole by a repair.
    pub fetched: usize,
    /// Writes sent again after a restore ([`Syncer::recover`]): this
    /// device's own writes that the restored server lacked.
    pub resent: usize,
    /// Set when this sync found the server restored and recovered.
    pub recovered: bool,
    /// Set when the scope checksum did not match after the last page.
    pub diverged: Option<Divergence>,
    /// Tries it took (1 = no retry).
    pub attempts: u32,
}

/// Runs the sync protocol for one store over one transport.
#[derive(Debug)]
pub struct Syncer<T, S> {
    store: Store,
    transport: T,
    sleeper: S,
    jitter: Mutex<Jitter>,
    options: SyncOptions,
}

impl<T: Transport, S: Sleeper> Syncer<T, S> {
    /// A syncer; `jitter` makes the retry timing (seed it in tests).
    pub fn new(
        store: Store,
        transport: T,
        sleeper: S,
        jitter: Jitter,
        options: SyncOptions,
    ) -> Self {
        Self {
            store,
            transport,
            sleeper,
            jitter: Mutex::new(jitter),
            options,
        }
    }

    /// The store this syncer works on.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The transport (e.g. to replace a token).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Syncs, retrying temporary failures with back-off. A revoked device
    /// wipes its store before the error is returned.
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        let mut attempt = 0;
        let mut busy = 0;
        loop {
            match self.sync_once().await {
                Ok(mut report) => {
                    report.attempts = attempt + 1;
                    return Ok(report);
                }
                // A busy server names its own wait; that is no failure of
                // this sync, so it spends no attempt (up to a bound), and the
                // wait is spread so the phones it turned away do not return
                // in step.
                Err(SyncError::Transport(TransportError::Busy { retry_after }))
                    if busy < MAX_BUSY_WAITS =>
                {
                    let draw = self.jitter.lock().map_or(0.5, |mut j| j.next_f64());
                    self.sleeper
                        .sleep(retry_after.mul_f64(1.0 + draw.clamp(0.0, 1.0)))
                        .await;
                    busy += 1;
                }
                Err(SyncError::Transport(e))
                    if e.is_retryable() && attempt + 1 < self.options.backoff.max_attempts =>
                {
                    let draw = self.jitter.lock().map_or(0.5, |mut j| j.next_f64());
                    let wait = self.options.backoff.delay(attempt, draw);
                    self.sleeper.sleep(wait).await;
                    attempt += 1;
                }
                Err(SyncError::Transport(e @ TransportError::DeviceRevoked(_))) => {
                    self.store.wipe().await?;
                    return Err(e.into());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One round: push everything, then pull until the server has no more.
    /// When either answers that the server was restored from a backup, the
    /// round recovers instead ([`Syncer::recover`]).
    pub async fn sync_once(&self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        match self.push(&mut report).await {
            Err(SyncError::Transport(TransportError::ServerRestored(_))) => {
                self.recover_into(&mut report).await?;
                return Ok(report);
            }
            other => other?,
        }
        match self.pull(&mut report, false).await {
            Err(SyncError::Transport(TransportError::ServerRestored(_))) => {
                self.recover_into(&mut report).await?;
            }
            other => other?,
        }
        Ok(report)
    }

    /// After the server was restored from a backup (a push or a pull
    /// answered `server_restored`): queues this device's own writes that
    /// the server lacks — found by comparing the scope's manifest with the
    /// server copies held here, then each candidate's copy on the server
    /// (`sync_core::protocol::lost_writes`) — ahead of the edits still in
    /// the outbox, which it rebases on the server's versions; takes the
    /// manifest's cursor (so the pushes are accepted again), pushes, then
    /// repairs the store from a fresh manifest and pulls on from its
    /// cursor. Writes by others that the server lost are not this device's
    /// to send (docs/SYNC-PROTOCOL.md, "After a restore").
    pub async fn recover(&self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        self.recover_into(&mut report).await?;
        Ok(report)
    }

    async fn recover_into(&self, report: &mut SyncReport) -> Result<(), SyncError> {
        report.recovered = true;
        let (manifest, cursor) = self.read_manifest(report).await?;
        let held: HashMap<(Entity, Uuid), u64> =
            manifest.iter().map(|e| ((e.0, e.1), e.2)).collect();
        // Server copies here that the server lacks, or holds at an earlier
        // version than this device saw: what its restore lost.
        let behind: Vec<Record> = self
            .store
            .shadow_records()
            .await?
            .into_iter()
            .filter(|r| {
                held.get(&(r.entity, r.id))
                    .is_none_or(|version| *version < r.version)
            })
            .collect();
        let on_server: Vec<RecordRef> = behind
            .iter()
            .filter(|r| held.contains_key(&(r.entity, r.id)))
            .map(|r| RecordRef {
                entity: r.entity,
                id: r.id,
            })
            .collect();
        let mut theirs: HashMap<(Entity, Uuid), Record> = HashMap::new();
        for records in on_server.chunks(MAX_FETCH_RECORDS) {
            let answer = self
                .transport
                .fetch(FetchRequest {
                    protocol_version: PROTOCOL_VERSION,
                    records: records.to_vec(),
                })
                .await?;
            check_version(answer.protocol_version)?;
            theirs.extend(answer.changes.into_iter().map(|r| ((r.entity, r.id), r)));
        }
        let actor = self.actor().await?;
        let device = self.store.device_id().await?;
        let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
        for local in &behind {
            let server = theirs.get(&(local.entity, local.id));
            let lost: Vec<Mutation> = lost_writes(device, &actor, local, server)
                .into_iter()
                .map(|write| Mutation {
                    mutation_id: Uuid::new_v4(),
                    entity: local.entity,
                    record_id: local.id,
                    op: write.op,
                    base_version: write.base_version,
                    hlc: write.hlc,
                    fields: write.fields,
                })
                .collect();
            report.resent += lost.len();
            // The edits still queued were made on top of what the server
            // lost: they go after it, on the server's version.
            let version = server.map_or(0, |r| r.version);
            outbox::rebase_after_restore(&mut tx, local.entity, local.id, version).await?;
            outbox::enqueue_first(&mut tx, &lost).await?;
            // The server's versions went back: the next copy received sets
            // the base of this record's edits afresh.
            store::forget_base_version(&mut tx, local.entity, local.id).await?;
        }
        // A cursor of the server's new history: its pushes are accepted
        // again (the repair below takes a fresher one).
        match &cursor {
            Some(cursor) => store::meta_set(&mut tx, "cursor", cursor).await?,
            None => store::meta_delete(&mut tx, "cursor").await?,
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.push(report).await?;
        self.repair_into(report, true).await
    }

    /// Every page of the scope's manifest, and the first page's cursor.
    async fn read_manifest(
        &self,
        report: &mut SyncReport,
    ) -> Result<(Vec<ManifestEntry>, Option<String>), SyncError> {
        let mut manifest = Vec::new();
        let mut cursor = None;
        let mut after = None;
        for round in 0..MAX_ROUNDS {
            let page = self
                .transport
                .manifest(ManifestRequest {
                    protocol_version: PROTOCOL_VERSION,
                    after: after.take(),
                    limit: DEFAULT_MANIFEST_LIMIT,
                })
                .await?;
            check_version(page.protocol_version)?;
            report.manifest_pages += 1;
            if round == 0 {
                cursor = page.cursor;
            }
            manifest.extend(page.entries);
            after = page.next_after;
            if after.is_none() {
                return Ok((manifest, cursor));
            }
        }
        // Half a manifest would drop every record past its end.
        Err(TransportError::Retryable("the server never finished the manifest".into()).into())
    }

    /// The repair for a [`Divergence`], with only the records that differ:
    /// pushes, reads the scope's manifest, fetches the records it lacks or
    /// holds at another version, drops server copies the scope no longer
    /// holds (a record with edits in the outbox is kept: the server decides
    /// about those), then pulls to its cursor; the report's `diverged` is
    /// that pull's verdict.
    pub async fn repair(&self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        self.push(&mut report).await?;
        self.repair_into(&mut report, false).await?;
        Ok(report)
    }

    /// The repair after the push. With `new_cursor` (after a restore), the
    /// pull goes on from the manifest's first page's cursor, or from
    /// scratch when the server sent none.
    async fn repair_into(
        &self,
        report: &mut SyncReport,
        new_cursor: bool,
    ) -> Result<(), SyncError> {
        let (manifest, cursor) = self.read_manifest(report).await?;
        let plan = Repair::between(manifest, self.store.shadows().await?);
        let actor = self.actor().await?;
        for records in plan.fetch.chunks(MAX_FETCH_RECORDS) {
            let answer = self
                .transport
                .fetch(FetchRequest {
                    protocol_version: PROTOCOL_VERSION,
                    records: records.to_vec(),
                })
                .await?;
            check_version(answer.protocol_version)?;
            let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
            let now = self.store.now_ms();
            store_received(&mut tx, answer.server_hlc, &answer.changes, &actor, now).await?;
            report.fetched += answer.changes.len();
            // Deleted or out of scope since the manifest was read.
            for gone in &answer.missing {
                report.purged +=
                    usize::from(store::drop_unless_pending(&mut tx, gone.entity, gone.id).await?);
            }
            tx.commit().await.map_err(StoreError::from)?;
        }
        let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
        for extra in &plan.drop {
            report.purged +=
                usize::from(store::drop_unless_pending(&mut tx, extra.entity, extra.id).await?);
        }
        let from_scratch = new_cursor && cursor.is_none();
        if new_cursor && let Some(cursor) = &cursor {
            store::meta_set(&mut tx, "cursor", cursor).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.pull(report, from_scratch).await
    }

    /// Downloads the whole scope again from the start and drops server
    /// copies the server no longer sends (pending edits are kept): the
    /// repair of last resort, and what a repair is measured against.
    pub async fn rebootstrap(&self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        self.push(&mut report).await?;
        self.pull(&mut report, true).await?;
        Ok(report)
    }

    /// Pushes the outbox and records the answers.
    pub async fn push(&self, report: &mut SyncReport) -> Result<(), SyncError> {
        let actor = self.actor().await?;
        for _ in 0..MAX_ROUNDS {
            let mut conn = self.store.pool.acquire().await.map_err(StoreError::from)?;
            let heads = outbox::heads(&mut conn).await?;
            drop(conn);
            if heads.is_empty() {
                break;
            }
            let mutations = urgent_first(heads.into_iter().map(|p| p.mutation).collect());
            let mut progressed = false;
            for batch in mutations.chunks(self.options.batch_size.max(1)) {
                let ids: Vec<Uuid> = batch.iter().map(|m| m.mutation_id).collect();
                let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
                // Frozen before it goes on the wire: a later edit must not
                // change a mutation the server may already hold.
                outbox::mark_sent(&mut tx, &ids).await?;
                let mut clock = store::load_clock(&mut tx).await?;
                let device_hlc = clock.tick(self.store.now_ms());
                store::save_clock(&mut tx, &clock).await?;
                let device_id = store::device_id(&mut tx).await?;
                let cursor = store::meta_get(&mut tx, "cursor").await?;
                tx.commit().await.map_err(StoreError::from)?;

                report.push_requests += 1;
                let sent = self
                    .transport
                    .push(PushRequest {
                        protocol_version: PROTOCOL_VERSION,
                        device_id,
                        device_hlc,
                        mutations: batch.to_vec(),
                        cursor,
                    })
                    .await;
                if let Err(TransportError::ServerRestored(_)) = &sent {
                    // Refused before anything was applied: as if never sent.
                    let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
                    outbox::unmark_sent(&mut tx, &ids).await?;
                    tx.commit().await.map_err(StoreError::from)?;
                }
                let answer = sent?;
                check_version(answer.protocol_version)?;

                let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
                let mut clock = store::load_clock(&mut tx).await?;
                clock.observe(answer.server_hlc, self.store.now_ms());
                store::save_clock(&mut tx, &clock).await?;
                for result in &answer.results {
                    if !outbox::record_answer(&mut tx, result, &actor).await? {
                        continue;
                    }
                    progressed = true;
                    match result {
                        sync_core::protocol::MutationResult::Applied { .. } => report.applied += 1,
                        sync_core::protocol::MutationResult::Merged { conflicts, .. } => {
                            report.merged += 1;
                            report.conflicts += conflicts.len();
                        }
                        sync_core::protocol::MutationResult::Rejected { .. } => {
                            report.rejected += 1;
                        }
                    }
                }
                tx.commit().await.map_err(StoreError::from)?;
            }
            if !progressed {
                // The server answered none of them; they stay for the next sync.
                break;
            }
        }
        Ok(())
    }

    /// Pulls pages until `has_more` is false. With `from_scratch`, starts
    /// without a cursor and afterwards drops server copies not received.
    pub async fn pull(&self, report: &mut SyncReport, from_scratch: bool) -> Result<(), SyncError> {
        let actor = self.actor().await?;
        let mut seen: HashSet<(Entity, Uuid)> = HashSet::new();
        let mut cursor = if from_scratch {
            None
        } else {
            self.store.cursor().await?
        };
        for _ in 0..MAX_ROUNDS {
            let page = self
                .transport
                .pull(PullRequest {
                    protocol_version: PROTOCOL_VERSION,
                    cursor: cursor.clone(),
                    limit: self.options.page_limit,
                    encoding: PullEncoding::Compact,
                })
                .await?;
            check_version(page.protocol_version)?;
            report.pages += 1;
            let mut tx = self.store.pool.begin().await.map_err(StoreError::from)?;
            let now = self.store.now_ms();
            store_received(&mut tx, page.server_hlc, &page.changes, &actor, now).await?;
            seen.extend(page.changes.iter().map(|r| (r.entity, r.id)));
            report.pulled += page.changes.len();
            for purge in &page.purges {
                seen.remove(&(purge.entity, purge.record_id));
                // Pending edits of a purged record stay in the outbox: the
                // server decides about them, and its answer is kept.
                store::delete_row(&mut tx, purge.entity, purge.record_id).await?;
                report.purged += 1;
            }
            // The cursor moves only with the page it belongs to.
            store::meta_set(&mut tx, "cursor", &page.next_cursor).await?;
            tx.commit().await.map_err(StoreError::from)?;
            cursor = Some(page.next_cursor.clone());
            if !page.has_more {
                if from_scratch {
                    report.purged += sweep(&self.store, &seen).await?;
                }
                // Both encodings carry the checksum on the last page.
                if let Some(server) = page.scope_checksum {
                    let local = self.store.scope_checksum().await?;
                    if local != server {
                        report.diverged = Some(Divergence { local, server });
                    }
                }
                return Ok(());
            }
        }
        Err(TransportError::Retryable("the server never finished the pull".into()).into())
    }

    async fn actor(&self) -> Result<Actor, SyncError> {
        Ok(self.store.user().await?.ok_or(StoreError::NotSignedIn)?)
    }
}

fn check_version(version: u32) -> Result<(), TransportError> {
    check_protocol_version(version).map_err(|e| TransportError::UpdateApp(e.to_string()))
}

/// Observes every clock of a pulled record, so later local writes order after them.
fn observe_record(clock: &mut HlcClock, record: &Record, now: u64) {
    for field in record.fields.values() {
        match field {
            Field::Register(r) => {
                clock.observe(r.hlc, now);
            }
            Field::Items(items) => {
                for item in items.values() {
                    clock.observe(item.hlc, now);
                }
            }
        }
    }
    if let Some(t) = record.tombstone {
        clock.observe(t.hlc, now);
    }
}

/// Stores the records of one answer (a pull page, a fetch) as server
/// copies, observing the answer's clock and every clock in them, so later
/// local writes order after them.
async fn store_received(
    conn: &mut SqliteConnection,
    server_hlc: Hlc,
    records: &[Record],
    actor: &Actor,
    now: u64,
) -> Result<(), StoreError> {
    let mut clock = store::load_clock(conn).await?;
    clock.observe(server_hlc, now);
    for record in records {
        observe_record(&mut clock, record, now);
        apply_pulled(conn, record, actor).await?;
    }
    store::save_clock(conn, &clock).await
}

/// Stores a pulled record as the server copy; pending mutations of the
/// record are replayed on top instead of being overwritten.
async fn apply_pulled(
    conn: &mut SqliteConnection,
    record: &Record,
    actor: &Actor,
) -> Result<(), StoreError> {
    let row = store::load_row(conn, record.entity, record.id).await?;
    let base = row
        .as_ref()
        .map_or(record.version, |r| r.base_version.max(record.version));
    let pending = outbox::pending_for(conn, record.entity, record.id).await?;
    let local = if pending.is_empty() {
        record.clone()
    } else {
        local::rebuild(Some(record), &pending, actor, base).unwrap_or_else(|| record.clone())
    };
    let row = RecordRow {
        shadow: Some(record.clone()),
        local,
        base_version: base,
    };
    store::save_row(conn, &row).await
}

/// Deletes server copies not in `seen` that have no pending edits.
async fn sweep(store: &Store, seen: &HashSet<(Entity, Uuid)>) -> Result<usize, StoreError> {
    // Every server copy, deleted ones too: a tombstone the server no
    // longer sends goes as well.
    let rows = sqlx::query("SELECT entity, id FROM records WHERE shadow IS NOT NULL")
        .fetch_all(&store.pool)
        .await?;
    let held = rows
        .iter()
        .map(|r| {
            Ok((
                parse_entity(r.try_get("entity")?)?,
                parse_uuid(r.try_get("id")?)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut tx = store.pool.begin().await?;
    let mut dropped = 0;
    for (entity, id) in held {
        if !seen.contains(&(entity, id)) {
            dropped += usize::from(store::drop_unless_pending(&mut tx, entity, id).await?);
        }
    }
    tx.commit().await?;
    Ok(dropped)
}
