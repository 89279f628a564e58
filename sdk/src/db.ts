/**
 * The local store on IndexedDB, through Dexie. Four tables:
 *
 * * `records` — one row per record (`key` = `entity:id`), with the plain
 *   index fields the app queries by (`entity`, `child_id`, `status`, `due`)
 *   and the versions; everything else (the server's copy with its clocks,
 *   the last push's notices) is in `body`, sealed with the data key.
 * * `outbox` — pending mutations in the order they were made (`seq`), each
 *   sealed; `attempts > 0` marks a mutation as sent, and so frozen.
 * * `photos` — photo bytes (sealed) by SHA-256, with their upload state.
 * * `meta` — device id, session, wrapped keys, cursor, clock, last sync.
 *
 * No name, address, note or any free text of a child is ever stored
 * outside a sealed body.
 */

import { Dexie, type Table } from 'dexie';

import type { Sealed } from './crypto.ts';
import type { Entity } from './wire.ts';

export interface RecordRow {
  key: string;
  entity: Entity;
  id: string;
  /** A visit's or case-plan item's child; a child's own id. */
  child_id: string | null;
  /** `review_status` of a visit, `status` of a child or item. */
  status: string | null;
  /** A child's due date (`YYYY-MM-DD`). */
  due: string | null;
  /** Version of the server's copy held (0 = none yet). */
  shadowVersion: number;
  /** True when the server's copy is a tombstone. */
  deleted: boolean;
  body: Sealed;
}

/** What a record row's sealed body holds. */
export interface RecordBody {
  shadow: import('./wire.ts').RecordWire | null;
  /** Answered mutations laid over the shadow until a pull brings `version`. */
  acked: { version: number; mutation: import('./wire.ts').MutationWire }[];
  /** The last push's notice about this record, when not simply applied. */
  issue: import("./types.ts").VisitConflict | null;
  /** Notices of the last push result (`urgent`, `possible_duplicate`, …). */
  flags?: string[];
  /** A rejected create, kept so the visit stays visible with its reason. */
  rejected?: import("./wire.ts").MutationWire | null;
}

export interface OutboxRow {
  seq?: number;
  mutation_id: string;
  record_key: string;
  /** 0 until sent; a sent mutation is frozen and resent unchanged. */
  attempts: number;
  urgent: boolean;
  body: Sealed;
}

export interface PhotoRow {
  sha256: string;
  visit_id: string;
  content_type: string;
  size: number;
  /** `pending` until the server says `complete`. */
  state: 'pending' | 'complete';
  body: Sealed;
}

export interface MetaRow {
  key: string;
  value: unknown;
}

export class SeedlingDb extends Dexie {
  records!: Table<RecordRow, string>;
  outbox!: Table<OutboxRow, number>;
  photos!: Table<PhotoRow, string>;
  meta!: Table<MetaRow, string>;

  constructor(name: string, deps?: { indexedDB?: IDBFactory; IDBKeyRange?: typeof IDBKeyRange }) {
    super(name, deps?.indexedDB ? { indexedDB: deps.indexedDB, IDBKeyRange: deps.IDBKeyRange ?? globalThis.IDBKeyRange } : {});
    this.version(1).stores({
      records: 'key, entity, child_id, status, due',
      outbox: '++seq, &mutation_id, record_key',
      photos: 'sha256, state, visit_id',
      meta: 'key',
    });
  }

  async getMeta<T>(key: string): Promise<T | undefined> {
    return (await this.meta.get(key))?.value as T | undefined;
  }

  async setMeta(key: string, value: unknown): Promise<void> {
    await this.meta.put({ key, value });
  }
}

export function recordKey(entity: Entity, id: string): string {
  return `${entity}:${id}`;
}
