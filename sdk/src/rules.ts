/**
 * Who may write what: the part of `sync_core::rules` the phone needs to
 * decide which of its own writes it may send again after a restore
 * (`lostWrites` in records.ts). The server checks every write itself; this
 * table only keeps the phone from sending a write it would refuse. The
 * shared vectors (sync-core/tests/vectors/client.json, `rules`) hold
 * sync-core's table, and `test/vectors.test.ts` checks this one against it.
 */

import type { Entity, Json } from './wire.ts';

export type Role = 'director' | 'supervisor' | 'admin' | 'integration';

/** The authenticated author of a mutation (`sync_core::rules::Actor`). */
export interface Actor {
  userId: string;
  /** The role as the server names it; an unknown role may write nothing. */
  role: string;
}

/** One allowed value change: `role` may move the field from `from` (null = on create) to `to`. */
export interface Transition {
  role: Role;
  /** Only the record's author (with that role). */
  author: boolean;
  from: string | null;
  to: string;
}

/** `sync_core::rules::Writers`. */
export type Writers =
  /** Any actor whose role is listed. */
  | { roles: Role[] }
  /** Only the record's author, and only with a listed role. */
  | { author: Role[] }
  /** Only the listed value changes. */
  | { transitions: Transition[] };

export interface FieldRule {
  name: string;
  writers: Writers;
  /** Must be present and non-null on create. */
  required: boolean;
}

export interface EntityRules {
  entity: Entity;
  fields: FieldRule[];
  create: Writers;
  /** The field naming the record's author (for `author` writers). */
  authorField: string | null;
}

const AI: Role[] = ['admin', 'integration'];
const DAI: Role[] = ['director', 'admin', 'integration'];
const DSA: Role[] = ['director', 'supervisor', 'admin'];
const SA: Role[] = ['supervisor', 'admin'];
const AUTHOR: Writers = { author: ['director'] };

/** `sync_core::rules::REVIEW_TRANSITIONS`. */
export const REVIEW_TRANSITIONS: Transition[] = [
  { role: 'director', author: true, from: null, to: 'draft' },
  { role: 'director', author: true, from: null, to: 'submitted' },
  { role: 'director', author: true, from: 'draft', to: 'submitted' },
  { role: 'director', author: true, from: 'returned', to: 'submitted' },
  { role: 'supervisor', author: false, from: 'submitted', to: 'approved' },
  { role: 'supervisor', author: false, from: 'submitted', to: 'returned' },
];

const f = (name: string, writers: Writers, required = false): FieldRule => ({ name, writers, required });
const r = (roles: Role[]): Writers => ({ roles });

const CHILD: EntityRules = {
  entity: 'child',
  fields: [
    f('name', r(AI), true),
    f('gender', r(AI)),
    f('birth_date', r(AI), true),
    f('id_number', r(AI)),
    f('category', r(AI), true),
    f('status', r(AI), true),
    f('exit_reason', r(AI)),
    f('exit_date', r(AI)),
    f('village_id', r(AI), true),
    f('guardian_name', r(DAI)),
    f('guardian_relation', r(DAI)),
    f('guardian_phone', r(DAI)),
    f('address', r(DAI)),
    f('school', r(DAI)),
    f('health_notes', r(DAI)),
    f('disability_notes', r(DAI)),
    f('benefit_standard_cny', r(AI)),
    f('visit_interval_days', r(SA)),
    f('external_id', r(['integration'])),
  ],
  create: r(AI),
  authorField: null,
};

const VISIT: EntityRules = {
  entity: 'visit',
  fields: [
    f('child_id', AUTHOR, true),
    f('author_id', AUTHOR, true),
    f('device_id', AUTHOR),
    f('village_id', AUTHOR, true),
    f('kind', AUTHOR, true),
    f('visited_at', AUTHOR, true),
    f('location', AUTHOR),
    f('observations', AUTHOR),
    f('needs', AUTHOR),
    f('risk_flags', AUTHOR),
    f('photos', AUTHOR),
    f('follow_up', AUTHOR),
    f('next_planned_date', AUTHOR),
    f('review_status', { transitions: REVIEW_TRANSITIONS }, true),
    f('review_comment', r(['supervisor'])),
  ],
  create: r(['director']),
  authorField: 'author_id',
};

const CASE_PLAN_ITEM: EntityRules = {
  entity: 'case_plan_item',
  fields: [
    f('child_id', r(DSA), true),
    f('village_id', r(DSA), true),
    f('area', r(DSA), true),
    f('description', r(DSA), true),
    f('status', r(DSA), true),
    f('owner', r(DSA)),
    f('due_date', r(DSA)),
  ],
  create: r(DSA),
  authorField: null,
};

/** The rules of an entity (`sync_core::rules::rules_for`). */
export function rulesFor(entity: Entity): EntityRules {
  switch (entity) {
    case 'child':
      return CHILD;
    case 'visit':
      return VISIT;
    case 'case_plan_item':
      return CASE_PLAN_ITEM;
  }
}

export function fieldRule(rules: EntityRules, name: string): FieldRule | undefined {
  return rules.fields.find((x) => x.name === name);
}

/** A UUID in any common form as 32 lowercase hex digits, or null. */
export function uuidKey(text: Json | undefined): string | null {
  if (typeof text !== 'string') return null;
  const hex = text.replace(/^urn:uuid:/i, '').replace(/^\{(.*)\}$/, '$1').replace(/-/g, '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(hex) ? hex : null;
}

/**
 * `Writers::check`: may `actor` write `to` over `from` (undefined: on
 * create)? `author` is the record's author id as stored or given on create,
 * in `uuidKey` form.
 */
export function mayWrite(writers: Writers, actor: Actor, author: string | null, from: Json | undefined, to: Json | undefined): boolean {
  const isAuthor = () => author !== null && author === uuidKey(actor.userId);
  if ('roles' in writers) return (writers.roles as string[]).includes(actor.role);
  if ('author' in writers) return (writers.author as string[]).includes(actor.role) && isAuthor();
  const was = typeof from === 'string' ? from : null;
  const now = typeof to === 'string' ? to : null;
  return writers.transitions.some(
    (t) => t.role === actor.role && t.from === was && now !== null && t.to === now && (!t.author || isAuthor()),
  );
}
