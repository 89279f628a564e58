//! `push`: apply a device's mutations, all in one transaction.
//!
//! **Batched.** The push first reads, with a few `IN (…)` queries, what its
//! mutations need: their stored outcomes (idempotency), the current rows of
//! the records they touch and of those records' children (locked, so a
//! transfer of a child and a visit to it serialise), the children's
//! transfers, the org-tree lineages, and the other visits on the days the
//! duplicate check looks at. It then applies the mutations one after the
//! other in memory, in order (urgent first), each through `sync-core`'s
//! merge and semantic checks, each seeing what the earlier ones changed.
//! Last it writes the records, register events, conflicts, alerts, stored
//! outcomes and change-log rows with multi-row inserts, the change log last
//! under its writer lock, and commits. Every database read of the push sees
//! the state the push started from; what the push has changed so far lives
//! in [`Batch`], which answers first.
//!
//! A mutation that is refused (scope, authority, shape, semantics) only
//! changes its own result; a database error fails the whole push, which
//! then changed nothing and is sent again by the phone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{DatabaseTransaction, SqlErr, TransactionTrait};
use serde_json::{Map, Value, json};
use sync_core::clock::HlcClock;
use sync_core::merge::{Flag, MergeOutcome, Reason, Verdict, admit, merge};
use sync_core::protocol::{
    FieldOp, Mutation, MutationResult, Op, PROTOCOL_VERSION, PushRequest, PushResponse,
    urgent_first,
};
use sync_core::record::{Entity, Record};
use sync_core::rules::{Actor, rules_for};
use sync_core::semantic::{ChildFacts, OtherVisit, check_visit, visited_at};
use uuid::Uuid;

use super::placement::{self, Lineages};
use super::{SERVER_NODE, admit_caller, conflicts, now_ms};
use crate::auth::{AuthUser, Role, Scope};
use crate::entity::{applied_mutation, conflict, outbox, register_event};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::change_log::{NewChange, Placement};
use crate::repo::synced::{RowError, StoredRow, SyncedRow};
use crate::state::AppState;

/// How far in the future a visit's date may lie (the phone's date may be a
/// little ahead; a visit next week is a typing mistake).
const VISIT_FUTURE_TOLERANCE_MS: i64 = 24 * 60 * 60 * 1000;

/// Applies the batch, urgent records first, and answers one result per
/// mutation in the order applied.
pub async fn push(
    state: &AppState,
    caller: &AuthUser,
    request: PushRequest,
) -> AppResult<PushResponse> {
    admit_caller(&state.db, caller, request.protocol_version).await?;
    if request.device_id != caller.device_id {
        return Err(AppError::Validation(
            "device_id does not match the device this token was issued to".to_owned(),
        ));
    }
    let limit = state.config.max_push_mutations;
    if request.mutations.len() > limit {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {limit} mutations per push; send the rest in another push"
        )));
    }
    let mutations = urgent_first(request.mutations);
    match push_once(state, caller, &mutations).await {
        // A copy of this push (a duplicated request, a retry racing the
        // original, another server process) committed first: this attempt hit
        // a unique key and was rolled back. Answered again, every mutation
        // finds its stored outcome.
        Err(AppError::Database(err))
            if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
        {
            tracing::info!(device = %caller.device_id, "concurrent copy of a push; answering from the stored outcomes");
            push_once(state, caller, &mutations).await
        }
        other => other,
    }
}

type Key = (Entity, Uuid);

/// What one push has read and what it will write. Reads are made once
/// (prefetched, or on first need) against the state the push started from;
/// the push's own changes are kept here and override them.
#[derive(Default)]
struct Batch {
    lineages: Lineages,
    /// Stored outcomes by mutation id: from earlier pushes, then this one's.
    applied: HashMap<Uuid, applied_mutation::Model>,
    /// The current row of each record read so far (`None`: no such
    /// record), as this push has left it.
    rows: HashMap<Key, Option<Arc<StoredRow>>>,
    /// Per child: the villages it was transferred out of, with the
    /// effective dates, including this push's transfers.
    transfers: HashMap<Uuid, Vec<(Option<Uuid>, NaiveDate)>>,
    /// Live visits per (child, day) as stored before this push.
    visits_on: HashMap<(Uuid, NaiveDate), Vec<OtherVisit>>,
    /// The visits and case-plan items this push wrote, per child.
    written_for_child: HashMap<Uuid, BTreeSet<Key>>,
    /// Rows to write: `true` for a record new to the database.
    records: BTreeMap<Key, (SyncedRow, bool)>,
    register_events: Vec<register_event::Model>,
    conflicts: Vec<conflict::Model>,
    alerts: Vec<outbox::Model>,
    outcomes: Vec<applied_mutation::Model>,
    changes: Vec<NewChange>,
}

/// The whole push in one transaction (see the module doc).
async fn push_once(
    state: &AppState,
    caller: &AuthUser,
    mutations: &[Mutation],
) -> AppResult<PushResponse> {
    let txn = state.db.begin().await?;
    let mut clock = HlcClock::new(SERVER_NODE);
    let mut batch = Batch::default();
    batch.prefetch(&txn, mutations).await?;
    let mut results = Vec::with_capacity(mutations.len());
    for mutation in mutations {
        results.push(apply_one(&txn, caller, mutation.clone(), &mut batch, &mut clock).await?);
    }
    let now = Utc::now();
    batch.write(&txn, now).await?;
    txn.commit().await?;
    Ok(PushResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: clock.tick(now_ms(now)),
        results,
    })
}

impl Batch {
    /// Reads what the mutations need with a few queries: stored outcomes,
    /// current rows (locked), their children (locked), the children's
    /// transfers, lineages, and the visits on the days the duplicate check
    /// looks at. Whatever this misses is read on first need.
    async fn prefetch(
        &mut self,
        txn: &DatabaseTransaction,
        mutations: &[Mutation],
    ) -> AppResult<()> {
        let ids = mutations.iter().map(|m| m.mutation_id).collect();
        for done in repo::sync_records::applied(txn, ids).await? {
            self.applied.insert(done.mutation_id, done);
        }
        let fresh: Vec<&Mutation> = mutations
            .iter()
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

        let mut villages: BTreeSet<Uuid> = BTreeSet::new();
        for row in self.rows.values().flatten() {
            villages.extend(uuid_field(&row.record, "village_id"));
        }
        for m in &fresh {
            villages.extend(set_uuid(m, "village_id"));
        }
        for moves in self.transfers.values() {
            villages.extend(moves.iter().filter_map(|(from, _)| *from));
        }
        self.lineages.prefetch(txn, villages).await?;

        let mut days: BTreeSet<(Uuid, NaiveDate)> = BTreeSet::new();
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
            for at in sent.into_iter().chain(stored) {
                days.insert((child, at.date_naive()));
            }
        }
        self.load_days(txn, days.into_iter().collect()).await
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
        for (child, from, date) in repo::synced::transfers(txn, children).await? {
            let from = from.and_then(|v| Uuid::try_parse(&v).ok());
            self.transfers.entry(child).or_default().push((from, date));
        }
        Ok(())
    }

    async fn load_days(
        &mut self,
        txn: &DatabaseTransaction,
        days: Vec<(Uuid, NaiveDate)>,
    ) -> AppResult<()> {
        let days: Vec<(Uuid, NaiveDate)> = days
            .into_iter()
            .filter(|key| !self.visits_on.contains_key(key))
            .collect();
        if days.is_empty() {
            return Ok(());
        }
        for &key in &days {
            self.visits_on.insert(key, Vec::new());
        }
        for (child, other) in repo::synced::visits_on_days(txn, days).await? {
            if let Some(bucket) = self.visits_on.get_mut(&(child, other.visited_on)) {
                bucket.push(other);
            }
        }
        Ok(())
    }

    /// The current row of a record, read (and locked) on first need.
    async fn row(
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
    async fn transfers_of(
        &mut self,
        txn: &DatabaseTransaction,
        child: Uuid,
    ) -> AppResult<&mut Vec<(Option<Uuid>, NaiveDate)>> {
        if !self.transfers.contains_key(&child) {
            self.load_transfers(txn, vec![child]).await?;
        }
        Ok(self.transfers.entry(child).or_default())
    }

    /// The child's other live visits on `day` (as the duplicate check
    /// counts days), as this push has left them.
    async fn visits_on(
        &mut self,
        txn: &DatabaseTransaction,
        child: Uuid,
        day: NaiveDate,
    ) -> AppResult<Vec<OtherVisit>> {
        self.load_days(txn, vec![(child, day)]).await?;
        let written = self.written_for_child.get(&child);
        let is_written = |id: Uuid| written.is_some_and(|w| w.contains(&(Entity::Visit, id)));
        let mut others: Vec<OtherVisit> = self
            .visits_on
            .get(&(child, day))
            .into_iter()
            .flatten()
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
    /// this push has left them.
    async fn belonging_to_child(
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

    /// Keeps a written record: later mutations of the push see it, and it
    /// is written at the end.
    fn keep(&mut self, row: SyncedRow, stored: StoredRow, existed: bool) {
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
    }

    /// Writes everything the push decided, the change log last (its writer
    /// lock is then held only until the commit).
    async fn write(&mut self, txn: &DatabaseTransaction, now: DateTime<Utc>) -> AppResult<()> {
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
        repo::sync_records::insert_register_events(txn, std::mem::take(&mut self.register_events))
            .await?;
        repo::sync_records::insert_conflicts(txn, std::mem::take(&mut self.conflicts)).await?;
        repo::sync_records::enqueue(txn, std::mem::take(&mut self.alerts)).await?;
        repo::sync_records::record_applied(txn, std::mem::take(&mut self.outcomes)).await?;
        repo::change_log::append(txn, std::mem::take(&mut self.changes), now).await?;
        Ok(())
    }
}

/// A UUID the mutation sets on `field`.
fn set_uuid(mutation: &Mutation, field: &str) -> Option<Uuid> {
    match mutation.fields.get(field).map(|c| &c.op) {
        Some(FieldOp::Set(Value::String(id))) => Uuid::try_parse(id).ok(),
        _ => None,
    }
}

fn uuid_field(record: &Record, field: &str) -> Option<Uuid> {
    record.get_str(field).and_then(|v| Uuid::try_parse(v).ok())
}

/// Applies one mutation in memory (see the module doc). A mutation already
/// applied (a retry) answers its stored outcome and changes nothing.
async fn apply_one(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mut mutation: Mutation,
    batch: &mut Batch,
    clock: &mut HlcClock,
) -> AppResult<MutationResult> {
    if let Some(done) = batch.applied.get(&mutation.mutation_id) {
        return stored_result(done, caller, &mutation);
    }
    let now = Utc::now();
    let skewed = admit(&mut mutation, clock, now_ms(now));
    let stored = batch.row(txn, mutation.entity, mutation.record_id).await?;
    let current = stored.as_deref();
    let actor = Actor::new(caller.user_id, caller.role.to_sync());

    let mut outcome =
        match check_scope(txn, caller, &mutation, current, &mut batch.lineages).await? {
            Some(refused) => refused,
            None => merge(
                rules_for(mutation.entity),
                current.map(|row| &row.record),
                &mutation,
                &actor,
            ),
        };
    let child = child_of(txn, &mutation, stored.as_ref(), batch).await?;
    let child = child.as_deref().map(|row| &row.record);
    if !is_rejected(&outcome) && mutation.entity != Entity::Child && child.is_none() {
        outcome = MergeOutcome::rejected(
            current.map(|row| &row.record),
            Reason::UnknownChild,
            "no child on the register has this child_id",
        );
    }
    if !is_rejected(&outcome)
        && mutation.entity != Entity::Child
        && mutation.op == Op::Create
        && let Some(child) = child
        && !child_reachable(txn, caller, child, batch).await?
    {
        outcome = MergeOutcome::rejected(
            None,
            Reason::OutOfScope,
            "this child is not on the register of your village",
        );
    }
    if !is_rejected(&outcome) && skewed {
        outcome.flags.push(Flag::ClockSkewed);
    }
    if !is_rejected(&outcome) && mutation.entity == Entity::Visit && mutation.op != Op::Delete {
        check_semantics(txn, &mutation, child, current, &mut outcome, now, batch).await?;
    }

    let mut written = None;
    if outcome.changed
        && !is_rejected(&outcome)
        && let Some(record) = &outcome.record
    {
        match to_row(caller, record, current, now) {
            Ok(row) => {
                let changes = log_changes(txn, caller, record, current, child, now, batch).await?;
                batch.changes.extend(changes);
                written = Some(row);
            }
            Err(RowError::Shape(message)) => {
                outcome = MergeOutcome::rejected(
                    current.map(|r| &r.record),
                    Reason::InvalidValue,
                    message,
                );
            }
            Err(other) => return Err(other.into()),
        }
    }

    let village = child.and_then(|c| uuid_field(c, "village_id"));
    batch.conflicts.extend(conflicts::rows_for(
        &mutation,
        &outcome,
        caller.user_id,
        village,
        now,
    ));
    if !is_rejected(&outcome) && outcome.flags.contains(&Flag::Urgent) {
        batch
            .alerts
            .push(alert(&mutation, outcome.record.as_ref(), village, now));
    }
    let result = MutationResult::from_outcome(&mutation, &outcome);
    let done = applied_mutation::Model {
        mutation_id: mutation.mutation_id,
        device_id: caller.device_id,
        user_id: caller.user_id,
        entity: mutation.entity.as_str().to_owned(),
        record_id: mutation.record_id,
        outcome: serde_json::to_value(&result)
            .map_err(|err| AppError::Internal(err.to_string()))?,
        created_at: now,
    };
    batch.applied.insert(done.mutation_id, done.clone());
    batch.outcomes.push(done);
    if let (Some(row), Some(record)) = (written, outcome.record) {
        let child_id = match (current, record.entity) {
            (Some(stored), _) => stored.child_id,
            (None, Entity::Child) => record.id,
            (None, _) => uuid_field(&record, "child_id").unwrap_or_default(),
        };
        let (reviewed_by, reviewed_at) = match &row {
            SyncedRow::Visit(visit) => (visit.reviewed_by, visit.reviewed_at),
            _ => (None, None),
        };
        let stored = StoredRow {
            record,
            created_at: current.map_or(now, |row| row.created_at),
            child_id,
            reviewed_by,
            reviewed_at,
        };
        batch.keep(row, stored, current.is_some());
    }
    Ok(result)
}

fn is_rejected(outcome: &MergeOutcome) -> bool {
    matches!(outcome.verdict, Verdict::Rejected { .. })
}

/// A retried mutation: the stored answer, unchanged. A mutation id that was
/// used by another phone and account, or for another record, is refused for
/// this mutation only, so the rest of the push still applies.
fn stored_result(
    done: &applied_mutation::Model,
    caller: &AuthUser,
    mutation: &Mutation,
) -> AppResult<MutationResult> {
    let same_sender = done.device_id == caller.device_id || done.user_id == caller.user_id;
    let same_record =
        done.entity == mutation.entity.as_str() && done.record_id == mutation.record_id;
    if !same_sender || !same_record {
        return Ok(MutationResult::Rejected {
            mutation_id: mutation.mutation_id,
            record_id: mutation.record_id,
            reason: Reason::EntityMismatch,
            message: "this mutation id was already used for another change; make a new id"
                .to_owned(),
            refusals: Vec::new(),
            amendment: false,
        });
    }
    serde_json::from_value(done.outcome.clone())
        .map_err(|err| AppError::Internal(format!("stored outcome unreadable: {err}")))
}

/// The caller may touch a record only inside their scope: the village it is
/// in now and, for a child, the village it would move to.
async fn check_scope(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mutation: &Mutation,
    current: Option<&StoredRow>,
    lineages: &mut Lineages,
) -> AppResult<Option<MergeOutcome>> {
    let scope = Scope::of(caller);
    let mut villages = Vec::new();
    if let Some(row) = current {
        villages.extend(uuid_field(&row.record, "village_id"));
    }
    if let Some(change) = mutation.fields.get("village_id")
        && let FieldOp::Set(Value::String(v)) = &change.op
    {
        match Uuid::try_parse(v) {
            Ok(village) => villages.push(village),
            Err(_) => return Ok(None), // the merge refuses the malformed value
        }
    }
    if villages.is_empty() && current.is_none() && mutation.op != Op::Create {
        return Ok(None); // the merge answers record_not_found
    }
    for village in villages {
        let lineage = lineages.of(txn, village).await?;
        let is_village = lineage.len() == 3;
        if !is_village || !scope.contains(&lineage) {
            return Ok(Some(MergeOutcome::rejected(
                current.map(|row| &row.record),
                Reason::OutOfScope,
                "this record belongs to a village outside your scope",
            )));
        }
    }
    Ok(None)
}

/// True when the caller may record for this child: the child is in the
/// caller's scope now, or was transferred out of it (a visit recorded
/// offline after a transfer is kept and flagged, never refused).
async fn child_reachable(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    child: &Record,
    batch: &mut Batch,
) -> AppResult<bool> {
    let scope = Scope::of(caller);
    let mut villages: Vec<Uuid> = uuid_field(child, "village_id").into_iter().collect();
    villages.extend(
        batch
            .transfers_of(txn, child.id)
            .await?
            .iter()
            .filter_map(|(from, _)| *from),
    );
    for village in villages {
        if scope.contains(&batch.lineages.of(txn, village).await?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The child a record belongs to, as it is now (locked, so a transfer of
/// the child and a visit to it serialise and the visit is filed where the
/// child is when it commits).
async fn child_of(
    txn: &DatabaseTransaction,
    mutation: &Mutation,
    current: Option<&Arc<StoredRow>>,
    batch: &mut Batch,
) -> AppResult<Option<Arc<StoredRow>>> {
    let child_id = match (mutation.entity, current) {
        // The record is the child, already loaded (and locked).
        (Entity::Child, _) => return Ok(current.cloned()),
        (_, Some(row)) => Some(row.child_id),
        (_, None) => set_uuid(mutation, "child_id"),
    };
    match child_id {
        Some(id) => batch.row(txn, Entity::Child, id).await,
        None => Ok(None),
    }
}

/// Semantic checks of a visit: the child exists, the date is plausible, and
/// flags for a transferred or exited child or a possible duplicate.
async fn check_semantics(
    txn: &DatabaseTransaction,
    mutation: &Mutation,
    child: Option<&Record>,
    current: Option<&StoredRow>,
    outcome: &mut MergeOutcome,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<()> {
    let Some(visit) = &outcome.record else {
        return Ok(());
    };
    let before = current.map(|row| &row.record);
    let touches_date = mutation.op == Op::Create || mutation.fields.contains_key("visited_at");
    let Some(child) = child.filter(|_| touches_date) else {
        return Ok(()); // an unknown child was rejected before; no date change, no check
    };
    let date = |field: &str| {
        child
            .get_str(field)
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
    };
    let (Some(birth_date), Some(village_id)) =
        (date("birth_date"), uuid_field(child, "village_id"))
    else {
        return Ok(());
    };
    let facts = ChildFacts {
        birth_date,
        exited_on: (child.get_str("status") == Some("exited"))
            .then(|| date("exit_date"))
            .flatten(),
        village_id,
        in_village_since: batch
            .transfers_of(txn, child.id)
            .await?
            .iter()
            .map(|(_, date)| *date)
            .max(),
    };
    let others = match visited_at(visit) {
        Some(at) => batch.visits_on(txn, child.id, at.date_naive()).await?,
        None => Vec::new(),
    };
    let now_ms = now.timestamp_millis();
    let check = check_visit(visit, &facts, &others, now_ms, VISIT_FUTURE_TOLERANCE_MS);
    check.apply(before, outcome);
    Ok(())
}

/// The row to write for a merged record, with the server's own columns.
fn to_row(
    caller: &AuthUser,
    record: &Record,
    current: Option<&StoredRow>,
    now: DateTime<Utc>,
) -> Result<SyncedRow, RowError> {
    let mut server_columns = Map::new();
    if record.entity == Entity::Visit {
        let (mut by, mut at) =
            current.map_or((None, None), |row| (row.reviewed_by, row.reviewed_at));
        let before = current.and_then(|row| row.record.get_str("review_status"));
        let after = record.get_str("review_status");
        if after != before && matches!(after, Some("approved" | "returned")) {
            by = Some(caller.user_id);
            at = Some(now);
        }
        server_columns.insert("reviewed_by".into(), json!(by));
        server_columns.insert("reviewed_at".into(), json!(at));
    }
    let created_at = current.map_or(now, |row| row.created_at);
    repo::synced::to_row(record, created_at, now, server_columns)
}

/// The change-log rows for a written record, and for a child that moved
/// between scopes also its visits and needs items, with purge notices for
/// the scopes left; register events for changes to a child's register entry.
async fn log_changes(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    record: &Record,
    current: Option<&StoredRow>,
    child: Option<&Record>,
    now: DateTime<Utc>,
    batch: &mut Batch,
) -> AppResult<Vec<NewChange>> {
    let version = i64::try_from(record.version).unwrap_or(i64::MAX);
    let lineages = &mut batch.lineages;
    let mut changes = Vec::new();
    if record.entity != Entity::Child {
        let placement = match child {
            Some(child) => lineages.of_child(txn, child).await?,
            None => Placement::default(),
        };
        changes.push(NewChange::Upsert {
            entity: record.entity,
            record_id: record.id,
            version,
            placement,
        });
        // Recorded in a village the child has left (a visit made offline
        // after a transfer): the recording village's phones drop their copy;
        // the visit lives on with the child, flagged for the supervisor.
        if let Some(recorded_in) = uuid_field(record, "village_id") {
            let recorded = lineages.placement(txn, recorded_in, true).await?;
            for scope in placement::lost(recorded, placement) {
                changes.push(NewChange::Purge {
                    entity: record.entity,
                    record_id: record.id,
                    version,
                    scope,
                });
            }
        }
        return Ok(changes);
    }
    let after = lineages.of_child(txn, record).await?;
    let before = match current {
        Some(row) => lineages.of_child(txn, &row.record).await?,
        None => Placement::default(),
    };
    changes.push(NewChange::Upsert {
        entity: Entity::Child,
        record_id: record.id,
        version,
        placement: after,
    });
    let lost = placement::lost(before, after);
    for &scope in &lost {
        changes.push(NewChange::Purge {
            entity: Entity::Child,
            record_id: record.id,
            version,
            scope,
        });
    }
    if before != after && current.is_some() {
        for (entity, id, version) in batch.belonging_to_child(txn, record.id).await? {
            changes.push(NewChange::Upsert {
                entity,
                record_id: id,
                version,
                placement: after,
            });
            for &scope in &lost {
                changes.push(NewChange::Purge {
                    entity,
                    record_id: id,
                    version,
                    scope,
                });
            }
        }
    }
    let events = register_events(caller, record, current.map(|row| &row.record), now);
    for event in events.iter().filter(|e| e.kind == "transferred") {
        let from = event
            .from_value
            .as_deref()
            .and_then(|v| Uuid::try_parse(v).ok());
        let date = event.effective_date;
        batch.transfers_of(txn, record.id).await?.push((from, date));
    }
    batch.register_events.extend(events);
    Ok(changes)
}

/// Register events for what changed in a child's register entry.
fn register_events(
    caller: &AuthUser,
    after: &Record,
    before: Option<&Record>,
    now: DateTime<Utc>,
) -> Vec<register_event::Model> {
    let today = (now + chrono::Duration::hours(8)).date_naive();
    let source = match caller.role {
        Role::Integration => "data_matching",
        Role::Director => "director",
        Role::Supervisor | Role::Admin => "district",
    };
    let event = |kind: &str, from: Option<&str>, to: Option<&str>, date, reason: Option<&str>| {
        register_event::Model {
            id: Uuid::now_v7(),
            child_id: after.id,
            kind: kind.to_owned(),
            effective_date: date,
            source: source.to_owned(),
            from_value: from.map(str::to_owned),
            to_value: to.map(str::to_owned),
            reason: reason.map(str::to_owned),
            recorded_by: Some(caller.user_id),
            created_at: now,
        }
    };
    let Some(before) = before else {
        return vec![event("added", None, after.get_str("category"), today, None)];
    };
    let mut events = Vec::new();
    let changed = |field: &str| before.get_str(field) != after.get_str(field);
    if changed("category") {
        events.push(event(
            "category_changed",
            before.get_str("category"),
            after.get_str("category"),
            today,
            None,
        ));
    }
    if changed("village_id") {
        events.push(event(
            "transferred",
            before.get_str("village_id"),
            after.get_str("village_id"),
            today,
            None,
        ));
    }
    if changed("status") {
        let exit_date = after
            .get_str("exit_date")
            .and_then(|d| d.parse().ok())
            .unwrap_or(today);
        match after.get_str("status") {
            Some("exited") => events.push(event(
                "exited",
                Some("active"),
                Some("exited"),
                exit_date,
                after.get_str("exit_reason"),
            )),
            Some("active") => {
                events.push(event("added", Some("exited"), Some("active"), today, None))
            }
            _ => {}
        }
    }
    events
}

/// An urgent risk flag (suspected abuse or neglect falls under mandatory
/// reporting): the outbox row for the provincial platform, written in the
/// push's transaction beside the open `urgent` conflict row for the town
/// supervisor and the district.
fn alert(
    mutation: &Mutation,
    record: Option<&Record>,
    village: Option<Uuid>,
    now: DateTime<Utc>,
) -> outbox::Model {
    let payload = json!({
        "visit_id": mutation.record_id,
        "child_id": record.and_then(|r| r.get("child_id")),
        "village_id": village,
        "risk_flags": record.and_then(|r| r.get("risk_flags")),
        "raised_at": now,
    });
    tracing::warn!(visit = %mutation.record_id, "urgent risk flag raised");
    outbox::Model {
        id: Uuid::now_v7(),
        kind: "urgent_alert".to_owned(),
        aggregate_id: mutation.record_id,
        payload,
        status: "pending".to_owned(),
        attempts: 0,
        next_attempt_at: now,
        locked_until: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
    }
}
