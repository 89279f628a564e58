/**
 * RxDB apps for the tests: an in-memory RxDB database (the free memory
 * storage) with Seedling's four collections, signed in to a real server
 * as a demo user from a device of its own, replicating live.
 */

import { createRxDatabase, type RxDatabase } from 'rxdb';
import type { RxReplicationState } from 'rxdb/plugins/replication';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';

import {
  Clock,
  ENTITY_OF,
  installClockHooks,
  replicateSeedling,
  scopeChecksum,
  seedlingConflictHandler,
  seedlingEvents,
  seedlingSchemas,
  type ScopeChecksum,
} from '../src/index.ts';
import { Network, PASSWORD } from '../../../sdk/test/server.ts';

export { Network };

export const RECORD_COLLECTIONS = ['children', 'visits', 'case_plan_items'] as const;
const ALL = [...RECORD_COLLECTIONS, 'conflicts'] as const;

export interface App {
  db: RxDatabase;
  deviceId: string;
  token: string;
  user: { id: string; username: string; org_unit: { id: string } };
  net: Network;
  replications: Record<string, RxReplicationState<any, any>>;
  /** Pull now and wait until nothing is left to push or pull. */
  sync(): Promise<void>;
  /** `entity:id` → server version of every live record held. */
  held(): Promise<Map<string, number>>;
  checksum(): Promise<ScopeChecksum>;
  close(): Promise<void>;
}

export async function openApp(baseUrl: string, username: string, net = new Network()): Promise<App> {
  const deviceId = globalThis.crypto.randomUUID();
  const res = await fetch(`${baseUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, device_id: deviceId, device_name: 'rxdb test' }),
  });
  if (!res.ok) throw new Error(`sign-in ${username}: ${res.status} ${await res.text()}`);
  const login = (await res.json()) as { access_token: string; user: App['user'] };
  const db = await createRxDatabase({
    name: `app${globalThis.crypto.randomUUID().replace(/-/g, '')}`,
    storage: getRxStorageMemory(),
    multiInstance: false,
  });
  await db.addCollections(
    Object.fromEntries(ALL.map((name) => [name, { schema: seedlingSchemas[name], conflictHandler: seedlingConflictHandler }])),
  );
  const clock = new Clock(deviceId);
  for (const name of RECORD_COLLECTIONS) installClockHooks(db.collections[name]!, clock);
  const conn = { baseUrl, token: login.access_token, fetch: net.fetch };
  const events = seedlingEvents(conn);
  const replications: App['replications'] = {};
  for (const name of ALL) {
    replications[name] = replicateSeedling(db.collections[name]!, { ...conn, deviceId, clock, events, retryTime: 200 });
  }
  await Promise.all(Object.values(replications).map((r) => r.awaitInitialReplication()));
  const held = async () => {
    const out = new Map<string, number>();
    for (const name of RECORD_COLLECTIONS) {
      for (const doc of await db.collections[name]!.find().exec()) {
        out.set(`${ENTITY_OF[name]}:${doc.get('id')}`, doc.get('server_version') as number);
      }
    }
    return out;
  };
  return {
    db,
    deviceId,
    token: login.access_token,
    user: login.user,
    net,
    replications,
    async sync() {
      for (const r of Object.values(replications)) r.reSync();
      await Promise.all(Object.values(replications).map((r) => r.awaitInSync()));
    },
    held,
    async checksum() {
      const records = [...(await held())].map(([key, version]) => {
        const [entity, id] = key.split(':') as [string, string];
        return { entity, id, version };
      });
      return scopeChecksum(records);
    },
    async close() {
      await Promise.all(Object.values(replications).map((r) => r.cancel()));
      await db.close();
    },
  };
}

/** Waits for `check` to hold, polling; fails with `what` after `ms`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}
