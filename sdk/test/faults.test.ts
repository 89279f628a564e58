/**
 * What the phone does with the server's refusals and the network's faults:
 * 503 with Retry-After, 426, a revoked device, token refresh, a second user
 * on the same phone, urgent visits first.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import type { PushRequest } from '../src/wire.ts';
import { phone } from './helpers.ts';
import { PASSWORD, backends, RawClient, startServer, type TestServer } from './server.ts';

const envelope = (status: number, code: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error: { code, message: code } }), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });

for (const backend of backends()) describe(`faults and refusals on ${backend}`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(backend);
  });
  after(async () => {
    await server?.stop();
  });

  test('503 server_busy with Retry-After is waited out as asked, then the round completes', async () => {
    let busyOnce = true;
    const f: typeof fetch = async (input, init) => {
      if (busyOnce && String(input).includes('/sync/push')) {
        busyOnce = false;
        return envelope(503, 'server_busy', { 'retry-after': '3' });
      }
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-020', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    await p.sdk.saveVisit({ child_id: kid!.id, kind: 'phone_follow_up', visited_at: new Date().toISOString() }, { submit: true });
    const st = await p.sdk.sync();
    assert.equal(st.state, 'idle', JSON.stringify(st));
    assert.equal(st.pending, 0);
    assert.equal(busyOnce, false);
    assert.equal(p.sleeps.length, 1);
    assert.ok(p.sleeps[0]! >= 3000 && p.sleeps[0]! <= 6000, `waited ${p.sleeps[0]} ms for Retry-After: 3`);
  });

  test('426 asks for an update and keeps the outbox', async () => {
    let outdated = false;
    const f: typeof fetch = async (input, init) =>
      outdated && String(input).includes('/sync/') ? envelope(426, 'unsupported_protocol') : fetch(input, init);
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-021', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    outdated = true;
    const st = await p.sdk.sync();
    assert.equal(st.state, 'update_required');
    assert.equal(st.lastError?.message, '请更新应用');
    assert.equal(st.pending, 1, 'the outbox is kept');
    outdated = false;
    assert.equal((await p.sdk.sync()).pending, 0, 'an updated app sends it');
  });

  test('a revoked device wipes everything at its next contact', async () => {
    const p = await phone(server.baseUrl);
    await p.sdk.signIn('director-022', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    await p.sdk.addPhoto(
      (await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: false })).id,
      new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])], { type: 'image/jpeg' }),
    );
    const admin = await RawClient.signIn(server.baseUrl, 'admin');
    await admin.ok('PUT', `/api/v1/devices/${p.sdk.deviceId}/state`, { state: 'lost', reason: '手机丢失' });
    const st = await p.sdk.sync();
    assert.equal(st.state, 'revoked');
    assert.equal(await p.sdk.db.records.count(), 0);
    assert.equal(await p.sdk.db.outbox.count(), 0);
    assert.equal(await p.sdk.db.photos.count(), 0);
    assert.equal(p.sdk.user(), null);
    const again = await p.reopen();
    assert.equal(again.status().state, 'revoked', 'still revoked after a restart');
    assert.equal(again.deviceId, p.sdk.deviceId);
  });

  test('the access token is refreshed before it expires and on token_expired; each refresh token is used once', async () => {
    let offset = 0;
    const refreshes: string[] = [];
    let expireNext = false;
    const f: typeof fetch = async (input, init) => {
      const url = String(input);
      if (url.endsWith('/auth/refresh')) refreshes.push(JSON.parse(String(init?.body)).refresh_token);
      if (expireNext && url.includes('/sync/pull')) {
        expireNext = false;
        return envelope(401, 'token_expired');
      }
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f, now: () => Date.now() + offset });
    await p.sdk.signIn('director-023', PASSWORD);
    await p.sdk.setPin('1111');
    const first = p.sdk.api.session!.refreshToken;
    offset = 16 * 60 * 1000; // past the 15-minute access token
    assert.equal((await p.sdk.sync()).state, 'idle');
    assert.deepEqual(refreshes, [first]);
    const second = p.sdk.api.session!.refreshToken;
    assert.notEqual(second, first);
    expireNext = true;
    assert.equal((await p.sdk.sync()).state, 'idle');
    assert.deepEqual(refreshes, [first, second], 'a 401 token_expired refreshes once and retries');
    // The spent token is refused by the server (single use).
    const reuse = await fetch(`${server.baseUrl}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: first }),
    });
    assert.equal(reuse.status, 401);
    // The new session was stored before use: a restart keeps working.
    const again = await p.reopen();
    assert.equal(again.api.session!.refreshToken, p.sdk.api.session!.refreshToken);
  });

  test('the same user signing in again keeps the outbox; another user waits for it to sync, then gets a wiped store and a device id of its own', async () => {
    let offline = false;
    const f: typeof fetch = async (input, init) => {
      if (offline && String(input).includes('/sync/')) throw new TypeError('no signal');
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f });
    const id1 = p.sdk.deviceId;
    await p.sdk.signIn('director-024', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    offline = true;
    const v = await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    await p.sdk.sync();
    await p.sdk.signIn('director-024', PASSWORD);
    assert.equal(p.sdk.status().pending, 1, 'same user: the outbox is kept');
    assert.ok(await p.sdk.visit(v.id));
    assert.equal(p.sdk.deviceId, id1);
    // Another person cannot sign in while the first one's visit waits.
    await assert.rejects(p.sdk.signIn('director-025', PASSWORD), { code: 'pending_for_other_user' });
    assert.ok(await p.sdk.visit(v.id), 'the waiting visit is kept');
    offline = false;
    await p.sdk.sync();
    await p.sdk.signIn('director-025', PASSWORD);
    // The server keeps a device id for one account (another is refused
    // `device_in_use`): this installation starts afresh under a new one.
    assert.notEqual(p.sdk.deviceId, id1, 'a new device id for the new account');
    assert.equal(await p.sdk.visit(v.id), undefined, 'another user: the store is wiped');
    assert.equal(await p.sdk.db.records.count(), 0);
    assert.equal(await p.sdk.hasPin(), false);
    await p.sdk.setPin('2222');
    await p.sdk.sync();
    const kids = await p.sdk.children();
    assert.ok(kids.length > 0 && kids.every((k) => k.id !== kid!.id));
  });

  test('urgent visits go first in a push', async () => {
    const bodies: PushRequest[] = [];
    const f: typeof fetch = async (input, init) => {
      if (String(input).includes('/sync/push')) bodies.push(JSON.parse(String(init?.body)));
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-026', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    const at = new Date().toISOString();
    const plain = await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: at }, { submit: true });
    const urgent = await p.sdk.saveVisit(
      { child_id: kid!.id, kind: 'home_visit', visited_at: at, risk_flags: [{ id: 'r1', kind: 'physical_abuse', note: '手臂有淤青' }] },
      { submit: true },
    );
    assert.equal(urgent.urgent, true, 'a mandatory-reporting flag is marked urgent');
    const alerts: string[][] = [];
    p.sdk.onChange((e) => e.kind === 'alert' && alerts.push(e.ids ?? []));
    await p.sdk.sync();
    const ids = bodies[0]!.mutations.map((m) => m.record_id);
    assert.deepEqual(ids, [urgent.id, plain.id]);
    assert.deepEqual(alerts, [[urgent.id]], 'the server flagged it urgent');
    const kidView = (await p.sdk.children()).find((c) => c.id === kid!.id)!;
    assert.equal(kidView.urgent, true);
    assert.equal((await p.sdk.children())[0]!.id, kid!.id, 'urgent children first');
  });
  test('a pulled clock far ahead of the phone is not adopted (the skew bound)', async () => {
    const future = '001900000000000-00000000-5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e';
    const f: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).includes('/sync/pull')) return res;
      const body = (await res.json()) as { server_hlc: string };
      body.server_hlc = future;
      return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-027', PASSWORD);
    await p.sdk.setPin('1111');
    assert.equal((await p.sdk.sync()).state, 'idle');
    assert.ok(p.sdk.clock.last().wallMs < Date.now() + 5 * 60_000, 'the clock was not dragged to 2030');
    const [kid] = await p.sdk.children();
    await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    const pushed = p.sdk.store!.outbox[0]!.mutation;
    assert.ok(Number(pushed.hlc.slice(0, 15)) < Date.now() + 5 * 60_000);
  });
  test('413 sends fewer mutations at a time; a push refused as a whole keeps its outbox and still lets the phone pull', async () => {
    let mode: 'small_only' | 'refuse' | 'normal' = 'small_only';
    const sizes: number[] = [];
    const f: typeof fetch = async (input, init) => {
      if (String(input).includes('/sync/push')) {
        const n = (JSON.parse(String(init?.body)) as PushRequest).mutations.length;
        sizes.push(n);
        if (mode === 'small_only' && n > 1) return envelope(413, 'payload_too_large');
        if (mode === 'refuse') return envelope(422, 'validation_failed');
      }
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-028', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    for (let i = 0; i < 3; i++) {
      await p.sdk.saveVisit({ child_id: kid!.id, kind: 'phone_follow_up', visited_at: new Date(Date.now() - i * 60_000).toISOString() }, { submit: true });
    }
    const st = await p.sdk.sync();
    assert.equal(st.state, 'idle', JSON.stringify(st));
    assert.equal(st.pending, 0);
    assert.deepEqual(sizes, [3, 1, 1, 1]);
    mode = 'refuse';
    await p.sdk.saveVisit({ child_id: kid!.id, kind: 'other', visited_at: new Date().toISOString() }, { submit: true });
    const refused = await p.sdk.sync();
    assert.equal(refused.state, 'error');
    assert.equal(refused.lastError?.code, 'validation_failed');
    assert.equal(refused.pending, 1, 'kept');
    assert.ok(refused.lastSyncAt, 'the pull still ran');
    mode = 'normal';
    assert.equal((await p.sdk.sync()).pending, 0);
  });

  test('a draft never pushed can be deleted; a pushed one cannot; open case-plan items are listed per child', async () => {
    let offline = false;
    const f: typeof fetch = async (input, init) => {
      if (offline && String(input).includes('/sync/')) throw new TypeError('no signal');
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-029', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const kids = await p.sdk.children();
    offline = true;
    const draft = await p.sdk.saveVisit({ child_id: kids[0]!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: false });
    assert.equal((await p.sdk.counts()).drafts >= 1, true);
    await p.sdk.deleteDraft(draft.id);
    assert.equal(await p.sdk.visit(draft.id), undefined);
    assert.equal(p.sdk.status().pending, 0, 'a create and its delete never travel');
    offline = false;
    const kept = await p.sdk.saveVisit({ child_id: kids[0]!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: false });
    await p.sdk.sync();
    await assert.rejects(p.sdk.deleteDraft(kept.id), /只能删除尚未上传的草稿/);
    // Case-plan items: exactly the open and in-progress ones the server holds for each child.
    const raw = await RawClient.signIn(server.baseUrl, 'director-029');
    const page = await raw.ok<{ changes: { entity: string; id: string; fields: Record<string, { register?: { value: unknown } }> }[] }>(
      'GET',
      '/api/v1/sync/pull?protocol_version=1&limit=1000',
    );
    for (const k of kids) {
      const want = page.changes
        .filter((c) => c.entity === 'case_plan_item' && c.fields['child_id']?.register?.value === k.id)
        .filter((c) => ['open', 'in_progress'].includes(String(c.fields['status']?.register?.value)))
        .map((c) => c.id)
        .sort();
      assert.deepEqual((await p.sdk.planItems(k.id)).map((i) => i.id).sort(), want);
    }
  });
  test('a visit the server refuses stays on the phone with the reason, and its correction is sent again', async () => {
    const p = await phone(server.baseUrl);
    await p.sdk.signIn('director-034', PASSWORD);
    await p.sdk.setPin('1111');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    const v = await p.sdk.saveVisit(
      { child_id: kid!.id, kind: 'home_visit', visited_at: new Date(Date.now() + 3 * 86_400_000).toISOString(), follow_up: '日期填错了' },
      { submit: true },
    );
    await p.sdk.sync();
    const refused = (await p.sdk.visit(v.id))!;
    assert.equal(refused.conflict?.status, 'rejected');
    assert.equal(refused.conflict?.reason, 'visit_in_future');
    assert.equal(refused.localState, 'draft', 'back with the director');
    assert.equal(refused.follow_up, '日期填错了', 'nothing was lost');
    await p.sdk.saveVisit({ id: v.id, child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    assert.equal((await p.sdk.sync()).pending, 0);
    const fixed = (await p.sdk.visit(v.id))!;
    assert.equal(fixed.localState, 'synced');
    assert.equal(fixed.version, 1);
    assert.equal(fixed.follow_up, '日期填错了');
    assert.equal(fixed.conflict, undefined);
  });
});
