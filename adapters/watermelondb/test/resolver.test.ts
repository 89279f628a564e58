/**
 * The conflict resolver alone (no server): what a pulled copy does to a
 * record with local changes.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { seedlingConflictResolver } from '../src/index.ts';

const node = '0'.repeat(32);
const at = (ms: number) => `${String(ms).padStart(15, '0')}-00000000-${node}`;
type Raw = Record<string, unknown>;
const resolve = (local: Raw, remote: Raw): Raw => {
  // WatermelonDB's own resolution first: locally changed columns over the remote copy.
  const resolved: Raw = { ...local, ...remote, id: local['id'], _status: local['_status'], _changed: local['_changed'] };
  for (const c of String(local['_changed'] ?? '').split(',').filter(Boolean)) resolved[c] = local[c];
  return seedlingConflictResolver('visits', local as any, remote as any, resolved as any) as unknown as Raw;
};

test('a record without local changes takes the server copy whole', () => {
  const local = { id: 'v', _status: 'synced', _changed: '', server_version: 1, follow_up: 'old', field_clocks: '{}' };
  const remote = { id: 'v', server_version: 2, follow_up: 'new', field_clocks: JSON.stringify({ follow_up: at(5) }) };
  const out = resolve(local, remote);
  assert.equal(out['server_version'], 2);
  assert.equal(out['follow_up'], 'new');
});

test('an edit keeps its base and its clocks over a newer server copy', () => {
  const local = {
    id: 'v', _status: 'updated', _changed: 'follow_up', server_version: 1, follow_up: 'mine', review_status: 'submitted',
    field_clocks: JSON.stringify({ follow_up: at(9), review_status: at(1) }),
  };
  const remote = { id: 'v', server_version: 2, follow_up: 'old', review_status: 'returned', field_clocks: JSON.stringify({ follow_up: at(1), review_status: at(5) }) };
  const out = resolve(local, remote);
  assert.equal(out['server_version'], 1, 'the base the edit was made on');
  assert.equal(out['follow_up'], 'mine');
  assert.equal(out['review_status'], 'returned');
  assert.deepEqual(JSON.parse(String(out['field_clocks'])), { follow_up: at(9), review_status: at(5) });
});

test("a create whose answer was lost takes the server's copy and keeps only what was written here after it", () => {
  const local = {
    id: 'v', _status: 'created', _changed: 'follow_up', server_version: null, follow_up: 'written later', review_status: 'submitted',
    field_clocks: JSON.stringify({ follow_up: at(9), review_status: at(1) }),
  };
  // Meanwhile a supervisor returned the visit (a later clock than the create's).
  const remote = { id: 'v', server_version: 2, follow_up: 'first', review_status: 'returned', field_clocks: JSON.stringify({ follow_up: at(1), review_status: at(5) }) };
  const out = resolve(local, remote);
  assert.equal(out['review_status'], 'returned', "the supervisor's edit stands");
  assert.equal(out['follow_up'], 'written later');
  assert.equal(out['_status'], 'updated');
  assert.equal(out['_changed'], 'follow_up');
  assert.equal(out['server_version'], 2);

  const untouched = resolve({ ...local, follow_up: 'first', field_clocks: JSON.stringify({ follow_up: at(1), review_status: at(1) }) }, remote);
  assert.equal(untouched['_status'], 'synced', 'nothing of its own left: synced');
});
