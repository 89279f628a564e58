//! Seedling's pure sync core: hybrid logical clocks, per-entity field rules,
//! three-way merge and the versioned wire protocol. No I/O, no clock reads.

pub mod clock;
pub mod error;
pub mod merge;
pub mod protocol;
pub mod record;
pub mod rules;
pub mod semantic;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::SyncError;
