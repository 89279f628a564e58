/**
 * Pure record logic the phone runs: the plain values of a record, pending
 * mutations laid on top of the server's copy (the shadow), folding several
 * edits of one record into one mutation, the push order
 * (`sync_core::protocol::urgent_first`), the client's prediction of a
 * register or set merge, the targeted repair's plan and, after a restore,
 * the phone's own writes the server lost (checked against sync-core by the
 * shared vectors).
 */

import { compareHlc, nodeOf, parseHlc, tryParseHlc } from './hlc.ts';
import { fieldRule, mayWrite, rulesFor, uuidKey, type Actor, type Writers } from './rules.ts';
import type {
  CompactRecordWire,
  Entity,
  FieldChangeWire,
  FieldWire,
  ItemWire,
  Json,
  JsonObject,
  MutationWire,
  RecordWire,
  StampWire,
} from './wire.ts';

/** A field's plain value: a register's value or a set's items by id. */
export type PlainField = { kind: 'register'; value: Json } | { kind: 'items'; items: Map<string, JsonObject> };
export type PlainRecord = Map<string, PlainField>;

export function plainOf(rec: RecordWire | null | undefined): PlainRecord {
  const out: PlainRecord = new Map();
  if (!rec) return out;
  for (const [name, f] of Object.entries(rec.fields)) {
    if ('register' in f) out.set(name, { kind: 'register', value: f.register.value });
    else out.set(name, { kind: 'items', items: new Map(Object.entries(f.items).map(([id, it]) => [id, it.value])) });
  }
  return out;
}

export function isSetChange(c: FieldChangeWire): c is { hlc: string; add: JsonObject[]; remove: string[] } {
  return 'add' in c || 'remove' in c;
}

/** Lays a mutation on top of plain values (the way the server will take it when nothing concurrent happened). */
export function applyMutation(values: PlainRecord, m: MutationWire): void {
  for (const [name, change] of Object.entries(m.fields ?? {})) {
    if (isSetChange(change)) {
      const cur = values.get(name);
      const items = cur?.kind === 'items' ? new Map(cur.items) : new Map<string, JsonObject>();
      for (const id of change.remove ?? []) items.delete(id);
      for (const item of change.add ?? []) items.set(String(item['id']), item);
      values.set(name, { kind: 'items', items });
    } else {
      values.set(name, { kind: 'register', value: change.value });
    }
  }
}

/** `Field::value`: a register's value, or a set's items as an array ordered by id. */
export function fieldValue(f: PlainField | undefined): Json {
  if (!f) return null;
  if (f.kind === 'register') return f.value;
  return [...f.items.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

export function valueObject(values: PlainRecord): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [k, f] of values) out[k] = fieldValue(f);
  return out;
}

/** True when a mutation adds a risk flag marked `"urgent": true` (`Mutation::is_urgent`). */
export function isUrgentMutation(m: MutationWire): boolean {
  const c = m.fields?.['risk_flags'];
  if (!c) return false;
  if (isSetChange(c)) return (c.add ?? []).some((i) => i['urgent'] === true);
  return Array.isArray(c.value) && c.value.some((i) => isObj(i) && i['urgent'] === true);
}

function isObj(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Records with an urgent mutation first, each record's own order kept, otherwise unchanged. */
export function urgentFirst<T extends MutationWire>(mutations: T[]): T[] {
  const urgent = new Set(mutations.filter(isUrgentMutation).map((m) => m.record_id));
  return [...mutations.filter((m) => urgent.has(m.record_id)), ...mutations.filter((m) => !urgent.has(m.record_id))];
}

/**
 * Folds `later` (not yet sent) into `earlier` (not yet sent), both of one
 * record: registers replaced, set items combined. A create followed by a
 * delete cancels both: `null`.
 */
export function fold(earlier: MutationWire, later: MutationWire): MutationWire | null {
  if (later.op === 'delete') {
    if (earlier.op === 'create') return null;
    return { ...later, mutation_id: earlier.mutation_id, base_version: earlier.base_version };
  }
  const fields: Record<string, FieldChangeWire> = { ...(earlier.fields ?? {}) };
  for (const [name, change] of Object.entries(later.fields ?? {})) {
    const prev = fields[name];
    if (prev && isSetChange(prev) && isSetChange(change)) {
      const add = new Map<string, JsonObject>(prev.add.map((i) => [String(i['id']), i]));
      const remove = new Set(prev.remove);
      for (const id of change.remove) {
        const addedHere = add.delete(id);
        if (!addedHere || earlier.op !== 'create') remove.add(id);
      }
      for (const item of change.add) {
        add.set(String(item['id']), item);
        remove.delete(String(item['id']));
      }
      fields[name] = { hlc: change.hlc, add: [...add.values()], remove: earlier.op === 'create' ? [] : [...remove] };
    } else {
      fields[name] = change;
    }
  }
  return { ...earlier, hlc: later.hlc, fields };
}

/** The names of fields a list of pending mutations changes. */
export function changedFields(ms: MutationWire[]): string[] {
  const out = new Set<string>();
  for (const m of ms) for (const k of Object.keys(m.fields ?? {})) out.add(k);
  return [...out].sort();
}

/** JSON text with object keys sorted (serde_json's `Value` keeps keys sorted). */
export function canonicalJson(v: Json | undefined): string {
  if (v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObj(v)) {
    const keys = Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** What the client predicts a merge of one mutation's fields into a record gives (no authority checks). */
export interface MergePrediction {
  status: 'applied' | 'merged' | 'rejected';
  reason?: string;
  values: Record<string, Json>;
  conflicts: { field: string; item_id?: string; kind: string; winner: 'server' | 'client' }[];
}

function lwwClientWins(clientHlc: string, client: Json, serverHlc: string, server: Json): boolean {
  const c = compareHlc(parseHlc(clientHlc), parseHlc(serverHlc));
  if (c !== 0) return c > 0;
  return canonicalJson(client) > canonicalJson(server);
}

/**
 * The per-field three-way merge of SYNC-PROTOCOL.md §2 for registers and
 * add-wins sets, so the phone can tell the director what will win.
 */
export function predictMerge(current: RecordWire, m: MutationWire): MergePrediction {
  const conflicts: MergePrediction['conflicts'] = [];
  const values = plainOf(current);
  const review = current.fields['review_status'];
  if (current.entity === 'visit' && review && 'register' in review && review.register.value === 'approved') {
    return { status: 'rejected', reason: 'locked', values: valueObject(values), conflicts };
  }
  const base = m.base_version;
  for (const [name, change] of Object.entries(m.fields ?? {})) {
    const f = current.fields[name];
    if (isSetChange(change)) {
      const stored = f && 'items' in f ? f.items : {};
      const items = new Map<string, JsonObject>(Object.entries(stored).map(([id, it]) => [id, it.value]));
      for (const id of change.remove ?? []) {
        const it = stored[id];
        if (!it) continue;
        if (it.version <= base) items.delete(id);
        else conflicts.push({ field: name, item_id: id, kind: 'remove_vs_update', winner: 'server' });
      }
      for (const item of change.add ?? []) {
        const id = String(item['id']);
        const it = stored[id];
        if (it && !sameJson(it.value, item) && it.version > base) {
          const clientWins = lwwClientWins(change.hlc, item, it.hlc, it.value);
          conflicts.push({ field: name, item_id: id, kind: 'concurrent_item_write', winner: clientWins ? 'client' : 'server' });
          if (!clientWins) continue;
        }
        items.set(id, item);
      }
      values.set(name, { kind: 'items', items });
    } else {
      const cur = f && 'register' in f ? f.register : undefined;
      if (cur && cur.version > base && !sameJson(cur.value, change.value)) {
        const clientWins = lwwClientWins(change.hlc, change.value, cur.hlc, cur.value);
        conflicts.push({ field: name, kind: 'concurrent_write', winner: clientWins ? 'client' : 'server' });
        if (!clientWins) continue;
      }
      values.set(name, { kind: 'register', value: change.value });
    }
  }
  return { status: conflicts.length ? 'merged' : 'applied', values: valueObject(values), conflicts };
}

const ENTITY_ORDER: Record<string, number> = { child: 0, visit: 1, case_plan_item: 2 };

function compareRef(a: { entity: string; id: string }, b: { entity: string; id: string }): number {
  const e = (ENTITY_ORDER[a.entity] ?? 9) - (ENTITY_ORDER[b.entity] ?? 9);
  if (e !== 0) return e;
  const x = a.id.toLowerCase();
  const y = b.id.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * `sync_core::protocol::Repair::between`: from the server's manifest and
 * the phone's live shadow copies, the records to fetch (missing or at
 * another version) and to drop (held but not in the scope), each sorted by
 * entity then id.
 */
export function repairBetween(
  server: Iterable<[Entity, string, number]>,
  device: Iterable<{ entity: Entity; id: string; version: number }>,
): { fetch: { entity: Entity; id: string }[]; drop: { entity: Entity; id: string }[] } {
  const key = (e: string, id: string) => `${e}:${id.toLowerCase()}`;
  const held = new Map<string, { entity: Entity; id: string; version: number }>();
  for (const d of device) held.set(key(d.entity, d.id), d);
  const fetch: { entity: Entity; id: string }[] = [];
  for (const [entity, id, version] of server) {
    const k = key(entity, id);
    const mine = held.get(k);
    held.delete(k);
    if (mine?.version !== version) fetch.push({ entity, id });
  }
  const drop = [...held.values()].map(({ entity, id }) => ({ entity, id }));
  return { fetch: fetch.sort(compareRef), drop: drop.sort(compareRef) };
}

// ---------------------------------------------------------------- after a restore

/**
 * One write to send again after a restore (`sync_core::protocol::LostWrite`):
 * a mutation without its id — the phone gives it one and keeps it in its
 * outbox, so resending it is idempotent.
 */
export interface LostWrite {
  /** Create when the server lacks the record, else update (or delete). */
  op: MutationWire['op'];
  /** The server's version the write is based on (0 for a create). */
  base_version: number;
  /** The latest clock among the fields (the mutation's clock). */
  hlc: string;
  /** The fields, each with the clock of its original write. */
  fields: Record<string, FieldChangeWire>;
}

/**
 * The server's copy of a record as this phone last knew it: the copy it
 * holds (`shadow`) with the mutations the server acknowledged since
 * (`acked`, not yet pulled back) laid on, each field at its mutation's
 * clock and answered version. What `lostWrites` compares with a restored
 * server's copy; null when the server never acknowledged the record.
 */
export function acknowledgedCopy(
  entity: Entity,
  id: string,
  shadow: RecordWire | null,
  acked: { version: number; mutation: MutationWire }[],
): RecordWire | null {
  const later = acked.filter((a) => a.version > (shadow?.version ?? 0)).sort((a, b) => a.version - b.version);
  if (!shadow && later.length === 0) return null;
  const rec: RecordWire = shadow
    ? (JSON.parse(JSON.stringify(shadow)) as RecordWire)
    : { entity, id, version: 0, fields: {}, tombstone: null };
  for (const { version, mutation: m } of later) {
    rec.version = version;
    if (m.op === 'delete') {
      rec.tombstone = { hlc: m.hlc, version };
      continue;
    }
    if (m.op === 'create') rec.tombstone = null;
    for (const [name, change] of Object.entries(m.fields ?? {})) {
      if (isSetChange(change)) {
        const cur = rec.fields[name];
        const items: Record<string, ItemWire> = cur && 'items' in cur ? { ...cur.items } : {};
        for (const itemId of change.remove ?? []) delete items[itemId];
        for (const item of change.add ?? []) items[String(item['id'])] = { value: item, hlc: change.hlc, version };
        rec.fields[name] = { items };
      } else {
        rec.fields[name] = { register: { value: change.value, hlc: change.hlc, version } };
      }
    }
  }
  return rec;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const laterClock = (a: string, b: string) => compareHlc(parseHlc(a), parseHlc(b)) > 0;
const maxClock = (clocks: string[]): string | null =>
  clocks.reduce<string | null>((m, c) => (m === null || laterClock(c, m) ? c : m), null);
const minClock = (clocks: string[]): string | null =>
  clocks.reduce<string | null>((m, c) => (m === null || laterClock(m, c) ? c : m), null);
const itemsOf = (items: Record<string, ItemWire>) => Object.keys(items).sort(byText).map((k) => [k, items[k]!] as const);

/**
 * `sync_core::protocol::lost_writes`: the writes of `device` (acting as
 * `actor`) in `local` — the server's copy of the record as this phone last
 * held it — that the restored server's copy `server` (null: it lacks the
 * record) does not hold (docs/SYNC-PROTOCOL.md, "After a restore").
 *
 * - The server holds the record: every register whose clock names this
 *   device and is later than the server's, every set item likewise (one
 *   update per distinct clock of a set's items, the latest group travelling
 *   with the registers), and a delete this device made.
 * - The server lacks it, this device created it (wrote a field at version
 *   1) and its role may create it: one create with every field the role may
 *   write on create. A required field someone else wrote last (a
 *   supervisor's `approved`) takes the create value it followed from
 *   (`submitted`), at the device's first clock.
 * - Otherwise nothing: a record someone else created is theirs to redo.
 */
export function lostWrites(device: string, actor: Actor, local: RecordWire, server: RecordWire | null): LostWrite[] {
  const node = nodeOf(device);
  const mine = (hlc: string) => parseHlc(hlc).node === node;
  return server ? lostUpdates(mine, local, server) : lostCreate(mine, actor, local);
}

function lostUpdates(mine: (hlc: string) => boolean, local: RecordWire, server: RecordWire): LostWrite[] {
  const base = server.version;
  const registers: Record<string, FieldChangeWire> = {};
  // Item groups by (field, clock), in the order sync-core keys them.
  const groups = new Map<string, { name: string; hlc: string; add: JsonObject[] }>();
  for (const name of Object.keys(local.fields).sort(byText)) {
    const field = local.fields[name]!;
    const theirs = server.fields[name];
    if ('register' in field) {
      const reg = field.register;
      if (!mine(reg.hlc)) continue;
      const newer = theirs && 'register' in theirs ? laterClock(reg.hlc, theirs.register.hlc) : true;
      if (newer) registers[name] = { hlc: reg.hlc, value: reg.value };
    } else {
      const theirItems = theirs && 'items' in theirs ? theirs.items : null;
      for (const [key, item] of itemsOf(field.items)) {
        const other = theirItems?.[key];
        if (!mine(item.hlc) || (other && !laterClock(item.hlc, other.hlc))) continue;
        const k = `${name}\u0000${item.hlc}`;
        const g = groups.get(k) ?? { name, hlc: item.hlc, add: [] };
        g.add.push(item.value);
        groups.set(k, g);
      }
    }
  }
  const update = (fields: Record<string, FieldChangeWire>): LostWrite => ({
    op: 'update',
    base_version: base,
    hlc: maxClock(Object.values(fields).map((c) => c.hlc))!,
    fields,
  });
  const writes: LostWrite[] = [];
  const first = { ...registers };
  const later: { name: string; hlc: string; add: JsonObject[] }[] = [];
  const ordered = [...groups.values()].sort((a, b) => byText(b.name, a.name) || compareHlc(parseHlc(b.hlc), parseHlc(a.hlc)));
  for (const g of ordered) {
    if (g.name in first) later.push(g);
    else first[g.name] = { hlc: g.hlc, add: g.add, remove: [] };
  }
  if (Object.keys(first).length) writes.push(update(first));
  later.sort((a, b) => compareHlc(parseHlc(a.hlc), parseHlc(b.hlc)));
  for (const g of later) writes.push(update({ [g.name]: { hlc: g.hlc, add: g.add, remove: [] } }));
  if (local.tombstone && mine(local.tombstone.hlc) && !server.tombstone) {
    writes.push({ op: 'delete', base_version: base, hlc: local.tombstone.hlc, fields: {} });
  }
  return writes;
}

function lostCreate(mine: (hlc: string) => boolean, actor: Actor, local: RecordWire): LostWrite[] {
  const rules = rulesFor(local.entity);
  if (local.tombstone) return [];
  // This device created the record when it wrote one of its fields at the
  // first version; its first clock is the earliest of those.
  const clocks = Object.values(local.fields).flatMap((field) =>
    'register' in field ? [field.register] : Object.values(field.items),
  );
  const createdAt = minClock(clocks.filter((c) => mine(c.hlc) && c.version <= 1).map((c) => c.hlc));
  if (createdAt === null) return [];
  const authorField = rules.authorField ? local.fields[rules.authorField] : undefined;
  const author = authorField && 'register' in authorField ? uuidKey(authorField.register.value) : null;
  if (!mayWrite(rules.create, actor, author, undefined, undefined)) return [];
  const fields: Record<string, FieldChangeWire> = {};
  for (const name of Object.keys(local.fields).sort(byText)) {
    const rule = fieldRule(rules, name);
    if (!rule) continue;
    const field = local.fields[name]!;
    if ('register' in field) {
      const reg = field.register;
      if (mayWrite(rule.writers, actor, author, undefined, reg.value)) {
        fields[name] = { hlc: reg.hlc, value: reg.value };
      } else if (rule.required) {
        const value = createValueBefore(rule.writers, actor, typeof reg.value === 'string' ? reg.value : null);
        if (value !== null) fields[name] = { hlc: createdAt, value };
      }
    } else if (mayWrite(rule.writers, actor, author, undefined, undefined)) {
      const items = itemsOf(field.items);
      const latest = maxClock(items.map(([, it]) => it.hlc));
      if (latest !== null) fields[name] = { hlc: latest, add: items.map(([, it]) => it.value), remove: [] };
    }
  }
  // A required field the role may not give any value: the server would
  // refuse the create, so it is not sent.
  const complete = rules.fields.filter((r) => r.required).every((r) => r.name in fields);
  if (!complete || Object.keys(fields).length === 0) return [];
  return [{ op: 'create', base_version: 0, hlc: maxClock(Object.values(fields).map((c) => c.hlc)) ?? createdAt, fields }];
}

/**
 * The value `actor` may create a transition-ruled field with from which
 * someone moved it to `now` (`submitted`, before `approved`); else the
 * first value it may create it with.
 */
function createValueBefore(writers: Writers, actor: Actor, now: string | null): string | null {
  if (!('transitions' in writers)) return null;
  const list = writers.transitions;
  const creatable = list.filter((t) => t.role === actor.role && t.from === null).map((t) => t.to);
  return creatable.find((v) => list.some((t) => t.from === v && t.to === now)) ?? creatable[0] ?? null;
}

/** A plain JSON object (not null, not an array). */
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The whole record a compact pull record stands for
 * (`sync_core::protocol::CompactRecord::into_record`): every field and set
 * item at its stamp in `clocks`, or else at the record's `clock`. Throws on
 * what sync-core refuses, as its shared vectors list: `values`, `sets` or
 * `clocks` that are not objects, a set that is not an array, a stamp that
 * is not `[clock, version]`; a field both a register and a set, a set item
 * without a string `id` or named twice, a stamp for a field or item the
 * record does not carry, a field with no stamp at all.
 */
export function recordOfCompact(c: CompactRecordWire): RecordWire {
  const bad = (field: string, why: string): never => {
    throw new Error(`${c.entity} ${c.id}, field ${field}: ${why}`);
  };
  const stamp = (field: string, v: unknown): StampWire => {
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || !tryParseHlc(v[0])) bad(field, 'a stamp must be [clock, version]');
    const [hlc, version] = v as [string, unknown];
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) bad(field, 'a stamp must be [clock, version]');
    return [hlc, version as number];
  };
  const objectOr = (v: unknown, what: string): Record<string, unknown> => {
    if (v === undefined) return {};
    if (!isObject(v)) bad(what, 'must be an object');
    return v as Record<string, unknown>;
  };
  const clock = c.clock === undefined || c.clock === null ? undefined : stamp('clock', c.clock);
  const clocks = new Map(Object.entries(objectOr(c.clocks, 'clocks')));
  const stampOf = (field: string, own: StampWire | undefined): StampWire => own ?? clock ?? bad(field, 'no clock for this field, and the record has none');
  // Maps, then own properties: an item id such as `constructor` is data, never a prototype's.
  const fields = new Map<string, FieldWire>();
  for (const [name, value] of Object.entries(objectOr(c.values, 'values'))) {
    const own = clocks.get(name);
    clocks.delete(name);
    if (own !== undefined && !Array.isArray(own)) bad(name, 'item clocks for a field that is not a set');
    const [hlc, version] = stampOf(name, own === undefined ? undefined : stamp(name, own));
    fields.set(name, { register: { value: value as Json, hlc, version } });
  }
  for (const [name, list] of Object.entries(objectOr(c.sets, 'sets'))) {
    if (fields.has(name)) bad(name, 'a field both in values and in sets');
    if (!Array.isArray(list)) bad(name, 'a set must be an array of items');
    const own = clocks.has(name) ? clocks.get(name) : {};
    clocks.delete(name);
    if (!isObject(own)) bad(name, Array.isArray(own) ? 'a register clock for a set' : 'item clocks must be an object');
    const stamps = new Map(Object.entries(own as Record<string, unknown>).map(([id, v]) => [id, stamp(name, v)]));
    const items = new Map<string, ItemWire>();
    for (const value of list as unknown[]) {
      const key = isObject(value) ? value['id'] : undefined;
      if (typeof key !== 'string') bad(name, 'a set item without a string id');
      const id = key as string;
      if (items.has(id)) bad(name, 'a set item named twice');
      const [hlc, version] = stampOf(name, stamps.get(id));
      stamps.delete(id);
      items.set(id, { value: value as JsonObject, hlc, version });
    }
    for (const id of stamps.keys()) bad(name, `a clock for item \`${id}\`, not in the set`);
    fields.set(name, { items: Object.fromEntries(items) });
  }
  for (const name of clocks.keys()) bad(name, 'a clock for a field the record does not carry');
  const out: RecordWire = { entity: c.entity, id: c.id, version: c.version, fields: Object.fromEntries(fields) };
  if (c.tombstone) out.tombstone = c.tombstone;
  return out;
}
