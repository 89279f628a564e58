/** Photos: hashed, stored sealed, referenced from the visit, uploaded in 512 KiB chunks that resume after an interruption. */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { phone } from './helpers.ts';
import { PASSWORD, backends, startServer, type TestServer } from './server.ts';

for (const backend of backends()) describe(`photos on ${backend}`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(backend);
  });
  after(async () => {
    await server?.stop();
  });

  test('an upload cut off mid-way resumes from what the server holds', async () => {
    const puts: string[] = [];
    let failAtPut = 2;
    const f: typeof fetch = async (input, init) => {
      const url = String(input);
      if (init?.method === 'PUT' && url.includes('/attachments/')) {
        const range = new Headers(init.headers).get('content-range') ?? '';
        puts.push(range);
        if (puts.length === failAtPut) {
          failAtPut = -1;
          throw new TypeError('connection dropped');
        }
      }
      return fetch(input, init);
    };
    let downscaled = 0;
    const p = await phone(server.baseUrl, {
      fetch: f,
      downscale: async (b) => {
        downscaled++;
        return b;
      },
    });
    await p.sdk.signIn('director-040', PASSWORD);
    await p.sdk.setPin('1212');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    const v = await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    const bytes = new Uint8Array(1_300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
    bytes.set([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00], 0);
    const ref = await p.sdk.addPhoto(v.id, new Blob([bytes], { type: 'image/jpeg' }));
    assert.equal(downscaled, 1, 'the injected downscale ran');
    assert.equal(ref.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.deepEqual((await p.sdk.visit(v.id))!.photos, [ref], 'referenced from the visit');
    assert.equal(p.sdk.status().pendingPhotos, 1);
    const url = await p.sdk.photoUrl(ref.sha256);
    assert.ok(url?.startsWith('blob:'));

    const first = await p.sdk.sync();
    assert.equal(first.state, 'offline');
    assert.equal(first.pending, 0, 'the visit itself synced before the photo');
    assert.equal(first.pendingPhotos, 1, 'the photo waits');
    assert.deepEqual(puts, ['bytes 0-524287/1300000', 'bytes 524288-1048575/1300000']);

    const second = await p.sdk.sync();
    assert.equal(second.state, 'idle', JSON.stringify(second));
    assert.equal(second.pendingPhotos, 0);
    assert.deepEqual(puts.slice(2), ['bytes 524288-1048575/1300000', 'bytes 1048576-1299999/1300000'], 'resumed from received_bytes');

    const token = p.sdk.api.session!.accessToken;
    const got = await fetch(`${server.baseUrl}/api/v1/attachments/${ref.sha256}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(got.status, 200);
    assert.equal(createHash('sha256').update(new Uint8Array(await got.arrayBuffer())).digest('hex'), ref.sha256);
    // A second device of the same village sees the reference.
    const other = await phone(server.baseUrl);
    await other.sdk.signIn('director-040', PASSWORD);
    await other.sdk.setPin('1212');
    await other.sdk.sync();
    assert.deepEqual((await other.sdk.visit(v.id))!.photos, [ref]);
  });
});
