//! Versioned wire types of the sync protocol: `POST /api/v1/sync/push`,
//! `GET /api/v1/sync/pull`, the error envelope, the scope checksum and its
//! targeted repair (`GET /api/v1/sync/manifest`, `POST /api/v1/sync/fetch`).
//! `docs/SYNC-PROTOCOL.md` describes them with JSON examples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    clock::Hlc,
    error::SyncError,
    merge::{Conflict, Flag, MergeOutcome, Reason, Refusal, Verdict},
    record::{Entity, Record},
};

mod checksum;
mod compact;
mod recover;
mod repair;
pub use checksum::{ScopeChecksum, fnv1a64, record_hash};
pub use compact::{
    CompactPullResponse, CompactRecord, FieldStamps, PullEncoding, Stamp, read_pull,
};
pub use recover::{LostWrite, lost_writes};
pub use repair::{
    DEFAULT_MANIFEST_LIMIT, FetchRequest, FetchResponse, MAX_FETCH_RECORDS, MAX_MANIFEST_LIMIT,
    ManifestEntry, ManifestRequest, ManifestResponse, RecordRef, Repair,
};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The oldest protocol version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u32 = 1;
/// Pull page size when the client gives none.
pub const DEFAULT_PULL_LIMIT: u32 = 200;
/// Largest pull page a server hands out.
pub const MAX_PULL_LIMIT: u32 = 1000;

/// Accepts `version` if this build supports it; otherwise the error asks the
/// user to update the app (HTTP 426 on the server, code `unsupported_protocol`).
pub fn check_protocol_version(version: u32) -> Result<(), SyncError> {
    if (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(SyncError::UnsupportedProtocol {
            got: version,
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
        })
    }
}

/// What a mutation does to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create the record (base version 0).
    Create,
    /// Change some fields.
    Update,
    /// Delete (tombstone) the record.
    Delete,
}

/// A change to one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FieldChangeWire", into = "FieldChangeWire")]
pub struct FieldChange {
    /// Clock of this write on the device.
    pub hlc: Hlc,
    /// The write.
    pub op: FieldOp,
}

/// The write to one field: a new register value, or items added/removed.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldOp {
    /// New value of a register field (`null` clears it).
    Set(Value),
    /// Changes to an add-wins set: items added or changed (whole items, by
    /// id) and ids removed.
    Items {
        /// Items added or replaced.
        add: Vec<Value>,
        /// Ids of items removed (honoured only if the device had seen the item's latest write).
        remove: Vec<String>,
    },
}

impl FieldChange {
    /// A register write.
    pub fn set(hlc: Hlc, value: Value) -> Self {
        Self {
            hlc,
            op: FieldOp::Set(value),
        }
    }

    /// A set write.
    pub fn items(hlc: Hlc, add: Vec<Value>, remove: Vec<String>) -> Self {
        Self {
            hlc,
            op: FieldOp::Items { add, remove },
        }
    }
}

#[derive(Serialize, Deserialize)]
struct FieldChangeWire {
    hlc: Hlc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    add: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remove: Option<Vec<String>>,
}

impl TryFrom<FieldChangeWire> for FieldChange {
    type Error = &'static str;

    fn try_from(w: FieldChangeWire) -> Result<Self, Self::Error> {
        let op = match (w.value, w.add, w.remove) {
            (Some(v), None, None) => FieldOp::Set(v),
            (None, add, remove) if add.is_some() || remove.is_some() => FieldOp::Items {
                add: add.unwrap_or_default(),
                remove: remove.unwrap_or_default(),
            },
            (None, None, None) => FieldOp::Set(Value::Null),
            _ => return Err("a field change has either `value` or `add`/`remove`, not both"),
        };
        Ok(Self { hlc: w.hlc, op })
    }
}

impl From<FieldChange> for FieldChangeWire {
    fn from(c: FieldChange) -> Self {
        match c.op {
            FieldOp::Set(v) => Self {
                hlc: c.hlc,
                value: Some(v),
                add: None,
                remove: None,
            },
            FieldOp::Items { add, remove } => Self {
                hlc: c.hlc,
                value: None,
                add: Some(add),
                remove: Some(remove),
            },
        }
    }
}

/// One change a device made, as pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    /// Made by the device (UUID v4/v7); the server answers a retry with the
    /// stored outcome of the first delivery.
    pub mutation_id: Uuid,
    /// Which entity.
    pub entity: Entity,
    /// Which record (the device makes ids of records it creates).
    pub record_id: Uuid,
    /// Create, update or delete.
    pub op: Op,
    /// The server version the edit started from (0 for create).
    #[serde(default)]
    pub base_version: u64,
    /// Device clock of the mutation (used for deletes).
    pub hlc: Hlc,
    /// Changed fields (empty for delete).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldChange>,
}

impl Mutation {
    /// True when the mutation adds a risk flag marked `"urgent": true`
    /// (mandatory reporting); such records go first in a push.
    pub fn is_urgent(&self) -> bool {
        match self.fields.get("risk_flags").map(|c| &c.op) {
            Some(FieldOp::Items { add, .. }) => add.iter().any(is_urgent_item),
            Some(FieldOp::Set(Value::Array(items))) => items.iter().any(is_urgent_item),
            _ => false,
        }
    }
}

/// True when a risk-flag item is marked `"urgent": true`.
pub fn is_urgent_item(item: &Value) -> bool {
    item.get("urgent").and_then(Value::as_bool) == Some(true)
}

/// Orders a push batch so records with an urgent mutation come first, while
/// each record's own mutations keep their order (a create stays before its
/// updates) and the order is otherwise unchanged.
pub fn urgent_first(mutations: Vec<Mutation>) -> Vec<Mutation> {
    let urgent: std::collections::HashSet<Uuid> = mutations
        .iter()
        .filter(|m| m.is_urgent())
        .map(|m| m.record_id)
        .collect();
    let (mut first, rest): (Vec<_>, Vec<_>) = mutations
        .into_iter()
        .partition(|m| urgent.contains(&m.record_id));
    first.extend(rest);
    first
}

/// Body of `POST /api/v1/sync/push`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// Protocol version the device speaks.
    pub protocol_version: u32,
    /// The device (as registered at sign-in).
    pub device_id: Uuid,
    /// The device's clock when it sent the batch.
    pub device_hlc: Hlc,
    /// Mutations in the order the device made them (urgent records first).
    pub mutations: Vec<Mutation>,
    /// The device's pull cursor, when it has one: a push whose cursor was
    /// made before the server was restored from a backup is refused
    /// (`server_restored`) before anything is applied, so edits made on
    /// versions the server lost wait until the device has recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The outcome of one pushed mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MutationResult {
    /// Applied as sent.
    Applied {
        /// The mutation.
        mutation_id: Uuid,
        /// The record.
        record_id: Uuid,
        /// The record's server version afterwards.
        version: u64,
        /// Notices for the device and the supervisor.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flags: Vec<Flag>,
    },
    /// Applied after a merge: some values lost to concurrent writes or some
    /// fields were refused; every losing value is in `conflicts`.
    Merged {
        /// The mutation.
        mutation_id: Uuid,
        /// The record.
        record_id: Uuid,
        /// The record's server version afterwards.
        version: u64,
        /// Concurrent writes and who won.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        conflicts: Vec<Conflict>,
        /// Fields not applied, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refusals: Vec<Refusal>,
        /// Notices for the device and the supervisor.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flags: Vec<Flag>,
    },
    /// Nothing applied. The server keeps the mutation (as a conflict record
    /// or, for a locked record, a proposed amendment).
    Rejected {
        /// The mutation.
        mutation_id: Uuid,
        /// The record.
        record_id: Uuid,
        /// Machine-readable reason.
        reason: Reason,
        /// Human-readable explanation.
        message: String,
        /// Per-field detail, when the reason is about fields.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refusals: Vec<Refusal>,
        /// True when kept as a proposed amendment to a locked record.
        #[serde(default)]
        amendment: bool,
    },
}

impl MutationResult {
    /// The answer for `mutation` given its merge outcome.
    pub fn from_outcome(mutation: &Mutation, outcome: &MergeOutcome) -> Self {
        let (mutation_id, record_id) = (mutation.mutation_id, mutation.record_id);
        let version = outcome.record.as_ref().map_or(0, |r| r.version);
        match &outcome.verdict {
            Verdict::Applied => Self::Applied {
                mutation_id,
                record_id,
                version,
                flags: outcome.flags.clone(),
            },
            Verdict::Merged => Self::Merged {
                mutation_id,
                record_id,
                version,
                conflicts: outcome.conflicts.clone(),
                refusals: outcome.refusals.clone(),
                flags: outcome.flags.clone(),
            },
            Verdict::Rejected { reason, message } => Self::Rejected {
                mutation_id,
                record_id,
                reason: *reason,
                message: message.clone(),
                refusals: outcome.refusals.clone(),
                amendment: outcome.amendment.is_some(),
            },
        }
    }

    /// The mutation this result answers.
    pub fn mutation_id(&self) -> Uuid {
        match self {
            Self::Applied { mutation_id, .. }
            | Self::Merged { mutation_id, .. }
            | Self::Rejected { mutation_id, .. } => *mutation_id,
        }
    }
}

/// Answer to a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// Protocol version of the answer.
    pub protocol_version: u32,
    /// The server's clock after the push; the device observes it.
    pub server_hlc: Hlc,
    /// One result per mutation, in request order.
    pub results: Vec<MutationResult>,
}

/// Query of `GET /api/v1/sync/pull`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Protocol version the device speaks.
    pub protocol_version: u32,
    /// Opaque cursor from the previous page; absent for a fresh bootstrap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size (default [`DEFAULT_PULL_LIMIT`], at most [`MAX_PULL_LIMIT`]).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// How the answer writes its records (default [`PullEncoding::Full`]).
    #[serde(default, skip_serializing_if = "PullEncoding::is_full")]
    pub encoding: PullEncoding,
}

fn default_limit() -> u32 {
    DEFAULT_PULL_LIMIT
}

impl PullRequest {
    /// The page size to use: the requested one clamped to `1..=MAX_PULL_LIMIT`.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PULL_LIMIT)
    }
}

/// Why a device must drop a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeReason {
    /// The record left the user's scope (child transferred or exited, user moved).
    LeftScope,
    /// The record was deleted and its tombstone expired.
    Deleted,
}

/// A record the device must remove from its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purge {
    /// Which entity.
    pub entity: Entity,
    /// Which record.
    pub record_id: Uuid,
    /// Why.
    pub reason: PurgeReason,
}

/// Answer to a pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// Protocol version of the answer.
    pub protocol_version: u32,
    /// The server's clock; the device observes it.
    pub server_hlc: Hlc,
    /// Whole records (with clocks) changed after the cursor, in scope.
    pub changes: Vec<Record>,
    /// Records to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purges: Vec<Purge>,
    /// Cursor for the next page.
    pub next_cursor: String,
    /// True when another page follows at once.
    pub has_more: bool,
    /// Checksum of the whole scope as the server sees it (live records).
    /// The full encoding carries it on every page; the compact one on the
    /// last page only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_checksum: Option<ScopeChecksum>,
}

/// The one JSON error envelope: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// Body of the error envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (snake_case).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Structured detail, when useful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorEnvelope {
    /// Builds an envelope.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
                details: None,
            },
        }
    }
}

impl From<&SyncError> for ErrorEnvelope {
    fn from(e: &SyncError) -> Self {
        let code = match e {
            SyncError::InvalidClock { .. } => "invalid_clock",
            SyncError::UnsupportedProtocol { .. } => "unsupported_protocol",
            SyncError::UnknownField { .. } => "unknown_field",
            SyncError::InvalidValue { .. } => "invalid_value",
        };
        let mut env = Self::new(code, e.to_string());
        if let SyncError::UnsupportedProtocol { got, min, max } = e {
            env.error.details = Some(serde_json::json!({"got": got, "min": min, "max": max}));
        }
        env
    }
}
