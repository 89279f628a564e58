/**
 * The WatermelonDB tables of Seedling's records. A raw record is the
 * record's fields, each in a column of the field's name (docs/SYNC-PROTOCOL.md
 * §2), plus:
 *
 * - `id`: the record's UUID (made on the device: {@link setupSeedling}
 *   makes WatermelonDB's id generator a UUID one);
 * - `server_version`: the server's version of the record, the base of the
 *   next edit (null until the server has it); never write it;
 * - `field_clocks`: JSON text, field → the HLC text of its last write,
 *   kept by the model classes ({@link SeedlingModel}); never write it.
 *
 * WatermelonDB columns hold strings, numbers and booleans only, so an
 * object, a place or a set (a visit's `observations`, `location`, `needs`,
 * `risk_flags`, `photos`) is JSON text: the model classes read and write it
 * as a value. Every column is optional: a record need not have every field.
 */

import { appSchema, tableSchema, type AppSchema, type TableSchema } from '@nozbe/watermelondb';

/** How a field's value travels in its column. */
export type ColumnKind = 'text' | 'number' | 'json';

const t: ColumnKind = 'text';
const n: ColumnKind = 'number';
const j: ColumnKind = 'json';

/** Table → field → how it is kept. */
export const FIELDS: Record<SeedlingTable, Record<string, ColumnKind>> = {
  children: {
    name: t, gender: t, birth_date: t, id_number: t, category: t, status: t, exit_reason: t,
    exit_date: t, village_id: t, guardian_name: t, guardian_relation: t, guardian_phone: t,
    address: t, school: t, health_notes: t, disability_notes: t, benefit_standard_cny: n,
    visit_interval_days: n, external_id: t,
  },
  visits: {
    child_id: t, author_id: t, device_id: t, village_id: t, kind: t, visited_at: t, location: j,
    observations: j, needs: j, risk_flags: j, photos: j, follow_up: t, next_planned_date: t,
    review_status: t, review_comment: t,
  },
  case_plan_items: {
    child_id: t, village_id: t, area: t, description: t, status: t, owner: t, due_date: t,
  },
};

export type SeedlingTable = 'children' | 'visits' | 'case_plan_items';
export const TABLES: readonly SeedlingTable[] = ['children', 'visits', 'case_plan_items'];

/** Table → the entity name of the sync protocol. */
export const ENTITY_OF: Record<SeedlingTable, string> = {
  children: 'child',
  visits: 'visit',
  case_plan_items: 'case_plan_item',
};

const INDEXED = new Set(['child_id', 'village_id']);

function table(name: SeedlingTable): TableSchema {
  return tableSchema({
    name,
    columns: [
      { name: 'server_version', type: 'number', isOptional: true },
      { name: 'field_clocks', type: 'string', isOptional: true },
      ...Object.entries(FIELDS[name]).map(([column, kind]) => ({
        name: column,
        type: kind === 'number' ? ('number' as const) : ('string' as const),
        isOptional: true,
        ...(INDEXED.has(column) ? { isIndexed: true } : {}),
      })),
    ],
  });
}

/** The three tables, to put in the app's `appSchema`. */
export const seedlingTables: TableSchema[] = TABLES.map(table);

/** An `appSchema` of Seedling's tables only. */
export function seedlingSchema(version = 1): AppSchema {
  return appSchema({ version, tables: seedlingTables });
}

export function isSeedlingTable(name: string): name is SeedlingTable {
  return (TABLES as readonly string[]).includes(name);
}
