/** The sync loop against a real server: bootstrap, checksum, exactly-once push, pending edits kept, repair. */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ScopeChecksum } from '../src/checksum.ts';
import { formatHlc, nodeOf } from '../src/hlc.ts';
import type { PushResponse, RecordWire } from '../src/wire.ts';
import { phone } from './helpers.ts';
import { PASSWORD, RawClient, backends, startServer, supervisorFor, type TestServer } from './server.ts';


for (const backend of backends()) {
  describe(`sync on ${backend}`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer(backend);
    });
    after(async () => {
      await server?.stop();
    });

    test('a bootstrap holds exactly the server scope and its checksum matches', async () => {
      const p = await phone(server.baseUrl);
      const user = await p.sdk.signIn('director-001', PASSWORD, 'test phone');
      assert.equal(user.role, 'director');
      await p.sdk.setPin('2468');
      const t0 = performance.now();
      const st = await p.sdk.sync();
      const ms = performance.now() - t0;
      console.log(`# bootstrap of director-001's village: ${ms.toFixed(0)} ms`);
      assert.equal(st.state, 'idle', JSON.stringify(st));
      // The server's own view of the scope, read raw.
      const raw = await RawClient.signIn(server.baseUrl, 'director-001');
      const page = await raw.ok<{ changes: { entity: 'child' | 'visit' | 'case_plan_item'; id: string; version: number; tombstone?: unknown }[]; scope_checksum: { count: number; sum: string } }>(
        'GET',
        '/api/v1/sync/pull?protocol_version=1&limit=1000',
      );
      const mine = ScopeChecksum.of(
        [...p.sdk.store!.records.values()].filter((r) => r.body.shadow && !r.body.shadow.tombstone).map((r) => r.body.shadow!),
      );
      assert.deepEqual(mine.toWire(), page.scope_checksum);
      assert.equal(page.changes.length, p.sdk.store!.records.size);
      const kids = await p.sdk.children();
      assert.ok(kids.length > 0);
      assert.ok(kids.every((k) => !('id_number' in k)), 'no identity-card number in a child view');
      assert.ok(p.sdk.lastRepair === null, 'no repair was needed');
    });

    test("the phone's due dates are the server's", async () => {
      const p = await phone(server.baseUrl);
      const me = await p.sdk.signIn('director-008', PASSWORD);
      await p.sdk.setPin('2468');
      await p.sdk.sync();
      const kids = await p.sdk.children();
      assert.ok(kids.every((k) => !('id_number' in k)));
      assert.ok(
        [...p.sdk.store!.records.values()].every((r) => !r.body.shadow || !('id_number' in r.body.shadow.fields)),
        'the masked identity-card number is not even stored',
      );
      const village = me.org_unit.id;
      type Roster = { children: { id: string; last_visit_on: string | null; due: { state: string; due?: string } }[] };
      let server_: Roster | null = null;
      for (let i = 1; i <= 12 && !server_; i++) {
        const sup = await RawClient.signIn(server.baseUrl, `supervisor-${String(i).padStart(2, '0')}`);
        const r = await sup.call<Roster>('GET', `/api/v1/children?village=${village}&status=active`);
        if (r.status === 200) server_ = r.body;
      }
      assert.ok(server_, 'a supervisor of the village');
      const visited = server_!.children.filter((c) => c.last_visit_on);
      assert.ok(visited.length > 0);
      for (const c of visited) {
        const mine = kids.find((k) => k.id === c.id)!;
        assert.equal(mine.last_visit_on, c.last_visit_on, `last visit of ${c.id}`);
        assert.equal(mine.due.status, c.due.state, `due state of ${c.id}`);
        assert.equal(mine.due.due_date, c.due.due ?? null, `due date of ${c.id}`);
      }
      const never = server_!.children.filter((c) => !c.last_visit_on);
      const differ = never.filter((c) => kids.find((k) => k.id === c.id)!.due.due_date !== (c.due.due ?? null));
      console.log(`# due dates: ${visited.length} visited children equal; ${never.length - differ.length}/${never.length} never-visited equal`);
    });

    test("a supervisor's town bootstraps over several pages and its checksum matches", async () => {
      const p = await phone(server.baseUrl);
      await p.sdk.signIn('supervisor-01', PASSWORD);
      await p.sdk.setPin('2468');
      const t0 = performance.now();
      const st = await p.sdk.sync();
      const ms = performance.now() - t0;
      assert.equal(st.state, 'idle', JSON.stringify(st));
      const n = p.sdk.store!.records.size;
      console.log(`# bootstrap of supervisor-01's town: ${n} records in ${ms.toFixed(0)} ms`);
      assert.ok(n > 200, 'more than one page');
      assert.equal(p.sdk.lastRepair, null, 'the checksum matched without repair');
    });

    test('pulls ask for the compact encoding, and the full one of an older server reads the same', async () => {
      const asked: string[] = [];
      const spy: typeof fetch = async (input, init) => {
        if (String(input).includes('/api/v1/sync/pull')) asked.push(String(input));
        return fetch(input, init);
      };
      // An older server ignores the parameter it does not know.
      const older: typeof fetch = async (input, init) => {
        const url = new URL(String(input));
        url.searchParams.delete('encoding');
        return fetch(url, init);
      };
      const shadows = async (f: typeof fetch) => {
        const p = await phone(server.baseUrl, { fetch: f });
        await p.sdk.signIn('supervisor-01', PASSWORD);
        await p.sdk.setPin('2468');
        const st = await p.sdk.sync();
        assert.equal(st.state, 'idle', JSON.stringify(st));
        assert.equal(p.sdk.lastRepair, null, 'the checksum matched without repair');
        return new Map([...p.sdk.store!.records.values()].map((r) => [r.key, r.body.shadow]));
      };
      const compact = await shadows(spy);
      assert.ok(asked.length > 1 && asked.every((u) => u.includes('encoding=compact')), asked.join('\n'));
      const full = await shadows(older);
      assert.ok(compact.size > 200);
      assert.deepEqual(compact, full);
    });

    test('auto-sync runs on its interval and on the online event', async () => {
      const p = await phone(server.baseUrl);
      await p.sdk.signIn('director-006', PASSWORD);
      await p.sdk.setPin('2468');
      const target = new EventTarget();
      const g = globalThis as unknown as Record<string, unknown>;
      const saved = { window: g['window'], add: g['addEventListener'], remove: g['removeEventListener'] };
      g['window'] = g;
      g['addEventListener'] = target.addEventListener.bind(target);
      g['removeEventListener'] = target.removeEventListener.bind(target);
      try {
        let rounds = 0;
        p.sdk.onChange((e) => {
          if (e.kind === 'status' && p.sdk.status().state === 'syncing') rounds++;
        });
        p.sdk.startAutoSync({ intervalMs: 60_000 });
        for (let i = 0; i < 100 && p.sdk.status().lastSyncAt === null; i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(p.sdk.status().lastSyncAt, 'a first round at start');
        // Wait out the round (and its tail): the event starts a round only
        // when none runs.
        await p.sdk.sync();
        const before = rounds;
        target.dispatchEvent(new Event('online'));
        for (let i = 0; i < 100 && rounds === before; i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(rounds > before, "the 'online' event starts a round");
      } finally {
        p.sdk.stopAutoSync();
        g['window'] = saved.window;
        g['addEventListener'] = saved.add;
        g['removeEventListener'] = saved.remove;
      }
    });

    test('an offline visit is pushed exactly once even when the answer is lost', async () => {
      let loseNextPush = false;
      let pushes = 0;
      const fetchImpl: typeof fetch = async (input, init) => {
        const url = String(input);
        if (!url.includes('/sync/push')) return fetch(input, init);
        pushes++;
        const res = await fetch(input, init);
        if (loseNextPush) {
          loseNextPush = false;
          await res.text();
          throw new TypeError('network connection lost');
        }
        return res;
      };
      const p = await phone(server.baseUrl, { fetch: fetchImpl });
      await p.sdk.signIn('director-002', PASSWORD);
      await p.sdk.setPin('2468');
      await p.sdk.sync();
      const [kid] = await p.sdk.children();
      assert.ok(kid);
      const t0 = performance.now();
      const v = await p.sdk.saveVisit(
        { child_id: kid.id, kind: 'home_visit', visited_at: new Date().toISOString(), observations: { living: '家中整洁' } },
        { submit: false },
      );
      console.log(`# saveVisit: ${(performance.now() - t0).toFixed(1)} ms`);
      // Several edits before a push fold into one mutation.
      await p.sdk.saveVisit({ id: v.id, child_id: kid.id, kind: 'home_visit', visited_at: v.visited_at, follow_up: '下周电话回访' }, { submit: false });
      await p.sdk.saveVisit({ id: v.id, child_id: kid.id, kind: 'home_visit', visited_at: v.visited_at, follow_up: '下周再访' }, { submit: true });
      assert.equal(p.sdk.status().pending, 1, 'three edits are one mutation');
      assert.equal((await p.sdk.visit(v.id))!.localState, 'waiting');
      const sent = p.sdk.store!.outbox[0]!.mutation.mutation_id;
      loseNextPush = true;
      const st1 = await p.sdk.sync();
      assert.equal(st1.state, 'offline');
      assert.equal(st1.pending, 1, 'the mutation stays until its answer is stored');
      // An app restart in between: the outbox survives.
      await p.reopen();
      assert.ok(p.sdk.isLocked());
      assert.equal(await p.sdk.unlock('2468'), true);
      assert.equal(p.sdk.store!.outbox[0]!.mutation.mutation_id, sent, 'resent with the same id');
      const st2 = await p.sdk.sync();
      assert.equal(st2.state, 'idle', JSON.stringify(st2));
      assert.equal(st2.pending, 0);
      assert.equal(pushes, 2);
      const synced = (await p.sdk.visit(v.id))!;
      assert.equal(synced.localState, 'synced');
      assert.equal(synced.follow_up, '下周再访');
      assert.equal(synced.version, 1, 'created once: version 1');
      const sup = await supervisorFor(server.baseUrl, v.id);
      const log = await sup.ok<{ total: number; visits: { id: string }[] }>('GET', `/api/v1/visits?child=${kid.id}&limit=200`);
      assert.equal(log.visits.filter((x) => x.id === v.id).length, 1, 'exactly one visit on the server');
    });

    test('a sync asked while a round runs gets one more round, so a visit saved meanwhile is sent', async () => {
      // The first round's pull waits at a gate until the visit is saved.
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      let holdPull = false;
      const fetchThroughGate: typeof fetch = async (input, init) => {
        if (holdPull && String(input).includes('/api/v1/sync/pull')) {
          holdPull = false;
          await gate;
        }
        return fetch(input, init);
      };
      const p = await phone(server.baseUrl, { fetch: fetchThroughGate });
      await p.sdk.signIn('director-004', PASSWORD);
      await p.sdk.setPin('2468');
      await p.sdk.sync();
      const [kid] = await p.sdk.children();
      assert.ok(kid);
      holdPull = true;
      const first = p.sdk.sync();
      for (let i = 0; i < 200 && holdPull; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(holdPull, false, 'the first round reached its pull');
      const v = await p.sdk.saveVisit({ child_id: kid.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
      const second = p.sdk.sync();
      open();
      await first;
      const st = await second;
      assert.equal(st.pending, 0, `the visit saved during the first round was sent: ${JSON.stringify(st)}`);
      assert.ok(((await p.sdk.visit(v.id))?.version ?? 0) > 0, 'the server answered it');
    });

    test("a visit's location, the phone's position or a place name, reaches the server unrefused", async () => {
      const p = await phone(server.baseUrl);
      await p.sdk.signIn('director-003', PASSWORD);
      await p.sdk.setPin('2468');
      await p.sdk.sync();
      const [kid] = await p.sdk.children();
      assert.ok(kid);
      const position = { lat: 29.871234, lon: 121.551234, accuracy_m: 18 };
      const here = await p.sdk.saveVisit({ child_id: kid.id, kind: 'home_visit', visited_at: new Date().toISOString(), location: position }, { submit: true });
      const named = await p.sdk.saveVisit({ child_id: kid.id, kind: 'school_visit', visited_at: new Date().toISOString(), location: '村小学' }, { submit: true });
      const st = await p.sdk.sync();
      assert.equal(st.state, 'idle', JSON.stringify(st));
      for (const [id, want] of [[here.id, position], [named.id, '村小学']] as const) {
        const v = (await p.sdk.visit(id))!;
        assert.equal(v.conflict ?? null, null, `no refusal: ${JSON.stringify(v.conflict)}`);
        assert.deepEqual(v.location, want);
        const sup = await supervisorFor(server.baseUrl, id);
        const detail = await sup.ok<{ record: { location: unknown } }>('GET', `/api/v1/visits/${id}`);
        assert.deepEqual(detail.record.location, want, 'the server stored it as sent');
      }
    });

    test('a pull never overwrites a pending edit: the base moves on, local values stay on top', async () => {
      let editDuringPull: (() => Promise<void>) | null = null;
      const hooked: typeof fetch = async (input, init) => {
        if (String(input).includes('/sync/pull') && editDuringPull) {
          const edit = editDuringPull;
          editDuringPull = null;
          await edit();
        }
        return fetch(input, init);
      };
      const a = await phone(server.baseUrl, { fetch: hooked });
      const b = await phone(server.baseUrl);
      for (const p of [a, b]) {
        await p.sdk.signIn('director-003', PASSWORD);
        await p.sdk.setPin('1357');
        await p.sdk.sync();
      }
      const [kid] = await a.sdk.children();
      const v = await a.sdk.saveVisit(
        { child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString(), follow_up: 'first', location: 'home' },
        { submit: true },
      );
      await a.sdk.sync();
      await b.sdk.sync();
      const onB = (await b.sdk.visit(v.id))!;
      assert.equal(onB.follow_up, 'first');
      await b.sdk.saveVisit({ ...input(onB), follow_up: 'from B', location: 'school' }, { submit: false });
      assert.equal((await b.sdk.sync()).state, 'idle');
      editDuringPull = async () => {
        const cur = (await a.sdk.visit(v.id))!;
        await a.sdk.saveVisit({ ...input(cur), follow_up: 'from A' }, { submit: false });
      };
      await a.sdk.sync();
      const mid = (await a.sdk.visit(v.id))!;
      assert.equal(mid.version, 2, 'the pulled change became the base');
      assert.equal(mid.location, 'school', 'a field without a pending edit takes the pulled value');
      assert.equal(mid.follow_up, 'from A', 'the pending edit is not overwritten');
      assert.deepEqual(mid.pendingFields, ['follow_up']);
      assert.equal(a.sdk.status().pending, 1);
      assert.equal((await a.sdk.sync()).state, 'idle');
      const merged = (await a.sdk.visit(v.id))!.conflict;
      assert.equal(merged?.status, 'merged', 'the phone is told its edit met a concurrent one');
      assert.deepEqual(merged?.conflicts.map((c) => [c.field, c.kind, c.winner]), [['follow_up', 'concurrent_write', 'client']]);
      await b.sdk.sync();
      for (const p of [a, b]) {
        const seen = (await p.sdk.visit(v.id))!;
        assert.equal(seen.follow_up, 'from A', 'the later edit wins on both phones');
        assert.equal(seen.location, 'school');
        assert.equal(seen.version, 3);
      }
    });

    test('a transfer purges the child, and the visit recorded offline for it is pushed, flagged and kept', async () => {
      let offline = false;
      const pushes: PushResponse[] = [];
      const net: typeof fetch = async (input, init) => {
        if (offline) throw new TypeError('no signal');
        const res = await fetch(input, init);
        if (String(input).includes('/sync/push') && res.ok) pushes.push((await res.clone().json()) as PushResponse);
        return res;
      };
      const d = await phone(server.baseUrl, { fetch: net });
      const me = await d.sdk.signIn('director-004', PASSWORD);
      await d.sdk.setPin('1357');
      await d.sdk.sync();
      const [kid] = await d.sdk.children();
      offline = true;
      const v = await d.sdk.saveVisit(
        // Dated a few minutes ahead: after the transfer that happens next, on the same day.
        { child_id: kid!.id, kind: 'home_visit', visited_at: new Date(Date.now() + 180_000).toISOString(), follow_up: '转学后才知道' },
        { submit: true },
      );
      assert.equal((await d.sdk.sync()).state, 'offline');
      const admin = await RawClient.signIn(server.baseUrl, 'admin');
      const units = await admin.ok<{ id: string; kind: string }[]>('GET', '/api/v1/org-units');
      const other = units.find((u) => u.kind === 'village' && u.id !== me.org_unit.id)!;
      const shadow = d.sdk.store!.get('child', kid!.id)!.body.shadow as RecordWire;
      const hlc = formatHlc({ wallMs: Date.now(), counter: 0, node: nodeOf(admin.deviceId) });
      const moved = await admin.ok<PushResponse>('POST', '/api/v1/sync/push', {
        protocol_version: 1,
        device_id: admin.deviceId,
        device_hlc: hlc,
        mutations: [
          {
            mutation_id: globalThis.crypto.randomUUID(),
            entity: 'child',
            record_id: kid!.id,
            op: 'update',
            base_version: shadow.version,
            hlc,
            fields: { village_id: { hlc, value: other.id } },
          },
        ],
      });
      assert.equal(moved.results[0]!.status, 'applied', JSON.stringify(moved));
      offline = false;
      const st = await d.sdk.sync();
      assert.equal(st.state, 'idle', JSON.stringify(st));
      assert.equal(st.pending, 0, 'the visit was pushed');
      const answer = pushes.flatMap((p) => p.results).find((r) => r.record_id === v.id)!;
      assert.notEqual(answer.status, 'rejected', JSON.stringify(answer));
      const flags = 'flags' in answer ? (answer.flags ?? []).map((f) => f.flag) : [];
      assert.ok(flags.includes('visit_after_transfer'), `flagged for the supervisor: ${JSON.stringify(answer)}`);
      assert.equal(await d.sdk.child(kid!.id), undefined, 'the child left the phone');
      assert.equal((await d.sdk.visits({ childId: kid!.id })).length, 0, "the child's visits left the phone");
      const onServer = await admin.call('GET', `/api/v1/visits/${v.id}`);
      assert.equal(onServer.status, 200, 'the visit is on the server');
    });

    test('edits made while a push is in flight are neither lost nor folded into the mutation being sent', async () => {
      let onPush: (() => Promise<void>) | null = null;
      const f: typeof fetch = async (input, init) => {
        if (String(input).includes('/sync/push') && onPush) {
          const hook = onPush;
          onPush = null;
          await hook();
        }
        return fetch(input, init);
      };
      const p = await phone(server.baseUrl, { fetch: f });
      await p.sdk.signIn('director-007', PASSWORD);
      await p.sdk.setPin('2468');
      await p.sdk.sync();
      const [kid] = await p.sdk.children();
      const v = await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString(), follow_up: 'one' }, { submit: true });
      onPush = async () => {
        await Promise.all([
          p.sdk.saveVisit({ ...input(v), follow_up: 'two' }, { submit: false }),
          p.sdk.saveVisit({ ...input(v), location: 'school' }, { submit: false }),
        ]);
      };
      assert.equal((await p.sdk.sync()).pending, 0, 'the round pushed the later edit too, rebased on the answer');
      const done = (await p.sdk.visit(v.id))!;
      assert.equal(done.version, 2);
      assert.equal(done.location, 'school');
      assert.ok(['one', 'two'].includes(done.follow_up!));
      const other = await phone(server.baseUrl);
      await other.sdk.signIn('director-007', PASSWORD);
      await other.sdk.setPin('2468');
      await other.sdk.sync();
      const there = (await other.sdk.visit(v.id))!;
      assert.deepEqual([there.follow_up, there.location, there.version], [done.follow_up, 'school', 2]);
      assert.equal(done.follow_up, 'two', 'the last edit wins');
    });

    test('an invalid cursor (altered, or from a restored server) is answered by pulling again from the start', async () => {
      const p = await phone(server.baseUrl);
      await p.sdk.signIn('director-009', PASSWORD);
      await p.sdk.setPin('1357');
      await p.sdk.sync();
      const size = p.sdk.store!.records.size;
      await p.sdk.db.setMeta('cursor', 'not-a-cursor-the-server-made');
      const st = await p.sdk.sync();
      assert.equal(st.state, 'idle', JSON.stringify(st));
      assert.equal(p.sdk.lastRepair?.mode, 'full');
      assert.equal(p.sdk.lastRepair?.matched, true);
      assert.equal(p.sdk.store!.records.size, size);
      assert.notEqual(await p.sdk.db.getMeta('cursor'), 'not-a-cursor-the-server-made');
    });

    for (const mode of ['targeted', 'full'] as const) {
      test(`a diverged store is noticed by the checksum and repaired (${mode})`, async () => {
        const asked: string[] = [];
        const f: typeof fetch = async (input, init) => {
          const path = new URL(String(input)).pathname;
          asked.push(path);
          // An older server without the repair routes: the whole scope is pulled again.
          if (mode === 'full' && path === '/api/v1/sync/manifest') {
            return new Response(JSON.stringify({ error: { code: 'not_found', message: 'no such route' } }), { status: 404 });
          }
          return fetch(input, init);
        };
        const p = await phone(server.baseUrl, { fetch: f });
        await p.sdk.signIn('director-005', PASSWORD);
        await p.sdk.setPin('1357');
        await p.sdk.sync();
        const store = p.sdk.store!;
        const before = store.records.size;
        const [first, second] = [...store.records.values()];
        const bumped = { ...second!, body: { ...second!.body, shadow: { ...second!.body.shadow!, version: second!.body.shadow!.version + 5 } } };
        const stray = {
          key: 'visit:00000000-0000-4000-8000-00000000abcd',
          entity: 'visit' as const,
          id: '00000000-0000-4000-8000-00000000abcd',
          body: { shadow: { entity: 'visit' as const, id: '00000000-0000-4000-8000-00000000abcd', version: 1, fields: {} }, acked: [], issue: null },
          pending: [],
        };
        await store.write({ deleteRecords: [first!.key], records: [bumped, stray] });
        asked.length = 0;
        const st = await p.sdk.sync();
        assert.equal(st.state, 'idle', JSON.stringify(st));
        assert.ok(p.sdk.lastRepair, 'a repair ran');
        assert.equal(p.sdk.lastRepair!.mode, mode);
        assert.equal(p.sdk.lastRepair!.matched, true);
        assert.equal(p.sdk.lastRepair!.rewritten, 2, 'only the missing and the wrong record were written');
        assert.equal(p.sdk.lastRepair!.dropped, 1, 'the record the server does not have was dropped');
        assert.equal(p.sdk.store!.records.size, before);
        assert.equal(p.sdk.store!.records.get(second!.key)!.body.shadow!.version, second!.body.shadow!.version);
        if (mode === 'targeted') {
          assert.deepEqual(
            asked.filter((a) => a.startsWith('/api/v1/sync/')),
            ['/api/v1/sync/pull', '/api/v1/sync/manifest', '/api/v1/sync/fetch'],
            'one manifest page and one fetch, no second bootstrap',
          );
        }
      });
    }
  });
}

function input(v: import('../src/types.ts').VisitView): import('../src/types.ts').VisitInput {
  return { id: v.id, child_id: v.child_id, kind: v.kind, visited_at: v.visited_at };
}
