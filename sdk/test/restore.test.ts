/**
 * After a restore from a backup (SYNC-PROTOCOL.md "After a restore"),
 * against a real SQLite server: it is backed up while it runs, the phone
 * records visits and an edit the server acknowledges, the server is
 * stopped, restored from the backup (`seedling restore`) and started again.
 * Its next pull answers 409 `server_restored`; the phone sends back its own
 * writes the server lost and pulls on: every visit is back once, the edit
 * is back, and a second sync recovers nothing.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { RecordWire } from '../src/wire.ts';
import { phone } from './helpers.ts';
import { PASSWORD, RawClient, startServer, supervisorFor, type TestServer } from './server.ts';

/** Every visit a fresh device of `username` pulls from the server, with its count of appearances. */
async function visitsOnServer(baseUrl: string, username: string): Promise<Map<string, { count: number; record: RecordWire }>> {
  const raw = await RawClient.signIn(baseUrl, username);
  const out = new Map<string, { count: number; record: RecordWire }>();
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const q = new URLSearchParams({ protocol_version: '1', limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const answer = await raw.ok<{ changes: RecordWire[]; next_cursor: string; has_more: boolean }>('GET', `/api/v1/sync/pull?${q.toString()}`);
    for (const c of answer.changes) {
      if (c.entity !== 'visit' || c.tombstone) continue;
      const seen = out.get(c.id);
      out.set(c.id, { count: (seen?.count ?? 0) + 1, record: c });
    }
    cursor = answer.next_cursor;
    if (!answer.has_more) return out;
  }
  throw new Error('the pull did not end');
}

const register = (r: RecordWire, field: string) => {
  const f = r.fields[field];
  return f && 'register' in f ? f.register.value : undefined;
};

describe('after a restore on sqlite', () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    server = await startServer('sqlite');
    dir = mkdtempSync(join(tmpdir(), 'seedling-backup-'));
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the phone brings back every visit and edit the restored server lost, once', async () => {
    const p = await phone(server.baseUrl);
    await p.sdk.signIn('director-003', PASSWORD, 'test phone');
    await p.sdk.setPin('1357');
    assert.equal((await p.sdk.sync()).state, 'idle');
    const [kid] = await p.sdk.children();
    const at = (hoursAgo: number) => new Date(Date.now() - hoursAgo * 3600_000).toISOString();
    const visit = async (hoursAgo: number, note: string) => {
      const v = await p.sdk.saveVisit(
        {
          child_id: kid!.id,
          kind: 'home_visit',
          visited_at: at(hoursAgo),
          observations: { living: note },
          needs: [{ id: globalThis.crypto.randomUUID(), area: 'study', note: '需要辅导' }],
        },
        { submit: true },
      );
      assert.equal((await p.sdk.sync()).state, 'idle');
      assert.equal((await p.sdk.visit(v.id))!.localState, 'synced');
      return v.id;
    };
    const kept = await visit(6, '备份前的走访');

    const file = join(dir, 'backup.db');
    server.cli('backup', file);

    // Acknowledged after the backup: two visits, one of them approved by
    // the supervisor, and an edit of the visit the backup holds.
    const lost = await visit(4, '备份后的走访');
    const approved = await visit(3, '备份后督导员已审核');
    const sup = await supervisorFor(server.baseUrl, approved);
    await sup.ok('POST', `/api/v1/visits/${approved}/review`, { decision: 'approve', version: 1 });
    const keptView = (await p.sdk.visit(kept))!;
    await p.sdk.saveVisit(
      { id: kept, child_id: kid!.id, kind: keptView.kind, visited_at: keptView.visited_at, follow_up: '下周再访' },
      { submit: false },
    );
    assert.equal((await p.sdk.sync()).state, 'idle');
    assert.equal((await p.sdk.visit(approved))!.localState, 'approved');
    assert.equal((await p.sdk.visit(kept))!.follow_up, '下周再访');
    const visitsBefore = (await p.sdk.visits({ childId: kid!.id })).map((v) => v.id).sort();
    assert.ok(visitsBefore.includes(lost) && visitsBefore.includes(approved) && visitsBefore.includes(kept));

    await server.restartAround(() => {
      server.cli('restore', file);
    });
    const restored = await visitsOnServer(server.baseUrl, 'director-003');
    assert.ok(restored.has(kept), 'the backup holds the first visit');
    assert.ok(!restored.has(lost) && !restored.has(approved), 'the restored server lost the later visits');
    assert.equal(register(restored.get(kept)!.record, 'follow_up') ?? null, null, 'and the edit');

    const st = await p.sdk.sync();
    assert.equal(st.state, 'idle', JSON.stringify(st));
    assert.equal(st.lastError, null);
    assert.equal(st.recovered, true, JSON.stringify(st));
    assert.equal(st.resent, 3, 'two creates and the edit');
    assert.equal(st.pending, 0);
    assert.equal(p.sdk.lastRecovery?.behind, 3);
    assert.equal(p.sdk.lastRecovery?.matched, true);
    assert.ok(p.sdk.lastRecovery?.cursor, 'the pull went on from the manifest cursor');

    const back = await visitsOnServer(server.baseUrl, 'director-003');
    for (const id of [kept, lost, approved]) assert.equal(back.get(id)?.count, 1, `visit ${id} is on the server once`);
    assert.equal(register(back.get(kept)!.record, 'follow_up'), '下周再访', 'the edit is back');
    assert.equal(register(back.get(lost)!.record, 'review_status'), 'submitted');
    // The supervisor's decision was not the phone's to send: it comes back submitted, to be approved again.
    assert.equal(register(back.get(approved)!.record, 'review_status'), 'submitted');
    const needs = back.get(lost)!.record.fields['needs'];
    assert.ok(needs && 'items' in needs && Object.keys(needs.items).length === 1, 'the needs item is back');
    type Review = { review_status: string; record: { follow_up: string | null } };
    assert.equal((await sup.ok<Review>('GET', `/api/v1/visits/${kept}`)).record.follow_up, '下周再访', 'the review API sees the edit');
    assert.equal((await sup.ok<Review>('GET', `/api/v1/visits/${approved}`)).review_status, 'submitted', 'waiting for review again');
    const ofChild = [...back.values()].filter((v) => register(v.record, 'child_id') === kid!.id).map((v) => v.record.id).sort();
    assert.deepEqual(ofChild, visitsBefore, 'no visit doubled, none missing');

    // The phone shows what the server holds, and nothing waits.
    assert.deepEqual((await p.sdk.visits({ childId: kid!.id })).map((v) => v.id).sort(), visitsBefore);
    assert.equal((await p.sdk.visit(kept))!.follow_up, '下周再访');
    assert.equal((await p.sdk.visit(lost))!.localState, 'synced');
    assert.equal((await p.sdk.visit(approved))!.review_status, 'submitted');

    // In step now: the next sync recovers nothing.
    const again = await p.sdk.sync();
    assert.equal(again.state, 'idle', JSON.stringify(again));
    assert.equal(again.recovered, false);
    assert.equal(again.resent, 0);
    const last = await visitsOnServer(server.baseUrl, 'director-003');
    for (const id of [kept, lost, approved]) assert.equal(last.get(id)?.count, 1);
    assert.equal(last.get(lost)!.record.version, back.get(lost)!.record.version, 'nothing was sent twice');
  });

  test('an edit still queued at the restore is sent after the recovery, on the server\'s versions', async () => {
    const p = await phone(server.baseUrl);
    await p.sdk.signIn('director-004', PASSWORD, 'test phone');
    await p.sdk.setPin('1357');
    assert.equal((await p.sdk.sync()).state, 'idle');
    const [kid] = await p.sdk.children();
    const at = (hoursAgo: number) => new Date(Date.now() - hoursAgo * 3600_000).toISOString();
    const save = (id: string | undefined, hoursAgo: number, fields: Record<string, unknown>) =>
      p.sdk.saveVisit({ ...(id ? { id } : {}), child_id: kid!.id, kind: 'home_visit', visited_at: at(hoursAgo), ...fields }, { submit: !id });
    const kept = (await save(undefined, 6, { observations: { living: '备份前的走访' } })).id;
    assert.equal((await p.sdk.sync()).state, 'idle');

    const file = join(dir, 'backup-queued.db');
    server.cli('backup', file);

    // Acknowledged after the backup: a new visit, and an edit of the older one.
    const lost = (await save(undefined, 4, { observations: { living: '备份后的走访' } })).id;
    await save(kept, 6, { observations: { living: '备份前的走访' }, follow_up: '下周再访' });
    assert.equal((await p.sdk.sync()).state, 'idle');
    // Then, without a network until after the restore: an edit of each.
    await save(kept, 6, { observations: { living: '缺冬衣' }, follow_up: '下周再访' });
    await save(lost, 4, { observations: { living: '备份后的走访' }, follow_up: '联系学校' });
    assert.equal((await p.sdk.status()).pending, 2);

    await server.restartAround(() => {
      server.cli('restore', file);
    });

    const st = await p.sdk.sync();
    assert.equal(st.state, 'idle', JSON.stringify(st));
    assert.equal(st.lastError, null);
    assert.equal(st.recovered, true, JSON.stringify(st));
    assert.equal(st.pending, 0, 'everything was sent');
    for (const id of [kept, lost]) assert.equal((await p.sdk.visit(id))!.localState, 'synced', `visit ${id}`);

    const back = await visitsOnServer(server.baseUrl, 'director-004');
    const living = (id: string) => (register(back.get(id)!.record, 'observations') as { living?: string } | undefined)?.living;
    assert.equal(living(kept), '缺冬衣', 'the queued edit of the older visit applied');
    assert.equal(register(back.get(kept)!.record, 'follow_up'), '下周再访', 'the edit the restore lost is back');
    assert.equal(register(back.get(lost)!.record, 'follow_up'), '联系学校', 'the queued edit of the lost visit applied');
    const sup = await supervisorFor(server.baseUrl, kept);
    const queue = await sup.ok<{ conflicts: { record_id: string; kind: string }[] }>('GET', '/api/v1/conflicts?status=all&limit=200');
    const ours = queue.conflicts.filter((c) => c.record_id === kept || c.record_id === lost);
    assert.deepEqual(ours, [], 'nothing in the conflict queue');

    const again = await p.sdk.sync();
    assert.equal(again.state, 'idle', JSON.stringify(again));
    assert.equal(again.recovered, false);
  });
});
