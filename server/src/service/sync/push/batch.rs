//! [`Batch`]: what the mutations of one transaction share — the server
//! clock, what was read (prefetched with a few `IN (…)` queries, or read on
//! first need) and what will be written (multi-row inserts, the change log
//! last).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::DatabaseTransaction;
use serde_json::{Value, json};
use sync_core::clock::HlcClock;
use sync_core::protocol::{FieldOp, Mutation};
use sync_core::record::{Entity, Record};
use sync_core::semantic::{OtherVisit, visited_at};
use uuid::Uuid;

use super::super::SERVER_NODE;
use super::super::placement::Lineages;
use crate::auth::AuthUser;
use crate::entity::{applied_mutation, conflict, outbox, register_event, visit_version};
use crate::error::AppResult;
use crate::repo;
use crate::repo::change_log::NewChange;
use crate::repo::synced::{StoredRow, SyncedRow};
use crate::service::audit;

pub(super) type Key = (Entity, Uuid);

/// A move of a child out of a village: from where, its effective day, and
/// when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub from: Option<Uuid>,
    pub effective: NaiveDate,
    pub recorded_at: DateTime<Utc>,
}

/// What the mutations of one transaction have read and will write. Reads
/// are made once (prefetched, or on first need) against the database; the
/// batch's own changes are kept here and override them until
/// [`Batch::flush`] writes them. A push applies all its mutations and
/// flushes once; a change made on the server (a review decision, a conflict
/// resolution, a roster row) flushes after each mutation
/// (`push::apply_one`), so the caller's own queries see it.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) clock: HlcClock,
    pub(super) lineages: Lineages,
    /// Stored outcomes by mutation id: from earlier pushes, then this one's.
    pub(super) applied: HashMap<Uuid, applied_mutation::Model>,
    /// The current row of each record read so far (`None`: no such
    /// record), as this batch has left it.
    rows: HashMap<Key, Option<Arc<StoredRow>>>,
    /// Per child: the villages it was transferred out of, with the
    /// effective dates, including this batch's transfers.
    transfers: HashMap<Uuid, Vec<Transfer>>,
    /// Live visits per (child, day) as read from the database, without
    /// those of the device named, if one is (see [`DayRead`]).
    visits_on: HashMap<(Uuid, NaiveDate), (Option<Uuid>, Vec<OtherVisit>)>,
    /// The visits and case-plan items this batch wrote, per child.
    written_for_child: HashMap<Uuid, BTreeSet<Key>>,
    /// Village codes for outbound messages.
    pub(super) village_codes: HashMap<Uuid, Option<String>>,
    /// Rows to write: `true` for a record new to the database.
    records: BTreeMap<Key, (SyncedRow, bool)>,
    pub(super) versions: Vec<visit_version::Model>,
    pub(super) register_events: Vec<register_event::Model>,
    pub(super) conflicts: Vec<conflict::Model>,
    /// How many more out-of-scope refusals each account may file in a
    /// queue this hour (read on its first one).
    pub(super) refusals_left: HashMap<Uuid, u64>,
    pub(super) outbox: Vec<outbox::Model>,
    pub(super) outcomes: Vec<applied_mutation::Model>,
    pub(super) changes: Vec<NewChange>,
    /// The records written so far, in order, for the audit trail.
    pub(super) written: Vec<Key>,
    /// Per child read so far: archived under the retention policy.
    archived: HashMap<Uuid, bool>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            clock: HlcClock::new(SERVER_NODE),
            lineages: Lineages::default(),
            applied: HashMap::new(),
            rows: HashMap::new(),
            transfers: HashMap::new(),
            visits_on: HashMap::new(),
            written_for_child: HashMap::new(),
            village_codes: HashMap::new(),
            records: BTreeMap::new(),
            versions: Vec::new(),
            register_events: Vec::new(),
            conflicts: Vec::new(),
            refusals_left: HashMap::new(),
            outbox: Vec::new(),
            outcomes: Vec::new(),
            changes: Vec::new(),
            written: Vec::new(),
            archived: HashMap::new(),
        }
    }

    /// The change-log rows of the mutations applied so far, to append last.
    pub(crate) fn take_changes(&mut self) -> Vec<NewChange> {
        std::mem::take(&mut self.changes)
    }

    /// Appends the batch's change-log rows: call it last in the
    /// transaction, before any audit row (lock order: change log, then
    /// audit log).
    pub(crate) async fn append_changes(
        &mut self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        repo::change_log::append(txn, self.take_changes(), now).await?;
        Ok(())
    }

    /// Reads what the mutations need with a few queries: stored outcomes,
    /// current rows (locked), their children (locked), the children's
    /// transfers, lineages, and the visits on the days the duplicate check
    /// looks at. Whatever this misses is read on first need.
    pub(super) async fn prefetch(
        &mut self,
        txn: &DatabaseTransaction,
        mutations: &[&Mutation],
    ) -> AppResult<()> {
        let ids = mutations.iter().map(|m| m.mutation_id).collect();
        for done in repo::sync_records::applied(txn, ids).await? {
            self.applied.insert(done.mutation_id, done);
        }
        let fresh: Vec<&Mutation> = mutations
            .iter()
            .copied()
            .filter(|m| !self.applied.contains_key(&m.mutation_id))
            .collect();
        // The records themselves: visits and case-plan items first, then
        // the children (those pushed and those the others belong to), each
        // table locked in id order.
        for entity in [Entity::Visit, Entity::CasePlanItem] {
            let ids = fresh
                .iter()
                .filter(|m| m.entity == entity)
                .map(|m| m.record_id)
                .collect();
            self.load_rows(txn, entity, ids).await?;
        }
        let mut children: BTreeSet<Uuid> = BTreeSet::new();
        for m in &fresh {
            match m.entity {
                Entity::Child => {
                    children.insert(m.record_id);
                }
                entity => {
                    if let Some(Some(row)) = self.rows.get(&(entity, m.record_id)) {
                        children.insert(row.child_id);
                    }
                    children.extend(set_uuid(m, "child_id"));
                }
            }
        }
        self.load_rows(txn, Entity::Child, children.iter().copied().collect())
            .await?;
        self.load_transfers(txn, children.iter().copied().collect())
            .await?;
        self.load_archived(txn, children.iter().copied().collect())
            .await?;

        let mut villages: BTreeSet<Uuid> = BTreeSet::new();
        for row in self.rows.values().flatten() {
            villages.extend(uuid_field(&row.record, "village_id"));
        }
        for m in &fresh {
            villages.extend(set_uuid(m, "village_id"));
        }
        for moves in self.transfers.values() {
            villages.extend(moves.iter().filter_map(|t| t.from));
        }
        self.lineages.prefetch(txn, villages).await?;

        let mut days: BTreeMap<(Uuid, NaiveDate), DayRead> = BTreeMap::new();
        for m in fresh.iter().filter(|m| m.entity == Entity::Visit) {
            let current = self
                .rows
                .get(&(Entity::Visit, m.record_id))
                .cloned()
                .flatten();
            let child = match &current {
                Some(row) => Some(row.child_id),
                None => set_uuid(m, "child_id"),
            };
            let Some(child) = child else { continue };
            let sent = match m.fields.get("visited_at").map(|c| &c.op) {
                Some(FieldOp::Set(Value::String(at))) => DateTime::parse_from_rfc3339(at).ok(),
                _ => None,
            };
            let stored = current.as_ref().and_then(|row| visited_at(&row.record));
            // The device the merged visit will name: the one sent, else the
            // stored one (a guess; a wrong one only costs a second read).
            let device = set_uuid(m, "device_id").or_else(|| {
                current
                    .as_ref()
                    .and_then(|row| uuid_field(&row.record, "device_id"))
            });
            // The district's day, as the duplicate check asks for it: the
            // date in the offset sent (UTC, often) is another day for a
            // third of the day.
            for at in sent.into_iter().chain(stored) {
                let day = repo::synced::visit_day(at.with_timezone(&Utc));
                days.entry((child, day))
                    .and_modify(|read| read.also_for(device))
                    .or_insert(DayRead::for_device(device));
            }
        }
        let days = days
            .into_iter()
            .map(|((child, day), read)| (child, day, read.without()))
            .collect();
        self.load_days(txn, days).await
    }

    /// Whether the child's record was archived under the retention policy
    /// (read on first need if the prefetch did not).
    pub(super) async fn is_archived(
        &mut self,
        txn: &DatabaseTransaction,
        child: Uuid,
    ) -> AppResult<bool> {
        if !self.archived.contains_key(&child) {
            self.load_archived(txn, vec![child]).await?;
        }
        Ok(self.archived.get(&child).copied().unwrap_or(false))
    }

    async fn load_archived(
        &mut self,
        txn: &DatabaseTransaction,
        children: Vec<Uuid>,
    ) -> AppResult<()> {
        for child in &children {
            self.archived.insert(*child, false);
        }
        for child in repo::retention::archived_among(txn, children).await? {
            self.archived.insert(child, true);
        }
        Ok(())
    }

    async fn load_rows(
        &mut self,
        txn: &DatabaseTransaction,
        entity: Entity,
        ids: Vec<Uuid>,
    ) -> AppResult<()> {
        let ids: Vec<Uuid> = ids
            .into_iter()
            .filter(|id| !self.rows.contains_key(&(entity, *id)))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        for &id in &ids {
            self.rows.insert((entity, id), None);
        }
        for row in repo::synced::load_many(txn, entity, ids, true).await? {
            self.rows
                .insert((entity, row.record.id), Some(Arc::new(row)));
        }
        Ok(())
    }

    async fn load_transfers(
        &mut self,
        txn: &DatabaseTransaction,
        children: Vec<Uuid>,
    ) -> AppResult<()> {
        let children: Vec<Uuid> = children
            .into_iter()
            .filter(|id| !self.transfers.contains_key(id))
            .collect();
        if children.is_empty() {
            return Ok(());
        }
        for &id in &children {
            self.transfers.insert(id, Vec::new());
        }
        for (child, from, effective, recorded_at) in repo::synced::transfers(txn, children).await? {
            let from = from.and_then(|v| Uuid::try_parse(&v).ok());
            self.transfers.entry(child).or_default().push(Transfer {
                from,
                effective,
                recorded_at,
            });
        }
        Ok(())
    }

    /// Reads the live visits of the given (child, day)s not read yet, each
    /// without the visits of the device it names.
    async fn load_days(
        &mut self,
        txn: &DatabaseTransaction,
        days: Vec<(Uuid, NaiveDate, Option<Uuid>)>,
    ) -> AppResult<()> {
        let days: Vec<(Uuid, NaiveDate, Option<Uuid>)> = days
            .into_iter()
            .filter(|(child, day, _)| !self.visits_on.contains_key(&(*child, *day)))
            .collect();
        if days.is_empty() {
            return Ok(());
        }
        for &(child, day, without) in &days {
            self.visits_on.insert((child, day), (without, Vec::new()));
        }
        for (child, other) in repo::synced::visits_on_days(txn, days).await? {
            if let Some((_, bucket)) = self.visits_on.get_mut(&(child, other.visited_on)) {
                bucket.push(other);
            }
        }
        Ok(())
    }

    /// The current row of a record, read (and locked) on first need.
    pub(super) async fn row(
        &mut self,
        txn: &DatabaseTransaction,
        entity: Entity,
        id: Uuid,
    ) -> AppResult<Option<Arc<StoredRow>>> {
        if !self.rows.contains_key(&(entity, id)) {
            self.load_rows(txn, entity, vec![id]).await?;
        }
        Ok(self.rows.get(&(entity, id)).cloned().flatten())
    }

    /// The villages a child was transferred out of, with effective dates.
    pub(super) async fn transfers_of(
        &mut self,
        txn: &DatabaseTransaction,
        child: Uuid,
    ) -> AppResult<&mut Vec<Transfer>> {
        if !self.transfers.contains_key(&child) {
            self.load_transfers(txn, vec![child]).await?;
        }
        Ok(self.transfers.entry(child).or_default())
    }

    /// The child's other live visits on `day` (as the duplicate check
    /// counts days), as this batch has left them, for a visit recorded on
    /// `device`: the visits of that same device may be left out, since they
    /// are never its duplicates.
    pub(super) async fn visits_on(
        &mut self,
        txn: &DatabaseTransaction,
        child: Uuid,
        day: NaiveDate,
        device: Option<Uuid>,
    ) -> AppResult<Vec<OtherVisit>> {
        if let Some((Some(without), _)) = self.visits_on.get(&(child, day))
            && device != Some(*without)
        {
            // Read without another device's visits: read the day whole.
            self.visits_on.remove(&(child, day));
        }
        self.load_days(txn, vec![(child, day, None)]).await?;
        let written = self.written_for_child.get(&child);
        let is_written = |id: Uuid| written.is_some_and(|w| w.contains(&(Entity::Visit, id)));
        let mut others: Vec<OtherVisit> = self
            .visits_on
            .get(&(child, day))
            .into_iter()
            .flat_map(|(_, read)| read)
            .filter(|other| !is_written(other.visit_id))
            .cloned()
            .collect();
        for key in written.into_iter().flatten() {
            let Some(Some(row)) = self.rows.get(key) else {
                continue;
            };
            let visit = &row.record;
            if key.0 != Entity::Visit || visit.is_deleted() {
                continue;
            }
            let Some(at) = visited_at(visit) else {
                continue;
            };
            let visited_on = repo::synced::visit_day(at.with_timezone(&Utc));
            if visited_on == day {
                others.push(OtherVisit {
                    visit_id: visit.id,
                    device_id: uuid_field(visit, "device_id"),
                    visited_on,
                });
            }
        }
        Ok(others)
    }

    /// The visits and case-plan items of a child with their versions, as
    /// this batch has left them.
    pub(super) async fn belonging_to_child(
        &mut self,
        txn: &DatabaseTransaction,
        child: Uuid,
    ) -> AppResult<Vec<(Entity, Uuid, i64)>> {
        let written = self
            .written_for_child
            .get(&child)
            .cloned()
            .unwrap_or_default();
        let mut out: Vec<(Entity, Uuid, i64)> = repo::synced::belonging_to_child(txn, child)
            .await?
            .into_iter()
            .filter(|(entity, id, _)| !written.contains(&(*entity, *id)))
            .collect();
        for key in written {
            if let Some(Some(row)) = self.rows.get(&key) {
                out.push((
                    key.0,
                    key.1,
                    i64::try_from(row.record.version).unwrap_or(i64::MAX),
                ));
            }
        }
        Ok(out)
    }

    /// Keeps a written record: later mutations see it, and it is written
    /// at the next flush.
    pub(super) fn keep(&mut self, row: SyncedRow, stored: StoredRow, existed: bool) {
        let key = (stored.record.entity, stored.record.id);
        let is_new = match self.records.get(&key) {
            Some((_, is_new)) => *is_new,
            None => !existed,
        };
        if key.0 != Entity::Child {
            self.written_for_child
                .entry(stored.child_id)
                .or_default()
                .insert(key);
        }
        self.records.insert(key, (row, is_new));
        self.rows.insert(key, Some(Arc::new(stored)));
        self.written.push(key);
    }

    /// Writes everything decided since the last flush except the change
    /// log: records (children first), visit history, register events,
    /// conflicts, outbox rows and stored outcomes, each kind with
    /// multi-row inserts.
    pub(super) async fn flush(&mut self, txn: &DatabaseTransaction) -> AppResult<()> {
        let (mut new_rows, mut changed_rows) = (Vec::new(), Vec::new());
        for (_, (row, is_new)) in std::mem::take(&mut self.records) {
            if is_new {
                new_rows.push(row);
            } else {
                changed_rows.push(row);
            }
        }
        repo::synced::insert_rows(txn, new_rows).await?;
        for row in changed_rows {
            repo::synced::update_row(txn, row).await?;
        }
        repo::sync_records::insert_visit_versions(txn, std::mem::take(&mut self.versions)).await?;
        repo::sync_records::insert_register_events(txn, std::mem::take(&mut self.register_events))
            .await?;
        repo::sync_records::insert_conflicts(txn, std::mem::take(&mut self.conflicts)).await?;
        repo::sync_records::enqueue(txn, std::mem::take(&mut self.outbox)).await?;
        repo::sync_records::record_applied(txn, std::mem::take(&mut self.outcomes)).await?;
        Ok(())
    }
}

impl Batch {
    /// The audit entry for what this batch wrote from the `first`-th
    /// written record on (one push of a group): the children whose records
    /// (the child's register entry, its visits, its needs items) changed,
    /// and how many records of each kind; `None` when nothing was written.
    pub(super) fn audit_entry_since(
        &self,
        first: usize,
        caller: &AuthUser,
    ) -> Option<audit::Entry> {
        let mut children = BTreeSet::new();
        let mut records: BTreeSet<Key> = BTreeSet::new();
        for key in self.written.get(first..).unwrap_or_default() {
            if let Some(Some(row)) = self.rows.get(key) {
                children.insert(row.child_id);
                records.insert(*key);
            }
        }
        (!records.is_empty()).then(|| {
            super::super::audit_entry(
                caller,
                "sync.push",
                children,
                records.iter().map(|(entity, _)| *entity),
                json!({}),
            )
        })
    }
}

/// Whose visits a day's read may leave out: those of the one device every
/// visit checked against that day was recorded on, and none when the visits
/// name several devices or one names none (the duplicate check counts the
/// same device's visits only for a visit without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayRead {
    Without(Uuid),
    Whole,
}

impl DayRead {
    fn for_device(device: Option<Uuid>) -> Self {
        device.map_or(Self::Whole, Self::Without)
    }

    fn also_for(&mut self, device: Option<Uuid>) {
        if *self != Self::for_device(device) {
            *self = Self::Whole;
        }
    }

    fn without(self) -> Option<Uuid> {
        match self {
            Self::Without(device) => Some(device),
            Self::Whole => None,
        }
    }
}

/// A UUID the mutation sets on `field`.
pub(super) fn set_uuid(mutation: &Mutation, field: &str) -> Option<Uuid> {
    match mutation.fields.get(field).map(|c| &c.op) {
        Some(FieldOp::Set(Value::String(id))) => Uuid::try_parse(id).ok(),
        _ => None,
    }
}

pub(super) fn uuid_field(record: &Record, field: &str) -> Option<Uuid> {
    record.get_str(field).and_then(|v| Uuid::try_parse(v).ok())
}
