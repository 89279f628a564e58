/**
 * Model classes that keep each record's per-field clocks. Every local
 * write of a column stamps it with the device's hybrid logical clock in
 * `field_clocks`, so the server orders concurrent edits by when they were
 * made, not by when they arrived. A field written around these classes
 * keeps its old clock and is stamped when it reaches the server.
 *
 * Each field is a property of its column's name; an object, place or set
 * column reads and writes a value (kept as JSON text underneath).
 */

import { Model, type Collection, type Database } from '@nozbe/watermelondb';
import { setGenerator } from '@nozbe/watermelondb/utils/common/randomId/index.js';

import { HlcClock, formatHlc, parseHlc } from '../../../sdk/src/hlc.ts';
import { FIELDS, type SeedlingTable } from './schema.ts';

const clocks = new WeakMap<Database, HlcClock>();

/**
 * Makes record ids UUIDs (Seedling's ids) and gives `database` the clock
 * of `deviceId`, the device id the app signed in with. Call it once, before
 * the first write.
 */
export function setupSeedling(database: Database, deviceId: string): HlcClock {
  setGenerator(() => globalThis.crypto.randomUUID());
  const clock = clocks.get(database) ?? new HlcClock(deviceId);
  clocks.set(database, clock);
  return clock;
}

/** The clock {@link setupSeedling} gave `database`, if any. */
export function clockOf(database: Database): HlcClock | undefined {
  return clocks.get(database);
}

/** Takes in the clocks of a raw record the server sent. */
export function observeClocks(database: Database, fieldClocks: unknown): void {
  const clock = clocks.get(database);
  if (!clock || typeof fieldClocks !== 'string' || !fieldClocks) return;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(fieldClocks) as Record<string, unknown>;
  } catch {
    return;
  }
  for (const text of Object.values(parsed)) {
    if (typeof text !== 'string') continue;
    try {
      clock.observe(parseHlc(text), Date.now());
    } catch {
      // A clock the server cannot have made: ignored.
    }
  }
}

type Raw = Record<string, unknown>;

/** Stamps every record column that differs from `before`. */
function stamp(record: Model, before: Raw): void {
  const clock = clocks.get(record.collection.database);
  const fields = FIELDS[record.table as SeedlingTable];
  if (!clock || !fields) return;
  const raw = record._raw as unknown as Raw;
  let kept: Record<string, string> = {};
  try {
    kept = JSON.parse(String(raw['field_clocks'] || '{}')) as Record<string, string>;
  } catch {
    kept = {};
  }
  let changed = false;
  for (const column of Object.keys(fields)) {
    if ((raw[column] ?? null) !== (before[column] ?? null)) {
      kept[column] = formatHlc(clock.tick(Date.now()));
      changed = true;
    }
  }
  if (changed) raw['field_clocks'] = JSON.stringify(kept);
}

/** A WatermelonDB model whose local writes stamp their fields' clocks. */
export class SeedlingModel extends Model {
  override prepareUpdate(recordUpdater: (_: this) => void = () => {}): this {
    return super.prepareUpdate((record) => {
      const raw = record._raw;
      const before = { ...(raw as unknown as Raw) };
      recordUpdater(record);
      // Sync replaces the raw record whole: what it writes is the server's.
      if (record._raw === raw) stamp(record, before);
    });
  }

  static override _prepareCreate(collection: Collection<Model>, recordBuilder: (_: Model) => void): Model {
    return super._prepareCreate(collection, (record) => {
      recordBuilder(record);
      stamp(record, {});
    });
  }

  /** The server's version of this record (0 before the server has it). */
  get serverVersion(): number {
    return Number((this._raw as unknown as Raw)['server_version'] ?? 0);
  }
}

/** Defines a property per field of `table` on `cls`. */
function withFields<T extends typeof SeedlingModel>(cls: T, table: SeedlingTable): T {
  for (const [column, kind] of Object.entries(FIELDS[table])) {
    Object.defineProperty(cls.prototype, column, {
      configurable: true,
      get(this: Model) {
        const value = this._getRaw(column);
        if (kind !== 'json') return value;
        if (typeof value !== 'string' || value === '') return null;
        return JSON.parse(value) as unknown;
      },
      set(this: Model, value: unknown) {
        const raw = kind === 'json' ? (value === null || value === undefined ? null : JSON.stringify(value)) : value;
        this._setRaw(column, raw as string | number | null);
      },
    });
  }
  return cls;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/** A register entry: `name`, `category`, `village_id`, … (docs/SYNC-PROTOCOL.md §2). */
export class Child extends SeedlingModel {
  static override table = 'children';
  [field: string]: any;
}
/** A visit log: `child_id`, `kind`, `visited_at`, `needs` (items), `risk_flags` (items), … */
export class Visit extends SeedlingModel {
  static override table = 'visits';
  [field: string]: any;
}
/** An item of a child's case plan. */
export class CasePlanItem extends SeedlingModel {
  static override table = 'case_plan_items';
  [field: string]: any;
}
withFields(Child, 'children');
withFields(Visit, 'visits');
withFields(CasePlanItem, 'case_plan_items');

/** The three model classes, for `new Database({ modelClasses })`. */
export const seedlingModels = [Child, Visit, CasePlanItem];
