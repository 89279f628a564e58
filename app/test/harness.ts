/**
 * The browser tests' world: a fresh `seedling serve --demo` per test file
 * (temporary data dir, a free port, optionally a fresh PostgreSQL database),
 * headless Chromium as a 390×844 phone, and typed helpers for the API as a
 * supervisor or the district sees it. Everything started here is stopped in
 * `after` hooks, also when a test fails.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const SEEDLING = process.env.SEEDLING_BIN ?? join(import.meta.dirname, '../../target/debug/seedling');
export const PASSWORD = 'seedling-demo';
export const SCREENSHOTS = join(import.meta.dirname, '../../docs/screenshots');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface PgDb {
  url: string;
  drop(): void;
}

/** A fresh PostgreSQL database on SEEDLING_TEST_POSTGRES's server, or null when that is unset. */
export function freshPostgres(): PgDb | null {
  const base = process.env.SEEDLING_TEST_POSTGRES;
  if (!base) return null;
  const name = `seedling_test_app_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const u = new URL(base);
  const psql = (sql: string) => {
    const r = spawnSync('psql', ['-h', u.hostname || '127.0.0.1', '-p', u.port || '5432', '-U', u.username || 'postgres', '-d', u.pathname.slice(1) || 'test', '-qAtc', sql], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  };
  psql(`CREATE DATABASE "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop() {
      try {
        psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } catch {
        // Left for scripts/test-setup, which drops seedling_test_% databases.
      }
    },
  };
}

export class Server {
  readonly url: string;
  private proc: ChildProcess | null = null;
  private readonly dataDir: string;
  private log = '';

  private constructor(
    readonly port: number,
    private readonly databaseUrl: string | null,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.dataDir = mkdtempSync(join(tmpdir(), 'seedling-app-test-'));
  }

  static async start(opts: { databaseUrl?: string | null } = {}): Promise<Server> {
    const s = new Server(await freePort(), opts.databaseUrl ?? null);
    await s.run();
    return s;
  }

  /** (Re)starts the process on the same port and data. */
  async run(): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, SEEDLING_DATA_DIR: this.dataDir, RUST_LOG: process.env.RUST_LOG ?? 'warn' };
    delete env.DATABASE_URL;
    delete env.SEEDLING_DATABASE_URL;
    delete env.SEEDLING_CONFIG;
    if (this.databaseUrl) env.SEEDLING_DATABASE_URL = this.databaseUrl;
    const proc = spawn(SEEDLING, ['serve', '--demo', '--bind', `127.0.0.1:${this.port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const keep = (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-20_000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`seedling exited ${proc.exitCode}:\n${this.log}`);
      try {
        const r = await fetch(`${this.url}/readyz`);
        if (r.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`seedling not ready after 120 s:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the process (the phone sees a dead server); `run()` brings it back. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    this.proc = null;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  logTail(): string {
    return this.log.slice(-4000);
  }
}

// ---------------------------------------------------------------- API

export interface ApiUser {
  token: string;
  /** The device id the account signed in with (a push must name it). */
  deviceId: string;
  user: { id: string; username: string; role: string; org_unit: { id: string; name: string } };
}

export async function apiLogin(server: Server, username: string): Promise<ApiUser> {
  const deviceId = randomUUID();
  const r = await fetch(`${server.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD, device_id: deviceId, device_name: 'test' }),
  });
  if (!r.ok) throw new Error(`login ${username}: ${r.status} ${await r.text()}`);
  const j = (await r.json()) as { access_token: string; user: ApiUser['user'] };
  return { token: j.access_token, deviceId, user: j.user };
}

export async function api<T = unknown>(server: Server, who: ApiUser, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${who.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

export interface VisitSummary {
  id: string;
  version: number;
  child_id: string;
  author_id: string;
  review_status: string;
  review_comment: string | null;
  risk_flags: number;
  open_conflicts: number;
  locked: boolean;
}

export async function visitsBy(server: Server, who: ApiUser, directorId: string): Promise<VisitSummary[]> {
  const page = await api<{ visits: VisitSummary[] }>(server, who, 'GET', `/api/v1/visits?director=${directorId}&limit=500`);
  return page.visits;
}

export interface Conflict {
  id: string;
  record_id: string;
  kind: string;
  status: string;
  field: string | null;
  local_value: unknown;
  remote_value: unknown;
  winner?: string | null;
  village_id?: string | null;
}

export async function conflicts(server: Server, who: ApiUser, kind?: string): Promise<Conflict[]> {
  const q = kind ? `&kind=${kind}` : '';
  const page = await api<{ conflicts: Conflict[] }>(server, who, 'GET', `/api/v1/conflicts?status=open&limit=500${q}`);
  return page.conflicts;
}

export interface OrgUnit {
  id: string;
  code: string;
  name: string;
  kind: 'district' | 'town' | 'village';
  parent_id: string | null;
}

export async function orgUnits(server: Server, who: ApiUser): Promise<OrgUnit[]> {
  return api<OrgUnit[]>(server, who, 'GET', '/api/v1/org-units');
}

export interface PushResult {
  status: 'applied' | 'merged' | 'rejected';
  mutation_id: string;
  record_id: string;
  version?: number;
  reason?: string;
  message?: string;
  flags?: { flag: string }[];
}

/**
 * The district transfers a child to another village the way docs/API.md
 * shows: the child's `version` from `GET /api/v1/children/{id}` as the
 * base, one ordinary push of `village_id` from the admin's own device.
 */
export async function transferChild(server: Server, admin: ApiUser, childId: string, villageId: string): Promise<PushResult> {
  const child = await api<{ version: number }>(server, admin, 'GET', `/api/v1/children/${childId}`);
  const stamp = hlc(Date.now(), admin.deviceId, 1);
  const answer = await api<{ results: PushResult[] }>(server, admin, 'POST', '/api/v1/sync/push', {
    protocol_version: 1,
    device_id: admin.deviceId,
    device_hlc: stamp,
    mutations: [
      {
        mutation_id: randomUUID(),
        entity: 'child',
        record_id: childId,
        op: 'update',
        base_version: child.version,
        hlc: stamp,
        fields: { village_id: { hlc: stamp, value: villageId } },
      },
    ],
  });
  if (answer.results.length !== 1) throw new Error(`transfer: ${JSON.stringify(answer)}`);
  return answer.results[0]!;
}

// ---------------------------------------------------------------- browser

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--lang=zh-CN', '--no-sandbox', '--disable-dev-shm-usage'],
  });
}

export async function phone(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    isMobile: true,
    hasTouch: true,
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  return { context, page };
}

export async function shot(page: Page, name: string): Promise<void> {
  if (process.env.SCREENSHOTS === '0') return;
  await page.waitForTimeout(200);
  await page.screenshot({ path: join(SCREENSHOTS, `app-${name}.png`) });
}

/** Signs in, sets the PIN, waits for the first sync and a controlling service worker. */
export async function signInWithPin(page: Page, server: Server, username: string, pin = '2468'): Promise<void> {
  await page.goto(`${server.url}/app/`);
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('#pin1', { timeout: 30_000 });
  await page.fill('#pin1', pin);
  await page.fill('#pin2', pin);
  await page.click('button[type=submit]');
  await waitSynced(page);
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30_000 });
}

/** Waits until the sync bar says synced, nothing pending, after a sync round newer than `since`. */
export async function waitSynced(page: Page, timeout = 60_000, since = 0): Promise<void> {
  await page.waitForFunction(
    (after) => {
      const bar = document.querySelector('#syncbar') as HTMLElement | null;
      const last = Number(bar?.dataset['lastSync'] || 0);
      return bar?.dataset['state'] === 'idle' && bar.dataset['pending'] === '0' && last > after;
    },
    since,
    { timeout },
  );
}

export async function syncNow(page: Page, timeout = 60_000): Promise<void> {
  const since = Number((await page.getAttribute('#syncbar', 'data-last-sync')) || 0);
  await page.click('#sync-now');
  await waitSynced(page, timeout, since);
}

export async function unlock(page: Page, pin = '2468'): Promise<void> {
  await page.waitForSelector('#pin', { timeout: 30_000 });
  await page.fill('#pin', pin);
  await page.click('button[type=submit]');
  await page.waitForSelector('#syncbar', { timeout: 30_000 });
}

/**
 * Takes the phone off the network the way the director's day does: the
 * context goes offline, a sync is asked for, and the bar says 离线.
 */
export async function goOffline(context: BrowserContext, page: Page): Promise<void> {
  await context.setOffline(true);
  await page.click('#sync-now');
  await page.waitForSelector('#syncbar[data-state="offline"]', { timeout: 30_000 });
}

/** The children the phone lists under 我的儿童, by id. */
export async function childrenOnPhone(page: Page): Promise<string[]> {
  await page.goto(page.url().replace(/#.*$/, '') + '#/children');
  await page.waitForSelector('#children');
  return page.locator('.child-card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset['child'] ?? ''));
}

/** The visits a child's page lists, by id (the page must show the child). */
export async function visitsOnChildPage(page: Page, childId: string): Promise<string[]> {
  await page.goto(page.url().replace(/#.*$/, '') + `#/child/${childId}`);
  await page.waitForSelector(`#record-visit[href="#/visit/new/${childId}"]`);
  return page.locator('.visit-card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset['visit'] ?? ''));
}

/** A small JPEG made by the browser's canvas. */
export async function jpeg(page: Page): Promise<Buffer> {
  const b64 = await page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 48;
    const g = c.getContext('2d')!;
    g.fillStyle = '#7ed321';
    g.fillRect(0, 0, 64, 48);
    g.fillStyle = '#0b5cad';
    g.fillRect(16, 12, 32, 24);
    return c.toDataURL('image/jpeg', 0.8).split(',')[1]!;
  });
  return Buffer.from(b64, 'base64');
}

export interface NewVisit {
  childIndex?: number;
  childId?: string;
  observation?: string;
  urgent?: boolean;
  photo?: boolean;
  submit?: boolean;
  followUp?: string;
  /** The 走访时间 field, a datetime-local value `YYYY-MM-DDTHH:mm` (district time); now if unset. */
  visitedAt?: string;
}

/** Records a visit through the form; answers the new visit's child id. */
export async function recordVisit(page: Page, v: NewVisit, shotName?: string): Promise<string> {
  await page.goto(page.url().replace(/#.*$/, '') + '#/children');
  await page.waitForSelector('.child-card');
  const card = v.childId ? page.locator(`.child-card[data-child="${v.childId}"]`) : page.locator('.child-card').nth(v.childIndex ?? 0);
  const childId = (await card.getAttribute('data-child'))!;
  await card.click();
  await page.click('#record-visit');
  await page.waitForSelector('#visit-form');
  if (v.visitedAt) await page.fill('#visited_at', v.visitedAt);
  if (v.observation) await page.fill('#obs-living', v.observation);
  if (v.followUp) await page.fill('#follow_up', v.followUp);
  if (v.urgent) {
    await page.check('#risk-physical_abuse');
    await page.waitForSelector('#mandatory-hint:not([hidden])');
  }
  if (v.photo) {
    await page.setInputFiles('#photo-input', { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: await jpeg(page) });
    await page.waitForSelector('#photos .photo img');
  }
  if (shotName) {
    await page.locator('#mandatory-hint').scrollIntoViewIfNeeded();
    await shot(page, shotName);
  }
  await page.click(v.submit === false ? '#save-draft' : '#submit');
  await page.waitForSelector('#record-visit', { timeout: 30_000 });
  return childId;
}

/** Ends a process group started by a test, if any is left. */
export function hlc(ms: number, node: string, counter = 0): string {
  return `${String(ms).padStart(15, '0')}-${counter.toString(16).padStart(8, '0')}-${node.replace(/-/g, '')}`;
}
