/**
 * The field app's browser benchmark: a fresh `seedling serve --demo` (the
 * debug build at target/debug/seedling unless SEEDLING_BIN says otherwise)
 * and headless Chromium as the 390×844 phone of the tests. Three measures,
 * each repeated BENCH_RUNS times (5 unless said), median and worst printed,
 * and one JSON line at the end:
 *
 * 1. **Cold start offline.** director-001 signs in once online, sets the
 *    PIN, syncs, and the service worker takes control. Then, each run: the
 *    page is closed, the context is offline, the service worker is stopped
 *    (so it starts cold as on a phone opening the installed app), a new page
 *    opens /app/, the PIN is typed. Timed in the page: `performance.now()`
 *    (ms since navigation start) when the lock screen's `#pin` and the first
 *    `.child-card` are inserted (a MutationObserver installed before the
 *    page's scripts), and when the unlock form is submitted. "to the list"
 *    is lock screen + (submit → list): the time Playwright spends typing the
 *    PIN is left out; it is printed separately as wall time from
 *    `page.goto` to the card's selector.
 * 2. **Recording a visit offline.** On that offline page: a child's page,
 *    the visit form filled (an observation, a follow-up), then from `#submit`
 *    clicked in the page to the child's page listing one more `waiting` visit card,
 *    and to the sync bar's `data-pending` counting it.
 * 3. **Bootstrap into IndexedDB.** A fresh context per run, online, signing
 *    in through the app as supervisor-01 (a town) and admin (the district):
 *    the app does not refuse other roles. From the app's main screen
 *    (`#syncbar` inserted, when the app starts its sync) to the sync bar
 *    saying synced (`idle`, nothing pending, a last sync), and how much of
 *    it the page spent waiting on the sync API's answers (the summed
 *    durations of its `/api/v1/sync/` requests, which run one after
 *    another); the rest is the page's own work (unsealing, sealing,
 *    IndexedDB, the list re-rendered as records arrive). The records in the
 *    page's IndexedDB are counted afterwards. The district is run
 *    BENCH_DISTRICT_RUNS times (3 unless said) to keep the run under 3 min.
 *
 * Run: `cd app && npm run bench` (or `node --import tsx bench/field-app.ts`).
 * Everything started here (server, browser) is stopped in `finally`, on
 * SIGINT/SIGTERM/SIGHUP, and by a watchdog after BENCH_TIMEOUT_S (170 s).
 */

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { PASSWORD, SEEDLING, Server, phone, waitSynced } from '../test/harness.ts';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const BOOT_RUNS: Record<string, number> = {
  'supervisor-01': Math.max(1, Number(process.env.BENCH_TOWN_RUNS ?? RUNS)),
  admin: Math.max(1, Number(process.env.BENCH_DISTRICT_RUNS ?? 3)),
};
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT_S ?? 170);
const PIN = '2468';

// ------------------------------------------------------------ bookkeeping

let server: Server | null = null;
let browser: Browser | null = null;
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await browser?.close().catch(() => undefined);
    browser = null;
    await server?.dispose().catch(() => undefined);
    server = null;
  })();
  return cleaning;
}

/**
 * The harness's browser, but with Playwright's own signal handlers off:
 * they close the browser and exit at once, before the server is stopped.
 */
function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--lang=zh-CN', '--no-sandbox', '--disable-dev-shm-usage'],
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the browser and the server`);
    void cleanup().finally(() => process.exit(130));
  });
}

const watchdog = setTimeout(() => {
  console.error(`bench: over ${TIMEOUT_S} s, stopping`);
  void cleanup().finally(() => process.exit(2));
}, TIMEOUT_S * 1000);
watchdog.unref();

function loadAvg(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

interface Stat {
  runs: number[];
  median: number;
  worst: number;
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { runs: xs.map(r), median: r(median), worst: r(s[n - 1]!) };
}

function line(label: string, st: Stat, unit = 'ms'): void {
  console.log(`  ${label.padEnd(54)} median ${String(st.median).padStart(8)} ${unit}   worst ${String(st.worst).padStart(8)} ${unit}   runs [${st.runs.join(', ')}]`);
}

// ------------------------------------------------------------ in-page marks

interface Marks {
  lock?: number;
  setpin?: number;
  syncbar?: number;
  list?: number;
  synced?: number;
  submits: number[];
}

/**
 * Installed before the page's own scripts: notes `performance.now()` the
 * first time each element of interest is in the DOM, and every form submit.
 * Page-side code is kept as plain JavaScript text: tsx compiles this file
 * with esbuild's `keepNames`, whose `__name(…)` helper does not exist in the
 * page, so a serialized TypeScript function that names a local function
 * throws there.
 */
const INSTALL_MARKS = `(() => {
  const marks = { submits: [] };
  window.__bench = marks;
  window.addEventListener('submit', () => marks.submits.push(performance.now()), true);
  new MutationObserver(() => {
    const now = performance.now();
    if (marks.lock === undefined && document.querySelector('#pin')) marks.lock = now;
    if (marks.setpin === undefined && document.querySelector('#pin1')) marks.setpin = now;
    if (marks.list === undefined && document.querySelector('.child-card')) marks.list = now;
    const bar = document.querySelector('#syncbar');
    if (bar) {
      if (marks.syncbar === undefined) marks.syncbar = now;
      if (marks.synced === undefined && bar.dataset.state === 'idle' && bar.dataset.pending === '0' && bar.dataset.lastSync) marks.synced = now;
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-pending', 'data-last-sync'] });
})();`;

async function marks(page: Page): Promise<Marks> {
  return page.evaluate(() => (window as unknown as { __bench: Marks }).__bench);
}

async function newPage(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  return page;
}

/** Rows of the SDK's `records` table in the page's IndexedDB, by entity. */
async function storedRecords(page: Page): Promise<Record<string, number>> {
  // Plain JavaScript for the page (see INSTALL_MARKS).
  const count = `new Promise((resolve, reject) => {
    const open = indexedDB.open('seedling');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const out = {};
      const tx = db.transaction('records', 'readonly');
      const cursor = tx.objectStore('records').index('entity').openKeyCursor();
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (!c) return;
        out[String(c.key)] = (out[String(c.key)] ?? 0) + 1;
        c.continue();
      };
      tx.oncomplete = () => { db.close(); resolve(out); };
      tx.onerror = () => reject(tx.error);
    };
  })`;
  return (await page.evaluate(count)) as Record<string, number>;
}

/** Stops every service worker (a cold worker on the page's next navigation), from a blank page; false if CDP refuses. */
async function stopServiceWorkers(page: Page): Promise<boolean> {
  try {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    await cdp.detach();
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------ 1 + 2: director, offline

interface ColdRun {
  lock: number;
  unlockToList: number;
  toList: number;
  wallToList: number;
  shellResponseEnd: number;
  swStopped: boolean;
}

async function coldStart(context: BrowserContext, url: string, previous: Page): Promise<{ page: Page; run: ColdRun }> {
  await previous.close();
  const page = await newPage(context);
  const swStopped = await stopServiceWorkers(page);
  const t0 = Date.now();
  await page.goto(`${url}/app/`);
  await page.waitForSelector('#pin', { timeout: 30_000 });
  await page.fill('#pin', PIN);
  await page.click('button[type=submit]');
  await page.waitForSelector('.child-card', { timeout: 30_000 });
  const wallToList = Date.now() - t0;
  const m = await marks(page);
  const submit = m.submits.at(-1);
  if (m.lock === undefined || m.list === undefined || submit === undefined) throw new Error(`cold start: marks missing ${JSON.stringify(m)}`);
  const nav = await page.evaluate(() => {
    const e = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
    return e ? e.responseEnd : NaN;
  });
  return {
    page,
    run: { lock: m.lock, unlockToList: m.list - submit, toList: m.lock + (m.list - submit), wallToList, shellResponseEnd: nav, swStopped },
  };
}

interface VisitRun {
  shown: number;
  pending: number;
}

async function recordVisitTimed(page: Page, childId: string, i: number): Promise<VisitRun> {
  const base = page.url().replace(/#.*$/, '');
  await page.goto(`${base}#/child/${childId}`);
  await page.waitForSelector(`#record-visit[href="#/visit/new/${childId}"]`);
  const waitingBefore = await page.locator('.visit-card[data-state="waiting"]').count();
  await page.click('#record-visit');
  await page.waitForSelector('#visit-form');
  await page.fill('#obs-living', `benchmark visit ${i + 1}: 住房整洁，饮食正常。`);
  await page.fill('#follow_up', '下周电话回访。');
  // Plain JavaScript for the page (see INSTALL_MARKS): click #submit, then
  // watch for the child's page with one more waiting visit, and the sync bar.
  const timed = `new Promise((resolve, reject) => {
    const want = ${waitingBefore + 1};
    const pending0 = Number(document.querySelector('#syncbar')?.dataset.pending ?? 0);
    let shown, pending;
    const t0 = performance.now();
    const obs = new MutationObserver(() => {
      const now = performance.now() - t0;
      if (shown === undefined && document.querySelector('#record-visit') && document.querySelectorAll('.visit-card[data-state="waiting"]').length >= want) shown = now;
      if (pending === undefined && Number(document.querySelector('#syncbar')?.dataset.pending ?? 0) > pending0) pending = now;
      if (shown !== undefined && pending !== undefined) {
        obs.disconnect();
        clearTimeout(timer);
        resolve({ shown, pending });
      }
    });
    obs.observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-pending', 'data-state'] });
    const timer = setTimeout(() => {
      obs.disconnect();
      reject(new Error('visit not shown saved after 30 s (shown ' + shown + ', pending ' + pending + ')'));
    }, 30000);
    document.querySelector('#submit').click();
  })`;
  return (await page.evaluate(timed)) as VisitRun;
}

// ------------------------------------------------------------ 3: bootstrap

interface BootRun {
  bootstrap: number;
  pinToMain: number;
  records: Record<string, number>;
  cards: number;
  /** The sync API requests of the run: how many, how many pulls, their summed durations (request sent → answer read). */
  sync: { pulls: number; requests: number; ms: number };
}

async function bootstrap(b: Browser, url: string, username: string): Promise<BootRun> {
  const { context, page } = await phone(b);
  const sync = { pulls: 0, requests: 0, ms: 0 };
  page.on('requestfinished', (req) => {
    const path = new URL(req.url()).pathname;
    if (!path.startsWith('/api/v1/sync/')) return;
    sync.requests++;
    if (path === '/api/v1/sync/pull') sync.pulls++;
    const t = req.timing();
    if (t.responseEnd > 0) sync.ms += t.responseEnd;
  });
  try {
    await context.addInitScript(INSTALL_MARKS);
    await page.goto(`${url}/app/`);
    await page.fill('#username', username);
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForSelector('#pin1', { timeout: 30_000 });
    await page.fill('#pin1', PIN);
    await page.fill('#pin2', PIN);
    await page.click('button[type=submit]');
    await waitSynced(page, 120_000);
    const m = await marks(page);
    const submit = m.submits.at(-1);
    if (m.syncbar === undefined || m.synced === undefined || submit === undefined) throw new Error(`bootstrap: marks missing ${JSON.stringify(m)}`);
    const records = await storedRecords(page);
    const cards = await page.locator('.child-card').count();
    return { bootstrap: m.synced - m.syncbar, pinToMain: m.syncbar - submit, records, cards, sync };
  } finally {
    await context.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------ main

async function main(): Promise<void> {
  const started = Date.now();
  const loadStart = loadAvg();
  console.log(`field-app bench: ${cpus().length} cores, load average ${loadStart}, server ${SEEDLING}, headless Chromium, ${RUNS} runs`);
  server = await Server.start();
  browser = await launch();
  const url = server.url;
  console.log(`  server up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${url}`);

  // ---------------------------------------------------------- 1. cold start
  const { context, page: first } = await phone(browser);
  await context.addInitScript(INSTALL_MARKS);
  let page = first;
  await page.goto(`${url}/app/`);
  await page.fill('#username', 'director-001');
  await page.fill('#password', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('#pin1', { timeout: 30_000 });
  await page.fill('#pin1', PIN);
  await page.fill('#pin2', PIN);
  await page.click('button[type=submit]');
  await waitSynced(page);
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30_000 });
  await context.setOffline(true);

  const cold: ColdRun[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await coldStart(context, url, page);
    page = r.page;
    cold.push(r.run);
  }
  const offlineBar = await page.getAttribute('#syncbar', 'data-state');
  console.log(`\n1. cold start of the installed app offline, director-001 (${await page.locator('.child-card').count()} children; sync bar ${offlineBar}; service worker stopped before each run: ${cold.every((c) => c.swStopped)})`);
  console.log('   in-page performance.now() since navigation start; PIN typing by the bot left out');
  const coldStats = {
    lock_screen_ms: stat(cold.map((c) => c.lock)),
    unlock_to_list_ms: stat(cold.map((c) => c.unlockToList)),
    to_children_list_ms: stat(cold.map((c) => c.toList)),
    shell_response_end_ms: stat(cold.map((c) => c.shellResponseEnd)),
    wall_goto_to_list_incl_typing_ms: stat(cold.map((c) => c.wallToList)),
  };
  line('navigation → shell received (from the SW)', coldStats.shell_response_end_ms);
  line('navigation → lock screen (#pin)', coldStats.lock_screen_ms);
  line('PIN submitted → children list (PBKDF2 + open)', coldStats.unlock_to_list_ms);
  line('navigation → children list (without typing)', coldStats.to_children_list_ms);
  line('wall: page.goto → .child-card (with typing)', coldStats.wall_goto_to_list_incl_typing_ms);

  // ---------------------------------------------------------- 2. a visit offline
  const ids = await page.locator('.child-card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset['child'] ?? ''));
  const visits: VisitRun[] = [];
  for (let i = 0; i < RUNS; i++) visits.push(await recordVisitTimed(page, ids[i % ids.length]!, i));
  const pendingAfter = await page.getAttribute('#syncbar', 'data-pending');
  console.log(`\n2. recording a visit offline (submit clicked → saved shown; ${pendingAfter} waiting at the end)`);
  const visitStats = { to_visit_listed_ms: stat(visits.map((v) => v.shown)), to_pending_count_ms: stat(visits.map((v) => v.pending)) };
  line("→ the child's page lists it as waiting", visitStats.to_visit_listed_ms);
  line('→ the sync bar counts it pending', visitStats.to_pending_count_ms);
  await context.close();

  // ---------------------------------------------------------- 3. bootstrap
  const boot: Record<
    string,
    { bootstrap_ms: Stat; sync_requests_ms: Stat; pin_to_main_ms: Stat; sync_requests: number; pulls: number; records: Record<string, number>; total_records: number; child_cards: number }
  > = {};
  for (const [username, runs] of Object.entries(BOOT_RUNS)) {
    const rs: BootRun[] = [];
    for (let i = 0; i < runs; i++) rs.push(await bootstrap(browser, url, username));
    const last = rs.at(-1)!;
    const total = Object.values(last.records).reduce((a, b) => a + b, 0);
    boot[username] = {
      bootstrap_ms: stat(rs.map((r) => r.bootstrap)),
      sync_requests_ms: stat(rs.map((r) => r.sync.ms)),
      pin_to_main_ms: stat(rs.map((r) => r.pinToMain)),
      sync_requests: last.sync.requests,
      pulls: last.sync.pulls,
      records: last.records,
      total_records: total,
      child_cards: last.cards,
    };
  }
  console.log('\n3. bootstrap into IndexedDB through the app (main screen shown → first sync done)');
  for (const [username, b] of Object.entries(boot)) {
    const parts = Object.entries(b.records).map(([k, v]) => `${v} ${k}`).join(', ');
    console.log(`   ${username}: ${b.total_records} records (${parts}); ${b.child_cards} child cards listed`);
    line(`${username}: bootstrap`, b.bootstrap_ms);
    line(`${username}: of which waiting on ${b.sync_requests} sync requests`, b.sync_requests_ms);
    line(`${username}: PIN set → main screen`, b.pin_to_main_ms);
  }

  const loadEnd = loadAvg();
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  console.log(`\nload average at the end ${loadEnd}; whole run ${seconds} s`);
  console.log(
    JSON.stringify({
      bench: 'field-app',
      server: SEEDLING,
      cores: cpus().length,
      load_average: { start: loadStart, end: loadEnd },
      runs: RUNS,
      cold_start_offline: coldStats,
      visit_offline: visitStats,
      bootstrap: boot,
      seconds,
    }),
  );
}

try {
  await main();
} catch (e) {
  console.error(e);
  // Assigned inside main(), which TypeScript's narrowing does not follow.
  const srv = server as Server | null;
  if (srv) console.error(`server log tail:\n${srv.logTail()}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
