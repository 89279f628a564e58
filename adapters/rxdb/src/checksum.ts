/**
 * The scope checksum of the records an app holds (docs/SYNC-PROTOCOL.md §4,
 * "Scope checksum"), to compare with the server's (`GET
 * /api/v1/sync/manifest` answers it): over live documents, FNV-1a 64 of
 * `entity ‖ 0x00 ‖ 16 UUID bytes ‖ version as u64 little-endian`, summed
 * with wrap-around, with the count.
 */

const OFFSET = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = (1n << 64n) - 1n;

export interface ScopeChecksum {
  count: number;
  sum: string;
}

export function recordHash(entity: string, id: string, version: number): bigint {
  const bytes: number[] = [...new TextEncoder().encode(entity), 0];
  const hex = id.replace(/-/g, '');
  for (let i = 0; i < 32; i += 2) bytes.push(parseInt(hex.slice(i, i + 2), 16));
  let v = BigInt(version);
  for (let i = 0; i < 8; i++) {
    bytes.push(Number(v & 0xffn));
    v >>= 8n;
  }
  let h = OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * PRIME) & MASK;
  return h;
}

/** The checksum of `(entity, id, server_version)` of every live record held. */
export function scopeChecksum(records: Iterable<{ entity: string; id: string; version: number }>): ScopeChecksum {
  let count = 0;
  let sum = 0n;
  for (const r of records) {
    count += 1;
    sum = (sum + recordHash(r.entity, r.id, r.version)) & MASK;
  }
  return { count, sum: sum.toString(16).padStart(16, '0') };
}
