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
//! Last it writes the records, visit history, register events (with their
//! outbox rows), conflicts, alerts, stored outcomes and change-log rows with
//! multi-row inserts, the change log under its writer lock, then the audit
//! entry of the push (lock order: change log, then audit log), and commits.
//! Every database read of the push sees the state the push started from;
//! what the push has changed so far lives in [`Batch`], which answers first.
//!
//! **Grouped.** Pushes that arrive while another commits wait in a queue
//! and are then committed together, one group in one transaction, each
//! push applied in turn and answered with exactly its own results
//! ([`group`]).
//!
//! A mutation that is refused (scope, authority, shape, semantics) only
//! changes its own result; a database error fails the whole push (its group
//! is then committed again push by push), which then changed nothing and is
//! sent again by the phone.
//!
//! [`apply_one`] is also how the server makes a change itself (a review
//! decision, a conflict resolution, a roster row): one mutation through the
//! same path, written at once.

mod batch;
pub mod group;
mod rows;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, SqlErr};
use serde_json::{Map, Value, json};
use sync_core::merge::{Flag, MergeOutcome, Reason, Verdict, accept_amendment, admit, merge};
use sync_core::protocol::{
    FieldOp, Mutation, MutationResult, Op, PushRequest, PushResponse, urgent_first,
};
use sync_core::record::{Entity, Record};
use sync_core::rules::{Actor, rules_for};
use sync_core::semantic::{ChildFacts, check_visit, visited_at};
use uuid::Uuid;

pub(crate) use self::batch::Batch;
use self::batch::{set_uuid, uuid_field};
use super::placement::{self, Lineages};
use super::{DeviceUse, admit_caller, conflicts, now_ms};
use crate::auth::{AuthUser, Scope};
use crate::entity::applied_mutation;
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
    // Read through the reader pool: on SQLite the one writer connection is
    // busy committing the group this push may join.
    admit_caller(
        &state.reader,
        caller,
        request.protocol_version,
        DeviceUse::Push,
    )
    .await?;
    if request.device_id != caller.device_id {
        return Err(AppError::Validation(
            "device_id does not match the device this token was issued to".to_owned(),
        ));
    }
    if request
        .cursor
        .as_deref()
        .is_some_and(|cursor| super::pull::made_before_restore(cursor, caller, state))
    {
        // Its edits were made on versions the restore may have lost: the
        // device recovers first (docs/SYNC-PROTOCOL.md, "After a restore").
        return Err(AppError::Restored);
    }
    let limit = state.config.max_push_mutations;
    if request.mutations.len() > limit {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {limit} mutations per push; send the rest in another push"
        )));
    }
    let mutations = urgent_first(request.mutations);
    group::commit(state, caller, mutations).await
}

/// One push committed on its own: after its group failed, or when it was
/// the only one waiting.
async fn push_alone(
    state: &AppState,
    caller: &AuthUser,
    mutations: &[Mutation],
) -> AppResult<PushResponse> {
    match push_once(state, caller, mutations).await {
        // A copy of this push (a duplicated request, a retry racing the
        // original, another server process) committed first: this attempt hit
        // a unique key and was rolled back. Answered again, every mutation
        // finds its stored outcome.
        Err(AppError::Database(err))
            if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
        {
            tracing::info!(device = %caller.device_id, "concurrent copy of a push; answering from the stored outcomes");
            push_once(state, caller, mutations).await
        }
        other => other,
    }
}

/// Under whose authority a mutation is merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acting {
    /// The caller's own role: every device push, and a supervisor's review.
    AsCaller,
    /// A supervisor's decision applied as the record's author would make
    /// it: resolving a conflict over a field only the author writes
    /// (`amendment: false`), or accepting the author's proposed amendment
    /// to a locked visit (`amendment: true`). The caller stays the one
    /// recorded as having made the change.
    ForAuthor { author: Actor, amendment: bool },
}

/// The whole push in one transaction (see the module doc).
async fn push_once(
    state: &AppState,
    caller: &AuthUser,
    mutations: &[Mutation],
) -> AppResult<PushResponse> {
    let mut answered = group::push_together(state, &[(caller, mutations)]).await?;
    answered
        .pop()
        .ok_or_else(|| AppError::Internal("a push without its answer".to_owned()))
}

/// Applies one mutation made on the server and writes it at once (the
/// change-log rows stay in the batch, for [`Batch::append_changes`]). A
/// mutation already applied answers its stored outcome and changes nothing.
pub(crate) async fn apply_one(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mutation: Mutation,
    acting: Acting,
    batch: &mut Batch,
) -> AppResult<MutationResult> {
    if !batch.applied.contains_key(&mutation.mutation_id) {
        for done in repo::sync_records::applied(txn, vec![mutation.mutation_id]).await? {
            batch.applied.insert(done.mutation_id, done);
        }
    }
    let result = apply(txn, caller, mutation, acting, batch).await?;
    batch.flush(txn).await?;
    Ok(result)
}

/// Out-of-scope refusals one account may file in its village's conflict
/// queue per hour; beyond that the push still answers them, and the queue
/// is spared a flood.
const REFUSALS_PER_HOUR: u64 = 100;

/// Applies one mutation in memory (see the module doc). A mutation already
/// applied (a retry) answers its stored outcome and changes nothing.
async fn apply(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mut mutation: Mutation,
    acting: Acting,
    batch: &mut Batch,
) -> AppResult<MutationResult> {
    if let Some(done) = batch.applied.get(&mutation.mutation_id) {
        return stored_result(done, caller, &mutation);
    }
    let now = Utc::now();
    let skewed = admit(&mut mutation, &mut batch.clock, now_ms(now));
    let stored = batch.row(txn, mutation.entity, mutation.record_id).await?;
    let current = stored.as_deref();
    let actor = Actor::new(caller.user_id, caller.role.to_sync());

    let mut outcome =
        match check_scope(txn, caller, &mutation, current, &mut batch.lineages).await? {
            Some(refused) => refused,
            None => merge_as(acting, &mutation, current, &actor),
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
        && let Some(child) = child
        && batch.is_archived(txn, child.id).await?
    {
        // Archived under the retention policy: on no phone any more, and
        // its personal fields are gone; nothing may bring them back.
        outcome = MergeOutcome::rejected(
            current.map(|row| &row.record),
            Reason::OutOfScope,
            "this child exited long ago and the record was archived; it no longer syncs",
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
                if record.entity == Entity::Visit {
                    let version =
                        rows::visit_version(caller, &mutation, record, current, acting, now);
                    batch.versions.push(version);
                }
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

    // A mutation refused for its scope is the sender's matter: it is filed
    // in the sender's own village (where their supervisor sees it), never
    // in the target's queue, and at most REFUSALS_PER_HOUR an hour.
    let refused_for_scope = matches!(
        &outcome.verdict,
        Verdict::Rejected {
            reason: Reason::OutOfScope | Reason::UnknownChild,
            ..
        }
    );
    let mut file = true;
    if refused_for_scope {
        let left = match batch.refusals_left.get(&caller.user_id) {
            Some(&left) => left,
            None => {
                let since = now - chrono::Duration::hours(1);
                let filed = repo::review::refusals_filed_since(txn, caller.user_id, since).await?;
                REFUSALS_PER_HOUR.saturating_sub(filed)
            }
        };
        batch
            .refusals_left
            .insert(caller.user_id, left.saturating_sub(1));
        file = left > 0;
    }
    let village = if refused_for_scope {
        (caller.role == crate::auth::Role::Director).then_some(caller.org_unit_id)
    } else {
        child.and_then(|c| uuid_field(c, "village_id"))
    };
    let left_town = match (outcome.flags.contains(&Flag::VisitAfterTransfer), village) {
        (true, Some(current)) => {
            let filed = set_uuid(&mutation, "village_id").or_else(|| {
                outcome
                    .record
                    .as_ref()
                    .and_then(|r| uuid_field(r, "village_id"))
            });
            match filed {
                Some(filed) if filed != current => {
                    let town = |lineage: Vec<Uuid>| lineage.get(1).copied();
                    let (was, now_in) = (
                        town(batch.lineages.of(txn, filed).await?),
                        town(batch.lineages.of(txn, current).await?),
                    );
                    (was != now_in).then_some(filed)
                }
                _ => None,
            }
        }
        _ => None,
    };
    if file {
        batch.conflicts.extend(conflicts::rows_for(
            &mutation,
            &outcome,
            caller.user_id,
            village,
            left_town,
            now,
        ));
    }
    if !is_rejected(&outcome) && outcome.flags.contains(&Flag::Urgent) {
        batch
            .outbox
            .push(rows::alert(&mutation, outcome.record(), village, now));
    }
    let result = MutationResult::from_outcome(&mutation, &outcome);
    let done = applied_mutation::Model {
        mutation_id: mutation.mutation_id,
        device_id: caller.device_id,
        user_id: caller.user_id,
        entity: mutation.entity.as_str().to_owned(),
        record_id: mutation.record_id,
        outcome: {
            let mut stored =
                serde_json::to_value(&result).map_err(|err| AppError::Internal(err.to_string()))?;
            sync_core::rules::replace_nul(&mut stored);
            stored
        },
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
            record: record.into_owned(),
            created_at: current.map_or(now, |row| row.created_at),
            child_id,
            reviewed_by,
            reviewed_at,
        };
        batch.keep(row, stored, current.is_some());
    }
    Ok(result)
}

/// The merge under the authority `acting` names.
fn merge_as<'a>(
    acting: Acting,
    mutation: &Mutation,
    current: Option<&'a StoredRow>,
    actor: &Actor,
) -> MergeOutcome<'a> {
    let rules = rules_for(mutation.entity);
    let stored = current.map(|row| &row.record);
    match (acting, stored) {
        (Acting::AsCaller, _) => merge(rules, stored, mutation, actor),
        (
            Acting::ForAuthor {
                author,
                amendment: false,
            },
            _,
        ) => merge(rules, stored, mutation, &author),
        (
            Acting::ForAuthor {
                author,
                amendment: true,
            },
            Some(stored),
        ) => accept_amendment(rules, stored, mutation, actor, &author),
        (Acting::ForAuthor { .. }, None) => {
            MergeOutcome::rejected(None, Reason::RecordNotFound, "no such record")
        }
    }
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
async fn check_scope<'a>(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mutation: &Mutation,
    current: Option<&'a StoredRow>,
    lineages: &mut Lineages,
) -> AppResult<Option<MergeOutcome<'a>>> {
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
            .filter_map(|t| t.from),
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
async fn check_semantics<'a>(
    txn: &DatabaseTransaction,
    mutation: &Mutation,
    child: Option<&Record>,
    current: Option<&'a StoredRow>,
    outcome: &mut MergeOutcome<'a>,
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
        in_village_since: None,
        transferred_at: None,
    };
    // The latest transfer: its effective day, and when it was recorded.
    let latest = batch
        .transfers_of(txn, child.id)
        .await?
        .iter()
        .max_by_key(|transfer| (transfer.effective, transfer.recorded_at))
        .copied();
    let facts = ChildFacts {
        in_village_since: latest.map(|t| t.effective),
        transferred_at: latest.map(|t| t.recorded_at),
        ..facts
    };
    let calendar = crate::calendar::district();
    let others = match visited_at(visit) {
        Some(at) => {
            let device = uuid_field(visit, "device_id");
            batch
                .visits_on(txn, child.id, calendar.day(&at), device)
                .await?
        }
        None => Vec::new(),
    };
    let now_ms = now.timestamp_millis();
    let check = check_visit(
        visit,
        &facts,
        &others,
        now_ms,
        VISIT_FUTURE_TOLERANCE_MS,
        &calendar,
    );
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
    let events = rows::register_events(caller, record, current.map(|row| &row.record), now);
    let messages = crate::service::integration::outbound::register_messages(
        txn,
        &events,
        record,
        now,
        &mut batch.village_codes,
    )
    .await?;
    batch.outbox.extend(messages);
    for event in events.iter().filter(|e| e.kind == "transferred") {
        let from = event
            .from_value
            .as_deref()
            .and_then(|v| Uuid::try_parse(v).ok());
        batch
            .transfers_of(txn, record.id)
            .await?
            .push(batch::Transfer {
                from,
                effective: event.effective_date,
                recorded_at: event.created_at,
            });
    }
    batch.register_events.extend(events);
    Ok(changes)
}
