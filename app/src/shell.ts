/**
 * What the page and the service worker agree on: the shell cache's name
 * prefix. Only caches with this prefix survive a sign-out; they hold the
 * app's own files and never an API answer.
 */
export const SHELL_CACHE_PREFIX = 'seedling-app-shell-';

/** Deletes every Cache Storage entry but the shell's (records of minors never live there, but nothing else may either). */
export async function clearDataCaches(): Promise<void> {
  const c = (globalThis as { caches?: CacheStorage }).caches;
  if (!c) return;
  try {
    for (const name of await c.keys()) if (!name.startsWith(SHELL_CACHE_PREFIX)) await c.delete(name);
  } catch {
    // No Cache Storage here (an old WebView): nothing to clear.
  }
}
