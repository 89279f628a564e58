//! The crate's error type: one [`SyncError`] for everything that can go wrong
//! outside a merge (parsing clocks, checking protocol versions, rebuilding
//! records from stored rows). Merge problems are not errors: they are
//! reported as refusals and conflicts in a [`crate::merge::MergeOutcome`].

use crate::record::Entity;

/// Everything that can fail in `sync-core` outside a merge outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// A hybrid-logical-clock string was not `WWWWWWWWWWWWWWW-CCCCCCCC-<32 hex>`.
    #[error("invalid clock {text:?}: {why}")]
    InvalidClock {
        /// The text that failed to parse.
        text: String,
        /// What was wrong with it.
        why: &'static str,
    },
    /// The device speaks a protocol version this build does not support.
    #[error(
        "protocol version {got} is not supported (supported: {min}..={max}); please update the app"
    )]
    UnsupportedProtocol {
        /// Version the client sent.
        got: u32,
        /// Oldest version this build accepts.
        min: u32,
        /// Newest version this build accepts.
        max: u32,
    },
    /// A field name that the entity's rule table does not declare.
    #[error("unknown field {field:?} for entity {entity}")]
    UnknownField {
        /// The entity.
        entity: Entity,
        /// The field name.
        field: String,
    },
    /// A stored value does not have the shape its field rule requires.
    #[error("invalid stored value for {entity}.{field}: {why}")]
    InvalidValue {
        /// The entity.
        entity: Entity,
        /// The field name.
        field: String,
        /// What was wrong.
        why: String,
    },
}
