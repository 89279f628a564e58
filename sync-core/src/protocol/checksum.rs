//! The scope checksum: an order-independent digest of `(entity, id, version)`
//! over the live records in a device's scope, computed the same way on the
//! phone and on the server so a device can notice that its copy diverged.
//!
//! Each record hashes to FNV-1a 64 over the bytes
//! `entity name (ASCII) ‖ 0x00 ‖ id (16 bytes, big-endian UUID) ‖ version (u64 little-endian)`;
//! the checksum is the wrapping sum of those hashes together with the
//! record count. A sum is independent of order and supports removal, so the
//! server can maintain it incrementally.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::Entity;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The hash of one record's `(entity, id, version)`.
pub fn record_hash(entity: Entity, id: Uuid, version: u64) -> u64 {
    let mut buf = Vec::with_capacity(32);
    buf.extend_from_slice(entity.as_str().as_bytes());
    buf.push(0);
    buf.extend_from_slice(id.as_bytes());
    buf.extend_from_slice(&version.to_le_bytes());
    fnv1a64(&buf)
}

/// Order-independent checksum of a set of records. On the wire:
/// `{"count": 3, "sum": "8c3f0a...16 hex"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ScopeChecksum {
    /// Number of records.
    pub count: u64,
    /// Wrapping sum of record hashes, as 16 lowercase hex digits.
    #[serde(with = "hex_u64")]
    pub sum: u64,
}

impl ScopeChecksum {
    /// Adds a record.
    pub fn add(&mut self, entity: Entity, id: Uuid, version: u64) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(record_hash(entity, id, version));
    }

    /// Removes a record previously added with the same version.
    pub fn remove(&mut self, entity: Entity, id: Uuid, version: u64) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(record_hash(entity, id, version));
    }

    /// The checksum of the given records, in any order.
    pub fn of<I: IntoIterator<Item = (Entity, Uuid, u64)>>(records: I) -> Self {
        let mut c = Self::default();
        for (e, id, v) in records {
            c.add(e, id, v);
        }
        c
    }
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn checksum_ignores_order_and_supports_removal() {
        let a = (Entity::Child, Uuid::from_u128(1), 3);
        let b = (Entity::Visit, Uuid::from_u128(2), 7);
        let ab = ScopeChecksum::of([a, b]);
        assert_eq!(ab, ScopeChecksum::of([b, a]));
        let mut only_a = ab;
        only_a.remove(b.0, b.1, b.2);
        assert_eq!(only_a, ScopeChecksum::of([a]));
        assert_ne!(ab, ScopeChecksum::of([a, (b.0, b.1, 8)]));
        let json = serde_json::to_value(ab).unwrap();
        assert_eq!(json["sum"].as_str().unwrap().len(), 16);
        assert_eq!(serde_json::from_value::<ScopeChecksum>(json).unwrap(), ab);
    }
}
