/**
 * The adapters beside the native protocol, in one run against one real
 * `seedling serve --demo` (docs/BENCHMARKS.md, "The adapters"): for RxDB
 * (memory storage), WatermelonDB (LokiJS in memory) and the native sync
 * API over plain HTTP (no store: the floor the server sets), the bootstrap
 * of a village, of a town and of the whole district, and 1,000 visits
 * recorded offline then pushed. Sign-in is outside the native and the
 * WatermelonDB figures and inside RxDB's (its replication starts with the
 * database). Prints a Markdown table; asserts nothing about time.
 *
 *   cd adapters/rxdb && npm ci && cd ../watermelondb && npm ci
 *   SEEDLING_BIN=target/release/seedling node --import tsx bench/adapters.ts [--edits 1000] [--reps 1]
 *
 * Add SEEDLING_TEST_POSTGRES=postgres://… to run it on PostgreSQL.
 */

import { parseArgs } from 'node:util';

import { RawClient, startServer } from '../../../sdk/test/server.ts';
import { openApp as openRx } from '../../rxdb/test/apps.ts';
import type { Visit } from '../src/index.ts';
import { openApp as openWm } from '../test/apps.ts';

const { values } = parseArgs({
  options: { edits: { type: 'string', default: '1000' }, reps: { type: 'string', default: '1' } },
});
const EDITS = Number(values.edits);
const REPS = Number(values.reps);
const backend = process.env['SEEDLING_TEST_POSTGRES'] ? 'postgres' : 'sqlite';

interface Row {
  what: string;
  native: number[];
  rxdb: number[];
  watermelondb: number[];
  records: number;
  rounds?: number;
}

const ms = async (work: () => Promise<unknown>): Promise<number> => {
  const start = performance.now();
  await work();
  return performance.now() - start;
};

async function nativeBootstrap(c: RawClient): Promise<number> {
  let cursor: string | null = null;
  let n = 0;
  for (;;) {
    const q: string = `/api/v1/sync/pull?protocol_version=1&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await c.ok<{ changes: unknown[]; next_cursor: string; has_more: boolean }>('GET', q);
    n += page.changes.length;
    cursor = page.next_cursor;
    if (!page.has_more) return n;
  }
}

function hlc(deviceId: string, counter: number): string {
  return `${String(Date.now()).padStart(15, '0')}-${counter.toString(16).padStart(8, '0')}-${deviceId.replace(/-/g, '')}`;
}

/** `EDITS` new visits to the village's first child, pushed 200 a request. */
async function nativeEdits(baseUrl: string, username: string): Promise<void> {
  const c = await RawClient.signIn(baseUrl, username);
  const page = await c.ok<{ changes: { entity: string; id: string }[] }>('GET', '/api/v1/sync/pull?protocol_version=1&limit=100');
  const child = page.changes.find((r) => r.entity === 'child')!.id;
  const mutations = Array.from({ length: EDITS }, (_, i) => {
    const clock = hlc(c.deviceId, i);
    const fields: Record<string, unknown> = {
      child_id: child, author_id: c.user!.id, village_id: c.user!.org_unit.id, device_id: c.deviceId,
      kind: 'home_visit', visited_at: new Date().toISOString(), review_status: 'submitted', follow_up: `native ${i}`,
    };
    return {
      mutation_id: globalThis.crypto.randomUUID(), entity: 'visit', record_id: globalThis.crypto.randomUUID(), op: 'create',
      base_version: 0, hlc: clock, fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, { hlc: clock, value: v }])),
    };
  });
  for (let i = 0; i < mutations.length; i += 200) {
    await c.ok('POST', '/api/v1/sync/push', { protocol_version: 1, device_id: c.deviceId, device_hlc: hlc(c.deviceId, i), mutations: mutations.slice(i, i + 200) });
  }
}

function visitFields(app: { user: { id: string; org_unit: { id: string } }; deviceId: string }, child: string, i: number) {
  return {
    child_id: child, author_id: app.user.id, village_id: app.user.org_unit.id, device_id: app.deviceId,
    kind: 'home_visit', visited_at: new Date().toISOString(), review_status: 'submitted', follow_up: `edit ${i}`,
  };
}

const server = await startServer(backend);
const rows: Row[] = [];
try {
  const scopes: [string, string][] = [
    ['village (a director)', 'director-010'],
    ['town (a supervisor)', 'supervisor-01'],
    ['district (the admin)', 'admin'],
  ];
  for (const [what, username] of scopes) {
    const row: Row = { what: `bootstrap: ${what}`, native: [], rxdb: [], watermelondb: [], records: 0 };
    for (let rep = 0; rep < REPS; rep++) {
      const native = await RawClient.signIn(server.baseUrl, username);
      row.native.push(await ms(async () => (row.records = await nativeBootstrap(native))));
      let rx: Awaited<ReturnType<typeof openRx>> | null = null;
      row.rxdb.push(await ms(async () => (rx = await openRx(server.baseUrl, username))));
      await rx!.close();
      const wm = await openWm(server.baseUrl, username);
      row.watermelondb.push(await ms(async () => (row.rounds = (await wm.sync()).rounds)));
      console.error(`# ${row.what}: native ${row.native.at(-1)!.toFixed(0)} ms, RxDB ${row.rxdb.at(-1)!.toFixed(0)} ms, WatermelonDB ${row.watermelondb.at(-1)!.toFixed(0)} ms`);
    }
    rows.push(row);
  }

  const row: Row = { what: `${EDITS} visits recorded offline, then pushed`, native: [], rxdb: [], watermelondb: [], records: EDITS };
  for (let rep = 0; rep < REPS; rep++) {
    // Each run in villages of its own: a child's visits of one day are
    // compared with each other (possible duplicates), so a second thousand
    // to the same child measures that check, not the adapters.
    const director = (k: number) => `director-${String(11 + 3 * rep + k).padStart(3, '0')}`;
    row.native.push(await ms(() => nativeEdits(server.baseUrl, director(0))));

    const rx = await openRx(server.baseUrl, director(1));
    const kid = (await rx.db.collections['children']!.findOne().exec())!.get('id') as string;
    rx.net.offline = true;
    await rx.db.collections['visits']!.bulkInsert(
      Array.from({ length: EDITS }, (_, i) => ({ id: globalThis.crypto.randomUUID(), ...visitFields(rx, kid, i) })),
    );
    row.rxdb.push(
      await ms(async () => {
        rx.net.offline = false;
        await rx.sync();
      }),
    );
    await rx.close();

    const wm = await openWm(server.baseUrl, director(2));
    await wm.sync();
    const child = (await wm.db.get('children').query().fetch())[0]!.id;
    await wm.db.write(async () => {
      const visits = wm.db.get<Visit>('visits');
      await wm.db.batch(
        Array.from({ length: EDITS }, (_, i) => visits.prepareCreate((v) => Object.assign(v, visitFields(wm, child, i)))),
      );
    });
    row.watermelondb.push(await ms(() => wm.sync()));
    console.error(`# ${row.what}: native ${row.native.at(-1)!.toFixed(0)} ms, RxDB ${row.rxdb.at(-1)!.toFixed(0)} ms, WatermelonDB ${row.watermelondb.at(-1)!.toFixed(0)} ms`);
  }
  rows.push(row);
} finally {
  await server.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const fmt = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);
console.log(`\n${backend}, ${REPS} run(s), median:\n`);
console.log('| what | records | native (HTTP, no store) | RxDB (memory) | WatermelonDB (LokiJS) | WatermelonDB rounds |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.what} | ${r.records} | ${fmt(median(r.native))} | ${fmt(median(r.rxdb))} | ${fmt(median(r.watermelondb))} | ${r.rounds ?? '—'} |`);
}
