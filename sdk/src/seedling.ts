/**
 * The `Seedling` class: the field app's one object. It owns the device id,
 * the session, the lock and the unlocked store, and exposes the read and
 * edit calls; the sync round lives in `sync.ts` and photos in `photos.ts`.
 */

import { Api, ApiError, sessionFrom, type StoredSession } from './api.ts';
import {
  DEFAULT_PIN_ITERATIONS,
  newDataKey,
  openBytes,
  unwrapWithDeviceKey,
  uuid,
  unwrapWithPin,
  wrapWithDeviceKey,
  wrapWithPin,
  type PinWrap,
  type WrappedKey,
} from './crypto.ts';
import { SeedlingDb } from './db.ts';
import { LiveUpdates, type LiveState } from './events.ts';
import { DEFAULT_TIME_ZONE, DEFAULT_VISIT_INTERVALS, dayIn, type VisitIntervals } from './due.ts';
import { HlcClock, formatHlc, parseHlc, type Hlc } from './hlc.ts';
import { visitChanges } from './edits.ts';
import { addPhoto, defaultDownscale, photoUrl } from './photos.ts';
import { fold } from './records.ts';
import { UnlockedStore, type OutboxEntry } from './store.ts';
import { runSync } from './sync.ts';
import {
  SeedlingError,
  type ChangeEvent,
  type ChildView,
  type LocalVisitState,
  type PlanItemView,
  type SeedlingOptions,
  type SyncStatus,
  type Task,
  type UserInfo,
  type VisitInput,
  type VisitView,
} from './types.ts';
import {
  baseVersion,
  childView,
  neverStored,
  compareChildren,
  localValues,
  planItemView,
  reviewTasks,
  visitView,
  type LoadedRecord,
} from './views.ts';
import type { Json, MutationWire } from './wire.ts';

interface Keys {
  pin?: PinWrap;
  device?: WrappedKey;
}

const META = {
  deviceId: 'device_id',
  owner: 'owner',
  session: 'session',
  keys: 'keys',
  cursor: 'cursor',
  hlc: 'hlc',
  lastSyncAt: 'last_sync_at',
  revoked: 'revoked',
} as const;

/** Cache Storage names the SDK owns (cleared on sign-out and revoke). */
export const CACHE_PREFIX = 'seedling-sdk';

export class Seedling {
  /** This installation's device id (a new one when another account must sign in on it). */
  get deviceId(): string {
    return this.device;
  }
  private device: string;
  /** @internal */ readonly db: SeedlingDb;
  /** @internal */ readonly api: Api;
  /** @internal */ readonly opts: Required<Pick<SeedlingOptions, 'now' | 'sleep' | 'downscale' | 'pageLimit'>> &
    SeedlingOptions;
  /** @internal */ store: UnlockedStore | null = null;
  /** @internal */ clock: HlcClock;
  /**
   * @internal The district's calendar: the server's (from the session),
   * else the option, else Asia/Shanghai.
   */
  get timeZone(): string {
    return this.api?.session?.timeZone ?? this.configuredZone;
  }
  private readonly configuredZone: string;
  private owner: string | null;
  private keys: Keys;
  private current: SyncStatus;
  private readonly listeners = new Set<(e: ChangeEvent) => void>();
  private running: Promise<SyncStatus> | null = null;
  private again: Promise<SyncStatus> | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private onlineHandler: (() => void) | null = null;
  private live: LiveUpdates | null = null;
  private liveNow: LiveState = 'off';
  /** @internal */ readonly objectUrls = new Set<string>();
  /** @internal The district's visiting intervals (defaults until the server's are fetched). */
  intervals: VisitIntervals = DEFAULT_VISIT_INTERVALS;
  /** What the last checksum repair did (null until one ran). */
  lastRepair: import('./sync.ts').RepairReport | null = null;
  /** What the last recovery after a server restore did (null until one ran). */
  lastRecovery: import('./sync.ts').RecoveryReport | null = null;
  /** Photos the server refused, by SHA-256 (kept on the phone). */
  readonly photoErrors = new Map<string, { code: string; message: string }>();

  private constructor(
    db: SeedlingDb,
    opts: SeedlingOptions,
    deviceId: string,
    owner: string | null,
    session: StoredSession | null,
    keys: Keys,
    hlc: Hlc | null,
    lastSyncAt: number | null,
  ) {
    this.db = db;
    const now = opts.now ?? (() => Date.now());
    this.opts = {
      ...opts,
      now,
      sleep: opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
      downscale: opts.downscale ?? defaultDownscale,
      pageLimit: opts.pageLimit ?? 200,
    };
    this.configuredZone = opts.timeZone ?? DEFAULT_TIME_ZONE;
    this.device = deviceId;
    this.owner = owner;
    this.keys = keys;
    this.clock = hlc ? HlcClock.resume(hlc) : new HlcClock(deviceId);
    const fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.api = new Api({
      baseUrl: opts.baseUrl,
      fetch: fetchImpl,
      now,
      ...(opts.appVersion ? { appVersion: opts.appVersion } : {}),
      saveSession: (s) => this.db.setMeta(META.session, s),
    });
    this.api.session = session;
    this.current = {
      state: session ? 'locked' : 'signed_out',
      pending: 0,
      pendingPhotos: 0,
      recovered: false,
      resent: 0,
      lastSyncAt,
      lastError: null,
    };
  }

  /** Opens (or creates) the store; makes the device id once and keeps it. */
  static async open(opts: SeedlingOptions): Promise<Seedling> {
    const deps: { indexedDB?: IDBFactory; IDBKeyRange?: typeof IDBKeyRange } = {};
    if (opts.indexedDB) deps.indexedDB = opts.indexedDB;
    if (opts.IDBKeyRange) deps.IDBKeyRange = opts.IDBKeyRange;
    const db = new SeedlingDb(opts.dbName ?? 'seedling', deps);
    await db.open();
    let deviceId = await db.getMeta<string>(META.deviceId);
    if (!deviceId) {
      deviceId = uuid();
      await db.setMeta(META.deviceId, deviceId);
    }
    const [owner, session, keys, hlc, lastSyncAt, revoked] = await Promise.all([
      db.getMeta<string>(META.owner),
      db.getMeta<StoredSession>(META.session),
      db.getMeta<Keys>(META.keys),
      db.getMeta<string>(META.hlc),
      db.getMeta<number>(META.lastSyncAt),
      db.getMeta<boolean>(META.revoked),
    ]);
    const s = new Seedling(
      db,
      opts,
      deviceId,
      owner ?? null,
      session ?? null,
      keys ?? {},
      hlc ? parseHlc(hlc) : null,
      lastSyncAt ?? null,
    );
    if (session && !keys?.pin && !keys?.device) {
      // Signed in but the data key was never wrapped (the app closed before
      // a PIN was set, on a server without device keys): nothing in the
      // store can be read again. The outbox is empty — edits need a wrap —
      // so only server copies are lost; they come back with a new sign-in.
      await s.wipeData();
      await db.meta.delete(META.session);
      s.api.session = null;
      s.current.state = 'signed_out';
    }
    if (revoked) s.current.state = 'revoked';
    const intervals = await db.getMeta<VisitIntervals>('visit_intervals');
    if (intervals) s.intervals = intervals;
    await s.refreshCounts();
    return s;
  }

  // ------------------------------------------------------------ session

  user(): UserInfo | null {
    const u = this.api.session?.user;
    if (!u) return null;
    return {
      id: u.id,
      username: u.username,
      display_name: u.display_name,
      role: u.role,
      org_unit: { id: u.org_unit.id, ...(u.org_unit.code ? { code: u.org_unit.code } : {}), name: u.org_unit.name },
    };
  }

  /**
   * Signs in. The same user as before keeps the store and its outbox; a
   * different user on this device starts from a wiped store. With the
   * server's `device_key` the data key is (re)wrapped for recovery, and a
   * locked store of the same user is opened by it.
   */
  async signIn(username: string, password: string, deviceName?: string): Promise<UserInfo> {
    // Another person's queued visits would be wiped: they go to the server first.
    const previous = this.user();
    if (previous && previous.username.toLowerCase() !== username.trim().toLowerCase()) {
      const waiting = await this.db.outbox.count();
      if (waiting > 0) {
        throw new SeedlingError(
          'pending_for_other_user',
          `${previous.display_name} has ${waiting} record(s) not yet synced on this phone; sync them before another person signs in`,
        );
      }
    }
    let wire: Awaited<ReturnType<Api['login']>>;
    try {
      wire = await this.api.login(username, password, this.deviceId, deviceName);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'device_in_use')) throw err;
      // The server keeps this device id for the account that used it; this
      // installation starts afresh under a new one.
      await this.renewDeviceId();
      wire = await this.api.login(username, password, this.deviceId, deviceName);
    }
    const session = sessionFrom(wire, this.opts.now());
    if (this.owner && this.owner !== wire.user.id) {
      this.closeStore();
      await this.wipeData();
    }
    let key = this.store?.key ?? null;
    if (!key && this.keys.device && wire.device_key) {
      key = await unwrapWithDeviceKey(this.keys.device, wire.device_key);
    }
    if (!key && !this.keys.pin && !this.keys.device) key = await newDataKey();
    if (key && wire.device_key) this.keys = { ...this.keys, device: await wrapWithDeviceKey(key, wire.device_key) };
    this.owner = wire.user.id;
    this.api.session = session;
    await this.db.transaction('rw', this.db.meta, async () => {
      await this.db.meta.bulkPut([
        { key: META.owner, value: wire.user.id },
        { key: META.session, value: session },
        { key: META.keys, value: this.keys },
      ]);
      await this.db.meta.delete(META.revoked);
    });
    if (key && !this.store) this.store = await UnlockedStore.load(this.db, key);
    this.setState(this.store ? 'idle' : 'locked', null);
    return this.user()!;
  }

  /** Ends the session (best effort online) and wipes records, outbox, photos and owned caches. */
  async signOut(): Promise<void> {
    this.stopAutoSync();
    const s = this.api.session;
    if (s) {
      try {
        await this.api.raw('POST', '/api/v1/auth/logout', { refresh_token: s.refreshToken });
      } catch {
        // Offline: the server ends the session when the token next fails.
      }
    }
    this.closeStore();
    await this.wipeData();
    await this.db.meta.bulkDelete([META.session, META.owner]);
    this.api.session = null;
    this.owner = null;
    this.setState('signed_out', null);
  }

  // ------------------------------------------------------------ lock

  async hasPin(): Promise<boolean> {
    return !!this.keys.pin;
  }

  /** Wraps the data key with a key derived from `pin`; needs the store unlocked. */
  async setPin(pin: string): Promise<void> {
    const store = this.requireStore();
    if (pin.length < 4) throw new SeedlingError('invalid_pin', 'PIN码至少4位');
    const wrap = await wrapWithPin(store.key, pin, this.opts.pinIterations ?? DEFAULT_PIN_ITERATIONS);
    this.keys = { ...this.keys, pin: wrap };
    await this.db.setMeta(META.keys, this.keys);
  }

  /** Drops the data key from memory; sync stops until `unlock` (the outbox is kept). */
  lock(): void {
    if (!this.store) return;
    this.closeStore();
    if (this.api.session) this.setState('locked', null);
  }

  isLocked(): boolean {
    return this.store === null;
  }

  /** Opens the store with the PIN; false for a wrong PIN. */
  async unlock(pin: string): Promise<boolean> {
    if (this.store) return true;
    if (!this.keys.pin) return false;
    const key = await unwrapWithPin(this.keys.pin, pin);
    if (!key) return false;
    this.store = await UnlockedStore.load(this.db, key);
    this.setState(this.api.session ? 'idle' : 'signed_out', null);
    this.emit({ kind: 'records' });
    return true;
  }

  /**
   * A forgotten PIN: signing in again with the password brings the
   * device key, which opens the same data key, so no pending visit is lost.
   * The old PIN is dropped; call `setPin` next.
   */
  async recoverWithSignIn(username: string, password: string): Promise<void> {
    const previousOwner = this.owner;
    const hadWrap = !!this.keys.device;
    await this.signIn(username, password);
    if (!this.store) {
      throw new SeedlingError(
        'recovery_unavailable',
        hadWrap ? '无法用登录恢复本机数据' : '本机数据未保存恢复密钥（服务器未提供 device_key），无法恢复',
      );
    }
    if (previousOwner === this.owner) {
      const { pin: _old, ...rest } = this.keys;
      this.keys = rest;
      await this.db.setMeta(META.keys, this.keys);
    }
  }

  // ------------------------------------------------------------ status

  status(): SyncStatus {
    return { ...this.current, lastError: this.current.lastError ? { ...this.current.lastError } : null };
  }

  onChange(listener: (event: ChangeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal */
  emit(e: ChangeEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's error is the app's; sync goes on.
      }
    }
  }

  /** @internal */
  setState(state: SyncStatus['state'], error: SyncStatus['lastError'], lastSyncAt?: number): void {
    this.current = {
      ...this.current,
      state,
      lastError: error,
      ...(lastSyncAt !== undefined ? { lastSyncAt } : {}),
    };
    this.emit({ kind: 'status' });
  }

  /** @internal A complete round: whether it recovered from a server restore, and how many writes it sent again. */
  noteRound(recovery: import('./sync.ts').RecoveryReport | null): void {
    this.current = { ...this.current, recovered: recovery !== null, resent: recovery?.resent ?? 0 };
  }

  /** @internal */
  async refreshCounts(): Promise<void> {
    const [pending, pendingPhotos] = await Promise.all([
      this.db.outbox.count(),
      this.db.photos.where('state').equals('pending').count(),
    ]);
    const changed = pending !== this.current.pending || pendingPhotos !== this.current.pendingPhotos;
    this.current = { ...this.current, pending, pendingPhotos };
    if (changed) this.emit({ kind: 'status' });
  }

  // ------------------------------------------------------------ sync

  /**
   * One full round: push (urgent first), photos, then pull every page. Never
   * throws for network errors. Asked while a round runs, it runs one more
   * round after it (however often it was asked meanwhile), so an edit saved
   * or a network that came back during a round is not left for the next
   * interval; the promise settles when that round ends.
   */
  sync(): Promise<SyncStatus> {
    if (!this.running) {
      this.running = runSync(this).finally(() => {
        this.running = null;
      });
      return this.running;
    }
    if (!this.again) {
      const next = (): Promise<SyncStatus> => {
        this.again = null;
        return this.sync();
      };
      this.again = this.running.then(next, next);
    }
    return this.again;
  }

  /**
   * Syncs now, then every `intervalMs` (60 s), when the network comes
   * back, and — with `live` (the default) — whenever the server's events
   * stream says the scope changed (SYNC-PROTOCOL.md §4c; `liveState()`
   * says whether it is open).
   */
  startAutoSync(opts: { intervalMs?: number; live?: boolean } = {}): void {
    this.stopAutoSync();
    const every = opts.intervalMs ?? 60_000;
    // The timer and the network's return start a round only when none
    // runs: queued behind a long round (a busy server's waits) they would
    // run rounds back to back and restart its back-off.
    const idle = () => {
      if (!this.running) void this.sync();
    };
    this.timer = setInterval(idle, every);
    const w = (globalThis as { addEventListener?: (t: string, f: () => void) => void }).addEventListener;
    if (typeof w === 'function' && typeof (globalThis as { window?: unknown }).window !== 'undefined') {
      this.onlineHandler = idle;
      w.call(globalThis, 'online', this.onlineHandler);
    }
    if (opts.live ?? true) {
      this.live = new LiveUpdates({
        request: (path, signal) => this.api.request('GET', path, { signal, headers: { accept: 'text/event-stream' } }),
        // The stream opening is caught up by the round started here; a
        // change is synced after the round running now, if one is.
        onSignal: (kind) => (kind === 'ready' ? idle() : void this.sync()),
        onState: (state) => {
          this.liveNow = state;
        },
      });
      this.live.start();
    }
    void this.sync();
  }

  /** Whether the live-updates stream is open (`off` unless auto sync runs with `live`). */
  liveState(): LiveState {
    return this.liveNow;
  }

  stopAutoSync(): void {
    this.live?.stop();
    this.live = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.onlineHandler) {
      const r = (globalThis as { removeEventListener?: (t: string, f: () => void) => void }).removeEventListener;
      r?.call(globalThis, 'online', this.onlineHandler);
      this.onlineHandler = null;
    }
  }

  /** @internal Device revoked: wipe everything, keep only the device id. */
  async revoked(): Promise<void> {
    this.stopAutoSync();
    this.closeStore();
    await this.wipeData();
    await this.db.meta.bulkDelete([META.session, META.owner]);
    await this.db.setMeta(META.revoked, true);
    this.api.session = null;
    this.owner = null;
  }

  /** @internal The session ended on the server (401 a refresh cannot fix): keep the store, ask for sign-in. */
  async sessionEnded(): Promise<void> {
    await this.db.meta.delete(META.session);
    this.api.session = null;
  }

  /** @internal */
  async saveClock(): Promise<void> {
    await this.db.setMeta(META.hlc, formatHlc(this.clock.last()));
  }

  /** @internal */
  async cursor(): Promise<string | null> {
    return (await this.db.getMeta<string>(META.cursor)) ?? null;
  }

  // ------------------------------------------------------------ reads

  private loaded(entity: LoadedRecord['entity']): { record: LoadedRecord; values: Record<string, Json> }[] {
    const store = this.requireStore();
    const out: { record: LoadedRecord; values: Record<string, Json> }[] = [];
    for (const r of store.records.values()) {
      if (r.entity !== entity) continue;
      const values = localValues(r);
      if (values) out.push({ record: r, values });
    }
    return out;
  }

  private allVisitViews(): { record: LoadedRecord; view: VisitView }[] {
    return this.loaded('visit').map(({ record, values }) => ({ record, view: visitView(record, values) }));
  }

  private today(): string {
    return dayIn(this.opts.now(), this.timeZone);
  }

  private childViews(): ChildView[] {
    const byChild = new Map<string, VisitView[]>();
    for (const { view } of this.allVisitViews()) {
      const list = byChild.get(view.child_id) ?? [];
      list.push(view);
      byChild.set(view.child_id, list);
    }
    const today = this.today();
    return this.loaded('child').map(({ record, values }) =>
      childView(record, values, {
        visits: byChild.get(record.id) ?? [],
        today,
        timeZone: this.timeZone,
        intervals: this.intervals,
      }),
    );
  }

  /** The director's active children, urgent and overdue first. */
  async children(): Promise<ChildView[]> {
    return this.childViews()
      .filter((c) => c.status === 'active')
      .sort(compareChildren);
  }

  async child(id: string): Promise<ChildView | undefined> {
    return this.childViews().find((c) => c.id === id);
  }

  async visits(filter: { childId?: string; state?: LocalVisitState } = {}): Promise<VisitView[]> {
    return this.allVisitViews()
      .map(({ view }) => view)
      .filter((v) => (!filter.childId || v.child_id === filter.childId) && (!filter.state || v.localState === filter.state))
      .sort((a, b) => (a.visited_at < b.visited_at ? 1 : a.visited_at > b.visited_at ? -1 : a.id < b.id ? -1 : 1));
  }

  async visit(id: string): Promise<VisitView | undefined> {
    const r = this.requireStore().get('visit', id);
    if (!r) return undefined;
    const values = localValues(r);
    return values ? visitView(r, values) : undefined;
  }

  async tasks(): Promise<Task[]> {
    const me = this.api.session?.user.id ?? this.owner ?? '';
    const names = new Map(this.loaded('child').map(({ record, values }) => [record.id, String(values['name'] ?? '')]));
    return reviewTasks(me, this.allVisitViews(), (id) => names.get(id) ?? '');
  }

  async planItems(childId: string): Promise<PlanItemView[]> {
    return this.loaded('case_plan_item')
      .map(({ record, values }) => planItemView(record, values))
      .filter((p) => p.child_id === childId && (p.status === 'open' || p.status === 'in_progress'))
      .sort((a, b) => ((a.due_date ?? '9999') < (b.due_date ?? '9999') ? -1 : 1));
  }

  async counts(): Promise<{ drafts: number; waiting: number; synced: number; returned: number }> {
    const c = { drafts: 0, waiting: 0, synced: 0, returned: 0 };
    for (const { view } of this.allVisitViews()) {
      if (view.localState === 'draft') c.drafts++;
      else if (view.localState === 'waiting') c.waiting++;
      else if (view.localState === 'synced') c.synced++;
      else if (view.localState === 'returned') c.returned++;
    }
    return c;
  }

  // ------------------------------------------------------------ edits

  /**
   * Creates or edits a visit and queues the mutation, in one transaction
   * with the clock. `submit: true` sets `review_status` to `submitted`
   * (from a draft, or a returned visit after correction).
   */
  async saveVisit(input: VisitInput, opts: { submit: boolean }): Promise<VisitView> {
    const store = this.requireStore();
    this.requireWrap();
    const me = this.api.session?.user.id ?? this.owner;
    if (!me) throw new SeedlingError('signed_out', '请先登录');
    const id = input.id ?? uuid();
    const existing = store.get('visit', id);
    const current = existing ? localValues(existing) : null;
    const hlc = formatHlc(this.clock.tick(this.opts.now()));
    // A visit the server never stored (its create was refused): an edit sends it whole again, as a create.
    const recreate = !!existing && !!current && neverStored(existing) && !existing.pending.some((m) => m.op === 'create');
    let childVillageId: string | null = null;
    if (!current || recreate) {
      const child = store.get('child', input.child_id);
      const childValues = child ? localValues(child) : null;
      if (!childValues) throw new SeedlingError('unknown_child', '找不到该儿童');
      childVillageId = typeof childValues['village_id'] === 'string' ? childValues['village_id'] : null;
    }
    const { op, fields } = visitChanges(input, opts.submit, { me, deviceId: this.deviceId, hlc, current, recreate, childVillageId });
    const record = existing ?? store.ensure('visit', id);
    if (Object.keys(fields).length === 0) return visitView(record, current!);
    const mutation: MutationWire = {
      mutation_id: uuid(),
      entity: 'visit',
      record_id: id,
      op,
      base_version: baseVersion(record),
      hlc,
      fields,
    };
    await this.queue(record, mutation);
    return (await this.visit(id))!;
  }

  /** Removes a draft that never reached the server; anything else throws. */
  async deleteDraft(id: string): Promise<void> {
    const store = this.requireStore();
    const r = store.get('visit', id);
    const v = r ? localValues(r) : null;
    if (!r || !v) throw new SeedlingError('not_found', '找不到该走访记录');
    const sent = store.outbox.some((e) => e.recordKey === r.key && e.attempts > 0);
    if (v['review_status'] !== 'draft' || r.body.shadow || r.body.acked.length || sent) {
      throw new SeedlingError('not_a_draft', '只能删除尚未上传的草稿');
    }
    const photos = await this.db.photos.where('visit_id').equals(id).primaryKeys();
    await store.exclusive(() =>
      store.write({
        deleteRecords: [r.key],
        deleteOutbox: store.outbox.filter((e) => e.recordKey === r.key).map((e) => e.seq),
      }),
    );
    await this.db.photos.bulkDelete(photos);
    store.records.delete(r.key);
    await this.refreshCounts();
    this.emit({ kind: 'records', ids: [id] });
  }

  /** @internal Folds `mutation` into the record's unsent mutation, or queues it. */
  async queue(record: LoadedRecord, mutation: MutationWire): Promise<void> {
    const store = this.requireStore();
    await store.exclusive(async () => {
      const current = store.records.get(record.key) ?? record;
      const unsent = [...store.outbox].reverse().find((e) => e.recordKey === current.key && e.attempts === 0);
      const w: { outbox: OutboxEntry[]; deleteOutbox: number[] } = { outbox: [], deleteOutbox: [] };
      if (unsent) {
        const folded = fold(unsent.mutation, mutation);
        if (folded) w.outbox.push({ ...unsent, mutation: folded });
        else w.deleteOutbox.push(unsent.seq);
      } else {
        w.outbox.push({ seq: store.nextSeq(), mutation, attempts: 0, recordKey: current.key });
      }
      // The row is written with the pending edit applied, so its index fields match what the app sees.
      const preview = { ...current, pending: [...current.pending, mutation] };
      await store.write({
        records: [preview],
        ...w,
        meta: { [META.hlc]: formatHlc(this.clock.last()) },
      });
    });
    await this.refreshCounts();
    this.emit({ kind: 'records', ids: [record.id] });
    if (this.timer && mutation.fields?.['risk_flags']) void this.sync();
  }

  // ------------------------------------------------------------ photos

  async addPhoto(visitId: string, blob: Blob): Promise<{ id: string; sha256: string }> {
    return addPhoto(this, visitId, blob);
  }

  async photoUrl(sha256: string): Promise<string | null> {
    return photoUrl(this, sha256);
  }

  // ------------------------------------------------------------ internals

  /** @internal */
  requireStore(): UnlockedStore {
    if (!this.store) throw new SeedlingError('locked', '已锁定：请输入PIN码');
    return this.store;
  }

  /** Edits need the data key wrapped somewhere, so a restart cannot lose them. */
  private requireWrap(): void {
    if (!this.keys.pin && !this.keys.device) throw new SeedlingError('pin_required', '请先设置PIN码');
  }

  /** @internal */
  async decryptPhoto(sealed: Parameters<typeof openBytes>[1], sha256: string): Promise<Uint8Array> {
    return openBytes(this.requireStore().key, sealed, `photo:${sha256}`);
  }

  private closeStore(): void {
    this.store = null;
    for (const u of this.objectUrls) URL.revokeObjectURL(u);
    this.objectUrls.clear();
  }

  /** Removes every record of minors: records, outbox, photos, cursor, keys, and owned caches. */
  /** A new device id (and a clock on it) for this installation. */
  private async renewDeviceId(): Promise<void> {
    this.device = uuid();
    this.clock = new HlcClock(this.device);
    await this.db.setMeta(META.deviceId, this.device);
  }

  private async wipeData(): Promise<void> {
    const db = this.db;
    await db.transaction('rw', [db.records, db.outbox, db.photos, db.meta], async () => {
      await Promise.all([db.records.clear(), db.outbox.clear(), db.photos.clear()]);
      await db.meta.bulkDelete([META.cursor, META.keys, META.lastSyncAt, 'visit_intervals']);
    });
    this.keys = {};
    this.current = { ...this.current, pending: 0, pendingPhotos: 0, lastSyncAt: null };
    const caches = (globalThis as { caches?: CacheStorage }).caches;
    if (caches) {
      try {
        for (const name of await caches.keys()) if (name.startsWith(CACHE_PREFIX)) await caches.delete(name);
      } catch {
        // No Cache Storage in this context.
      }
    }
    this.emit({ kind: 'records' });
  }
}
