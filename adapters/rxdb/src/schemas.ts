/**
 * The RxDB schemas of Seedling's collections. A document is the record's
 * fields as plain JSON values (sets — a visit's `needs`, `risk_flags`,
 * `photos` — as arrays of items, each with a string `id`), plus:
 *
 * - `id`: the record's UUID, the primary key (made by the device that creates it);
 * - `server_version`: the server's version of the record, the base of the next edit;
 * - `field_clocks`: field name → the HLC text of its last write, kept by
 *   {@link installClockHooks};
 * - `purged`: set on a deleted document the server purged (`left_scope`), or
 *   on a create it refused (`refused`).
 *
 * RxDB refuses top-level names starting with `_` (other than `_deleted`),
 * hence `server_version` and `field_clocks`. No field is `required` beyond
 * `id`: purge notices carry nothing else, and the server checks what a record
 * needs.
 */

import type { RxJsonSchema } from 'rxdb';

type Prop = Record<string, unknown>;
const text: Prop = { type: ['string', 'null'] };
const num: Prop = { type: ['number', 'null'] };
const items: Prop = { type: 'array', items: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } };
const any: Prop = {};

const meta = {
  id: { type: 'string', maxLength: 36 },
  server_version: { type: 'number' },
  field_clocks: { type: 'object' },
  purged: { type: 'string' },
};

function schema(title: string, fields: Record<string, Prop>): RxJsonSchema<any> {
  return {
    title,
    version: 0,
    primaryKey: 'id',
    type: 'object',
    properties: { ...meta, ...fields },
    required: ['id'],
  } as RxJsonSchema<any>;
}

export const childSchema = schema('seedling child', {
  name: text, gender: text, birth_date: text, id_number: text, category: text, status: text,
  exit_reason: text, exit_date: text, village_id: text, guardian_name: text, guardian_relation: text,
  guardian_phone: text, address: text, school: text, health_notes: text, disability_notes: text,
  benefit_standard_cny: num, visit_interval_days: num, external_id: text,
});

export const visitSchema = schema('seedling visit', {
  child_id: text, author_id: text, device_id: text, village_id: text, kind: text, visited_at: text,
  location: any, observations: any, needs: items, risk_flags: items, photos: items, follow_up: text,
  next_planned_date: text, review_status: text, review_comment: text,
});

export const casePlanItemSchema = schema('seedling case plan item', {
  child_id: text, village_id: text, area: text, description: text, status: text, owner: text, due_date: text,
});

/** The read-only copy of the conflict queue of the device's scope. */
export const conflictSchema: RxJsonSchema<any> = {
  title: 'seedling conflict',
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 36 },
    entity: { type: 'string' }, record_id: { type: 'string' }, field: text, kind: { type: 'string' },
    rule: text, winner: text, local_value: any, remote_value: any, status: { type: 'string' },
    created_at: { type: 'string' },
  },
  required: ['id'],
} as RxJsonSchema<any>;

/** Collection name → schema, ready for `db.addCollections`. */
export const seedlingSchemas = {
  children: childSchema,
  visits: visitSchema,
  case_plan_items: casePlanItemSchema,
  conflicts: conflictSchema,
} as const;

/** Collection name → the entity name of the sync protocol. */
export const ENTITY_OF: Record<string, string> = {
  children: 'child',
  visits: 'visit',
  case_plan_items: 'case_plan_item',
};
