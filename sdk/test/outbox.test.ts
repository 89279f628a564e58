/** The outbox's pure rules: folding, cancelling, the round plan, the local view over the shadow. */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { visitChanges } from '../src/edits.ts';
import { fold } from '../src/records.ts';
import type { OutboxEntry } from '../src/store.ts';
import { planRound } from '../src/sync.ts';
import { localValues, type LoadedRecord } from '../src/views.ts';
import type { MutationWire, RecordWire } from '../src/wire.ts';

const H = (n: number) => `${String(n).padStart(15, '0')}-00000000-0f8e6a523f6e4c1e9d554c7a2b1d9e01`;
const ID = '3d6f0f5c-1b2a-4c3d-9e8f-7a6b5c4d3e2f';
const m = (op: MutationWire['op'], fields: MutationWire['fields'], t: number, base = 3, record = ID): MutationWire => ({
  mutation_id: `00000000-0000-4000-8000-${String(t).padStart(12, '0')}`,
  entity: 'visit',
  record_id: record,
  op,
  base_version: base,
  hlc: H(t),
  ...(fields ? { fields } : {}),
});

describe('folding edits before a push', () => {
  test('registers are replaced, set items combined, the first mutation id and base kept', () => {
    const a = m('update', { location: { hlc: H(1), value: 'home' }, needs: { hlc: H(1), add: [{ id: 'n1', area: 'study' }], remove: ['n0'] } }, 1);
    const b = m('update', { location: { hlc: H(2), value: 'school' }, needs: { hlc: H(2), add: [{ id: 'n0', area: 'living' }], remove: ['n1'] } }, 2, 4);
    const f = fold(a, b)!;
    assert.equal(f.mutation_id, a.mutation_id);
    assert.equal(f.base_version, 3);
    assert.equal(f.hlc, H(2));
    assert.deepEqual(f.fields!['location'], { hlc: H(2), value: 'school' });
    assert.deepEqual(f.fields!['needs'], { hlc: H(2), add: [{ id: 'n0', area: 'living' }], remove: ['n1'] });
  });

  test('an item added and removed inside one create never travels', () => {
    const c = m('create', { kind: { hlc: H(1), value: 'home_visit' }, needs: { hlc: H(1), add: [{ id: 'n1', area: 'study' }], remove: [] } }, 1, 0);
    const u = m('update', { needs: { hlc: H(2), add: [], remove: ['n1'] } }, 2, 0);
    const f = fold(c, u)!;
    assert.equal(f.op, 'create');
    assert.deepEqual(f.fields!['needs'], { hlc: H(2), add: [], remove: [] });
  });

  test('a create followed by a delete cancels both', () => {
    assert.equal(fold(m('create', { kind: { hlc: H(1), value: 'other' } }, 1, 0), m('delete', undefined, 2, 0)), null);
  });
});

describe('a push round', () => {
  test('sends the oldest mutation of each record, urgent records first', () => {
    const other = '11111111-1111-4111-8111-111111111111';
    const entries: OutboxEntry[] = [
      { seq: 1, attempts: 1, recordKey: `visit:${ID}`, mutation: m('update', { follow_up: { hlc: H(1), value: 'a' } }, 1) },
      { seq: 2, attempts: 0, recordKey: `visit:${ID}`, mutation: m('update', { follow_up: { hlc: H(2), value: 'b' } }, 2) },
      {
        seq: 3,
        attempts: 0,
        recordKey: `visit:${other}`,
        mutation: m('update', { risk_flags: { hlc: H(3), add: [{ id: 'r', kind: 'self_harm', urgent: true }], remove: [] } }, 3, 1, other),
      },
    ];
    assert.deepEqual(planRound(entries).map((e) => e.seq), [3, 1]);
  });
});

describe('the local view', () => {
  test('pending edits lie on top of the shadow; answered ones until the pull brings their version', () => {
    const shadow: RecordWire = {
      entity: 'visit',
      id: ID,
      version: 3,
      fields: {
        location: { register: { value: 'home', hlc: H(1), version: 1 } },
        follow_up: { register: { value: 'x', hlc: H(1), version: 1 } },
        needs: { items: { n1: { value: { id: 'n1', area: 'study' }, hlc: H(1), version: 2 } } },
      },
    };
    const r: LoadedRecord = {
      key: `visit:${ID}`,
      entity: 'visit',
      id: ID,
      body: { shadow, acked: [{ version: 4, mutation: m('update', { follow_up: { hlc: H(5), value: 'acked' } }, 5) }], issue: null },
      pending: [m('update', { location: { hlc: H(6), value: 'school' }, needs: { hlc: H(6), add: [{ id: 'n2', area: 'living' }], remove: ['n1'] } }, 6)],
    };
    assert.deepEqual(localValues(r), { location: 'school', follow_up: 'acked', needs: [{ id: 'n2', area: 'living' }] });
    r.body = { ...r.body, shadow: { ...shadow, version: 4 } };
    assert.equal(localValues(r)!['follow_up'], 'x', 'an answer older than the shadow no longer applies');
    r.pending.push(m('delete', undefined, 7));
    assert.equal(localValues(r), null);
  });
});

describe('editing a synced visit', () => {
  const current = {
    id: 'v1',
    child_id: 'c1',
    author_id: 'me',
    kind: 'home_visit',
    visited_at: '2026-12-06T20:31:00Z',
    follow_up: 'old',
    review_status: 'submitted',
  };
  const cx = { me: 'me', deviceId: 'd1', hlc: 'h', current, recreate: false, childVillageId: 'v' };

  test('sends only the fields that changed: the same instant written another way is no change', () => {
    const { op, fields } = visitChanges(
      { id: 'v1', child_id: 'c1', kind: 'home_visit', visited_at: '2026-12-06T20:31:00.000Z', follow_up: 'new' },
      true,
      cx,
    );
    assert.equal(op, 'update');
    assert.deepEqual(Object.keys(fields), ['follow_up']);
  });

  test('a visit moved to another minute is sent', () => {
    const { fields } = visitChanges(
      { id: 'v1', child_id: 'c1', kind: 'home_visit', visited_at: '2026-12-06T20:32:00.000Z' },
      true,
      cx,
    );
    assert.deepEqual(Object.keys(fields), ['visited_at']);
  });
});
