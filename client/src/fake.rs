//! An in-memory server for tests (feature `testing`): it applies pushed
//! mutations with `sync_core::merge::{admit, merge}`, stores each result
//! under its mutation id and answers retries from that store, keeps a change
//! log with a sequence number, answers pulls page by page with the scope
//! checksum, answers the manifest and fetch of targeted repair, and can be
//! told to drop a request or lose a response.
//!
//! Scope is the whole fake server (every device sees every record); purges
//! are announced with [`FakeServer::purge`].

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use sync_core::{
    clock::HlcClock,
    merge::{admit, merge},
    protocol::{
        FetchRequest, FetchResponse, MAX_FETCH_RECORDS, MAX_MANIFEST_LIMIT, ManifestEntry,
        ManifestRequest, ManifestResponse, MutationResult, PROTOCOL_VERSION, PullRequest,
        PullResponse, Purge, PurgeReason, PushRequest, PushResponse, RecordRef, ScopeChecksum,
    },
    record::{Entity, Record},
    rules::{Actor, rules_for},
};
use uuid::Uuid;

use crate::transport::{Transport, TransportError};

/// A fault to inject into the next request of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The request never reaches the server.
    DropRequest,
    /// The server handles the request; the answer is lost on the way back.
    LoseResponse,
    /// The server answers with this error without handling the request.
    Fail(TransportError),
}

#[derive(Debug)]
enum LogEntry {
    Change(Entity, Uuid),
    Purge(Purge),
}

#[derive(Debug)]
struct State {
    clock: HlcClock,
    now_ms: u64,
    devices: HashMap<Uuid, Actor>,
    records: BTreeMap<(Entity, Uuid), Record>,
    results: HashMap<Uuid, MutationResult>,
    log: Vec<(u64, LogEntry)>,
    push_faults: VecDeque<Fault>,
    pull_faults: VecDeque<Fault>,
    mutations_applied: usize,
}

/// The in-memory server. Clones share the same state (one server, many phones).
#[derive(Debug, Clone)]
pub struct FakeServer(Arc<Mutex<State>>);

impl Default for FakeServer {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeServer {
    /// An empty server whose wall clock starts at 2026-03-02.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(State {
            clock: HlcClock::new(Uuid::from_u128(0x5e5e)),
            now_ms: 1_772_400_000_000,
            devices: HashMap::new(),
            records: BTreeMap::new(),
            results: HashMap::new(),
            log: Vec::new(),
            push_faults: VecDeque::new(),
            pull_faults: VecDeque::new(),
            mutations_applied: 0,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this server's state.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a device as used by `actor` (what sign-in does).
    pub fn register(&self, device_id: Uuid, actor: Actor) {
        self.state().devices.insert(device_id, actor);
    }

    /// Moves the server's wall clock.
    pub fn set_now(&self, now_ms: u64) {
        self.state().now_ms = now_ms;
    }

    /// Queues a fault for the next push.
    pub fn fault_next_push(&self, fault: Fault) {
        self.state().push_faults.push_back(fault);
    }

    /// Queues a fault for the next pull.
    pub fn fault_next_pull(&self, fault: Fault) {
        self.state().pull_faults.push_back(fault);
    }

    /// The stored record, if any.
    pub fn record(&self, entity: Entity, id: Uuid) -> Option<Record> {
        self.state().records.get(&(entity, id)).cloned()
    }

    /// Every stored record of an entity (deleted ones included).
    pub fn records(&self, entity: Entity) -> Vec<Record> {
        let state = self.state();
        state
            .records
            .values()
            .filter(|r| r.entity == entity)
            .cloned()
            .collect()
    }

    /// How many distinct mutations changed a record (retries not counted).
    pub fn mutations_applied(&self) -> usize {
        self.state().mutations_applied
    }

    /// The stored answer for a mutation id.
    pub fn result(&self, mutation_id: Uuid) -> Option<MutationResult> {
        self.state().results.get(&mutation_id).cloned()
    }

    /// Removes a record from every device's scope (e.g. a child transferred
    /// away): it is dropped here and devices are told to purge it.
    pub fn purge(&self, entity: Entity, id: Uuid, reason: PurgeReason) {
        let mut state = self.state();
        state.records.remove(&(entity, id));
        let seq = state.log.len() as u64 + 1;
        state.log.push((
            seq,
            LogEntry::Purge(Purge {
                entity,
                record_id: id,
                reason,
            }),
        ));
    }

    /// Drops a record without telling any device (a restored backup, a
    /// bug): devices notice through the scope checksum.
    pub fn forget(&self, entity: Entity, id: Uuid) {
        self.state().records.remove(&(entity, id));
    }

    /// Checksum of the live records.
    pub fn scope_checksum(&self) -> ScopeChecksum {
        checksum(&self.state())
    }
}

fn checksum(state: &State) -> ScopeChecksum {
    ScopeChecksum::of(
        state
            .records
            .values()
            .filter(|r| !r.is_deleted())
            .map(|r| (r.entity, r.id, r.version)),
    )
}

fn take_fault(faults: &mut VecDeque<Fault>) -> Result<bool, TransportError> {
    match faults.pop_front() {
        None => Ok(false),
        Some(Fault::DropRequest) => Err(TransportError::Retryable("request dropped".into())),
        Some(Fault::Fail(e)) => Err(e),
        Some(Fault::LoseResponse) => Ok(true),
    }
}

fn apply_push(state: &mut State, request: PushRequest) -> Result<PushResponse, TransportError> {
    let actor = *state
        .devices
        .get(&request.device_id)
        .ok_or_else(|| TransportError::SignInAgain("unknown device".into()))?;
    let now = state.now_ms;
    state.clock.observe(request.device_hlc, now);
    let mut results = Vec::with_capacity(request.mutations.len());
    for mut m in request.mutations {
        if let Some(stored) = state.results.get(&m.mutation_id) {
            results.push(stored.clone());
            continue;
        }
        admit(&mut m, &mut state.clock, now);
        let key = (m.entity, m.record_id);
        let outcome = merge(rules_for(m.entity), state.records.get(&key), &m, &actor);
        let result = MutationResult::from_outcome(&m, &outcome);
        if outcome.changed
            && let Some(record) = outcome.record
        {
            let record = record.into_owned();
            state.records.insert(key, record);
            let seq = state.log.len() as u64 + 1;
            state.log.push((seq, LogEntry::Change(key.0, key.1)));
            state.mutations_applied += 1;
        }
        state.results.insert(m.mutation_id, result.clone());
        results.push(result);
    }
    Ok(PushResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: state.clock.tick(now),
        results,
    })
}

fn answer_pull(state: &mut State, request: &PullRequest) -> Result<PullResponse, TransportError> {
    let after: u64 = match &request.cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| TransportError::Fatal {
            status: 400,
            code: "invalid_cursor".into(),
            message: format!("bad cursor {c:?}"),
        })?,
    };
    let limit = request.effective_limit() as usize;
    let last = state.log.len() as u64;
    let mut changes = Vec::new();
    let mut purges = Vec::new();
    let mut next = after;
    for (seq, entry) in state.log.iter().filter(|(s, _)| *s > after) {
        if changes.len() + purges.len() >= limit {
            break;
        }
        next = *seq;
        match entry {
            // Only the latest change of a record is sent; earlier ones are skipped.
            LogEntry::Change(entity, id) => {
                let latest = state
                    .log
                    .iter()
                    .rev()
                    .find(|(_, e)| matches!(e, LogEntry::Change(e2, i2) | LogEntry::Purge(Purge { entity: e2, record_id: i2, .. }) if e2 == entity && i2 == id))
                    .map(|(s, _)| *s);
                if latest == Some(*seq)
                    && let Some(r) = state.records.get(&(*entity, *id))
                {
                    changes.push(r.clone());
                }
            }
            LogEntry::Purge(p) => purges.push(p.clone()),
        }
    }
    let now = state.now_ms;
    Ok(PullResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: state.clock.tick(now),
        changes,
        purges,
        next_cursor: next.to_string(),
        has_more: next < last,
        scope_checksum: Some(checksum(state)),
    })
}

/// The manifest in pages ordered by `entity:id`, which is also what
/// `after` names.
fn answer_manifest(state: &State, request: &ManifestRequest) -> ManifestResponse {
    let limit = request.limit.clamp(1, MAX_MANIFEST_LIMIT) as usize;
    let mut live: Vec<(String, ManifestEntry)> = state
        .records
        .values()
        .filter(|r| !r.is_deleted())
        .map(|r| {
            (
                page_key(r.entity, r.id),
                ManifestEntry(r.entity, r.id, r.version),
            )
        })
        .filter(|(key, _)| request.after.as_ref().is_none_or(|after| key > after))
        .collect();
    live.sort_by(|a, b| a.0.cmp(&b.0));
    let more = live.len() > limit;
    live.truncate(limit);
    ManifestResponse {
        protocol_version: PROTOCOL_VERSION,
        next_after: more
            .then(|| live.last().map(|(key, _)| key.clone()))
            .flatten(),
        entries: live.into_iter().map(|(_, entry)| entry).collect(),
        scope_checksum: checksum(state),
        // A pull cursor at the log's head, as the server gives.
        cursor: Some(state.log.last().map_or(0, |(seq, _)| *seq).to_string()),
    }
}

fn page_key(entity: Entity, id: Uuid) -> String {
    format!("{}:{id}", entity.as_str())
}

fn answer_fetch(
    state: &mut State,
    request: &FetchRequest,
) -> Result<FetchResponse, TransportError> {
    if request.records.len() > MAX_FETCH_RECORDS {
        return Err(TransportError::Fatal {
            status: 400,
            code: "validation_failed".into(),
            message: format!("at most {MAX_FETCH_RECORDS} records per fetch"),
        });
    }
    let mut changes = Vec::new();
    let mut missing = Vec::new();
    for &RecordRef { entity, id } in &request.records {
        match state.records.get(&(entity, id)) {
            Some(r) if !r.is_deleted() => changes.push(r.clone()),
            _ => missing.push(RecordRef { entity, id }),
        }
    }
    let now = state.now_ms;
    Ok(FetchResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: state.clock.tick(now),
        changes,
        missing,
    })
}

impl Transport for FakeServer {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, TransportError> {
        let mut state = self.state();
        let lose = take_fault(&mut state.push_faults)?;
        let answer = apply_push(&mut state, request)?;
        if lose {
            return Err(TransportError::Retryable("response lost".into()));
        }
        Ok(answer)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, TransportError> {
        let mut state = self.state();
        let lose = take_fault(&mut state.pull_faults)?;
        let answer = answer_pull(&mut state, &request)?;
        if lose {
            return Err(TransportError::Retryable("response lost".into()));
        }
        Ok(answer)
    }

    async fn manifest(&self, request: ManifestRequest) -> Result<ManifestResponse, TransportError> {
        let state = self.state();
        Ok(answer_manifest(&state, &request))
    }

    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, TransportError> {
        let mut state = self.state();
        answer_fetch(&mut state, &request)
    }
}
