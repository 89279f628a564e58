/**
 * The SDK in a real browser: bundled with esbuild, loaded in headless
 * Chromium from a page served on the same origin as a real server (a small
 * proxy in front of it), with the browser's IndexedDB, WebCrypto and canvas.
 * Skipped when Chromium is missing.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { build } from 'esbuild';

import { startServer, type TestServer } from './server.ts';

const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';

describe('in headless Chromium', { skip: !existsSync(CHROMIUM) && 'no Chromium here' }, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('sign in, sync, save, downscale and upload a photo, lock, sign out', { timeout: 120_000 }, async () => {
    const bundle = await build({
      entryPoints: [resolve(import.meta.dirname, 'browser/page.ts')],
      bundle: true,
      format: 'esm',
      target: 'chrome80',
      write: false,
    });
    const js = bundle.outputFiles[0]!.text;
    let report: (r: Record<string, unknown>) => void = () => undefined;
    const reported = new Promise<Record<string, unknown>>((ok) => (report = ok));
    const proxy: Server = createServer(async (req, res) => {
      if (req.url === '/' || req.url === '/index.html') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end('<!doctype html><meta charset="utf-8"><title>sdk</title><script type="module" src="/page.js"></script>');
        return;
      }
      if (req.url === '/page.js') {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
        res.end(js);
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      if (req.url === '/report') {
        res.end('ok');
        report(JSON.parse(body.toString('utf8')));
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
      const upstream = await fetch(`${server.baseUrl}${req.url}`, {
        method: req.method ?? 'GET',
        headers,
        body: req.method === 'GET' || req.method === 'HEAD' ? null : body,
      });
      const out: Record<string, string> = {};
      upstream.headers.forEach((v, k) => {
        if (!['content-encoding', 'content-length', 'transfer-encoding', 'connection'].includes(k)) out[k] = v;
      });
      res.writeHead(upstream.status, out);
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    const port = (proxy.address() as { port: number }).port;
    const profile = mkdtempSync(join(tmpdir(), 'seedling-sdk-chromium-'));
    const chrome = spawn(
      CHROMIUM,
      ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/`],
      { stdio: 'ignore' },
    );
    try {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        reported,
        new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error('no report from the page in 90 s')), 90_000))),
      ]).finally(() => clearTimeout(timer));
      console.log(`# browser: ${JSON.stringify(r)}`);
      assert.equal(r['ok'], true, String(r['error']));
      assert.equal(r['syncState'], 'idle');
      assert.ok((r['children'] as number) > 0);
      const stored = r['stored'] as { type: string; width: number; height: number };
      assert.equal(stored.type, 'image/jpeg');
      assert.equal(Math.max(stored.width, stored.height), 1600, 'the longest side is 1600 px');
      assert.equal(stored.width, 1600);
      assert.deepEqual(r['afterSync'], { state: 'idle', pending: 0, pendingPhotos: 0 });
      assert.equal(r['namesReadableWhileLocked'], 0);
      assert.equal(r['unlockWrong'], false);
      assert.equal(r['unlockRight'], true);
      assert.equal(r['childrenAfterUnlock'], r['children']);
      assert.equal(r['recordsAfterSignOut'], 0);
    } finally {
      const gone = new Promise((ok) => chrome.once('exit', ok));
      chrome.kill('SIGTERM');
      const t = setTimeout(() => chrome.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
      proxy.closeAllConnections();
      await new Promise((ok) => proxy.close(ok));
      // Chromium's helpers may still be writing the profile for a moment after it exits.
      try {
        rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
      } catch {
        // A leftover temp directory is no test failure.
      }
    }
  });
});
