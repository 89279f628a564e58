/**
 * WatermelonDB apps for the tests: a LokiJS database in memory with
 * Seedling's tables and model classes, signed in to a real server as a
 * demo user from a device of its own.
 */

import { Database, Q } from '@nozbe/watermelondb';
import LokiJSAdapterModule from '@nozbe/watermelondb/adapters/lokijs/index.js';
import loggerModule from '@nozbe/watermelondb/utils/common/logger/index.js';

import { Network, PASSWORD } from '../../../sdk/test/server.ts';
import {
  ENTITY_OF,
  TABLES,
  scopeChecksum,
  seedlingModels,
  seedlingSchema,
  setupSeedling,
  syncSeedling,
  type SyncReport,
} from '../src/index.ts';

const LokiJSAdapter = ((LokiJSAdapterModule as unknown as { default?: unknown }).default ?? LokiJSAdapterModule) as new (
  options: Record<string, unknown>,
) => ConstructorParameters<typeof Database>[0]['adapter'];

export { Network };

// WatermelonDB logs every LokiJS set-up step; the tests say what matters.
((loggerModule as unknown as { default?: { silence(): void } }).default ?? (loggerModule as unknown as { silence(): void })).silence();

export interface App {
  db: Database;
  deviceId: string;
  token: string;
  user: { id: string; username: string; org_unit: { id: string } };
  net: Network;
  sync(limit?: number): Promise<SyncReport>;
  /** `entity:id` → server version of every record held that the server has. */
  held(): Promise<Map<string, number>>;
  checksum(): Promise<{ count: number; sum: string }>;
  /** The raw record of `table` `id`, or null. */
  raw(table: string, id: string): Promise<Record<string, unknown> | null>;
}

export async function openApp(baseUrl: string, username: string, net = new Network()): Promise<App> {
  const deviceId = globalThis.crypto.randomUUID();
  const res = await fetch(`${baseUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, device_id: deviceId, device_name: 'watermelondb test' }),
  });
  if (!res.ok) throw new Error(`sign-in ${username}: ${res.status} ${await res.text()}`);
  const login = (await res.json()) as { access_token: string; user: App['user'] };
  const adapter = new LokiJSAdapter({
    schema: seedlingSchema(),
    useWebWorker: false,
    useIncrementalIndexedDB: false,
    dbName: `app${deviceId}`,
    extraLokiOptions: { autosave: false },
    onSetUpError: (error: unknown) => {
      throw error;
    },
  });
  const db = new Database({ adapter, modelClasses: seedlingModels });
  setupSeedling(db, deviceId);
  const app: App = {
    db,
    deviceId,
    token: login.access_token,
    user: login.user,
    net,
    sync: (limit?: number) =>
      syncSeedling(db, { baseUrl, token: login.access_token, fetch: net.fetch, ...(limit ? { limit } : {}) }),
    async held() {
      const out = new Map<string, number>();
      for (const table of TABLES) {
        for (const record of await db.get(table).query().fetch()) {
          const version = Number((record._raw as unknown as Record<string, unknown>)['server_version'] ?? 0);
          if (version > 0) out.set(`${ENTITY_OF[table]}:${record.id}`, version);
        }
      }
      return out;
    },
    checksum: () => scopeChecksum(db),
    async raw(table, id) {
      const found = await db.get(table).query(Q.where('id', id)).fetch();
      return found[0] ? ({ ...found[0]._raw } as unknown as Record<string, unknown>) : null;
    },
  };
  return app;
}
