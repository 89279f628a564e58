/**
 * WatermelonDB apps against a real `seedling serve` (SQLite, and
 * PostgreSQL when SEEDLING_TEST_POSTGRES is set): bootstrap, concurrent
 * edits, a transfer's purge with an unpushed edit, a lost answer, an edit
 * to an approved visit, urgent risk flags.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { RawClient, backends, nativeBootstrap, nowHlc, queue, startServer, supervisorFor, type ConflictRow, type TestServer } from '../../../sdk/test/server.ts';
import type { Visit } from '../src/index.ts';
import { Network, openApp, type App } from './apps.ts';

/** A visit of the app's own making, written through the model like an app would. */
async function newVisit(app: App, childId: string, extra: Record<string, unknown> = {}): Promise<string> {
  let id = '';
  await app.db.write(async () => {
    const visit = await app.db.get<Visit>('visits').create((v) => {
      Object.assign(v, {
        child_id: childId,
        author_id: app.user.id,
        village_id: app.user.org_unit.id,
        device_id: app.deviceId,
        kind: 'home_visit',
        visited_at: new Date().toISOString(),
        review_status: 'submitted',
        follow_up: 'first words',
        ...extra,
      });
    });
    id = visit.id;
  });
  return id;
}

async function edit(app: App, id: string, fields: Record<string, unknown>): Promise<void> {
  await app.db.write(async () => {
    const visit = await app.db.get<Visit>('visits').find(id);
    await visit.update((v) => Object.assign(v, fields));
  });
}

async function firstChild(app: App): Promise<string> {
  const kids = await app.db.get('children').query().fetch();
  assert.ok(kids.length > 0, 'the village has children');
  return kids[0]!.id;
}

for (const backend of backends()) {
  describe(`WatermelonDB sync (${backend})`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer(backend);
    });
    after(async () => {
      await server?.stop();
    });

    test('a WatermelonDB bootstrap in bounded answers holds what the native pull gives, and the scope checksum matches', async () => {
      const a = await openApp(server.baseUrl, 'director-001');
      const b = await openApp(server.baseUrl, 'director-001');
      const native = await nativeBootstrap(server.baseUrl, 'director-001');
      assert.ok(native.held.size > 10, 'the demo village holds records');
      const small = await a.sync(7);
      assert.ok(small.rounds >= 2, `seven changes an answer take several rounds: ${small.rounds}`);
      await b.sync();
      for (const app of [a, b]) {
        assert.deepEqual(new Map([...(await app.held())].sort()), new Map([...native.held].sort()));
        assert.deepEqual(await app.checksum(), native.checksum);
      }
      const again = await a.sync();
      assert.equal(again.pulled, 0, 'nothing twice');
    });

    test('a concurrent edit by two apps converges on the server value, the losing one in the conflict queue', async () => {
      const a = await openApp(server.baseUrl, 'director-002');
      const b = await openApp(server.baseUrl, 'director-002');
      await a.sync();
      const kid = await firstChild(a);
      const id = await newVisit(a, kid);
      await a.sync();
      await b.sync();
      assert.ok(await b.raw('visits', id), 'B has the visit');
      await edit(a, id, { follow_up: 'from A' });
      await new Promise((ok) => setTimeout(ok, 5));
      await edit(b, id, { follow_up: 'from B' });
      await a.sync();
      await b.sync();
      await a.sync();
      for (const app of [a, b]) {
        const raw = await app.raw('visits', id);
        assert.equal(raw?.['follow_up'], 'from B', `${app.deviceId} converges`);
        assert.equal(raw?.['server_version'], 3);
        assert.equal(raw?.['_status'], 'synced');
      }
      const sup = await supervisorFor(server.baseUrl, id);
      const kept = await queue(sup, id);
      const lost = kept.find((c) => c.kind === 'concurrent_write' && c.field === 'follow_up');
      assert.ok(lost, `the concurrent write is in the queue: ${JSON.stringify(kept)}`);
      assert.match(JSON.stringify(lost), /from A/, 'with the losing value');
    });

    test("a child's transfer purges the child and its visits from the old village's app, and a visit recorded offline is pushed first, kept and flagged", async () => {
      const app = await openApp(server.baseUrl, 'director-003');
      await app.sync();
      const kid = await firstChild(app);
      const earlier = await newVisit(app, kid);
      await app.sync();
      // Offline, dated a few minutes ahead: after the transfer that happens next.
      const offline = await newVisit(app, kid, { visited_at: new Date(Date.now() + 180_000).toISOString(), follow_up: '转学后才知道' });
      await edit(app, earlier, { follow_up: 'edited before the news' });
      const admin = await RawClient.signIn(server.baseUrl, 'admin');
      const units = await admin.ok<{ id: string; kind: string }[]>('GET', '/api/v1/org-units');
      const other = units.find((u) => u.kind === 'village' && u.id !== app.user.org_unit.id)!;
      const child = await admin.ok<{ version: number }>('GET', `/api/v1/children/${kid}`);
      const hlc = nowHlc(admin.deviceId);
      const moved = await admin.ok<{ results: { status: string }[] }>('POST', '/api/v1/sync/push', {
        protocol_version: 1,
        device_id: admin.deviceId,
        device_hlc: hlc,
        mutations: [
          {
            mutation_id: globalThis.crypto.randomUUID(),
            entity: 'child',
            record_id: kid,
            op: 'update',
            base_version: child.version,
            hlc,
            fields: { village_id: { hlc, value: other.id } },
          },
        ],
      });
      assert.equal(moved.results[0]!.status, 'applied', JSON.stringify(moved));
      const report = await app.sync();
      assert.ok(
        report.results.some((r) => r.record_id === offline),
        `the offline visit was pushed, not destroyed by the pull: ${JSON.stringify(report.results)}`,
      );
      assert.equal(await app.raw('children', kid), null, 'the child left the app');
      assert.equal(await app.raw('visits', earlier), null, 'its visits too');
      assert.equal(await app.raw('visits', offline), null, 'the offline visit, once pushed');
      const native = await nativeBootstrap(server.baseUrl, 'director-003');
      assert.deepEqual(await app.checksum(), native.checksum, 'and the app still matches the scope');
      const kept = await admin.ok<{ record: { follow_up: string } }>('GET', `/api/v1/visits/${offline}`);
      assert.equal(kept.record.follow_up, '转学后才知道', 'the offline visit reached the server');
      const notices = await admin.ok<{ conflicts: ConflictRow[] }>('GET', '/api/v1/conflicts?status=all&kind=visit_after_transfer&limit=200');
      assert.ok(notices.conflicts.some((c) => c.record_id === offline), 'flagged for the supervisors');
      const edited = await admin.ok<{ record: { follow_up: string } }>('GET', `/api/v1/visits/${earlier}`);
      assert.equal(edited.record.follow_up, 'edited before the news', 'the pending edit was pushed, not lost');
    });

    test('a push whose answer was lost after the server committed makes no duplicate', async () => {
      const net = new Network();
      const app = await openApp(server.baseUrl, 'director-004', net);
      await app.sync();
      const kid = await firstChild(app);
      const id = await newVisit(app, kid, { needs: [{ id: 'n1', area: 'study', note: '需要辅导' }] });
      net.dropAfterCommit = (url, init) => url.includes('/watermelon/push') && init?.method === 'POST' && net.dropped === 0;
      await assert.rejects(app.sync(), /connection dropped/);
      await edit(app, id, { follow_up: 'written after the lost answer' });
      await app.sync();
      const raw = await app.raw('visits', id);
      assert.equal(raw?.['_status'], 'synced');
      assert.equal(raw?.['server_version'], 2, 'created once, then the later edit');
      const sup = await supervisorFor(server.baseUrl, id);
      const detail = await sup.ok<{ version: number; record: { follow_up: string; needs: unknown[] } }>('GET', `/api/v1/visits/${id}`);
      assert.equal(detail.version, 2);
      assert.equal(detail.record.follow_up, 'written after the lost answer');
      assert.equal(detail.record.needs.length, 1);
      assert.deepEqual(await queue(sup, id), [], 'nothing was refused or sent twice');
    });

    test('an edit to a visit approved meanwhile becomes an amendment, and the app holds the approved visit', async () => {
      const app = await openApp(server.baseUrl, 'director-005');
      await app.sync();
      const kid = await firstChild(app);
      const id = await newVisit(app, kid);
      await app.sync();
      const sup = await supervisorFor(server.baseUrl, id);
      await sup.ok('POST', `/api/v1/visits/${id}/review`, { decision: 'approve', version: 1 });
      await edit(app, id, { follow_up: 'corrected later' });
      const report = await app.sync();
      assert.ok(report.results.some((r) => r.record_id === id && r.reason === 'locked'), JSON.stringify(report.results));
      const raw = await app.raw('visits', id);
      assert.equal(raw?.['review_status'], 'approved');
      assert.equal(raw?.['follow_up'], 'first words');
      assert.equal(raw?.['_status'], 'synced');
      const kept = await queue(sup, id);
      const amendment = kept.find((c) => c.kind === 'amendment');
      assert.ok(amendment, `the correction waits as an amendment: ${JSON.stringify(kept)}`);
      assert.match(JSON.stringify(amendment), /corrected later/);
    });

    test('a row the server cannot read stays on the device, unsynced, and holds back nothing else', async () => {
      const app = await openApp(server.baseUrl, 'director-007');
      await app.sync();
      const kid = await firstChild(app);
      const good = await newVisit(app, kid);
      const bad = await newVisit(app, kid, { follow_up: 'words that must not be lost' });
      const setNeeds = async (text: string) =>
        app.db.write(async () => {
          const visit = await app.db.get<Visit>('visits').find(bad);
          // A JSON column written by hand, as a bug in an app might.
          await visit.update((v) => (v as unknown as { _setRaw(key: string, value: string): void })._setRaw('needs', text));
        });
      await setNeeds('[{');
      const report = await app.sync();
      assert.deepEqual(
        report.refused.map((r) => [r.table, r.id, r.reason]),
        [['visits', bad, 'invalid_value']],
        JSON.stringify(report.refused),
      );
      assert.equal((await app.raw('visits', good))?.['_status'], 'synced', 'the good visit went');
      const held = await app.raw('visits', bad);
      assert.equal(held?.['_status'], 'created', 'the refused one stays unsynced');
      assert.equal(held?.['needs'], '[{');
      assert.equal(held?.['follow_up'], 'words that must not be lost');
      const sup = await supervisorFor(server.baseUrl, good);
      const detail = await sup.ok<{ version: number }>('GET', `/api/v1/visits/${good}`);
      assert.equal(detail.version, 1);
      // Once the app mends the column, the visit goes at the next sync.
      await setNeeds('[]');
      const mended = await app.sync();
      assert.deepEqual(mended.refused, []);
      assert.equal((await app.raw('visits', bad))?.['_status'], 'synced');
      const sent = await sup.ok<{ record: { follow_up: string } }>('GET', `/api/v1/visits/${bad}`);
      assert.equal(sent.record.follow_up, 'words that must not be lost');
    });

    test('an urgent risk flag goes first and reaches the supervisor', async () => {
      const app = await openApp(server.baseUrl, 'director-006');
      await app.sync();
      const kid = await firstChild(app);
      const plain = await newVisit(app, kid);
      const urgent = await newVisit(app, kid, {
        risk_flags: [{ id: 'r1', kind: 'physical_abuse', urgent: true, note: '手臂有淤青' }],
      });
      const report = await app.sync();
      const order = report.results.map((r) => r.record_id);
      assert.ok(order.indexOf(urgent) >= 0 && order.indexOf(urgent) < order.indexOf(plain), `urgent first: ${JSON.stringify(report.results)}`);
      const sup = await supervisorFor(server.baseUrl, urgent);
      assert.ok((await queue(sup, urgent)).some((c) => c.kind === 'urgent'), 'the supervisor sees it');
      assert.ok(!(await queue(sup, plain)).some((c) => c.kind === 'urgent'), 'only the flagged visit raised it');
      const flags = (await app.db.get<Visit>('visits').find(urgent)).risk_flags as { urgent: boolean }[];
      assert.equal(flags[0]?.urgent, true, 'the model reads the set as a value');
    });
  });
}
