//! Targeted repair: when a phone's scope checksum differs from the
//! server's, it reads the scope's manifest (every record's entity, id and
//! version, in pages), works out with [`Repair::between`] which records it
//! lacks, holds at another version, or holds but should not, and fetches
//! only the first two kinds whole — a few records instead of a bootstrap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ScopeChecksum;
use crate::clock::Hlc;
use crate::record::{Entity, Record};

/// Manifest entries per page when the device does not say.
pub const DEFAULT_MANIFEST_LIMIT: u32 = 5_000;
/// The most manifest entries one page holds.
pub const MAX_MANIFEST_LIMIT: u32 = 10_000;
/// The most records one fetch asks for.
pub const MAX_FETCH_RECORDS: usize = 500;

/// One record of the scope: `[entity, id, version]` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ManifestEntry(pub Entity, pub Uuid, pub u64);

/// Query of `GET /api/v1/sync/manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRequest {
    /// Protocol version the device speaks.
    pub protocol_version: u32,
    /// The previous page's `next_after`; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Entries per page (default [`DEFAULT_MANIFEST_LIMIT`], at most
    /// [`MAX_MANIFEST_LIMIT`]).
    pub limit: u32,
}

/// A page of the scope's manifest, ordered by entity then id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestResponse {
    /// Protocol version of the answer.
    pub protocol_version: u32,
    /// The live records of the scope in this page.
    pub entries: Vec<ManifestEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
    /// The checksum of the whole scope, as the pull reports it.
    pub scope_checksum: ScopeChecksum,
    /// A pull cursor at the change log's head when this page was read: a
    /// phone that repaired its store from the manifest (after a restore, in
    /// particular) pulls on from the first page's cursor. Absent from
    /// servers before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Names one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    /// Which entity.
    pub entity: Entity,
    /// Which record.
    pub id: Uuid,
}

/// Asks for some records of the scope, whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// The protocol version the device speaks.
    pub protocol_version: u32,
    /// At most [`MAX_FETCH_RECORDS`].
    pub records: Vec<RecordRef>,
}

/// The records asked for, as a pull carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchResponse {
    /// Protocol version of the answer.
    pub protocol_version: u32,
    /// The server's clock; the device observes it.
    pub server_hlc: Hlc,
    /// Whole records, with clocks.
    pub changes: Vec<Record>,
    /// Asked for but not in the caller's scope (or deleted): drop them.
    #[serde(default)]
    pub missing: Vec<RecordRef>,
}

/// What a device must do to hold exactly the server's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repair {
    /// Missing on the device, or held at another version: fetch these.
    pub fetch: Vec<RecordRef>,
    /// Held by the device but not in the scope: drop these.
    pub drop: Vec<RecordRef>,
}

impl Repair {
    /// Compares the server's manifest with the device's own shadow copies
    /// (`(entity, id, version)` of every live record it stores).
    pub fn between(
        server: impl IntoIterator<Item = ManifestEntry>,
        device: impl IntoIterator<Item = (Entity, Uuid, u64)>,
    ) -> Self {
        let mut held: BTreeMap<RecordRef, u64> = device
            .into_iter()
            .map(|(entity, id, version)| (RecordRef { entity, id }, version))
            .collect();
        let mut repair = Self::default();
        for ManifestEntry(entity, id, version) in server {
            let key = RecordRef { entity, id };
            if held.remove(&key) != Some(version) {
                repair.fetch.push(key);
            }
        }
        repair.drop = held.into_keys().collect();
        repair.fetch.sort();
        repair
    }

    /// True when the device already holds the manifest exactly.
    pub fn is_empty(&self) -> bool {
        self.fetch.is_empty() && self.drop.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_repair_fetches_the_missing_and_stale_and_drops_the_extra() {
        let server = [
            ManifestEntry(Entity::Child, id(1), 2),
            ManifestEntry(Entity::Visit, id(2), 5),
            ManifestEntry(Entity::Visit, id(3), 1),
        ];
        let device = [
            (Entity::Child, id(1), 2),
            (Entity::Visit, id(2), 4),
            (Entity::Visit, id(9), 1),
        ];
        let repair = Repair::between(server, device);
        assert_eq!(
            repair.fetch,
            vec![
                RecordRef {
                    entity: Entity::Visit,
                    id: id(2)
                },
                RecordRef {
                    entity: Entity::Visit,
                    id: id(3)
                },
            ]
        );
        assert_eq!(
            repair.drop,
            vec![RecordRef {
                entity: Entity::Visit,
                id: id(9)
            }]
        );
        assert!(Repair::between(server, server.map(|e| (e.0, e.1, e.2))).is_empty());
    }

    #[test]
    fn a_manifest_entry_is_a_compact_array_on_the_wire() {
        let entry = ManifestEntry(Entity::CasePlanItem, id(7), 3);
        let text = serde_json::to_string(&entry).unwrap();
        assert_eq!(text, format!("[\"case_plan_item\",\"{}\",3]", id(7)));
        assert_eq!(serde_json::from_str::<ManifestEntry>(&text).unwrap(), entry);
    }
}
