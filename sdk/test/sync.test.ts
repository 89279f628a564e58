/** The sync loop against a real server: bootstrap, checksum, exactly-once push, pending edits kept, repair. */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ScopeChecksum } from '../src/checksum.ts';
import { phone } from './helpers.ts';
import { PASSWORD, RawClient, startServer, supervisorFor, type TestServer } from './server.ts';

const backends: ('sqlite' | 'postgres')[] = process.env['SEEDLING_TEST_POSTGRES'] ? ['sqlite', 'postgres'] : ['sqlite'];

for (const backend of backends) {
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
  });
}
