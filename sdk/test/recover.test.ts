/**
 * `lostWrites`, the pure rule of what a phone sends again after a restore:
 * sync-core's unit tests (sync-core/src/protocol/recover.rs) in TypeScript.
 * The shared vectors (vectors.test.ts) check the same function on more
 * cases against sync-core's own answers.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { formatHlc, nodeOf } from '../src/hlc.ts';
import { acknowledgedCopy, lostWrites } from '../src/records.ts';
import type { Actor } from '../src/rules.ts';
import type { FieldChangeWire, FieldWire, Json, RecordWire } from '../src/wire.ts';

const uuid = (n: number) => `00000000-0000-0000-0000-${n.toString(16).padStart(12, '0')}`;
const hlc = (wallMs: number, node: string) => formatHlc({ wallMs, counter: 0, node: nodeOf(node) });
const register = (value: Json, at: string, version: number): FieldWire => ({ register: { value, hlc: at, version } });

const phone = uuid(1);
const supervisorNode = uuid(2);
const director: Actor = { userId: uuid(10), role: 'director' };

/** A visit the phone created at version 1 (07:00), that a supervisor then approved with a comment (version 2, 08:00). */
function approvedVisit(): RecordWire {
  const created = hlc(7_000, phone);
  const approved = hlc(8_000, supervisorNode);
  return {
    entity: 'visit',
    id: uuid(99),
    version: 2,
    fields: {
      child_id: register(uuid(5), created, 1),
      author_id: register(director.userId, created, 1),
      village_id: register(uuid(6), created, 1),
      kind: register('home_visit', created, 1),
      visited_at: register('2026-12-01T10:00:00+08:00', created, 1),
      review_status: register('approved', approved, 2),
      review_comment: register('好', approved, 2),
      needs: { items: { n1: { value: { id: 'n1', area: 'study' }, hlc: created, version: 1 } } },
    },
    tombstone: null,
  };
}

describe('lostWrites', () => {
  test("a visit the server lost is created again with the phone's own values", () => {
    const writes = lostWrites(phone, director, approvedVisit(), null);
    assert.equal(writes.length, 1, JSON.stringify(writes));
    const create = writes[0]!;
    assert.deepEqual([create.op, create.base_version], ['create', 0]);
    // The supervisor's decision is not the phone's to replay: the visit
    // comes back as it was before it, submitted, at the phone's clock.
    assert.deepEqual(create.fields['review_status'], { hlc: hlc(7_000, phone), value: 'submitted' });
    assert.ok(!('review_comment' in create.fields));
    for (const name of ['child_id', 'author_id', 'village_id', 'kind', 'visited_at', 'needs']) {
      assert.ok(name in create.fields, name);
    }
  });

  test("only the phone's own writes newer than the server's are sent again", () => {
    const server = approvedVisit();
    server.version = 1;
    server.fields['review_status'] = register('submitted', hlc(7_000, phone), 1);
    delete server.fields['review_comment'];
    const local = approvedVisit();
    // After the backup the phone changed the follow-up and added a need.
    local.fields['follow_up'] = register('下周再访', hlc(9_000, phone), 3);
    const needs = local.fields['needs']!;
    assert.ok('items' in needs);
    needs.items['n2'] = { value: { id: 'n2', area: 'health' }, hlc: hlc(9_500, phone), version: 3 };
    const writes = lostWrites(phone, director, local, server);
    assert.equal(writes.length, 1, JSON.stringify(writes));
    const update = writes[0]!;
    assert.deepEqual([update.op, update.base_version], ['update', 1]);
    assert.deepEqual(
      Object.keys(update.fields).sort(),
      ['follow_up', 'needs'],
      "the supervisor's approval and the values the server holds are not sent",
    );
    assert.deepEqual(update.fields['needs'], { hlc: hlc(9_500, phone), add: [{ id: 'n2', area: 'health' }], remove: [] });
    assert.equal(update.hlc, hlc(9_500, phone));
  });

  test("a record someone else created is not the phone's to create", () => {
    const visit = approvedVisit();
    for (const field of Object.values(visit.fields)) {
      if ('register' in field) field.register.hlc = hlc(Number(field.register.hlc.slice(0, 15)), supervisorNode);
      else for (const item of Object.values(field.items)) item.hlc = hlc(Number(item.hlc.slice(0, 15)), supervisorNode);
    }
    assert.deepEqual(lostWrites(phone, director, visit, null), []);
    // Nor may a director create a child, whoever's clocks it holds.
    visit.entity = 'child';
    assert.deepEqual(lostWrites(supervisorNode, director, visit, null), []);
  });

  test('a record in step with the server sends nothing', () => {
    const visit = approvedVisit();
    assert.deepEqual(lostWrites(phone, director, visit, visit), []);
  });

  test('a device id in any case and form names the same node', () => {
    const writes = lostWrites(phone.toUpperCase(), director, approvedVisit(), null);
    assert.equal(writes.length, 1);
  });
});

describe('acknowledgedCopy', () => {
  test('answered mutations not yet pulled back are laid on the copy at their versions and clocks', () => {
    const shadow = approvedVisit();
    shadow.version = 1;
    const at = hlc(9_000, phone);
    const copy = acknowledgedCopy('visit', shadow.id, shadow, [
      { version: 1, mutation: { mutation_id: uuid(70), entity: 'visit', record_id: shadow.id, op: 'update', base_version: 0, hlc: at, fields: { kind: { hlc: at, value: 'ignored: already in the copy' } } } },
      {
        version: 3,
        mutation: {
          mutation_id: uuid(71),
          entity: 'visit',
          record_id: shadow.id,
          op: 'update',
          base_version: 1,
          hlc: at,
          fields: { follow_up: { hlc: at, value: '下周再访' }, needs: { hlc: at, add: [{ id: 'n2', area: 'living' }], remove: ['n1'] } },
        },
      },
    ])!;
    assert.equal(copy.version, 3);
    assert.deepEqual(copy.fields['follow_up'], { register: { value: '下周再访', hlc: at, version: 3 } });
    assert.deepEqual(copy.fields['needs'], { items: { n2: { value: { id: 'n2', area: 'living' }, hlc: at, version: 3 } } });
    assert.deepEqual(copy.fields['kind'], shadow.fields['kind']);
    assert.equal(shadow.version, 1, 'the shadow itself is not changed');
    // So the edit counts as lost when the restored server holds version 1.
    const writes = lostWrites(phone, director, copy, shadow);
    assert.deepEqual(Object.keys(writes[0]!.fields).sort(), ['follow_up', 'needs']);
  });

  test('a create the server answered but the phone never pulled back is a copy the phone created', () => {
    const at = hlc(9_000, phone);
    const create = approvedVisit();
    const fields: Record<string, FieldChangeWire> = {};
    for (const [name, f] of Object.entries(create.fields)) {
      if (name.startsWith('review')) continue;
      fields[name] = 'register' in f ? { hlc: at, value: f.register.value } : { hlc: at, add: Object.values(f.items).map((i) => i.value), remove: [] };
    }
    fields['review_status'] = { hlc: at, value: 'submitted' };
    const copy = acknowledgedCopy('visit', create.id, null, [
      { version: 1, mutation: { mutation_id: uuid(72), entity: 'visit', record_id: create.id, op: 'create', base_version: 0, hlc: at, fields } },
    ])!;
    const writes = lostWrites(phone, director, copy, null);
    assert.equal(writes.length, 1);
    assert.equal(writes[0]!.op, 'create');
    assert.equal(acknowledgedCopy('visit', create.id, null, []), null);
  });
});
