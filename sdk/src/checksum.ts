/**
 * The scope checksum of `sync_core::protocol::ScopeChecksum`: each live
 * record hashes to FNV-1a 64 of `entity ‖ 0x00 ‖ 16 UUID bytes ‖ version
 * (u64 little-endian)`; the checksum is the count and the wrapping 64-bit
 * sum, the sum sent as 16 lowercase hex digits.
 */

import type { Entity, ScopeChecksumWire } from './wire.ts';

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK = 0xffffffffffffffffn;

export function fnv1a64(bytes: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK;
  return h;
}

function uuidBytes(id: string): Uint8Array {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${id}`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function recordHash(entity: Entity, id: string, version: number): bigint {
  const name = new TextEncoder().encode(entity);
  const buf = new Uint8Array(name.length + 1 + 16 + 8);
  buf.set(name, 0);
  buf[name.length] = 0;
  buf.set(uuidBytes(id), name.length + 1);
  new DataView(buf.buffer).setBigUint64(name.length + 17, BigInt(version), true);
  return fnv1a64(buf);
}

/** An order-independent checksum that supports removal. */
export class ScopeChecksum {
  count = 0;
  sum = 0n;

  add(entity: Entity, id: string, version: number): void {
    this.count += 1;
    this.sum = (this.sum + recordHash(entity, id, version)) & MASK;
  }

  remove(entity: Entity, id: string, version: number): void {
    this.count -= 1;
    this.sum = (this.sum - recordHash(entity, id, version)) & MASK;
  }

  static of(records: Iterable<{ entity: Entity; id: string; version: number }>): ScopeChecksum {
    const c = new ScopeChecksum();
    for (const r of records) c.add(r.entity, r.id, r.version);
    return c;
  }

  toWire(): ScopeChecksumWire {
    return { count: this.count, sum: this.sum.toString(16).padStart(16, '0') };
  }

  equals(wire: ScopeChecksumWire): boolean {
    const mine = this.toWire();
    return mine.count === wire.count && mine.sum === wire.sum.toLowerCase();
  }
}
