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
 * 4. **After a restore** (a push or a pull answered 409
 *    `server_restored`: the push carries the cursor), recover
 *    (SYNC-PROTOCOL.md "After a restore"): read the whole manifest, find
 *    the server copies it lacks or holds at a lower version than the phone
 *    saw, fetch the server's copies of those it still holds, queue the
 *    phone's own writes it lacks (`lostWrites`) as new mutations ahead of
 *    those records' queued edits (rebased on the server's versions), forget
 *    their base versions, take the manifest's cursor, push, then repair
 *    from a fresh manifest and pull on from its cursor.
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
import { uuid } from './crypto.ts';
import { acknowledgedCopy, lostWrites, recordOfCompact, repairBetween, urgentFirst } from './records.ts';
import type { Seedling } from './seedling.ts';
import type { OutboxEntry, UnlockedStore } from './store.ts';
import { SeedlingError, type SyncStatus, type VisitConflict } from './types.ts';
import type { LoadedRecord } from './views.ts';
import {
  PROTOCOL_VERSION,
  type CompactPullResponse,
  type Entity,
  type FetchRequest,
  type FetchResponse,
  type MutationWire,
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

/** What the last recovery after a restore did, for diagnostics and tests. */
export interface RecoveryReport {
  at: number;
  /** Server copies this phone held that the restored server lacked or held at a lower version. */
  behind: number;
  /** This phone's own writes sent again. */
  resent: number;
  /** The first manifest page's cursor, which the pull went on from (null: pulled from scratch). */
  cursor: string | null;
  /** Whether the scope checksum matched after the pull. */
  matched: boolean;
  /** A push the server refused as a whole (the writes stay in the outbox and go with a later push). */
  refused: ApiError | null;
}

/** 409 `server_restored`: the server was restored from a backup since this cursor was made. */
export function isServerRestored(e: unknown): boolean {
  return e instanceof ApiError && e.status === 409 && e.code === 'server_restored';
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
    // The push (it carries the cursor) or the pull may answer that the
    // server was restored: the phone recovers before anything else.
    let restored = false;
    let ok = false;
    try {
      refused = await pushUnlessRefused(s);
      if (!refused) await withRetry(s, () => uploadPhotos(s));
      ok = await withRetry(s, () => pull(s, false));
    } catch (e) {
      if (!isServerRestored(e)) throw e;
      restored = true;
    }
    let recovery: RecoveryReport | null = null;
    if (restored) {
      recovery = await recover(s);
      ok = recovery.matched;
      refused ??= recovery.refused;
      if (!refused) await withRetry(s, () => uploadPhotos(s));
    }
    if (!ok) ok = await withRetry(s, () => repair(s));
    await withRetry(s, () => fetchVisitRules(s));
    const now = s.opts.now();
    await s.db.setMeta('last_sync_at', now);
    s.noteRound(recovery);
    if (refused) s.setState('error', { code: refused.code, message: refused.message }, now);
    else if (ok) s.setState('idle', null, now);
    else s.setState('error', { code: 'diverged', message: '本机数据与服务器不一致，修复未成功，将再次尝试' }, now);
  } catch (e) {
    await failed(s, e);
  }
  await s.refreshCounts().catch(() => undefined);
  return s.status();
}

/** Pushes the outbox; a push the server refuses as a whole (a client bug: 400/422) is returned, not thrown. */
async function pushUnlessRefused(s: Seedling): Promise<ApiError | null> {
  try {
    await withRetry(s, () => push(s));
    return null;
  } catch (e) {
    if (!(e instanceof ApiError) || e.kind !== 'fatal' || isServerRestored(e)) throw e;
    return e;
  }
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
    const cursor = await s.cursor();
    const body: PushRequest = {
      protocol_version: PROTOCOL_VERSION,
      device_id: s.deviceId,
      device_hlc: formatHlc(s.clock.tick(s.opts.now())),
      mutations: batch.map((e) => e.mutation),
      ...(cursor ? { cursor } : {}),
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
      // Refused before anything was applied (the cursor predates a restore):
      // as if never sent, so the recovery may rebase them.
      if (isServerRestored(e)) await store.exclusive(() => store.write({ outbox: batch }));
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
    const q = new URLSearchParams({ protocol_version: String(PROTOCOL_VERSION), limit: String(s.opts.pageLimit), encoding: 'compact' });
    if (cursor) q.set('cursor', cursor);
    let answer: PullPage;
    try {
      answer = fullPage(await s.api.json<PullResponse | CompactPullResponse>('GET', `/api/v1/sync/pull?${q.toString()}`));
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
      // Both encodings carry the checksum on the last page (`fullPage` refuses one without).
      const matched = localChecksum(store.records.values()).equals(answer.scope_checksum!);
      if (seen) s.lastRepair = { at: s.opts.now(), mode: 'full', rewritten, dropped, matched };
      return matched;
    }
  }
  throw new ApiError('fatal', 0, 'too_many_pages', 'the pull did not end');
}

/** A pull page with whole records, the checksum where the page carried one. */
type PullPage = Omit<PullResponse, 'scope_checksum'> & { scope_checksum?: ScopeChecksumWire };

/**
 * The page with its records whole: the phone asks for the compact encoding,
 * and a server that does not know it answers the full one.
 */
function fullPage(answer: PullResponse | CompactPullResponse): PullPage {
  const unreadable = (why: string): never => {
    throw new ApiError('fatal', 200, 'unreadable_answer', why);
  };
  const encoding = (answer as { encoding?: unknown }).encoding ?? 'full';
  if (encoding !== 'full' && encoding !== 'compact') unreadable(`a pull page in an unknown encoding: ${String(encoding)}`);
  // A missing checksum must never pass for a matching one: the full form
  // carries it on every page, the compact one on the last.
  if (!answer.scope_checksum && (encoding === 'full' || !answer.has_more)) unreadable('a pull page without its scope checksum');
  if (encoding === 'full') return answer as PullResponse;
  try {
    return { ...answer, changes: (answer as CompactPullResponse).changes.map(recordOfCompact) };
  } catch (e) {
    return unreadable(e instanceof Error ? e.message : String(e));
  }
}

/** Stores one pulled page and its cursor in one transaction; the ids it touched. */
async function storePage(s: Seedling, answer: PullPage, seen: Set<string> | null, rewrote: () => void): Promise<string[]> {
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

interface Manifest {
  entries: ManifestEntryWire[];
  checksum: ScopeChecksumWire | null;
  /** The first page's `cursor` (null: an older server sent none). */
  cursor: string | null;
}

/** Every page of the scope's manifest; null when the server has no manifest route (older servers). */
async function readManifest(s: Seedling): Promise<Manifest | null> {
  const entries: ManifestEntryWire[] = [];
  let checksum: ScopeChecksumWire | null = null;
  let cursor: string | null = null;
  let after: string | null = null;
  try {
    for (let page = 0; page < 10_000; page++) {
      const q = new URLSearchParams({ protocol_version: String(PROTOCOL_VERSION), limit: '5000' });
      if (after) q.set('after', after);
      const m = await s.api.json<ManifestResponse>('GET', `/api/v1/sync/manifest?${q.toString()}`);
      if (page === 0) cursor = m.cursor ?? null;
      entries.push(...m.entries);
      checksum = m.scope_checksum;
      if (!m.next_after) return { entries, checksum, cursor };
      after = m.next_after;
    }
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return null;
    throw e;
  }
  // Half a manifest would drop every record past its end.
  throw new ApiError('retryable', 0, 'manifest_unfinished', 'the server never finished the manifest');
}

/**
 * On a checksum mismatch: the targeted repair of SYNC-PROTOCOL.md §4 — the
 * scope's manifest, `repairBetween` it and the phone's copies, a fetch of
 * only the records missing or at another version (500 a request), and the
 * copies the scope no longer holds dropped (pending edits kept). A server
 * without the manifest route gets the whole scope pulled again instead.
 *
 * After a restore (`restored`), the records named there are fetched too
 * (their versions in the new history may equal the old ones by chance), and
 * the pull goes on from the manifest's first page's cursor, or from scratch
 * when the server sent none; the answer is that pull's checksum verdict.
 */
async function repair(s: Seedling, restored?: { refetch: RecordRefWire[]; report: RecoveryReport }): Promise<boolean> {
  const manifest = await readManifest(s);
  if (!manifest) return pull(s, true);
  const { entries, checksum } = manifest;
  const store = s.requireStore();
  const device = [...store.records.values()].flatMap((r) =>
    r.body.shadow && !r.body.shadow.tombstone ? [{ entity: r.entity, id: r.id, version: r.body.shadow.version }] : [],
  );
  const plan = repairBetween(entries, device);
  if (restored) {
    const listed = new Set(entries.map(([entity, id]) => recordKey(entity, id)));
    const planned = new Set(plan.fetch.map((r) => recordKey(r.entity, r.id)));
    for (const ref of restored.refetch) {
      const key = recordKey(ref.entity, ref.id);
      if (listed.has(key) && !planned.has(key)) plan.fetch.push(ref);
    }
  }
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
  if (!restored) return matched;
  restored.report.cursor = manifest.cursor;
  if (!manifest.cursor) return pull(s, true);
  const cursor = manifest.cursor;
  await store.exclusive(() => store.write({ meta: { cursor } }));
  return pull(s, false);
}

// ---------------------------------------------------------------- after a restore

/**
 * The recovery after a restore (SYNC-PROTOCOL.md "After a restore"): the
 * restored server is behind this phone — it lost visits and edits it had
 * acknowledged. The phone sends back its own writes the server lacks,
 * through the outbox as new mutations (a resend is idempotent as always)
 * ahead of the edits still queued, which are rebased on the server's
 * versions; it takes the manifest's cursor so its pushes are accepted
 * again, then repairs its store from a fresh manifest and pulls on from
 * that manifest's cursor. Writes by others that only the lost history held (a
 * supervisor's decision) are not the phone's to send: they are redone on
 * the server.
 */
async function recover(s: Seedling): Promise<RecoveryReport> {
  const report: RecoveryReport = { at: s.opts.now(), behind: 0, resent: 0, cursor: null, matched: false, refused: null };
  const manifest = await withRetry(s, () => readManifest(s));
  if (!manifest) throw new ApiError('fatal', 409, 'server_restored', 'the server was restored but has no manifest');
  const held = new Map(manifest.entries.map(([entity, id, version]) => [recordKey(entity, id), version]));
  const store = s.requireStore();
  // The server's copies this phone knew (acknowledged writes laid on) that
  // the restored server lacks or holds at a lower version: what it lost.
  const behind: { key: string; entity: Entity; id: string; local: RecordWire }[] = [];
  for (const r of store.records.values()) {
    const local = acknowledgedCopy(r.entity, r.id, r.body.shadow, r.body.acked);
    if (!local) continue;
    const version = held.get(r.key);
    if (version === undefined || version < local.version) behind.push({ key: r.key, entity: r.entity, id: r.id, local });
  }
  report.behind = behind.length;
  const onServer = behind.filter((b) => held.has(b.key)).map(({ entity, id }) => ({ entity, id }));
  const theirs = new Map<string, RecordWire>();
  for (let i = 0; i < onServer.length; i += MAX_FETCH) {
    const body: FetchRequest = { protocol_version: PROTOCOL_VERSION, records: onServer.slice(i, i + MAX_FETCH) };
    const answer = await withRetry(s, () => s.api.json<FetchResponse>('POST', '/api/v1/sync/fetch', body));
    observe(s, answer.server_hlc);
    for (const c of answer.changes) theirs.set(recordKey(c.entity, c.id), c);
  }
  const user = s.api.session?.user;
  if (!user) throw new ApiError('sign_in', 401, 'missing_token', 'not signed in');
  const actor = { userId: user.id, role: user.role };
  report.resent = await store.exclusive(async () => {
    const records: LoadedRecord[] = [];
    const outbox: OutboxEntry[] = [];
    const deleteOutbox: number[] = [];
    let seq = store.nextSeq();
    let resent = 0;
    for (const b of behind) {
      const server = theirs.get(b.key) ?? null;
      const serverVersion = server?.version ?? 0;
      // Edits still queued go after the writes sent again, on the server's
      // version (those never sent are rebased further as the writes ahead
      // are answered). One sent before the restore keeps its id: a server
      // that applied it before its backup answers from its stored outcome.
      const queued = store.outbox.filter((e) => e.recordKey === b.key);
      deleteOutbox.push(...queued.map((e) => e.seq));
      for (const w of lostWrites(s.deviceId, actor, b.local, server)) {
        const mutation: MutationWire = {
          mutation_id: uuid(),
          entity: b.entity,
          record_id: b.id,
          op: w.op,
          base_version: w.base_version,
          hlc: w.hlc,
          ...(w.op === 'delete' ? {} : { fields: w.fields }),
        };
        outbox.push({ seq: seq++, mutation, attempts: 0, recordKey: b.key });
        resent++;
      }
      for (const e of queued) {
        const base = Math.min(e.mutation.base_version, serverVersion);
        outbox.push({ ...e, seq: seq++, mutation: { ...e.mutation, base_version: base } });
      }
      // The server's versions went back: the answers it gave before the
      // restore no longer say what later edits start from.
      const r = store.records.get(b.key);
      if (r && r.body.acked.length) records.push({ ...r, body: { ...r.body, acked: [] } });
    }
    // A cursor of the server's new history, so the pushes are accepted
    // again (the repair below takes a fresher one).
    const meta = { hlc: formatHlc(s.clock.last()), cursor: manifest.cursor ?? null };
    await store.write({ records, outbox, deleteOutbox, meta });
    return resent;
  });
  await s.refreshCounts().catch(() => undefined);
  // Refused, they stay in the outbox and the records they touch are kept by
  // the repair (pending edits are never dropped) until a push takes them.
  report.refused = (await pushUnlessRefused(s)) ?? report.refused;
  const refetch = behind.map(({ entity, id }) => ({ entity, id }));
  report.matched = await withRetry(s, () => repair(s, { refetch, report }));
  s.lastRecovery = report;
  return report;
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
