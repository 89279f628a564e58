//! `push`: apply a device's mutations. Each mutation is one transaction
//! that checks the idempotency store, merges through `sync-core`, writes
//! the record, its conflicts, register events and alerts, stores the
//! outcome under the mutation id, and appends to the change log last.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, SqlErr, TransactionTrait};
use serde_json::{Map, Value, json};
use sync_core::clock::HlcClock;
use sync_core::merge::{Flag, MergeOutcome, Reason, Verdict, accept_amendment, admit, merge};
use sync_core::protocol::{
    Mutation, MutationResult, Op, PROTOCOL_VERSION, PushRequest, PushResponse, urgent_first,
};
use sync_core::record::{Entity, Record};
use sync_core::rules::{Actor, rules_for};
use sync_core::semantic::{ChildFacts, check_visit};
use uuid::Uuid;

use super::placement::{self, Lineages};
use super::{DeviceUse, SERVER_NODE, admit_caller, conflicts, now_ms};
use crate::auth::{AuthUser, Role, Scope};
use crate::entity::{applied_mutation, outbox, register_event, visit_version};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::change_log::{NewChange, Placement};
use crate::repo::synced::{RowError, StoredRow};
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
    admit_caller(&state.db, caller, request.protocol_version, DeviceUse::Push).await?;
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

/// What the mutations of one push share: the transaction's server clock,
/// the org-tree lookups made so far, and the change-log rows to append.
/// A change made on the server (a review decision, a conflict resolution)
/// goes through the same path as a one-mutation batch.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) clock: HlcClock,
    lineages: Lineages,
    changes: Vec<NewChange>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            clock: HlcClock::new(SERVER_NODE),
            lineages: Lineages::default(),
            changes: Vec::new(),
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
        repo::change_log::append(txn, std::mem::take(&mut self.changes), now).await?;
        Ok(())
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

/// The whole push in one transaction: every mutation's record, conflicts,
/// register events, alerts and stored outcome, then the change-log rows,
/// appended last so the change-log writer lock is held only for the commit.
async fn push_once(
    state: &AppState,
    caller: &AuthUser,
    mutations: &[Mutation],
) -> AppResult<PushResponse> {
    let txn = state.db.begin().await?;
    let mut batch = Batch::new();
    let mut results = Vec::with_capacity(mutations.len());
    for mutation in mutations {
        results
            .push(apply_one(&txn, caller, mutation.clone(), Acting::AsCaller, &mut batch).await?);
    }
    let now = Utc::now();
    batch.append_changes(&txn, now).await?;
    txn.commit().await?;
    Ok(PushResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: batch.clock.tick(now_ms(now)),
        results,
    })
}

/// Applies one mutation inside the push's transaction. A mutation already
/// applied (a retry) answers its stored outcome and changes nothing.
pub(crate) async fn apply_one(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mut mutation: Mutation,
    acting: Acting,
    batch: &mut Batch,
) -> AppResult<MutationResult> {
    if let Some(done) = repo::sync_records::applied(txn, mutation.mutation_id).await? {
        return stored_result(done, caller, &mutation);
    }
    let now = Utc::now();
    let skewed = admit(&mut mutation, &mut batch.clock, now_ms(now));
    let lineages = &mut batch.lineages;
    let current = repo::synced::load(txn, mutation.entity, mutation.record_id, true).await?;
    let actor = Actor::new(caller.user_id, caller.role.to_sync());

    let mut outcome = match check_scope(txn, caller, &mutation, current.as_ref(), lineages).await? {
        Some(refused) => refused,
        None => {
            let rules = rules_for(mutation.entity);
            let stored = current.as_ref().map(|row| &row.record);
            match (acting, stored) {
                (Acting::AsCaller, _) => merge(rules, stored, &mutation, &actor),
                (
                    Acting::ForAuthor {
                        author,
                        amendment: false,
                    },
                    _,
                ) => merge(rules, stored, &mutation, &author),
                (
                    Acting::ForAuthor {
                        author,
                        amendment: true,
                    },
                    Some(stored),
                ) => accept_amendment(rules, stored, &mutation, &actor, &author),
                (Acting::ForAuthor { .. }, None) => {
                    MergeOutcome::rejected(None, Reason::RecordNotFound, "no such record")
                }
            }
        }
    };
    let child = child_of(txn, &mutation, current.as_ref()).await?;
    if !is_rejected(&outcome) && mutation.entity != Entity::Child && child.is_none() {
        outcome = MergeOutcome::rejected(
            current.as_ref().map(|row| &row.record),
            Reason::UnknownChild,
            "no child on the register has this child_id",
        );
    }
    if !is_rejected(&outcome)
        && let Some(child) = &child
        && repo::retention::is_archived(txn, child.id).await?
    {
        // Archived under the retention policy: on no phone any more, and
        // its personal fields are gone; nothing may bring them back.
        outcome = MergeOutcome::rejected(
            current.as_ref().map(|row| &row.record),
            Reason::OutOfScope,
            "this child exited long ago and the record was archived; it no longer syncs",
        );
    }
    if !is_rejected(&outcome)
        && mutation.entity != Entity::Child
        && mutation.op == Op::Create
        && let Some(child) = &child
        && !child_reachable(txn, caller, child, lineages).await?
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
        check_semantics(
            txn,
            &mutation,
            child.as_ref(),
            current.as_ref(),
            &mut outcome,
            now,
        )
        .await?;
    }

    let mut changes = Vec::new();
    if outcome.changed
        && !is_rejected(&outcome)
        && let Some(record) = outcome.record.clone()
    {
        match write_record(txn, caller, &record, current.as_ref(), now).await {
            Ok(()) => {
                if record.entity == Entity::Visit {
                    record_version(
                        txn,
                        caller,
                        &mutation,
                        &record,
                        current.as_ref(),
                        acting,
                        now,
                    )
                    .await?;
                }
                changes = log_changes(
                    txn,
                    caller,
                    &record,
                    current.as_ref(),
                    child.as_ref(),
                    now,
                    lineages,
                )
                .await?;
            }
            Err(RowError::Shape(message)) => {
                outcome = MergeOutcome::rejected(
                    current.as_ref().map(|r| &r.record),
                    Reason::InvalidValue,
                    message,
                );
            }
            Err(other) => return Err(other.into()),
        }
    }

    let village = child
        .as_ref()
        .and_then(|c| c.get_str("village_id"))
        .and_then(|v| Uuid::try_parse(v).ok());
    repo::sync_records::insert_conflicts(
        txn,
        conflicts::rows_for(&mutation, &outcome, caller.user_id, village, now),
    )
    .await?;
    if !is_rejected(&outcome) && outcome.flags.contains(&Flag::Urgent) {
        raise_alert(txn, &mutation, outcome.record.as_ref(), village, now).await?;
    }
    let result = MutationResult::from_outcome(&mutation, &outcome);
    repo::sync_records::record_applied(
        txn,
        applied_mutation::Model {
            mutation_id: mutation.mutation_id,
            device_id: caller.device_id,
            user_id: caller.user_id,
            entity: mutation.entity.as_str().to_owned(),
            record_id: mutation.record_id,
            outcome: serde_json::to_value(&result)
                .map_err(|err| AppError::Internal(err.to_string()))?,
            created_at: now,
        },
    )
    .await?;
    batch.changes.extend(changes);
    Ok(result)
}

/// One row of a visit's history: which fields changed from what to what,
/// by whom, at which version.
async fn record_version(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    mutation: &Mutation,
    record: &Record,
    current: Option<&StoredRow>,
    acting: Acting,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let before = current.map(|row| row.record.values()).unwrap_or_default();
    let after = record.values();
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let changes: Vec<Value> = names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| json!({ "field": name, "before": before.get(name), "after": after.get(name) }))
        .collect();
    let review_only = changes.iter().all(|c| {
        matches!(
            c["field"].as_str(),
            Some("review_status" | "review_comment")
        )
    });
    let kind = if current.is_none() {
        "created"
    } else if record.is_deleted() {
        "deleted"
    } else if matches!(
        acting,
        Acting::ForAuthor {
            amendment: true,
            ..
        }
    ) {
        "amendment_accepted"
    } else if review_only && !changes.is_empty() {
        "reviewed"
    } else {
        "edited"
    };
    repo::sync_records::insert_visit_version(
        txn,
        visit_version::Model {
            id: Uuid::now_v7(),
            visit_id: record.id,
            version: i64::try_from(record.version).unwrap_or(i64::MAX),
            actor_id: Some(caller.user_id),
            actor_role: Some(caller.role.as_str().to_owned()),
            mutation_id: Some(mutation.mutation_id),
            kind: kind.to_owned(),
            changes: Value::Array(changes),
            created_at: now,
        },
    )
    .await?;
    Ok(())
}

fn is_rejected(outcome: &MergeOutcome) -> bool {
    matches!(outcome.verdict, Verdict::Rejected { .. })
}

/// A retried mutation: the stored answer, unchanged. A mutation id that was
/// used by another phone and account, or for another record, is refused for
/// this mutation only, so the rest of the push still applies.
fn stored_result(
    done: applied_mutation::Model,
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
    serde_json::from_value(done.outcome)
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
        villages.extend(
            row.record
                .get_str("village_id")
                .and_then(|v| Uuid::try_parse(v).ok()),
        );
    }
    if let Some(change) = mutation.fields.get("village_id")
        && let sync_core::protocol::FieldOp::Set(Value::String(v)) = &change.op
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
    lineages: &mut Lineages,
) -> AppResult<bool> {
    let scope = Scope::of(caller);
    let villages = child
        .get_str("village_id")
        .and_then(|v| Uuid::try_parse(v).ok())
        .into_iter()
        .chain(repo::synced::transferred_from(txn, child.id).await?);
    for village in villages {
        if scope.contains(&lineages.of(txn, village).await?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The child a record belongs to, as it is now.
async fn child_of(
    txn: &DatabaseTransaction,
    mutation: &Mutation,
    current: Option<&StoredRow>,
) -> AppResult<Option<Record>> {
    let child_id = match (mutation.entity, current) {
        // The record is the child, already loaded (and locked) by the caller.
        (Entity::Child, Some(row)) => return Ok(Some(row.record.clone())),
        (Entity::Child, None) => return Ok(None),
        (_, Some(row)) => Some(row.child_id),
        (_, None) => match mutation.fields.get("child_id").map(|c| &c.op) {
            Some(sync_core::protocol::FieldOp::Set(Value::String(id))) => Uuid::try_parse(id).ok(),
            _ => None,
        },
    };
    match child_id {
        // Locked: a transfer of the child and a visit to it serialise, so the
        // visit is filed where the child is when it commits.
        Some(id) => Ok(repo::synced::load(txn, Entity::Child, id, true)
            .await?
            .map(|row| row.record)),
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
) -> AppResult<()> {
    let Some(visit) = outcome.record.clone() else {
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
    let (Some(birth_date), Some(village_id)) = (
        date("birth_date"),
        child
            .get_str("village_id")
            .and_then(|v| Uuid::try_parse(v).ok()),
    ) else {
        return Ok(());
    };
    let facts = ChildFacts {
        birth_date,
        exited_on: (child.get_str("status") == Some("exited"))
            .then(|| date("exit_date"))
            .flatten(),
        village_id,
        in_village_since: repo::synced::last_transfer(txn, child.id).await?,
    };
    let day = sync_core::semantic::visited_at(&visit).map(|at| at.date_naive());
    let others = match day {
        Some(day) => repo::synced::visits_near(txn, child.id, visit.id, day).await?,
        None => Vec::new(),
    };
    let now_ms = now.timestamp_millis();
    check_visit(&visit, &facts, &others, now_ms, VISIT_FUTURE_TOLERANCE_MS).apply(before, outcome);
    Ok(())
}

async fn write_record(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    record: &Record,
    current: Option<&StoredRow>,
    now: DateTime<Utc>,
) -> Result<(), RowError> {
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
    repo::synced::save(
        txn,
        record,
        created_at,
        now,
        server_columns,
        current.is_none(),
    )
    .await
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
    lineages: &mut Lineages,
) -> AppResult<Vec<NewChange>> {
    let version = i64::try_from(record.version).unwrap_or(i64::MAX);
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
        if let Some(recorded_in) = record
            .get_str("village_id")
            .and_then(|v| Uuid::try_parse(v).ok())
        {
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
        for (entity, id, version) in repo::synced::belonging_to_child(txn, record.id).await? {
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
    crate::service::integration::outbound::enqueue_register_events(txn, &events, record, now)
        .await?;
    repo::sync_records::insert_register_events(txn, events).await?;
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
/// reporting): an open alert for the town supervisor and the district, and
/// an outbox row for the provincial platform, in the same transaction.
async fn raise_alert(
    txn: &DatabaseTransaction,
    mutation: &Mutation,
    record: Option<&Record>,
    village: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let payload = json!({
        "visit_id": mutation.record_id,
        "child_id": record.and_then(|r| r.get("child_id")),
        "village_id": village,
        "risk_flags": record.and_then(|r| r.get("risk_flags")),
        "raised_at": now,
    });
    repo::sync_records::enqueue(
        txn,
        outbox::Model {
            id: Uuid::now_v7(),
            kind: "urgent_alert".to_owned(),
            aggregate_id: mutation.record_id,
            payload: payload.clone(),
            status: "pending".to_owned(),
            attempts: 0,
            next_attempt_at: now,
            locked_until: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
        },
    )
    .await?;
    tracing::warn!(visit = %mutation.record_id, "urgent risk flag raised");
    Ok(())
}
