/**
 * The per-field clocks of a document and RxDB's conflict handler.
 *
 * {@link installClockHooks} keeps `field_clocks`: on insert every field
 * set gets the device's next clock; on save every field whose value changed
 * does (for a set, the set's entry). The server takes each changed field
 * with its clock, so a write made through RxDB without the hooks is stamped
 * when it arrives instead — still kept, but ordered by arrival.
 *
 * {@link seedlingConflictHandler} is the handler every Seedling collection
 * must use: the server has already merged, field by field, and keeps any
 * losing value in its conflict queue, so the device takes the server's
 * state.
 */

import type { RxCollection, RxConflictHandler } from 'rxdb';

import type { Clock } from './clock.ts';

/** Keys of a document that are not record fields. */
export function isRecordField(key: string): boolean {
  return !(key === 'id' || key === 'server_version' || key === 'field_clocks' || key === 'purged' || key.startsWith('_'));
}

function canonical(value: unknown): string {
  return JSON.stringify(value ?? null, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Stamps the fields a local write sets or changes with the device's clock. */
export function installClockHooks(collection: RxCollection<any>, clock: Clock): void {
  collection.preInsert((data: Record<string, unknown>) => {
    const clocks: Record<string, string> = { ...((data['field_clocks'] as Record<string, string>) ?? {}) };
    for (const [key, value] of Object.entries(data)) {
      if (isRecordField(key) && value !== null && value !== undefined) clocks[key] = clock.tick();
    }
    data['field_clocks'] = clocks;
  }, false);
  collection.preSave((data: Record<string, unknown>, previous: unknown) => {
    const before: Record<string, unknown> =
      previous && typeof (previous as { toJSON?: unknown }).toJSON === 'function'
        ? (previous as { toJSON(withMeta: boolean): Record<string, unknown> }).toJSON(true)
        : ((previous as Record<string, unknown>) ?? {});
    const clocks: Record<string, string> = { ...((data['field_clocks'] as Record<string, string>) ?? {}) };
    for (const key of new Set([...Object.keys(before), ...Object.keys(data)])) {
      if (isRecordField(key) && canonical(before[key]) !== canonical(data[key])) clocks[key] = clock.tick();
    }
    data['field_clocks'] = clocks;
  }, false);
}

/** Takes the server's state: it already merged (see the module doc). */
export const seedlingConflictHandler: RxConflictHandler<any> = {
  isEqual(a, b) {
    const strip = (d: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(d).filter(([k]) => k !== '_meta' && k !== '_rev' && k !== '_attachments'));
    return canonical(strip(a as Record<string, unknown>)) === canonical(strip(b as Record<string, unknown>));
  },
  resolve(input) {
    return input.realMasterState;
  },
};
