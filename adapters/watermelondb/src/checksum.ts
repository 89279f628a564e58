/**
 * The scope checksum of what a WatermelonDB store holds (docs/SYNC-PROTOCOL.md
 * §4, "Scope checksum"), to compare with the server's: over every record
 * the server has (`server_version` > 0), as `(entity, id, server_version)`.
 */

import type { Database } from '@nozbe/watermelondb';

import { ScopeChecksum } from '../../../sdk/src/checksum.ts';
import type { Entity } from '../../../sdk/src/wire.ts';
import { ENTITY_OF, TABLES } from './schema.ts';

export async function scopeChecksum(database: Database): Promise<{ count: number; sum: string }> {
  const checksum = new ScopeChecksum();
  for (const table of TABLES) {
    for (const record of await database.get(table).query().fetch()) {
      const version = Number((record._raw as unknown as Record<string, unknown>)['server_version'] ?? 0);
      if (version > 0) checksum.add(ENTITY_OF[table] as Entity, record.id, version);
    }
  }
  return checksum.toWire();
}
