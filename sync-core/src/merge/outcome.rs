//! What a merge decided: the verdict, the resulting record, the conflicts
//! (every losing value, kept), the refusals with machine-readable reasons,
//! and flags for the supervisor.

use std::{borrow::Cow, collections::BTreeMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{clock::Hlc, protocol::FieldChange, record::Record, rules::FieldKind};

/// Machine-readable reason for refusing a field or rejecting a mutation.
/// `<&str>::from(reason)` is its wire name; `Reason::VARIANTS` lists them all.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// The actor's role does not own this field or operation.
    RoleNotAllowed,
    /// Only the record's author may do this.
    NotAuthor,
    /// The value change is not an allowed transition (e.g. a director approving).
    InvalidTransition,
    /// The field cannot change after create.
    ImmutableField,
    /// The field is written only by the provincial feed.
    ServerOnlyField,
    /// The entity declares no such field.
    UnknownField,
    /// The value has the wrong shape for the field.
    InvalidValue,
    /// A register was written with `add`/`remove` or a set with `value`.
    WrongFieldKind,
    /// A required field is missing on create.
    MissingRequiredField,
    /// The record is approved and locked; the change was kept as a proposed amendment.
    Locked,
    /// An approval was based on a version whose content changed since.
    StaleReview,
    /// The device edited a record it already knew was deleted.
    RecordDeleted,
    /// Update or delete of a record the server does not have.
    RecordNotFound,
    /// A create named an id the server already holds (live or deleted):
    /// creates never merge into another record.
    IdExists,
    /// The base version is newer than the server's: the device store is inconsistent.
    FutureBaseVersion,
    /// The mutation names another entity than the stored record.
    EntityMismatch,
    /// A visit dated too far in the future.
    VisitInFuture,
    /// A visit dated before the child's birth.
    VisitBeforeBirth,
    /// The record (or the village it would move to) lies outside the
    /// actor's scope; decided by the server, which knows the org tree.
    OutOfScope,
    /// A visit or case-plan item names a child the server does not have.
    UnknownChild,
}

/// How a mutation fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything applied as sent.
    Applied,
    /// Applied in part or after resolving conflicts.
    Merged,
    /// Nothing applied.
    Rejected {
        /// Why.
        reason: Reason,
        /// For people.
        message: String,
    },
}

/// A field (or set item) the merge refused to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// The field.
    pub field: String,
    /// The item id, for a set item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// Why.
    pub reason: Reason,
    /// For people.
    pub message: String,
    /// The refused value (kept, nothing is silently dropped).
    pub value: Value,
}

/// The kinds of conflict.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConflictKind {
    /// Both sides wrote a register since the base.
    ConcurrentWrite,
    /// Both sides changed the same set item since the base.
    ConcurrentItemWrite,
    /// The device removed a set item that was changed since it last saw it.
    RemoveVsUpdate,
    /// The device deleted the record, which was edited concurrently.
    DeleteVsEdit,
    /// The device edited the record, which was deleted concurrently.
    EditVsDelete,
}

/// Which side won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// The stored (server) side.
    Server,
    /// The incoming (device) side.
    Client,
}

/// One side of a conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The value (`null` for a removal or deletion).
    pub value: Value,
    /// Its clock.
    pub hlc: Hlc,
}

/// A concurrent write and how it was resolved; the loser's value is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The field (`None` for a whole-record delete conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The set item, for item conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// What kind.
    pub kind: ConflictKind,
    /// The field rule that decided (`None` for record-level conflicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<FieldKind>,
    /// The stored side.
    pub server: Side,
    /// The incoming side.
    pub client: Side,
    /// Who won.
    pub winner: Winner,
}

impl Conflict {
    /// The losing side (kept for the supervisor).
    pub fn loser(&self) -> &Side {
        match self.winner {
            Winner::Server => &self.client,
            Winner::Client => &self.server,
        }
    }
}

/// A notice raised by a merge or a semantic check. `<&str>::from(&flag)` is
/// its wire name; `Flag::iter()` walks every kind.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(tag = "flag", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Flag {
    /// The device clock ran too far ahead; the change was ordered at the server's clock.
    ClockSkewed,
    /// A director changed a child the district has exited.
    EditToExitedChild,
    /// A visit dated on or after the child's exit from the register.
    VisitAfterExit,
    /// A visit dated on or after the child moved out of the visit's village.
    VisitAfterTransfer,
    /// Another device recorded a visit to the same child on the same day.
    PossibleDuplicate {
        /// The other visit.
        other_visit_id: uuid::Uuid,
    },
    /// An urgent risk flag (mandatory reporting): alert supervisor and district.
    Urgent,
}

/// Everything a merge decided. `'a` is the stored record's: a merge that
/// changes nothing hands it back borrowed instead of copying it.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome<'a> {
    /// Applied, merged or rejected.
    pub verdict: Verdict,
    /// The record afterwards (`None` only when a create was rejected):
    /// borrowed from the stored record when nothing changed, owned when
    /// something did.
    pub record: Option<Cow<'a, Record>>,
    /// True when the record differs from before (and its version increased).
    pub changed: bool,
    /// Fields where the device's value (or item) was taken.
    pub applied: Vec<String>,
    /// Concurrent writes and their resolution.
    pub conflicts: Vec<Conflict>,
    /// Fields refused.
    pub refusals: Vec<Refusal>,
    /// Notices.
    pub flags: Vec<Flag>,
    /// For a locked record: the change kept as a proposed amendment.
    pub amendment: Option<BTreeMap<String, FieldChange>>,
}

impl<'a> MergeOutcome<'a> {
    /// A rejection that leaves `record` as it was.
    pub fn rejected(
        record: Option<&'a Record>,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            verdict: Verdict::Rejected {
                reason,
                message: message.into(),
            },
            record: record.map(Cow::Borrowed),
            changed: false,
            applied: Vec::new(),
            conflicts: Vec::new(),
            refusals: Vec::new(),
            flags: Vec::new(),
            amendment: None,
        }
    }

    /// True when the mutation was rejected as a whole.
    pub fn is_rejected(&self) -> bool {
        matches!(self.verdict, Verdict::Rejected { .. })
    }

    /// The record afterwards, borrowed.
    pub fn record(&self) -> Option<&Record> {
        self.record.as_deref()
    }

    /// The same outcome, owning its record (for keeping it past the stored
    /// record's lifetime).
    pub fn into_owned(self) -> MergeOutcome<'static> {
        MergeOutcome {
            verdict: self.verdict,
            record: self.record.map(|r| Cow::Owned(r.into_owned())),
            changed: self.changed,
            applied: self.applied,
            conflicts: self.conflicts,
            refusals: self.refusals,
            flags: self.flags,
            amendment: self.amendment,
        }
    }
}
