/**
 * RxDB apps against a real `seedling serve` (SQLite, and PostgreSQL when
 * SEEDLING_TEST_POSTGRES is set): bootstrap, concurrent edits, a transfer's
 * purge, a lost answer, an edit to an approved visit, urgent risk flags.
 */

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { RawClient, backends, nativeBootstrap, nowHlc, queue, startServer, supervisorFor, type ConflictRow, type TestServer } from '../../../sdk/test/server.ts';
import { Network, openApp, until, type App } from './apps.ts';

async function newVisit(app: App, childId: string, extra: Record<string, unknown> = {}) {
  const id = globalThis.crypto.randomUUID();
  await app.db.collections['visits']!.insert({
    id,
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
  return id;
}

async function firstChild(app: App): Promise<string> {
  const kid = await app.db.collections['children']!.findOne().exec();
  assert.ok(kid, 'the village has children');
  return kid.get('id') as string;
}

for (const backend of backends()) {
  describe(`RxDB replication (${backend})`, () => {
    let server: TestServer;
    const apps: App[] = [];
    const open = async (username: string, net?: Network) => {
      const app = await openApp(server.baseUrl, username, net);
      apps.push(app);
      return app;
    };
    before(async () => {
      server = await startServer(backend);
    });
    // RxDB's free version keeps at most 16 collections open in a process
    // (four apps of four collections): each test closes its apps.
    afterEach(async () => {
      for (const app of apps.splice(0)) await app.close();
    });
    after(async () => {
      await server?.stop();
    });

    test('an RxDB bootstrap holds what the native pull gives, and the scope checksum matches', async () => {
      const a = await open('director-001');
      const b = await open('director-001');
      const native = await nativeBootstrap(server.baseUrl, 'director-001');
      assert.ok(native.held.size > 0, 'the demo village holds records');
      for (const app of [a, b]) {
        assert.deepEqual(new Map([...(await app.held())].sort()), new Map([...native.held].sort()));
        assert.deepEqual(await app.checksum(), native.checksum);
      }
    });

    test('a concurrent edit by two apps converges on the server value, the losing one in the conflict queue', async () => {
      const a = await open('director-002');
      const b = await open('director-002');
      const kid = await firstChild(a);
      const id = await newVisit(a, kid);
      await a.sync();
      await until('B has the visit', async () => (await b.db.collections['visits']!.findOne(id).exec()) !== null);
      a.net.offline = true;
      b.net.offline = true;
      await (await a.db.collections['visits']!.findOne(id).exec())!.incrementalPatch({ follow_up: 'from A' });
      await new Promise((ok) => setTimeout(ok, 5));
      await (await b.db.collections['visits']!.findOne(id).exec())!.incrementalPatch({ follow_up: 'from B' });
      a.net.offline = false;
      await a.sync();
      b.net.offline = false;
      await b.sync();
      await a.sync();
      for (const app of [a, b]) {
        await until(`${app.deviceId} converges`, async () => {
          const doc = await app.db.collections['visits']!.findOne(id).exec();
          return doc?.get('follow_up') === 'from B' && doc.get('server_version') === 3;
        });
      }
      const sup = await supervisorFor(server.baseUrl, id);
      const kept = await queue(sup, id);
      const lost = kept.find((c) => c.kind === 'concurrent_write' && c.field === 'follow_up');
      assert.ok(lost, `the concurrent write is in the queue: ${JSON.stringify(kept)}`);
      assert.match(JSON.stringify(lost), /from A/, 'with the losing value');
    });

    test("a child's transfer purges the child and its visits from the old village's app, and keeps the visit recorded offline", async () => {
      const app = await open('director-003');
      const kid = await firstChild(app);
      await newVisit(app, kid);
      await app.sync();
      assert.ok((await app.db.collections['visits']!.find({ selector: { child_id: kid } }).exec()).length > 0);
      app.net.offline = true;
      // Dated a few minutes ahead: after the transfer that happens next, on the same day.
      const offline = await newVisit(app, kid, { visited_at: new Date(Date.now() + 180_000).toISOString(), follow_up: '转学后才知道' });
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
      app.net.offline = false;
      // The live stream pokes the app; no sync is asked for.
      await until('the child and its visits leave the app', async () => {
        const gone = (await app.db.collections['children']!.findOne(kid).exec()) === null;
        const visits = await app.db.collections['visits']!.find({ selector: { child_id: kid } }).exec();
        return gone && visits.length === 0;
      });
      const native = await nativeBootstrap(server.baseUrl, 'director-003');
      assert.deepEqual(await app.checksum(), native.checksum, 'and the app still matches the scope');
      assert.equal((await admin.call('GET', `/api/v1/visits/${offline}`)).status, 200, 'the offline visit reached the server');
      const notices = await admin.ok<{ conflicts: ConflictRow[] }>('GET', '/api/v1/conflicts?status=all&kind=visit_after_transfer&limit=200');
      assert.ok(notices.conflicts.some((c) => c.record_id === offline), 'flagged for the supervisors');
    });

    test('a push whose answer was lost after the server committed makes no duplicate', async () => {
      const net = new Network();
      const app = await open('director-004', net);
      const kid = await firstChild(app);
      net.dropAfterCommit = (url, init) => url.includes('/rxdb/visits/push') && init?.method === 'POST' && net.dropped === 0;
      const id = await newVisit(app, kid, { needs: [{ id: 'n1', area: 'study', note: '需要辅导' }] });
      await until('the push was sent again after the lost answer', () => net.dropped === 1 && net.requests.filter((r) => r.includes('/rxdb/visits/push')).length >= 2);
      await app.sync();
      const doc = await app.db.collections['visits']!.findOne(id).exec();
      assert.ok(doc, 'the visit stays on the app');
      assert.equal(doc.get('server_version'), 1, 'applied once');
      const sup = await supervisorFor(server.baseUrl, id);
      const detail = await sup.ok<{ version: number }>('GET', `/api/v1/visits/${id}`);
      assert.equal(detail.version, 1);
      assert.deepEqual(await queue(sup, id), [], 'the resend was answered from the stored outcome, not refused');
    });

    test('an edit to a visit approved meanwhile becomes an amendment', async () => {
      const app = await open('director-005');
      const kid = await firstChild(app);
      const id = await newVisit(app, kid);
      await app.sync();
      const sup = await supervisorFor(server.baseUrl, id);
      app.net.offline = true;
      await sup.ok('POST', `/api/v1/visits/${id}/review`, { decision: 'approve', version: 1 });
      await (await app.db.collections['visits']!.findOne(id).exec())!.incrementalPatch({ follow_up: 'corrected later' });
      app.net.offline = false;
      await app.sync();
      await until('the app holds the approved visit', async () => {
        const doc = await app.db.collections['visits']!.findOne(id).exec();
        return doc?.get('review_status') === 'approved' && doc.get('follow_up') === 'first words';
      });
      const kept = await queue(sup, id);
      const amendment = kept.find((c) => c.kind === 'amendment');
      assert.ok(amendment, `the correction waits as an amendment: ${JSON.stringify(kept)}`);
      assert.match(JSON.stringify(amendment), /corrected later/);
    });

    test('an urgent risk flag reaches the conflicts collection and the supervisor at once', async () => {
      const app = await open('director-006');
      const kid = await firstChild(app);
      app.net.offline = true;
      const plain = await newVisit(app, kid);
      const urgent = await newVisit(app, kid, {
        risk_flags: [{ id: 'r1', kind: 'physical_abuse', urgent: true, note: '手臂有淤青' }],
      });
      app.net.offline = false;
      await app.sync();
      await until('the urgent notice is in the conflicts collection', async () => {
        const docs = await app.db.collections['conflicts']!.find({ selector: { record_id: urgent, kind: 'urgent' } }).exec();
        return docs.length === 1;
      });
      const sup = await supervisorFor(server.baseUrl, urgent);
      assert.ok((await queue(sup, urgent)).some((c) => c.kind === 'urgent'), 'the supervisor sees it');
      assert.ok(
        !(await app.db.collections['conflicts']!.find({ selector: { record_id: plain, kind: 'urgent' } }).exec()).length,
        'only the flagged visit raised it',
      );
    });
  });
}
