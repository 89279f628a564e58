/**
 * `syncSeedling`: WatermelonDB's `synchronize()` wired to Seedling's
 * `/api/v1/watermelon/pull` and `/push` (docs/ADAPTERS.md), with the
 * conflict resolver every app must use.
 *
 * What the adapter adds around `synchronize()`:
 *
 * - **A bounded bootstrap.** WatermelonDB 0.28 applies one pull answer as
 *   one batch and has no paged pull; the server answers at most `limit`
 *   changes (2,000 by default) and says `has_more`, and `syncSeedling`
 *   runs `synchronize()` again until nothing is left.
 * - **The cursor beside the timestamp.** `timestamp` is the server's
 *   change-log position plus one; the signed cursor it stands for is kept
 *   in WatermelonDB's local storage, keyed by the timestamp.
 * - **Unpushed edits are never destroyed.** WatermelonDB pulls before it
 *   pushes and destroys a pulled deletion even when the record has local
 *   changes; the adapter holds such a deletion back until the record's
 *   edits are pushed, and applies it at the next pull.
 * - **What the push did not apply comes back.** WatermelonDB marks what
 *   it pushed as synced; the server answers its copy of every record the
 *   push did not plainly apply (a refused field, an approved visit's
 *   amendment, a record that left the scope), and the adapter applies it
 *   at once, in one more `synchronize()`.
 */

import type { Database } from '@nozbe/watermelondb';
import { Q } from '@nozbe/watermelondb';
import { synchronize } from '@nozbe/watermelondb/sync/index.js';
import type { SyncConflictResolver, SyncDatabaseChangeSet, SyncPullArgs, SyncPushArgs, SyncTableChangeSet } from '@nozbe/watermelondb/sync';

type TableChangeSet = SyncTableChangeSet;

import { FIELDS, TABLES, isSeedlingTable, type SeedlingTable } from './schema.ts';
import { observeClocks } from './model.ts';

/** An access token, or a function that answers a fresh one before each request. */
export type TokenSource = string | (() => string | Promise<string>);

export interface SeedlingSyncOptions {
  /** The server, e.g. `https://seedling.example.org`. */
  baseUrl: string;
  token: TokenSource;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
  /** Changes one pull answers at most (default 2000, the server's cap 5000). */
  limit?: number;
  /** Records one push request carries at most (default 200; the server takes 500). */
  pushChunk?: number;
  /** `synchronize()` rounds one call runs at most (default 50). */
  maxRounds?: number;
}

/** One mutation's result, as the sync push answers it. */
export interface MutationResult {
  status: 'applied' | 'merged' | 'rejected';
  record_id: string;
  mutation_id: string;
  reason?: string;
  [key: string]: unknown;
}

/**
 * A pushed row the server could not read (an `id` that is not a UUID, a
 * JSON column that does not parse). It stays unsynced on the device, as
 * the app wrote it, and is sent again at every sync until the app fixes
 * it; the rest of the push applies.
 */
export interface RefusedRow {
  table: SeedlingTable;
  id: string;
  reason: string;
  message: string;
}

export interface SyncReport {
  /** `synchronize()` rounds run. */
  rounds: number;
  /** Changes pulled and applied (records and deletions). */
  pulled: number;
  /** Every push result. */
  results: MutationResult[];
  /** The rows the server could not read, kept unsynced (last round's). */
  refused: RefusedRow[];
  /** The scope checksum of the last pull answer. */
  scopeChecksum: { count: number; sum: string } | null;
}

/** A failed request: the HTTP status and the error envelope's code. */
export class SeedlingSyncError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SeedlingSyncError';
  }
}

type Raw = Record<string, unknown>;
type Pending = Record<SeedlingTable, { updated: Raw[]; deleted: string[] }>;

const CURSORS = 'seedling_cursors';
const PENDING = 'seedling_pending';

function emptyPending(): Pending {
  return { children: { updated: [], deleted: [] }, visits: { updated: [], deleted: [] }, case_plan_items: { updated: [], deleted: [] } };
}

function same(a: unknown, b: unknown): boolean {
  return (a ?? null) === (b ?? null);
}

function clocksOf(raw: Raw): Record<string, string> {
  try {
    return JSON.parse(String(raw['field_clocks'] || '{}')) as Record<string, string>;
  } catch {
    return {};
  }
}

/**
 * The conflict resolver `synchronize()` must use: a pulled record meets
 * local edits. WatermelonDB keeps the locally changed columns over the
 * server's copy; this also keeps the edit's base (`server_version`) and the
 * changed columns' clocks, so the server sees the edit as made on what the
 * device saw and merges it field by field. A record created here that the
 * pull brings back reached the server before (its push's answer was lost):
 * it takes the server's copy, and columns written since stay changes on it.
 */
export const seedlingConflictResolver: SyncConflictResolver = (table, local, remote, resolved) => {
  const fields = isSeedlingTable(table) ? Object.keys(FIELDS[table]) : [];
  const l = local as unknown as Raw;
  const r = remote as unknown as Raw;
  const out = resolved as unknown as Raw;
  // synchronize() calls the resolver for every pulled record it holds;
  // one without local changes takes the server's copy whole.
  if (l['_status'] !== 'created' && l['_status'] !== 'updated') return resolved;
  if (l['_status'] === 'created') {
    // A column is this device's change only if written here after the
    // server's copy of it (HLC texts compare in clock order); any other
    // difference is an edit made elsewhere since, which must stand.
    const clocks = clocksOf(r);
    const mine = clocksOf(l);
    const changed = fields.filter((c) => !same(l[c], r[c]) && !!mine[c] && mine[c]! > (clocks[c] ?? ''));
    for (const c of fields) out[c] = changed.includes(c) ? l[c] : r[c];
    for (const c of changed) if (mine[c]) clocks[c] = mine[c];
    out['server_version'] = r['server_version'];
    out['field_clocks'] = JSON.stringify(clocks);
    out['_status'] = changed.length ? 'updated' : 'synced';
    out['_changed'] = changed.join(',');
    return resolved;
  }
  const changed = String(l['_changed'] ?? '').split(',').filter(Boolean);
  const clocks = clocksOf(r);
  const mine = clocksOf(l);
  for (const c of changed) if (mine[c]) clocks[c] = mine[c];
  out['server_version'] = l['server_version'];
  out['field_clocks'] = JSON.stringify(clocks);
  return resolved;
};

async function tokenOf(source: TokenSource): Promise<string> {
  return typeof source === 'function' ? await source() : source;
}

async function call<T>(options: SeedlingSyncOptions, method: string, path: string, body?: unknown): Promise<T> {
  const doFetch = options.fetch ?? fetch;
  const res = await doFetch(`${options.baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await tokenOf(options.token)}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) {
    let code = 'http_error';
    let message = text;
    try {
      const envelope = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = envelope.error?.code ?? code;
      message = envelope.error?.message ?? message;
    } catch {
      // not the envelope: keep the text
    }
    throw new SeedlingSyncError(res.status, code, `${method} ${path}: ${res.status} ${code}: ${message}`);
  }
  return JSON.parse(text) as T;
}

/** `_status` of each local record of `table` among `ids` (absent: not held). */
async function localStatus(database: Database, table: SeedlingTable, ids: string[]): Promise<Map<string, Raw>> {
  const out = new Map<string, Raw>();
  if (!ids.length) return out;
  const records = await database.get(table).query(Q.where('id', Q.oneOf(ids))).fetch();
  for (const record of records) out.set(record.id, record._raw as unknown as Raw);
  return out;
}

/** The `server_version` of records deleted here, where the store can tell it (LokiJS). */
async function deletedVersions(database: Database, table: SeedlingTable, ids: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!ids.length) return out;
  try {
    const wanted = new Set(ids);
    const raws = (await database
      .get(table)
      .query(
        Q.unsafeLokiTransform((_raws: unknown[], loki: any) =>
          loki.getCollection(table).find({ _status: 'deleted' }).filter((raw: Raw) => wanted.has(String(raw['id']))),
        ),
      )
      .unsafeFetchRaw()) as Raw[];
    for (const raw of raws) {
      const version = Number(raw['server_version'] ?? 0);
      if (version > 0) out.set(String(raw['id']), version);
    }
  } catch {
    // Not LokiJS: the server deletes on its current version.
  }
  return out;
}

interface PullAnswer {
  changes: Record<SeedlingTable, { created: Raw[]; updated: Raw[]; deleted: string[] }>;
  timestamp: number;
  cursor: string;
  has_more: boolean;
  scope_checksum: { count: number; sum: string };
}

/**
 * Syncs `database` with the server: `synchronize()` rounds until the pull
 * has nothing more and the push left nothing to apply. Throws a
 * {@link SeedlingSyncError} on a failed request (nothing is lost: what was
 * not pushed stays local and goes at the next call). `401 token_expired`:
 * refresh the token; `403 device_revoked`: wipe the database
 * (`database.write(() => database.unsafeResetDatabase())`); `409 server_restored`: see
 * docs/ADAPTERS.md.
 */
export async function syncSeedling(database: Database, options: SeedlingSyncOptions): Promise<SyncReport> {
  const limit = options.limit ?? 2000;
  const chunk = Math.min(500, Math.max(1, options.pushChunk ?? 200));
  const report: SyncReport = { rounds: 0, pulled: 0, results: [], refused: [], scopeChecksum: null };
  for (let round = 0; round < (options.maxRounds ?? 50); round++) {
    let again = false;
    let more = false;
    // What to apply after this round: deletions (never given to
    // synchronize(), which would destroy records with unpushed edits) and
    // the server's copies a push answered (applied at the next pull).
    let pending = emptyPending();
    report.rounds += 1;
    try {
      await synchronize({
        database,
        sendCreatedAsUpdated: true,
        conflictResolver: seedlingConflictResolver,
        pullChanges: async ({ lastPulledAt }: SyncPullArgs) => {
          const cursors = ((await database.localStorage.get<Record<string, string>>(CURSORS)) ?? {}) as Record<string, string>;
          const cursor = lastPulledAt ? cursors[String(lastPulledAt)] : undefined;
          let path = `/api/v1/watermelon/pull?limit=${limit}`;
          if (lastPulledAt && cursor) path += `&last_pulled_at=${lastPulledAt}&cursor=${encodeURIComponent(cursor)}`;
          const answer = await call<PullAnswer>(options, 'GET', path);
          const stashed = ((await database.localStorage.get<Pending>(PENDING)) ?? emptyPending()) as Pending;
          pending = emptyPending();
          const changes: Record<string, TableChangeSet> = {};
          for (const table of TABLES) {
            const pulled = answer.changes[table] ?? { created: [], updated: [], deleted: [] };
            const seen = new Set([...pulled.updated.map((raw) => String(raw['id'])), ...pulled.deleted]);
            const stash = stashed[table] ?? { updated: [], deleted: [] };
            pending[table].deleted = [...pulled.deleted, ...stash.deleted.filter((id) => !seen.has(id))];
            const candidates = stash.updated.filter((raw) => !seen.has(String(raw['id'])));
            const local = await localStatus(database, table, candidates.map((raw) => String(raw['id'])));
            // A stashed copy older than what is held now is not applied.
            const updated = [
              ...pulled.updated,
              ...candidates.filter((raw) => {
                const held = local.get(String(raw['id']));
                return !held || Number(held['server_version'] ?? 0) <= Number(raw['server_version'] ?? 0);
              }),
            ];
            for (const raw of updated) observeClocks(database, raw['field_clocks']);
            changes[table] = { created: [], updated: updated as any[], deleted: [] };
            report.pulled += updated.length;
          }
          cursors[String(answer.timestamp)] = answer.cursor;
          // Keep the latest few, and the one in use: an answer that failed
          // to apply leaves the previous timestamp in place.
          const kept = new Set(Object.keys(cursors).map(Number).sort((a, b) => b - a).slice(0, 4));
          if (lastPulledAt && cursor) kept.add(lastPulledAt);
          await database.localStorage.set(CURSORS, Object.fromEntries([...kept].map((t) => [String(t), cursors[String(t)]!])));
          report.scopeChecksum = answer.scope_checksum;
          more = answer.has_more;
          return { changes: changes as SyncDatabaseChangeSet, timestamp: answer.timestamp };
        },
        onDidPullChanges: async () => {
          // With the pull applied: its deletions must outlive a crash.
          await database.localStorage.set(PENDING, pending);
        },
        pushChanges: async ({ changes }: SyncPushArgs) => {
          // Nothing is pushed until the log is read to its end: a record
          // created here whose answer was lost must come back first.
          if (more) throw new DeferPush();
          const rows: { table: SeedlingTable; kind: 'created' | 'updated' | 'deleted'; item: unknown; urgent: boolean }[] = [];
          // Children before the visits and plan items that name them.
          for (const table of TABLES) {
            const set = (changes as Record<string, TableChangeSet>)[table];
            if (!set) continue;
            const versions = await deletedVersions(database, table, set.deleted);
            for (const raw of set.created) rows.push({ table, kind: 'created', item: raw, urgent: isUrgent(raw) });
            for (const raw of set.updated) rows.push({ table, kind: 'updated', item: raw, urgent: isUrgent(raw) });
            for (const id of set.deleted) rows.push({ table, kind: 'deleted', item: { id, server_version: versions.get(id) ?? null }, urgent: false });
          }
          // Urgent risk flags first, across requests too (the server puts
          // them first within one).
          rows.sort((a, b) => Number(b.urgent) - Number(a.urgent));
          const refused: RefusedRow[] = [];
          for (let i = 0; i < rows.length; i += chunk) {
            const body: Record<string, { created: unknown[]; updated: unknown[]; deleted: unknown[] }> = {};
            for (const row of rows.slice(i, i + chunk)) {
              (body[row.table] ??= { created: [], updated: [], deleted: [] })[row.kind].push(row.item);
            }
            const answer = await call<{ results: MutationResult[]; refused: RefusedRow[]; changes: PullAnswer['changes'] }>(
              options,
              'POST',
              '/api/v1/watermelon/push',
              { changes: body },
            );
            report.results.push(...answer.results);
            refused.push(...answer.refused);
            for (const table of TABLES) {
              const returned = answer.changes[table];
              if (!returned) continue;
              pending[table].updated.push(...returned.updated);
              pending[table].deleted.push(...returned.deleted);
            }
            await database.localStorage.set(PENDING, pending);
          }
          report.refused = refused;
          // The next round's pull brings what this push wrote, with its new
          // `server_version`: the base of the next edit. Refused rows alone
          // call for no round: they go again at the next sync.
          if (rows.length > refused.length) again = true;
          // Refused rows stay unsynced, as the app wrote them.
          const experimentalRejectedIds: Record<string, string[]> = {};
          for (const row of refused) (experimentalRejectedIds[row.table] ??= []).push(row.id);
          return { experimentalRejectedIds };
        },
      });
    } catch (error) {
      if (!(error instanceof DeferPush)) throw error;
    }
    pending = await applyDeletions(database, pending, report);
    for (const table of TABLES) if (pending[table].deleted.length || pending[table].updated.length) again = true;
    if (!again && !more) return report;
  }
  return report;
}

/** Thrown by pushChanges to end a round after its pull (more to pull first). */
class DeferPush extends Error {}

function isUrgent(raw: Raw): boolean {
  const flags = raw['risk_flags'];
  if (typeof flags !== 'string' || !flags) return false;
  try {
    return (JSON.parse(flags) as { urgent?: unknown }[]).some((flag) => flag?.urgent === true);
  } catch {
    return false;
  }
}

/**
 * Destroys the records pending deletion that hold no unpushed edits, in
 * one writer (so no edit can slip in between the check and the destroy);
 * a record with edits keeps its deletion pending until they are pushed.
 * Answers what is still pending, which is also stored.
 */
async function applyDeletions(database: Database, pending: Pending, report: SyncReport): Promise<Pending> {
  const left = emptyPending();
  await database.write(async () => {
    const doomed = [];
    for (const table of TABLES) {
      left[table].updated = pending[table].updated;
      const ids = [...new Set(pending[table].deleted)];
      if (!ids.length) continue;
      for (const record of await database.get(table).query(Q.where('id', Q.oneOf(ids))).fetch()) {
        if (record._raw._status === 'synced') doomed.push(record.prepareDestroyPermanently());
        else left[table].deleted.push(record.id);
      }
    }
    if (doomed.length) await database.batch(doomed);
    report.pulled += doomed.length;
    await database.localStorage.set(PENDING, left);
  }, 'seedling-apply-deletions');
  return left;
}
