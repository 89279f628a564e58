/**
 * Starts a real `seedling serve --demo` on a free loopback port with a
 * fresh data directory (SQLite), or on a fresh PostgreSQL database when
 * `SEEDLING_TEST_POSTGRES` is set and `postgres` is asked for; waits for
 * `/readyz`; and always stops it (and drops the database) afterwards. In
 * between, `cli` runs another `seedling` command on the same configuration
 * (a backup) and `restartAround` stops the server, runs an operator's work
 * while it is down (a restore) and starts it again on the same port.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BIN = process.env['SEEDLING_BIN'] ?? resolve(import.meta.dirname, '../../target/debug/seedling');
export const PASSWORD = 'seedling-demo';

export interface TestServer {
  baseUrl: string;
  backend: 'sqlite' | 'postgres';
  /** The server's data directory (its SQLite file, keys, attachments). */
  dataDir: string;
  stop(): Promise<void>;
  log(): string;
  /** Runs `seedling ARGS…` with the server's configuration; throws unless it succeeds. */
  cli(...args: string[]): string;
  /** Stops the server (its data kept), runs `offline`, then starts it again on the same address. */
  restartAround(offline: () => Promise<void> | void): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

function psql(url: URL, sql: string): void {
  const r = spawnSync(
    'psql',
    ['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres'), '-d', url.pathname.slice(1) || 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8', env: { ...process.env, ...(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {}) }, timeout: 30_000 },
  );
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr || r.error}`);
}

export async function startServer(backend: 'sqlite' | 'postgres' = 'sqlite'): Promise<TestServer> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'seedling-sdk-'));
  const env: NodeJS.ProcessEnv = { ...process.env, SEEDLING_DATA_DIR: dataDir, RUST_LOG: process.env['RUST_LOG'] ?? 'warn' };
  delete env['DATABASE_URL'];
  delete env['SEEDLING_DATABASE_URL'];
  delete env['SEEDLING_CONFIG'];
  let dropDb: (() => void) | null = null;
  if (backend === 'postgres') {
    const admin = new URL(process.env['SEEDLING_TEST_POSTGRES'] ?? 'postgres://postgres@127.0.0.1:5432/test');
    const name = `seedling_test_sdk_${globalThis.crypto.randomUUID().replace(/-/g, '').slice(0, 12)}`;
    psql(admin, `CREATE DATABASE ${name}`);
    dropDb = () => psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    const dbUrl = new URL(admin.toString());
    dbUrl.pathname = `/${name}`;
    env['SEEDLING_DATABASE_URL'] = dbUrl.toString();
  }
  let output = '';
  const baseUrl = `http://127.0.0.1:${port}`;
  let child: ChildProcess;
  let exited = false;
  const spawnServer = () => {
    exited = false;
    child = spawn(BIN, ['serve', '--demo', '--bind', `127.0.0.1:${port}`], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', () => (exited = true));
  };
  const halt = async () => {
    if (!exited) {
      const gone = new Promise<void>((ok) => child.once('exit', () => ok()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
  };
  const stop = async () => {
    await halt();
    try {
      dropDb?.();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  };
  const ready = async () => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (exited) throw new Error(`seedling exited before it was ready:\n${output}`);
      try {
        const res = await fetch(`${baseUrl}/readyz`);
        if (res.ok) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`seedling not ready after 120 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const cli = (...args: string[]): string => {
    const r = spawnSync(BIN, args, { env, encoding: 'utf8', timeout: 120_000 });
    output += r.stdout + r.stderr;
    if (r.status !== 0) throw new Error(`seedling ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error}`);
    return r.stdout + r.stderr;
  };
  const restartAround = async (offline: () => Promise<void> | void) => {
    await halt();
    await offline();
    spawnServer();
    await ready();
  };
  spawnServer();
  try {
    await ready();
  } catch (e) {
    await stop();
    throw e;
  }
  return { baseUrl, backend, dataDir, stop, log: () => output, cli, restartAround };
}

/** A signed-in raw API client for the other roles of a scenario (supervisor, admin). */
export class RawClient {
  token = '';
  readonly deviceId = globalThis.crypto.randomUUID();
  user: { id: string; org_unit: { id: string } } | null = null;

  constructor(readonly baseUrl: string) {}

  static async signIn(baseUrl: string, username: string): Promise<RawClient> {
    const c = new RawClient(baseUrl);
    const res = await fetch(`${baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: PASSWORD, device_id: c.deviceId, device_name: 'test' }),
    });
    if (!res.ok) throw new Error(`sign-in ${username}: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { access_token: string; user: RawClient['user'] };
    c.token = body.access_token;
    c.user = body.user;
    return c;
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async ok<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call<T>(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

/** The supervisor (of 12) whose town holds `visitId`. */
export async function supervisorFor(baseUrl: string, visitId: string): Promise<RawClient> {
  for (let i = 1; i <= 12; i++) {
    const c = await RawClient.signIn(baseUrl, `supervisor-${String(i).padStart(2, '0')}`);
    const r = await c.call('GET', `/api/v1/visits/${visitId}`);
    if (r.status === 200) return c;
  }
  throw new Error(`no supervisor sees visit ${visitId}`);
}

/** SQLite always; PostgreSQL too when `SEEDLING_TEST_POSTGRES` is set. */
export function backends(): ('sqlite' | 'postgres')[] {
  return process.env['SEEDLING_TEST_POSTGRES'] ? ['sqlite', 'postgres'] : ['sqlite'];
}

/** A `fetch` that can be cut off (no signal) and told to drop answers after the server handled them (the adapters' tests). */
export class Network {
  offline = false;
  requests: string[] = [];
  /** Called with each request; a `true` answer drops the response after the server handled it. */
  dropAfterCommit: ((url: string, init?: RequestInit) => boolean) | null = null;
  dropped = 0;

  readonly fetch: typeof fetch = async (input, init) => {
    const url = String(input);
    if (this.offline) throw new TypeError('no signal');
    this.requests.push(`${init?.method ?? 'GET'} ${url}`);
    const res = await fetch(input, init);
    if (this.dropAfterCommit?.(url, init)) {
      await res.arrayBuffer();
      this.dropped += 1;
      throw new TypeError('the connection dropped before the answer arrived');
    }
    return res;
  };
}

interface Wire {
  entity: string;
  id: string;
  version: number;
  tombstone?: unknown;
}

/** What the native pull gives a fresh device of `username`: live records (`entity:id` → version) and the scope checksum (the adapters' tests compare with it). */
export async function nativeBootstrap(baseUrl: string, username: string) {
  const c = await RawClient.signIn(baseUrl, username);
  const held = new Map<string, number>();
  let cursor: string | null = null;
  let checksum: unknown = null;
  for (;;) {
    const q: string = `/api/v1/sync/pull?protocol_version=1&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await c.ok<{ changes: Wire[]; purges?: { entity: string; record_id: string }[]; next_cursor: string; has_more: boolean; scope_checksum: unknown }>('GET', q);
    for (const r of page.changes) {
      if (r.tombstone) held.delete(`${r.entity}:${r.id}`);
      else held.set(`${r.entity}:${r.id}`, r.version);
    }
    for (const p of page.purges ?? []) held.delete(`${p.entity}:${p.record_id}`);
    cursor = page.next_cursor;
    checksum = page.scope_checksum;
    if (!page.has_more) break;
  }
  return { held, checksum };
}

/** A clock text for `deviceId` at the wall time now. */
export function nowHlc(deviceId: string): string {
  return `${String(Date.now()).padStart(15, '0')}-00000000-${deviceId.replace(/-/g, '')}`;
}

export interface ConflictRow {
  record_id: string;
  kind: string;
  field?: string | null;
}

/** The conflict-queue rows about `recordId` that `sup` sees. */
export async function queue(sup: RawClient, recordId: string): Promise<ConflictRow[]> {
  const page = await sup.ok<{ conflicts: (ConflictRow & Record<string, unknown>)[] }>('GET', '/api/v1/conflicts?status=all&limit=200');
  return page.conflicts.filter((c) => c.record_id === recordId);
}
