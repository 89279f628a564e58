/**
 * The TypeScript implementation against every vector sync-core wrote to
 * sync-core/tests/vectors/client.json (sync-core/tests/vectors.rs).
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';

import { ScopeChecksum, fnv1a64, recordHash } from '../src/checksum.ts';
import { DEFAULT_VISIT_INTERVALS, dueDate, dueStatus } from '../src/due.ts';
import { HlcClock, compareHlc, formatHlc, parseHlc } from '../src/hlc.ts';
import { isSetChange, isUrgentMutation, lostWrites, predictMerge, recordOfCompact, repairBetween, urgentFirst } from '../src/records.ts';
import { rulesFor } from '../src/rules.ts';
import type { CompactRecordWire, Entity, MutationWire, RecordWire } from '../src/wire.ts';

const V = JSON.parse(
  readFileSync(resolve(import.meta.dirname, '../../sync-core/tests/vectors/client.json'), 'utf8'),
) as any;

describe('shared vectors: clocks', () => {
  test('text round trips', () => {
    assert.ok(V.hlc.round_trips.length >= 5);
    for (const v of V.hlc.round_trips) {
      const h = parseHlc(v.text);
      assert.deepEqual(h, { wallMs: v.wall_ms, counter: v.counter, node: v.node });
      assert.equal(formatHlc(h), v.text);
    }
  });

  test('malformed text is refused as sync-core refuses it', () => {
    for (const t of V.hlc.invalid) assert.throws(() => parseHlc(t), `${t} must not parse`);
  });

  test('ordering, and text order equals clock order', () => {
    for (const [a, b, want] of V.hlc.ordering) {
      assert.equal(compareHlc(parseHlc(a), parseHlc(b)), want, `${a} vs ${b}`);
      assert.equal(a < b ? -1 : a > b ? 1 : 0, want);
    }
  });

  test('tick and observe, with the skew bound', () => {
    let skewedSeen = 0;
    for (const run of V.hlc.clock_runs) {
      const clock = run.start ? HlcClock.resume(parseHlc(run.start), run.max_skew_ms) : new HlcClock(run.node, run.max_skew_ms);
      for (const step of run.steps) {
        if (step.op === 'tick') {
          assert.equal(formatHlc(clock.tick(step.now)), step.expect, `tick at ${step.now}`);
        } else {
          const seen = clock.observe(parseHlc(step.remote), step.now);
          assert.equal(formatHlc(seen.local), step.expect, `observe ${step.remote} at ${step.now}`);
          assert.equal(seen.skewed, step.skewed);
          if (seen.skewed) skewedSeen++;
        }
      }
    }
    assert.ok(skewedSeen >= 2, 'the vectors exercise the skew bound');
  });
});

describe('shared vectors: scope checksum', () => {
  const hex = (s: string) => new Uint8Array((s.match(/../g) ?? []).map((b) => parseInt(b, 16)));
  test('FNV-1a 64', () => {
    for (const v of V.checksum.fnv1a64) assert.equal(fnv1a64(hex(v.bytes_hex)).toString(16).padStart(16, '0'), v.hash);
  });
  test('record hashes', () => {
    for (const r of V.checksum.records) {
      assert.equal(recordHash(r.entity, r.id, r.version).toString(16).padStart(16, '0'), r.hash);
    }
  });
  test('checksums of record sets', () => {
    for (const set of V.checksum.sets) {
      const recs = set.records.map((i: number) => V.checksum.records[i] as { entity: Entity; id: string; version: number });
      assert.deepEqual(ScopeChecksum.of(recs).toWire(), set.checksum);
      assert.ok(ScopeChecksum.of(recs).equals(set.checksum));
    }
  });
});

describe('shared vectors: due rule', () => {
  test('the default intervals are sync-core’s', () => {
    assert.deepEqual(DEFAULT_VISIT_INTERVALS.byCategory, V.due.intervals.by_category);
    assert.equal(DEFAULT_VISIT_INTERVALS.fallbackDays, V.due.intervals.fallback_days);
  });
  test('due date and status on a table of inputs', () => {
    const states = new Set<string>();
    for (const c of V.due.cases) {
      const input = {
        category: c.category,
        active: c.active,
        intervalOverrideDays: c.interval_override_days,
        registeredOn: c.registered_on,
        lastVisitOn: c.last_visit_on,
      };
      assert.equal(dueDate(input), c.due_date, JSON.stringify(c));
      assert.deepEqual(dueStatus(input, c.today), c.status, JSON.stringify(c));
      states.add(c.status.state);
    }
    assert.deepEqual([...states].sort(), ['due_today', 'not_tracked', 'overdue', 'upcoming']);
  });
});

describe('shared vectors: mutations', () => {
  test('encoded mutations have the shape the SDK writes, and urgency agrees', () => {
    for (const { mutation, is_urgent } of V.mutations.encoded as { mutation: MutationWire; is_urgent: boolean }[]) {
      assert.equal(isUrgentMutation(mutation), is_urgent);
      parseHlc(mutation.hlc);
      for (const change of Object.values(mutation.fields ?? {})) {
        parseHlc(change.hlc);
        if (isSetChange(change)) assert.ok(Array.isArray(change.add) && Array.isArray(change.remove));
        else assert.ok('value' in change);
      }
      if (mutation.op === 'delete') assert.equal(mutation.fields, undefined, 'a delete has no fields');
    }
  });
  test('urgent_first', () => {
    const input = V.mutations.urgent_first.input as MutationWire[];
    assert.deepEqual(
      urgentFirst(input).map((m) => m.mutation_id),
      V.mutations.urgent_first.output,
    );
  });
});

describe('shared vectors: merges the client predicts', () => {
  for (const c of V.merges as { name: string; current: RecordWire; mutation: MutationWire; verdict: any; values: any; conflicts: any[] }[]) {
    test(c.name, () => {
      const p = predictMerge(c.current, c.mutation);
      assert.equal(p.status, c.verdict.status);
      if (c.verdict.reason) assert.equal(p.reason, c.verdict.reason);
      assert.deepEqual(p.values, c.values);
      assert.deepEqual(
        p.conflicts.map((x) => ({ field: x.field, item_id: x.item_id ?? null, kind: x.kind, winner: x.winner })),
        c.conflicts,
      );
    });
  }
});

describe('shared vectors: targeted repair', () => {
  test('Repair::between: what to fetch and what to drop', () => {
    assert.ok(V.repair.length >= 4);
    for (const c of V.repair) {
      const plan = repairBetween(c.manifest, c.device);
      assert.deepEqual(plan.fetch, c.fetch);
      assert.deepEqual(plan.drop, c.drop);
    }
  });
});

describe('shared vectors: who may write what', () => {
  test("the phone's rule table is sync-core's", () => {
    assert.equal(V.rules.length, 3);
    for (const want of V.rules) {
      const mine = rulesFor(want.entity);
      assert.deepEqual(mine.create, want.create, `who may create a ${want.entity}`);
      assert.equal(mine.authorField, want.author_field);
      assert.deepEqual(mine.fields, want.fields, `the fields of a ${want.entity}`);
    }
  });
});

describe('shared vectors: the writes a phone sends again after a restore', () => {
  for (const c of V.lost_writes as { name: string; device: string; actor: { user_id: string; role: string }; local: RecordWire; server: RecordWire | null; writes: unknown[] }[]) {
    test(c.name, () => {
      const got = lostWrites(c.device, { userId: c.actor.user_id, role: c.actor.role }, c.local, c.server);
      assert.deepEqual(got, c.writes);
    });
  }
  test('the vectors cover creates, updates, deletes and refusals', () => {
    const ops = new Set((V.lost_writes as { writes: { op: string }[] }[]).flatMap((c) => c.writes.map((w) => w.op)));
    assert.deepEqual([...ops].sort(), ['create', 'delete', 'update']);
    assert.ok((V.lost_writes as { writes: unknown[] }[]).filter((c) => c.writes.length === 0).length >= 5);
  });
});

describe('shared vectors: the compact pull encoding', () => {
  const pairs = V.compact.pairs as { name: string; record: RecordWire; compact: CompactRecordWire }[];
  for (const c of pairs) {
    test(`${c.name} reads back whole`, () => {
      assert.deepEqual(recordOfCompact(c.compact), c.record);
    });
  }
  test('the vectors cover one clock, mixed clocks, a tombstone and no field at all', () => {
    assert.ok(pairs.some((c) => !c.compact.clocks && c.compact.clock));
    assert.ok(pairs.some((c) => c.compact.clocks && Object.keys(c.compact.clocks).length > 0));
    assert.ok(pairs.some((c) => c.compact.tombstone));
    assert.ok(pairs.some((c) => !c.compact.clock));
  });
  for (const c of [...V.compact.refused, ...V.compact.unreadable] as { name: string; compact: CompactRecordWire }[]) {
    test(`refused as sync-core refuses it: ${c.name}`, () => {
      // The decoder's own refusal (it names the record), not a TypeError on the way.
      assert.throws(() => recordOfCompact(c.compact), (e: unknown) => e instanceof Error && !(e instanceof TypeError) && e.message.startsWith('visit '));
    });
  }
  test('an item id that names a prototype property is data', () => {
    const stamp: [string, number] = ['000000000001000-00000000-0f8e6a523f6e4c1e9d554c7a2b1d9e01', 1];
    const r = recordOfCompact({ entity: 'visit', id: 'x', version: 1, clock: stamp, sets: { needs: [{ id: 'constructor' }, { id: '__proto__' }] } });
    const items = (r.fields['needs'] as { items: Record<string, unknown> }).items;
    assert.deepEqual(Object.keys(items).sort(), ['__proto__', 'constructor']);
  });
});
