/**
 * One sync round (SYNC-PROTOCOL.md §3–§5, CLIENT.md "The sync loop"):
 *
 * 1. **Push** in rounds: the oldest pending mutation of each record,
 *    records with an urgent risk flag first (`urgent_first`), at most 500 a
 *    request. A mutation is marked sent before the request leaves and is
 *    resent unchanged (same `mutation_id`) until its answer is stored; the
 *    answered version becomes the base of the record's later mutations.
 * 2. **Photos**: resumable chunked upload of every photo not yet complete.
 * 3. **Pull** pages until `has_more` is false: each record becomes the new
 *    server copy (pending edits stay on top: a pull never overwrites them),
 *    purges remove records (their pending mutations stay queued), the cursor
 *    is saved with its page, every clock is observed with the skew bound.
 *    After the last page the scope checksum is compared; on a mismatch the
 *    scope is pulled again from the start, only records whose version
 *    differs are rewritten, and server copies the server no longer sends
 *    are dropped.
 *
 * 503 `server_busy` / Retry-After is waited out (1–2× the time asked, not
 * counted as an attempt); other 5xx are retried with exponential back-off;
 * no network ends the round as `offline`.
 */

import { ApiError } from './api.ts';
import { ScopeChecksum } from './checksum.ts';
import { recordKey } from './db.ts';
import { formatHlc, tryParseHlc } from './hlc.ts';
import { uploadPhotos } from './photos.ts';
import { repairBetween, urgentFirst } from './records.ts';
import type { Seedling } from './seedling.ts';
import type { OutboxEntry, UnlockedStore } from './store.ts';
import { SeedlingError, type SyncStatus, type VisitConflict } from './types.ts';
import type { LoadedRecord } from './views.ts';
import {
  PROTOCOL_VERSION,
  type FetchRequest,
  type FetchResponse,
  type ManifestEntryWire,
  type ManifestResponse,
  type PullResponse,
  type PushRequest,
  type PushResponse,
  type RecordRefWire,
  type RecordWire,
  type ScopeChecksumWire,
  type VisitRulesWire,
} from './wire.ts';

/** Most mutations in one push (`max_push_mutations`). */
export const MAX_PUSH = 500;
/** Most records one repair fetch asks for. */
export const MAX_FETCH = 500;
/** Busy answers waited out per sync before giving up (as the Rust client). */
export const MAX_BUSY_WAITS = 120;
/** Retries of other retryable failures per step. */
export const MAX_RETRIES = 3;

/** What the last repair did, for diagnostics and tests. */
export interface RepairReport {
  at: number;
  /** `targeted`: manifest + fetch of the differing records; `full`: the whole scope pulled again (older servers). */
  mode: 'targeted' | 'full';
  /** Records written (fetched, or rewritten by the full pull). */
  rewritten: number;
  /** Server copies dropped. */
  dropped: number;
  matched: boolean;
}

export async function runSync(s: Seedling): Promise<SyncStatus> {
  if (s.status().state === 'revoked' || !s.api.session) return s.status();
  if (!s.store) {
    s.setState('locked', null);
    return s.status();
  }
  s.setState('syncing', null);
  try {
    // A push the server refuses as a whole (a client bug: 400/422) keeps its
    // outbox and is reported, but does not keep the phone from pulling.
    let refused: ApiError | null = null;
    try {
      await withRetry(s, () => push(s));
    } catch (e) {
      if (!(e instanceof ApiError) || e.kind !== 'fatal') throw e;
      refused = e;
    }
    if (!refused) await withRetry(s, () => uploadPhotos(s));
    let ok = await withRetry(s, () => pull(s, false));
    if (!ok) ok = await withRetry(s, () => repair(s));
    await withRetry(s, () => fetchVisitRules(s));
    const now = s.opts.now();
    await s.db.setMeta('last_sync_at', now);
    if (refused) s.setState('error', { code: refused.code, message: refused.message }, now);
    else if (ok) s.setState('idle', null, now);
    else s.setState('error', { code: 'diverged', message: '本机数据与服务器不一致，修复未成功，将再次尝试' }, now);
  } catch (e) {
    await failed(s, e);
  }
  await s.refreshCounts().catch(() => undefined);
  return s.status();
}

async function failed(s: Seedling, e: unknown): Promise<void> {
  if (e instanceof ApiError) {
    switch (e.kind) {
      case 'network':
        s.setState('offline', { code: 'offline', message: '没有网络：记录已保存在手机上' });
        return;
      case 'update':
        s.setState('update_required', { code: e.code, message: '请更新应用' });
        return;
      case 'revoked':
        await s.revoked();
        s.setState('revoked', { code: e.code, message: '此手机已被停用，本机数据已清除' });
        return;
      case 'sign_in':
        await s.sessionEnded();
        s.setState('signed_out', { code: e.code, message: '请重新登录（未上传的记录会保留）' });
        return;
      default:
        s.setState('error', { code: e.code, message: e.message });
        return;
    }
  }
  if (e instanceof SeedlingError && e.code === 'locked') {
    s.setState('locked', null);
    return;
  }
  s.setState('error', { code: 'internal', message: e instanceof Error ? e.message : String(e) });
}

async function withRetry<T>(s: Seedling, step: () => Promise<T>): Promise<T> {
  let retries = 0;
  let busy = 0;
  for (;;) {
    try {
      return await step();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.kind === 'busy' && busy < MAX_BUSY_WAITS) {
        busy++;
        const asked = e.retryAfterMs ?? 1000;
        await s.opts.sleep(asked * (1 + Math.random()));
        continue;
      }
      if ((e.kind === 'retryable' || e.kind === 'busy') && retries < MAX_RETRIES) {
        retries++;
        await s.opts.sleep(Math.min(300_000, 1000 * 2 ** retries * (0.5 + Math.random() / 2)));
        continue;
      }
      throw e;
    }
  }
}

/** The district's visiting intervals, for the due rule on the phone (kept in meta; defaults until fetched). */
async function fetchVisitRules(s: Seedling): Promise<void> {
  try {
    const rules = await s.api.json<VisitRulesWire>('GET', '/api/v1/visit-rules');
    const intervals = { byCategory: rules.intervals.by_category, fallbackDays: rules.intervals.fallback_days };
    s.intervals = intervals;
    await s.db.setMeta('visit_intervals', intervals);
  } catch (e) {
    // An older server without the route: the documented defaults stay.
    if (!(e instanceof ApiError) || e.kind !== 'fatal') throw e;
  }
}

// ---------------------------------------------------------------- push

/** The mutations one push round sends: the oldest of each record, urgent records first. */
export function planRound(outbox: OutboxEntry[], limit = MAX_PUSH): OutboxEntry[] {
  const first = new Map<string, OutboxEntry>();
  for (const e of outbox) if (!first.has(e.recordKey)) first.set(e.recordKey, e);
  const bySeq = new Map([...first.values()].map((e) => [e.mutation.mutation_id, e]));
  return urgentFirst([...first.values()].map((e) => e.mutation))
    .slice(0, Math.max(1, limit))
    .map((m) => bySeq.get(m.mutation_id)!);
}

async function push(s: Seedling): Promise<void> {
  let limit = MAX_PUSH;
  for (let round = 0; round < 1000; round++) {
    const store = s.requireStore();
    // Marked sent before the request leaves: from now on it is frozen and resent unchanged.
    const batch = await store.exclusive(async () => {
      const plan = planRound(store.outbox, limit);
      if (plan.length) await store.write({ outbox: plan.map((e) => ({ ...e, attempts: e.attempts + 1 })) });
      return plan;
    });
    if (batch.length === 0) return;
    const body: PushRequest = {
      protocol_version: PROTOCOL_VERSION,
      device_id: s.deviceId,
      device_hlc: formatHlc(s.clock.tick(s.opts.now())),
      mutations: batch.map((e) => e.mutation),
    };
    let answer: PushResponse;
    try {
      answer = await s.api.json<PushResponse>('POST', '/api/v1/sync/push', body);
    } catch (e) {
      // 413: the body is over the server's limit (photos aside, long notes): send fewer at a time.
      if (e instanceof ApiError && e.status === 413 && limit > 1) {
        limit = Math.max(1, Math.floor(batch.length / 2));
        continue;
      }
      throw e;
    }
    observe(s, answer.server_hlc);
    const progressed = await applyResults(s, answer);
    if (!progressed) return;
  }
}

async function applyResults(s: Seedling, answer: PushResponse): Promise<boolean> {
  const store = s.requireStore();
  return store.exclusive(() => applyResultsAlone(s, answer));
}

async function applyResultsAlone(s: Seedling, answer: PushResponse): Promise<boolean> {
  const store = s.requireStore();
  const byId = new Map(store.outbox.map((e) => [e.mutation.mutation_id, e]));
  const touched = new Map<string, LoadedRecord>();
  const deleteOutbox: number[] = [];
  const rebased: OutboxEntry[] = [];
  const alerts: string[] = [];
  const now = s.opts.now();
  for (const result of answer.results) {
    const entry = byId.get(result.mutation_id);
    if (!entry) continue;
    deleteOutbox.push(entry.seq);
    const record = touched.get(entry.recordKey) ?? store.records.get(entry.recordKey);
    if (!record) continue;
    const body = { ...record.body, acked: [...record.body.acked] };
    if (result.status === 'rejected') {
      const issue: VisitConflict = {
        status: 'rejected',
        reason: result.reason,
        message: result.message,
        amendment: result.amendment,
        conflicts: [],
        refusals: result.refusals ?? [],
        flags: [],
        at: now,
      };
      body.issue = issue;
      if (entry.mutation.op === 'create' && !body.shadow) body.rejected = entry.mutation;
    } else {
      body.acked.push({ version: result.version, mutation: entry.mutation });
      body.rejected = null;
      const flags = result.flags ?? [];
      body.flags = flags.map((f) => f.flag);
      if (flags.some((f) => f.flag === 'urgent')) alerts.push(record.id);
      body.issue =
        result.status === 'merged'
          ? {
              status: 'merged',
              conflicts: result.conflicts ?? [],
              refusals: result.refusals ?? [],
              flags,
              at: now,
            }
          : null;
      for (const later of store.outbox) {
        if (later.recordKey === entry.recordKey && later.seq !== entry.seq && later.attempts === 0) {
          rebased.push({ ...later, mutation: { ...later.mutation, base_version: result.version } });
        }
      }
    }
    touched.set(record.key, { ...record, body });
  }
  if (deleteOutbox.length === 0) return false;
  await store.write({
    records: [...touched.values()],
    deleteOutbox,
    outbox: rebased,
    meta: { hlc: formatHlc(s.clock.last()) },
  });
  s.emit({ kind: 'records', ids: [...touched.values()].map((r) => r.id) });
  if (alerts.length) s.emit({ kind: 'alert', ids: alerts });
  return true;
}

// ---------------------------------------------------------------- pull

function observe(s: Seedling, text: string | undefined): void {
  const h = text ? tryParseHlc(text) : null;
  if (h) s.clock.observe(h, s.opts.now());
}

function observeRecord(s: Seedling, r: RecordWire): void {
  for (const f of Object.values(r.fields)) {
    if ('register' in f) observe(s, f.register.hlc);
    else for (const it of Object.values(f.items)) observe(s, it.hlc);
  }
  if (r.tombstone) observe(s, r.tombstone.hlc);
}

/** The checksum of the server copies the phone holds (live records only). */
export function localChecksum(records: Iterable<LoadedRecord>): ScopeChecksum {
  const c = new ScopeChecksum();
  for (const r of records) {
    const sh = r.body.shadow;
    if (sh && !sh.tombstone) c.add(sh.entity, sh.id, sh.version);
  }
  return c;
}

/**
 * Pulls every page after the saved cursor (or, for a repair, the whole
 * scope from the start). True when the local checksum matches the server's
 * after the last page.
 */
async function pull(s: Seedling, repair: boolean): Promise<boolean> {
  let cursor = repair ? null : await s.cursor();
  const seen = repair ? new Set<string>() : null;
  let rewritten = 0;
  for (let page = 0; page < 100_000; page++) {
    const q = new URLSearchParams({ protocol_version: String(PROTOCOL_VERSION), limit: String(s.opts.pageLimit) });
    if (cursor) q.set('cursor', cursor);
    let answer: PullResponse;
    try {
      answer = await s.api.json<PullResponse>('GET', `/api/v1/sync/pull?${q.toString()}`);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'invalid_cursor' && cursor) {
        return pull(s, true);
      }
      throw e;
    }
    observe(s, answer.server_hlc);
    const store = s.requireStore();
    const ids = await store.exclusive(() => storePage(s, answer, seen, () => rewritten++));
    if (ids.length) {
      s.emit({ kind: 'records', ids });
      s.emit({ kind: 'tasks' });
    }
    cursor = answer.next_cursor;
    if (!answer.has_more) {
      const dropped = seen ? await store.exclusive(() => dropUnseen(store, seen)) : 0;
      const matched = localChecksum(store.records.values()).equals(answer.scope_checksum);
      if (seen) s.lastRepair = { at: s.opts.now(), mode: 'full', rewritten, dropped, matched };
      return matched;
    }
  }
  throw new ApiError('fatal', 0, 'too_many_pages', 'the pull did not end');
}

/** Stores one pulled page and its cursor in one transaction; the ids it touched. */
async function storePage(s: Seedling, answer: PullResponse, seen: Set<string> | null, rewrote: () => void): Promise<string[]> {
  return storeChanges(s, answer.changes, answer.purges?.map((p) => ({ entity: p.entity, id: p.record_id })) ?? [], {
    seen,
    rewrote,
    meta: { cursor: answer.next_cursor },
  });
}

/**
 * Stores server copies (`changes`) and removes those that left the scope
 * (`removals`; a record with pending edits keeps them, without a copy), in
 * one transaction. With `seen` (a full repair), an unchanged copy is not
 * rewritten. The ids it touched.
 */
async function storeChanges(
  s: Seedling,
  changes: RecordWire[],
  removals: RecordRefWire[],
  opts: { seen?: Set<string> | null; rewrote?: () => void; meta?: Record<string, unknown> } = {},
): Promise<string[]> {
  const store = s.requireStore();
  const seen = opts.seen ?? null;
  const records: LoadedRecord[] = [];
  const deleteRecords: string[] = [];
  const ids: string[] = [];
  for (const change of changes) {
    observeRecord(s, change);
    const key = recordKey(change.entity, change.id);
    seen?.add(key);
    // A director never needs the identity-card number (masked as it is): it never reaches the phone's store.
    if (change.entity === 'child' && 'id_number' in change.fields) {
      const { id_number: _masked, ...fields } = change.fields;
      change.fields = fields;
    }
    const r = store.records.get(key) ?? {
      key,
      entity: change.entity,
      id: change.id,
      body: { shadow: null, acked: [], issue: null },
      pending: [],
    };
    const sh = r.body.shadow;
    if (seen && sh && sh.version === change.version && !!sh.tombstone === !!change.tombstone) continue;
    opts.rewrote?.();
    records.push({
      ...r,
      body: { ...r.body, shadow: change, acked: r.body.acked.filter((a) => a.version > change.version), rejected: null },
    });
    ids.push(change.id);
  }
  for (const ref of removals) {
    const key = recordKey(ref.entity, ref.id);
    const r = store.records.get(key);
    if (!r) continue;
    ids.push(ref.id);
    if (r.pending.length) records.push({ ...r, body: { shadow: null, acked: [], issue: r.body.issue } });
    else deleteRecords.push(key);
  }
  await store.write({ records, deleteRecords, meta: { ...(opts.meta ?? {}), hlc: formatHlc(s.clock.last()) } });
  return ids;
}

/**
 * On a checksum mismatch: the targeted repair of SYNC-PROTOCOL.md §4 — the
 * scope's manifest, `repairBetween` it and the phone's copies, a fetch of
 * only the records missing or at another version (500 a request), and the
 * copies the scope no longer holds dropped (pending edits kept). A server
 * without the manifest route gets the whole scope pulled again instead.
 */
async function repair(s: Seedling): Promise<boolean> {
  const entries: ManifestEntryWire[] = [];
  let checksum: ScopeChecksumWire | null = null;
  let after: string | null = null;
  try {
    for (let page = 0; page < 10_000; page++) {
      const q = new URLSearchParams({ protocol_version: String(PROTOCOL_VERSION), limit: '5000' });
      if (after) q.set('after', after);
      const m = await s.api.json<ManifestResponse>('GET', `/api/v1/sync/manifest?${q.toString()}`);
      entries.push(...m.entries);
      checksum = m.scope_checksum;
      if (!m.next_after) break;
      after = m.next_after;
    }
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return pull(s, true);
    throw e;
  }
  const store = s.requireStore();
  const device = [...store.records.values()].flatMap((r) =>
    r.body.shadow && !r.body.shadow.tombstone ? [{ entity: r.entity, id: r.id, version: r.body.shadow.version }] : [],
  );
  const plan = repairBetween(entries, device);
  let fetched = 0;
  let dropped = 0;
  const touched: string[] = [];
  for (let i = 0; i < plan.fetch.length; i += MAX_FETCH) {
    const body: FetchRequest = { protocol_version: PROTOCOL_VERSION, records: plan.fetch.slice(i, i + MAX_FETCH) };
    const answer = await s.api.json<FetchResponse>('POST', '/api/v1/sync/fetch', body);
    observe(s, answer.server_hlc);
    const missing = answer.missing ?? [];
    touched.push(...(await store.exclusive(() => storeChanges(s, answer.changes, missing))));
    fetched += answer.changes.length;
    dropped += missing.length;
  }
  if (plan.drop.length) touched.push(...(await store.exclusive(() => storeChanges(s, [], plan.drop))));
  dropped += plan.drop.length;
  if (touched.length) {
    s.emit({ kind: 'records', ids: touched });
    s.emit({ kind: 'tasks' });
  }
  const matched = checksum !== null && localChecksum(store.records.values()).equals(checksum);
  s.lastRepair = { at: s.opts.now(), mode: 'targeted', rewritten: fetched, dropped, matched };
  return matched;
}

/** After a repair's last page: server copies the server no longer sent are dropped (pending edits kept). */
async function dropUnseen(store: UnlockedStore, seen: Set<string>): Promise<number> {
  const gone: string[] = [];
  const kept: LoadedRecord[] = [];
  for (const r of store.records.values()) {
    if (!r.body.shadow || seen.has(r.key)) continue;
    if (r.pending.length) kept.push({ ...r, body: { shadow: null, acked: [], issue: r.body.issue } });
    else gone.push(r.key);
  }
  if (gone.length || kept.length) await store.write({ records: kept, deleteRecords: gone });
  return gone.length + kept.length;
}
