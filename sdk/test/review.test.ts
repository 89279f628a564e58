/** The review loop through the SDK and the real server: return → task with comment, correct and resubmit, approve → locked. */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { SeedlingError, type VisitView } from '../src/index.ts';
import { phone } from './helpers.ts';
import { PASSWORD, backends, startServer, supervisorFor, type TestServer } from './server.ts';

for (const backend of backends()) describe(`review on ${backend}`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(backend);
  });
  after(async () => {
    await server?.stop();
  });

  test('a returned visit becomes a task with the comment; the correction resubmits it; approval locks it', async () => {
    const p = await phone(server.baseUrl);
    const me = await p.sdk.signIn('director-010', PASSWORD);
    await p.sdk.setPin('8642');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    const v = await p.sdk.saveVisit(
      { child_id: kid!.id, kind: 'home_visit', visited_at: new Date(Date.now() - 7200_000).toISOString(), observations: { study: '成绩一般' } },
      { submit: true },
    );
    await p.sdk.sync();
    assert.equal((await p.sdk.visit(v.id))!.localState, 'synced');
    assert.deepEqual(await p.sdk.tasks(), []);

    const sup = await supervisorFor(server.baseUrl, v.id);
    const comment = '请补充孩子的学习情况';
    const returned = await sup.ok<{ version: number; review_status: string }>('POST', `/api/v1/visits/${v.id}/review`, {
      decision: 'return',
      comment,
      version: 1,
    });
    assert.equal(returned.review_status, 'returned');

    const events: string[] = [];
    p.sdk.onChange((e) => events.push(e.kind));
    await p.sdk.sync();
    assert.ok(events.includes('tasks'));
    const tasks = await p.sdk.tasks();
    assert.equal(tasks.length, 1);
    assert.equal(tasks[0]!.visitId, v.id);
    assert.equal(tasks[0]!.childId, kid!.id);
    assert.equal(tasks[0]!.childName, kid!.name);
    assert.equal(tasks[0]!.comment, comment);
    assert.ok(tasks[0]!.returnedAt && Date.parse(tasks[0]!.returnedAt) > Date.now() - 600_000);
    const back = (await p.sdk.visit(v.id))!;
    assert.equal(back.localState, 'returned');
    assert.equal(back.review_comment, comment);
    assert.equal((await p.sdk.counts()).returned, 1);

    // Correct and resubmit: the task goes away at once, the visit waits, then syncs.
    await p.sdk.saveVisit(
      { ...inputOf(back), observations: { study: '数学较弱，已联系学校安排辅导' } },
      { submit: true },
    );
    assert.deepEqual(await p.sdk.tasks(), []);
    assert.equal((await p.sdk.visit(v.id))!.localState, 'waiting');
    assert.equal((await p.sdk.sync()).state, 'idle');
    const resubmitted = (await p.sdk.visit(v.id))!;
    assert.equal(resubmitted.review_status, 'submitted');
    assert.equal(resubmitted.localState, 'synced');
    assert.equal(resubmitted.author_id, me.id);

    await sup.ok('POST', `/api/v1/visits/${v.id}/review`, { decision: 'approve', version: resubmitted.version });
    await p.sdk.sync();
    const approved = (await p.sdk.visit(v.id))!;
    assert.equal(approved.localState, 'approved');
    await assert.rejects(
      p.sdk.saveVisit({ ...inputOf(approved), follow_up: '再改一次' }, { submit: false }),
      (e: unknown) => e instanceof SeedlingError && e.code === 'locked',
    );
    assert.equal(p.sdk.status().pending, 0);
  });
});

function inputOf(v: VisitView) {
  return { id: v.id, child_id: v.child_id, kind: v.kind, visited_at: v.visited_at };
}
