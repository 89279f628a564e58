/**
 * The unlocked store: the decrypted records and outbox held in memory,
 * written through to IndexedDB sealed with the data key. Every write seals
 * first and then commits in one Dexie transaction (an IndexedDB transaction
 * must not wait on WebCrypto), so a record, its outbox entries and the
 * clock change together or not at all.
 */

import { open, seal } from './crypto.ts';
import { recordKey, type OutboxRow, type RecordBody, type RecordRow, type SeedlingDb } from './db.ts';
import { isUrgentMutation } from './records.ts';
import type { LoadedRecord } from './views.ts';
import { localValues } from './views.ts';
import type { Entity, Json, MutationWire } from './wire.ts';

export interface OutboxEntry {
  seq: number;
  mutation: MutationWire;
  attempts: number;
  recordKey: string;
}

/** A batch of writes, applied to memory and to IndexedDB together. */
export interface WriteSet {
  records?: LoadedRecord[];
  deleteRecords?: string[];
  outbox?: OutboxEntry[];
  deleteOutbox?: number[];
  meta?: Record<string, unknown>;
}

export class UnlockedStore {
  readonly records = new Map<string, LoadedRecord>();
  /** Pending mutations in the order they were made. */
  outbox: OutboxEntry[] = [];

  private constructor(
    private readonly db: SeedlingDb,
    readonly key: CryptoKey,
  ) {}

  static async load(db: SeedlingDb, key: CryptoKey): Promise<UnlockedStore> {
    const s = new UnlockedStore(db, key);
    const [rows, outRows] = await Promise.all([db.records.toArray(), db.outbox.orderBy('seq').toArray()]);
    for (const o of outRows) {
      const mutation = await open<MutationWire>(key, o.body, `outbox:${o.mutation_id}`);
      s.outbox.push({ seq: o.seq!, mutation, attempts: o.attempts, recordKey: o.record_key });
    }
    for (const row of rows) {
      const body = await open<RecordBody>(key, row.body, row.key);
      s.records.set(row.key, { key: row.key, entity: row.entity, id: row.id, body, pending: [] });
    }
    s.relinkPending();
    return s;
  }

  /** Rebuilds each record's `pending` list from the outbox. */
  relinkPending(): void {
    for (const r of this.records.values()) r.pending = [];
    for (const e of this.outbox) {
      let r = this.records.get(e.recordKey);
      if (!r) {
        r = {
          key: e.recordKey,
          entity: e.mutation.entity,
          id: e.mutation.record_id,
          body: { shadow: null, acked: [], issue: null },
          pending: [],
        };
        this.records.set(e.recordKey, r);
      }
      r.pending.push(e.mutation);
    }
  }

  get(entity: Entity, id: string): LoadedRecord | undefined {
    return this.records.get(recordKey(entity, id));
  }

  ensure(entity: Entity, id: string): LoadedRecord {
    const key = recordKey(entity, id);
    let r = this.records.get(key);
    if (!r) {
      r = { key, entity, id, body: { shadow: null, acked: [], issue: null }, pending: [] };
      this.records.set(key, r);
    }
    return r;
  }

  nextSeq(): number {
    return (this.outbox[this.outbox.length - 1]?.seq ?? 0) + 1;
  }

  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Runs `fn` alone: every read-modify-write of records or the outbox goes
   * through here, so an edit folded into a mutation cannot race with the
   * push marking it sent, nor a pulled copy with an edit's write.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async rowOf(r: LoadedRecord): Promise<RecordRow> {
    const values = localValues(r);
    const str = (v: Json | undefined) => (typeof v === 'string' ? v : null);
    const childId = r.entity === 'child' ? r.id : str(values?.['child_id']) ?? str(r.body.shadow ? valueOfShadow(r, 'child_id') : null);
    const status = r.entity === 'visit' ? str(values?.['review_status']) : str(values?.['status']);
    return {
      key: r.key,
      entity: r.entity,
      id: r.id,
      child_id: childId,
      status,
      due: null,
      shadowVersion: r.body.shadow?.version ?? 0,
      deleted: !!r.body.shadow?.tombstone,
      body: await seal(this.key, r.body, r.key),
    };
  }

  /** Seals and writes a set of changes in one transaction, then updates memory. */
  async write(w: WriteSet): Promise<void> {
    const recordRows = await Promise.all((w.records ?? []).map((r) => this.rowOf(r)));
    const outRows: OutboxRow[] = await Promise.all(
      (w.outbox ?? []).map(async (e) => ({
        seq: e.seq,
        mutation_id: e.mutation.mutation_id,
        record_key: e.recordKey,
        attempts: e.attempts,
        urgent: isUrgentMutation(e.mutation),
        body: await seal(this.key, e.mutation, `outbox:${e.mutation.mutation_id}`),
      })),
    );
    const db = this.db;
    await db.transaction('rw', [db.records, db.outbox, db.meta], async () => {
      if (w.deleteRecords?.length) await db.records.bulkDelete(w.deleteRecords);
      if (recordRows.length) await db.records.bulkPut(recordRows);
      if (w.deleteOutbox?.length) await db.outbox.bulkDelete(w.deleteOutbox);
      if (outRows.length) await db.outbox.bulkPut(outRows);
      for (const [key, value] of Object.entries(w.meta ?? {})) await db.meta.put({ key, value });
    });
    for (const k of w.deleteRecords ?? []) this.records.delete(k);
    for (const r of w.records ?? []) this.records.set(r.key, r);
    const gone = new Set(w.deleteOutbox ?? []);
    const bySeq = new Map(this.outbox.filter((e) => !gone.has(e.seq)).map((e) => [e.seq, e]));
    for (const e of w.outbox ?? []) bySeq.set(e.seq, e);
    this.outbox = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    this.relinkPending();
  }
}

function valueOfShadow(r: LoadedRecord, field: string): Json {
  const f = r.body.shadow?.fields[field];
  return f && 'register' in f ? f.register.value : null;
}
