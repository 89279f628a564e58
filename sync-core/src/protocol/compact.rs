//! The compact record encoding of a pull page (`encoding=compact`).
//!
//! A record's fields are mostly written together: a visit recorded on a
//! phone carries one clock and one version on every field, and a later edit
//! changes a few. The full encoding repeats the clock (57 characters) and
//! the version on every field and every set item; the compact one names
//! the most common `[clock, version]` pair once, as the record's `clock`,
//! and lists under `clocks` only the fields and set items written at
//! another. The values are the plain column values: registers under
//! `values`, add-wins sets as arrays of their items under `sets`.
//!
//! ```json
//! {"entity": "visit", "id": "…", "version": 3,
//!  "clock": ["001772424000000-00000001-…", 1],
//!  "values": {"location": "school", "follow_up": "…"},
//!  "sets": {"needs": [{"id": "n1", "area": "study"}]},
//!  "clocks": {"location": ["001772424100000-00000000-…", 3],
//!             "needs": {"n1": ["001772424100000-00000000-…", 2]}}}
//! ```
//!
//! Decoding gives back exactly the record encoded ([`CompactRecord::into_record`]
//! after [`CompactRecord::from`] is the identity; a property test keeps it so).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{PullResponse, Purge, ScopeChecksum};
use crate::{
    clock::Hlc,
    error::SyncError,
    record::{Entity, Field, Item, Record, Register, Tombstone},
};

/// How a pull page writes its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullEncoding {
    /// Every field with its own clock and version (the original form).
    #[default]
    Full,
    /// [`CompactRecord`]s; the scope checksum on the last page only.
    Compact,
}

impl PullEncoding {
    /// True for [`PullEncoding::Full`] (serde's `skip_serializing_if`).
    pub fn is_full(&self) -> bool {
        *self == PullEncoding::Full
    }
}

/// The clock and server version of a write: `[clock, version]` on the wire.
pub type Stamp = (Hlc, u64);

/// The stamp of one field that differs from its record's `clock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldStamps {
    /// A register's `[clock, version]`.
    Register(Stamp),
    /// A set's items whose stamp differs, by item id.
    Items(BTreeMap<String, Stamp>),
}

/// A record in the compact encoding (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactRecord {
    /// Which entity.
    pub entity: Entity,
    /// The record id.
    pub id: Uuid,
    /// Server version.
    pub version: u64,
    /// The stamp of every field and item not named in `clocks`; absent when
    /// the record has no field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Stamp>,
    /// Register values by field name.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
    /// Add-wins sets by field name: their items (objects with a string
    /// `"id"`), ordered by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: BTreeMap<String, Vec<Value>>,
    /// The stamps that differ from `clock`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clocks: BTreeMap<String, FieldStamps>,
    /// Set when the record is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstone: Option<Tombstone>,
}

impl From<Record> for CompactRecord {
    fn from(record: Record) -> Self {
        let clock = most_common_stamp(&record);
        let mut values = Map::new();
        let mut sets = BTreeMap::new();
        let mut clocks = BTreeMap::new();
        for (name, field) in record.fields {
            match field {
                Field::Register(register) => {
                    let stamp = (register.hlc, register.version);
                    if Some(stamp) != clock {
                        clocks.insert(name.clone(), FieldStamps::Register(stamp));
                    }
                    values.insert(name, register.value);
                }
                Field::Items(items) => {
                    let mut differing = BTreeMap::new();
                    let mut list = Vec::with_capacity(items.len());
                    for (key, item) in items {
                        let stamp = (item.hlc, item.version);
                        if Some(stamp) != clock {
                            differing.insert(key, stamp);
                        }
                        list.push(item.value);
                    }
                    if !differing.is_empty() {
                        clocks.insert(name.clone(), FieldStamps::Items(differing));
                    }
                    sets.insert(name, list);
                }
            }
        }
        Self {
            entity: record.entity,
            id: record.id,
            version: record.version,
            clock,
            values,
            sets,
            clocks,
            tombstone: record.tombstone,
        }
    }
}

/// The stamp most fields and items carry; on a tie the latest, so the
/// choice depends on the record alone. None for a record without fields
/// or set items.
fn most_common_stamp(record: &Record) -> Option<Stamp> {
    let mut counts: HashMap<Stamp, usize> = HashMap::new();
    for field in record.fields.values() {
        match field {
            Field::Register(register) => {
                *counts.entry((register.hlc, register.version)).or_default() += 1;
            }
            Field::Items(items) => {
                for item in items.values() {
                    *counts.entry((item.hlc, item.version)).or_default() += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .max_by(|(a, n), (b, m)| n.cmp(m).then(a.cmp(b)))
        .map(|(stamp, _)| stamp)
}

impl CompactRecord {
    /// The record this encodes. Refused: a field both a register and a
    /// set, a set item without a string `"id"` or named twice, a stamp for
    /// a field or item the record does not carry, and a field with neither
    /// its own stamp nor a record `clock`.
    pub fn into_record(self) -> Result<Record, SyncError> {
        let (entity, id) = (self.entity, self.id);
        let bad = |field: &str, why: &str| SyncError::InvalidValue {
            entity,
            field: field.to_owned(),
            why: why.to_owned(),
        };
        let mut clocks = self.clocks;
        let stamp_of = |name: &str, own: Option<Stamp>| {
            own.or(self.clock)
                .ok_or_else(|| bad(name, "no clock for this field, and the record has none"))
        };
        let mut fields = BTreeMap::new();
        for (name, value) in self.values {
            let own = match clocks.remove(&name) {
                None => None,
                Some(FieldStamps::Register(stamp)) => Some(stamp),
                Some(FieldStamps::Items(_)) => {
                    return Err(bad(&name, "item clocks for a field that is not a set"));
                }
            };
            let (hlc, version) = stamp_of(&name, own)?;
            fields.insert(
                name,
                Field::Register(Register {
                    value,
                    hlc,
                    version,
                }),
            );
        }
        for (name, list) in self.sets {
            if fields.contains_key(&name) {
                return Err(bad(&name, "a field both in values and in sets"));
            }
            let mut own = match clocks.remove(&name) {
                None => BTreeMap::new(),
                Some(FieldStamps::Items(stamps)) => stamps,
                Some(FieldStamps::Register(_)) => {
                    return Err(bad(&name, "a register clock for a set"));
                }
            };
            let mut items = BTreeMap::new();
            for value in list {
                let key = value
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(&name, "a set item without a string id"))?
                    .to_owned();
                let (hlc, version) = stamp_of(&name, own.remove(&key))?;
                let item = Item {
                    value,
                    hlc,
                    version,
                };
                if items.insert(key, item).is_some() {
                    return Err(bad(&name, "a set item named twice"));
                }
            }
            if let Some(key) = own.into_keys().next() {
                return Err(bad(
                    &name,
                    &format!("a clock for item `{key}`, not in the set"),
                ));
            }
            fields.insert(name, Field::Items(items));
        }
        if let Some(name) = clocks.into_keys().next() {
            return Err(bad(&name, "a clock for a field the record does not carry"));
        }
        Ok(Record {
            entity,
            id,
            version: self.version,
            fields,
            tombstone: self.tombstone,
        })
    }
}

/// A pull page in the compact encoding: the fields of [`PullResponse`],
/// `"encoding": "compact"`, [`CompactRecord`]s, and the scope checksum on
/// the last page only (`has_more: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactPullResponse {
    /// Protocol version of the answer.
    pub protocol_version: u32,
    /// Always [`PullEncoding::Compact`]: a device that asked for the compact
    /// form of a server that does not know it gets the full form, without
    /// this field.
    pub encoding: PullEncoding,
    /// The server's clock; the device observes it.
    pub server_hlc: Hlc,
    /// Whole records changed after the cursor, in scope.
    pub changes: Vec<CompactRecord>,
    /// Records to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purges: Vec<Purge>,
    /// Cursor for the next page.
    pub next_cursor: String,
    /// True when another page follows at once.
    pub has_more: bool,
    /// Checksum of the whole scope, on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_checksum: Option<ScopeChecksum>,
}

impl From<PullResponse> for CompactPullResponse {
    fn from(page: PullResponse) -> Self {
        Self {
            protocol_version: page.protocol_version,
            encoding: PullEncoding::Compact,
            server_hlc: page.server_hlc,
            changes: page.changes.into_iter().map(CompactRecord::from).collect(),
            purges: page.purges,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
            scope_checksum: page.scope_checksum,
        }
    }
}

impl TryFrom<CompactPullResponse> for PullResponse {
    type Error = SyncError;

    fn try_from(page: CompactPullResponse) -> Result<Self, SyncError> {
        Ok(Self {
            protocol_version: page.protocol_version,
            server_hlc: page.server_hlc,
            changes: page
                .changes
                .into_iter()
                .map(CompactRecord::into_record)
                .collect::<Result<_, _>>()?,
            purges: page.purges,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
            scope_checksum: page.scope_checksum,
        })
    }
}

/// Reads a pull answer in whichever encoding it came: a device asks for
/// the compact one, and a server that does not know it answers the full.
/// A page without the scope checksum where its encoding carries one (every
/// full page, a compact page with `has_more: false`) is refused, so a
/// missing checksum never passes for a matching one.
pub fn read_pull(body: &[u8]) -> Result<PullResponse, serde_json::Error> {
    #[derive(Deserialize)]
    struct Encoding {
        #[serde(default)]
        encoding: PullEncoding,
    }
    // The encoding is named before the changes on our servers, yet JSON
    // keeps no order: read it on its own first (the changes are skipped,
    // not built).
    let encoding = serde_json::from_slice::<Encoding>(body)?.encoding;
    let page = if encoding.is_full() {
        serde_json::from_slice::<PullResponse>(body)?
    } else {
        let page: CompactPullResponse = serde_json::from_slice(body)?;
        PullResponse::try_from(page).map_err(serde::de::Error::custom)?
    };
    if page.scope_checksum.is_none() && (encoding.is_full() || !page.has_more) {
        return Err(serde::de::Error::missing_field("scope_checksum"));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Role;
    use crate::testing::{actor, hlc, stored, visit_create};

    fn page(has_more: bool) -> PullResponse {
        let visit = stored(
            &visit_create(hlc(1_000, 0xa)).build(),
            &actor(Role::Director),
        );
        PullResponse {
            protocol_version: 1,
            server_hlc: hlc(2_000, 0x5),
            changes: vec![visit],
            purges: Vec::new(),
            next_cursor: "c".into(),
            has_more,
            scope_checksum: Some(ScopeChecksum::default()),
        }
    }

    #[test]
    fn a_page_reads_back_the_same_in_either_encoding() {
        for has_more in [true, false] {
            let full = page(has_more);
            let whole = serde_json::to_vec(&full).unwrap();
            assert_eq!(read_pull(&whole).unwrap(), full);
            // A compact page carries the checksum on the last page only.
            let mut small = full.clone();
            if has_more {
                small.scope_checksum = None;
            }
            let compact = serde_json::to_vec(&CompactPullResponse::from(small.clone())).unwrap();
            assert_eq!(read_pull(&compact).unwrap(), small);
            assert!(
                compact.len() * 2 < whole.len(),
                "{} vs {}",
                compact.len(),
                whole.len()
            );
        }
    }

    #[test]
    fn a_page_without_the_checksum_its_encoding_carries_is_refused() {
        let mut full = serde_json::to_value(page(false)).unwrap();
        full.as_object_mut().unwrap().remove("scope_checksum");
        let mut last = serde_json::to_value(CompactPullResponse::from(page(false))).unwrap();
        last.as_object_mut().unwrap().remove("scope_checksum");
        for body in [full, last] {
            let err = read_pull(&serde_json::to_vec(&body).unwrap()).unwrap_err();
            assert!(err.to_string().contains("scope_checksum"), "{err}");
        }
        let mut whole = serde_json::to_value(page(true)).unwrap();
        whole.as_object_mut().unwrap().remove("scope_checksum");
        assert!(read_pull(&serde_json::to_vec(&whole).unwrap()).is_err());
    }

    #[test]
    fn a_fresh_visit_names_its_clock_once() {
        let compact = CompactRecord::from(page(false).changes.remove(0));
        assert!(compact.clock.is_some());
        assert!(compact.clocks.is_empty(), "{:?}", compact.clocks);
    }

    #[test]
    fn a_compact_record_that_breaks_the_encoding_is_refused_in_the_page() {
        let mut body = serde_json::to_value(CompactPullResponse::from(page(false))).unwrap();
        body["changes"][0]["clocks"] = serde_json::json!({"no_such_field": [hlc(1, 1), 1]});
        let err = read_pull(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert!(err.to_string().contains("no_such_field"), "{err}");
    }
}
