/**
 * What an edit of a visit sends: the pure part of `saveVisit`. From what
 * the phone shows now and what the app passes in, the field changes of one
 * mutation — a create with every field, or an update with only the fields
 * that changed (registers by value, set items added or changed by id and
 * ids removed) — and `review_status` moved to `submitted` when asked.
 */

import { uuid } from './crypto.ts';
import { isUrgentRiskFlag } from './labels.ts';
import { sameJson } from './records.ts';
import { SeedlingError, type VisitInput } from './types.ts';
import type { FieldChangeWire, Json, JsonObject, MutationWire } from './wire.ts';

/** Register fields of a visit the author edits. */
export const VISIT_REGISTERS = ['kind', 'visited_at', 'location', 'observations', 'follow_up', 'next_planned_date'] as const;
/** Add-wins set fields of a visit. */
export const VISIT_SETS = ['needs', 'risk_flags', 'photos'] as const;

export interface VisitEditContext {
  /** The signed-in director (the author). */
  me: string;
  deviceId: string;
  /** The clock of this edit. */
  hlc: string;
  /** The visit as the phone shows it, or null for a new one. */
  current: Record<string, Json> | null;
  /** The server never stored it (its create was refused): send it whole again. */
  recreate: boolean;
  /** The child's village, for a create. */
  childVillageId: string | null;
}

/**
 * Whether an edited register holds what the record holds. `visited_at` is
 * an instant: the server writes `…:00Z` for what a form writes as
 * `…:00.000Z`, and resending an unchanged time would be a change (and a
 * conflict when another phone edits the visit too).
 */
function sameValue(field: string, before: Json, after: Json): boolean {
  if (field === 'visited_at' && typeof before === 'string' && typeof after === 'string') {
    const a = Date.parse(before);
    const b = Date.parse(after);
    if (!Number.isNaN(a) && !Number.isNaN(b)) return a === b;
  }
  return sameJson(before, after);
}

export function visitChanges(
  input: VisitInput,
  submit: boolean,
  cx: VisitEditContext,
): { op: MutationWire['op']; fields: Record<string, FieldChangeWire> } {
  const { hlc, current } = cx;
  const fields: Record<string, FieldChangeWire> = {};
  const norm = normaliseSets(input);
  if (!current || cx.recreate) {
    if (!input.kind || !input.visited_at) throw new SeedlingError('missing_required_field', '请填写走访方式和时间');
    const regs: Record<string, Json> = {
      child_id: input.child_id,
      author_id: cx.me,
      village_id: cx.childVillageId,
      device_id: cx.deviceId,
      review_status: submit ? 'submitted' : 'draft',
    };
    for (const k of VISIT_REGISTERS) {
      const v = input[k] !== undefined ? (input[k] as Json) : current?.[k];
      if (v !== undefined && v !== null) regs[k] = v;
    }
    for (const [k, v] of Object.entries(regs)) fields[k] = { hlc, value: v };
    for (const k of VISIT_SETS) {
      const items = norm[k] ?? ((current?.[k] as JsonObject[] | undefined) ?? []);
      if (items.length) fields[k] = { hlc, add: items, remove: [] };
    }
    return { op: 'create', fields };
  }
  if (current['author_id'] !== cx.me) throw new SeedlingError('not_author', '只能修改自己的走访记录');
  if (current['child_id'] !== input.child_id) throw new SeedlingError('immutable_field', '走访对象不能更改');
  if (current['review_status'] === 'approved') throw new SeedlingError('locked', '该走访记录已审核通过，不能再修改');
  for (const k of VISIT_REGISTERS) {
    if (input[k] === undefined) continue;
    if (!sameValue(k, current[k] ?? null, input[k] as Json)) fields[k] = { hlc, value: input[k] as Json };
  }
  for (const k of VISIT_SETS) {
    const items = norm[k];
    if (!items) continue;
    const before = new Map(((current[k] as JsonObject[] | null) ?? []).map((i) => [String(i['id']), i] as const));
    const after = new Map(items.map((i) => [String(i['id']), i] as const));
    const add = items.filter((i) => !sameJson(before.get(String(i['id'])), i));
    const remove = [...before.keys()].filter((id) => !after.has(id));
    if (add.length || remove.length) fields[k] = { hlc, add, remove };
  }
  const review = current['review_status'];
  if (submit && (review === 'draft' || review === 'returned')) fields['review_status'] = { hlc, value: 'submitted' };
  return { op: 'update', fields };
}

/** Items of the set fields with their `id`s (made when missing), and urgent risk flags marked `"urgent": true`. */
function normaliseSets(input: VisitInput): Partial<Record<(typeof VISIT_SETS)[number], JsonObject[]>> {
  const out: Partial<Record<(typeof VISIT_SETS)[number], JsonObject[]>> = {};
  for (const k of VISIT_SETS) {
    const items = input[k];
    if (!items) continue;
    out[k] = items.map((raw) => {
      const item = { ...(raw as unknown as JsonObject) };
      if (typeof item['id'] !== 'string' || !item['id']) item['id'] = uuid();
      if (k === 'risk_flags' && typeof item['kind'] === 'string' && isUrgentRiskFlag(item['kind'])) item['urgent'] = true;
      for (const key of Object.keys(item)) if (item[key] === undefined) delete item[key];
      return item;
    });
  }
  return out;
}
