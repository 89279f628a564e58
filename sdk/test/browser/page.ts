/**
 * Runs in headless Chromium (test/browser.test.ts): the SDK on the
 * browser's own IndexedDB, WebCrypto and canvas, as in an Android WebView.
 * Reports what it saw to `/report`.
 */

import { Seedling } from '../../src/index.ts';

async function run(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const s = await Seedling.open({ baseUrl: location.origin, dbName: 'browser-test', pinIterations: 200_000 });
  out['deviceId'] = s.deviceId;
  await s.signIn('director-060', 'seedling-demo', navigator.userAgent);
  await s.setPin('2468');
  const st = await s.sync();
  out['syncState'] = st.state;
  const kids = await s.children();
  out['children'] = kids.length;
  const t0 = performance.now();
  const v = await s.saveVisit(
    { child_id: kids[0]!.id, kind: 'home_visit', visited_at: new Date().toISOString(), observations: { living: '浏览器里记录' } },
    { submit: true },
  );
  out['saveVisitMs'] = performance.now() - t0;
  // A 3000×2000 photo, downscaled by the default (createImageBitmap + OffscreenCanvas → JPEG).
  const canvas = new OffscreenCanvas(3000, 2000);
  const ctx = canvas.getContext('2d')!;
  for (let i = 0; i < 30; i++) {
    ctx.fillStyle = `hsl(${i * 12}, 70%, 50%)`;
    ctx.fillRect(i * 100, 0, 100, 2000);
  }
  const big = await canvas.convertToBlob({ type: 'image/png' });
  out['originalBytes'] = big.size;
  const ref = await s.addPhoto(v.id, big);
  const url = await s.photoUrl(ref.sha256);
  const stored = await (await fetch(url!)).blob();
  const bitmap = await createImageBitmap(stored);
  out['stored'] = { type: stored.type, bytes: stored.size, width: bitmap.width, height: bitmap.height };
  const after = await s.sync();
  out['afterSync'] = { state: after.state, pending: after.pending, pendingPhotos: after.pendingPhotos };
  // Encrypted at rest: the raw values of the real IndexedDB hold no name.
  s.lock();
  const raw: string[] = [];
  const dec = new TextDecoder();
  for (const table of s.db.tables) {
    for (const row of await table.toArray()) {
      raw.push(JSON.stringify(row, (_k, val) => (val instanceof ArrayBuffer ? dec.decode(val) : ArrayBuffer.isView(val) ? dec.decode(val as Uint8Array) : val)));
    }
  }
  const text = raw.join('\n');
  out['namesReadableWhileLocked'] = kids.filter((k) => text.includes(k.name)).length;
  out['unlockWrong'] = await s.unlock('0000');
  out['unlockRight'] = await s.unlock('2468');
  out['childrenAfterUnlock'] = (await s.children()).length;
  await s.signOut();
  out['recordsAfterSignOut'] = await s.db.records.count();
  return out;
}

run()
  .then((r) => ({ ok: true, ...r }))
  .catch((e: unknown) => ({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) }))
  .then((r) => fetch('/report', { method: 'POST', body: JSON.stringify(r) }));
