/// <reference lib="webworker" />
/**
 * The field app's service worker (scope /app/): precaches the shell under
 * a cache named by the build's content hash, serves it offline, and never
 * touches /api/ — API answers go to the network only and are never cached,
 * so Cache Storage holds no record of a minor.
 */

import { SHELL_CACHE_PREFIX } from './shell.ts';

declare const self: ServiceWorkerGlobalScope;
declare const __SHELL_VERSION__: string;
declare const __SHELL_FILES__: string[];

const CACHE = SHELL_CACHE_PREFIX + __SHELL_VERSION__;
const FILES: string[] = __SHELL_FILES__;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // `cache: 'reload'` so a stale HTTP cache never seeds a new shell.
      await cache.addAll(FILES.map((f) => new Request(f, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(SHELL_CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  // Network only, never cached: every API answer may hold records of minors.
  if (url.pathname.startsWith('/api/')) return;
  const scope = new URL(self.registration.scope).pathname;
  if (!url.pathname.startsWith(scope)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      if (req.mode === 'navigate') {
        const shell = await cache.match('index.html');
        if (shell) return shell;
      }
      const hit = await cache.match(req, { ignoreSearch: true });
      if (hit) return hit;
      return fetch(req);
    })(),
  );
});
