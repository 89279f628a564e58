/** At-rest encryption, the lock, PIN recovery through sign-in, sign-out wiping. */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { SeedlingError } from '../src/index.ts';
import { phone, rawDump } from './helpers.ts';
import { PASSWORD, backends, startServer, type TestServer } from './server.ts';

for (const backend of backends()) describe(`security on ${backend}`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(backend);
  });
  after(async () => {
    await server?.stop();
  });

  test('no child name, guardian or note is readable in the raw IndexedDB values, locked or not', async () => {
    const p = await phone(server.baseUrl);
    await p.sdk.signIn('director-030', PASSWORD);
    await p.sdk.setPin('97531');
    await p.sdk.sync();
    const kids = await p.sdk.children();
    assert.ok(kids.length > 0);
    const note = '孩子说晚上一个人在家很害怕';
    await p.sdk.saveVisit(
      { child_id: kids[0]!.id, kind: 'home_visit', visited_at: new Date().toISOString(), observations: { safety: note } },
      { submit: false },
    );
    p.sdk.lock();
    assert.equal(p.sdk.isLocked(), true);
    assert.equal(p.sdk.status().state, 'locked');
    await assert.rejects(p.sdk.children(), (e: unknown) => e instanceof SeedlingError && e.code === 'locked');
    assert.equal((await p.sdk.sync()).state, 'locked', 'sync needs the data key: it waits for unlock');
    const raw = await rawDump(p.sdk);
    assert.ok(raw.length > 1000);
    for (const k of kids) {
      assert.ok(!raw.includes(k.name), `the name ${k.name} is not readable`);
      if (k.guardian_name) assert.ok(!raw.includes(k.guardian_name));
      if (k.address) assert.ok(!raw.includes(k.address));
    }
    assert.ok(!raw.includes(note));
    assert.equal(await p.sdk.unlock('00000'), false, 'a wrong PIN opens nothing');
    assert.equal(await p.sdk.unlock('97531'), true);
    assert.equal((await p.sdk.children()).length, kids.length);
  });

  test('a forgotten PIN: signing in again reopens the same data key, so the pending visit is kept', async () => {
    let offline = false;
    const f: typeof fetch = async (input, init) => {
      if (offline && String(input).includes('/sync/')) throw new TypeError('no signal');
      return fetch(input, init);
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-031', PASSWORD);
    await p.sdk.setPin('2580');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    offline = true;
    const v = await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    await p.sdk.sync();
    await p.reopen();
    assert.equal(p.sdk.isLocked(), true);
    assert.equal(await p.sdk.unlock('0000'), false);
    offline = false;
    await p.sdk.recoverWithSignIn('director-031', PASSWORD);
    assert.equal(p.sdk.isLocked(), false);
    assert.equal(await p.sdk.hasPin(), false, 'the forgotten PIN is dropped');
    assert.equal((await p.sdk.visit(v.id))?.localState, 'waiting', 'the pending visit survived');
    await p.sdk.setPin('3690');
    p.sdk.lock();
    assert.equal(await p.sdk.unlock('2580'), false, 'the old PIN no longer opens it');
    assert.equal(await p.sdk.unlock('3690'), true);
    assert.equal((await p.sdk.sync()).pending, 0);
  });

  test('without a device key from the server, recovery is unavailable and says so', async () => {
    const f: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith('/auth/login')) return res;
      const body = (await res.json()) as Record<string, unknown>;
      delete body['device_key'];
      return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
    };
    const p = await phone(server.baseUrl, { fetch: f });
    await p.sdk.signIn('director-032', PASSWORD);
    await assert.rejects(
      p.sdk.saveVisit({ child_id: '00000000-0000-4000-8000-000000000001', kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: false }),
      (e: unknown) => e instanceof SeedlingError && e.code === 'pin_required',
      'no edit before the data key is wrapped somewhere',
    );
    await p.sdk.setPin('1470');
    await p.sdk.sync();
    await p.reopen();
    await assert.rejects(p.sdk.recoverWithSignIn('director-032', PASSWORD), (e: unknown) => e instanceof SeedlingError && e.code === 'recovery_unavailable');
    assert.equal(await p.sdk.unlock('1470'), true, 'the PIN still works');
  });

  test('signing out wipes records, outbox and photos, and keeps the device id', async () => {
    const p = await phone(server.baseUrl);
    await p.sdk.signIn('director-033', PASSWORD);
    await p.sdk.setPin('1470');
    await p.sdk.sync();
    const id = p.sdk.deviceId;
    await p.sdk.signOut();
    assert.equal(p.sdk.status().state, 'signed_out');
    assert.equal(p.sdk.user(), null);
    assert.equal(await p.sdk.db.records.count(), 0);
    assert.equal(await p.sdk.db.outbox.count(), 0);
    assert.equal(await p.sdk.db.photos.count(), 0);
    assert.equal((await p.reopen()).deviceId, id);
  });
});
