/**
 * Two edges of offline work, in a real browser against a real server:
 *
 * - A transfer while the phone is offline: the district moves a child to a
 *   village of another town while the director, with no signal, records a
 *   visit to that child (and one to another child). Back online the visit
 *   arrives once, is kept and flagged `visit_after_transfer` in both towns'
 *   queues, the child and its records leave the phone, nothing else does.
 * - Two phones of the same director edit one visit offline: both edits
 *   reach the server, the later one wins by its clock, both phones end on
 *   the same value and the losing one waits in the supervisor's queue.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import {
  Server,
  api,
  apiLogin,
  childrenOnPhone,
  conflicts,
  goOffline,
  launch,
  orgUnits,
  phone,
  recordVisit,
  signInWithPin,
  syncNow,
  transferChild,
  visitsOnChildPage,
  type ApiUser,
  type VisitSummary,
} from './harness.ts';

/** The datetime-local value (`YYYY-MM-DDTHH:mm`, district time, UTC+8) of an instant. */
function districtWall(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().slice(0, 16);
}

async function serverVisitsOf(server: Server, who: ApiUser, childId: string): Promise<VisitSummary[]> {
  const page = await api<{ visits: VisitSummary[] }>(server, who, 'GET', `/api/v1/visits?child=${childId}&limit=200`);
  return page.visits;
}

/** The visits one tab of 走访记录 lists, by id, once its count shows. */
async function visitTab(page: Page, tab: 'drafts' | 'waiting' | 'synced' | 'returned'): Promise<{ count: string; ids: string[] }> {
  await page.goto(page.url().replace(/#.*$/, '') + `#/visits/${tab}`);
  await page.waitForSelector(`#tab-${tab}[aria-selected="true"]`);
  const count = (await page.locator(`#tab-${tab} .count`).textContent()) ?? '';
  const ids = await page.locator('.visit-card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset['visit'] ?? ''));
  return { count, ids };
}

/** The one visit a child's page lists now that it did not list before. */
async function newVisitId(page: Page, childId: string, before: string[]): Promise<string> {
  const added = (await visitsOnChildPage(page, childId)).filter((id) => !before.includes(id));
  assert.equal(added.length, 1, `one new visit on the page of ${childId}: ${added.join(', ')}`);
  return added[0]!;
}

async function pendingOnBar(page: Page): Promise<string | null> {
  return page.getAttribute('#syncbar', 'data-pending');
}

/** What the phone's form shows in 后续跟进 for a visit. */
async function followUpOnPhone(page: Page, visitId: string): Promise<string> {
  await page.goto(page.url().replace(/#.*$/, '') + '#/children');
  await page.waitForSelector('#children');
  await page.goto(page.url().replace(/#.*$/, '') + `#/visit/${visitId}`);
  await page.waitForSelector('#visit-form #follow_up');
  return page.inputValue('#follow_up');
}

/**
 * Edits 后续跟进 of a visit already on the server through the form — a
 * director may edit a submitted visit until it is approved: the form
 * offers 保存修改 — and waits until the child's page is back.
 */
async function editFollowUp(page: Page, visitId: string, text: string): Promise<void> {
  await followUpOnPhone(page, visitId);
  assert.equal(await page.locator('#submit').textContent(), '保存修改');
  await page.fill('#follow_up', text);
  await page.click('#submit');
  await page.waitForSelector('#record-visit', { timeout: 30_000 });
}

describe('offline edges', () => {
  let server: Server;
  let browser: Browser;

  before(async () => {
    server = await Server.start();
    browser = await launch();
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    await server?.dispose();
  });

  test('a transfer while offline: the visit arrives once, is flagged for both towns, the child leaves the phone', async () => {
    const admin = await apiLogin(server, 'admin');
    const director = await apiLogin(server, 'director-001');
    const oldSupervisor = await apiLogin(server, 'supervisor-01');
    const newSupervisor = await apiLogin(server, 'supervisor-02');
    const units = await orgUnits(server, admin);
    const oldVillage = director.user.org_unit.id;
    const oldTown = units.find((u) => u.id === oldVillage)?.parent_id;
    assert.equal(oldSupervisor.user.org_unit.id, oldTown, 'supervisor-01 supervises director-001’s town');
    const newTown = newSupervisor.user.org_unit.id;
    assert.notEqual(newTown, oldTown, 'the child moves to another town');
    const newVillage = units.find((u) => u.kind === 'village' && u.parent_id === newTown)?.id;
    assert.ok(newVillage, 'the new town has a village');

    const { context, page } = await phone(browser);
    try {
      // ---------------------------------------------------------- online: sign in, bootstrap
      await signInWithPin(page, server, 'director-001');
      const childrenBefore = await childrenOnPhone(page);
      assert.ok(childrenBefore.length >= 2, `director-001 has ${childrenBefore.length} children`);
      const [moved, stays] = childrenBefore as [string, string];
      const movedVisitsBefore = await visitsOnChildPage(page, moved);
      const staysVisitsBefore = await visitsOnChildPage(page, stays);
      const syncedBefore = (await visitTab(page, 'synced')).ids;
      const serverMovedBefore = await serverVisitsOf(server, admin, moved);
      const serverStaysBefore = await serverVisitsOf(server, admin, stays);

      // ---------------------------------------------------------- offline; the district transfers the child
      await goOffline(context, page);
      const transfer = await transferChild(server, admin, moved, newVillage);
      assert.equal(transfer.status, 'applied', JSON.stringify(transfer));
      const transferredBy = Date.now();
      const register = await api<{ village_id: string; town_id: string; register_events: { kind: string }[] }>(
        server,
        admin,
        'GET',
        `/api/v1/children/${moved}`,
      );
      assert.equal(register.village_id, newVillage);
      assert.equal(register.town_id, newTown);
      assert.ok(register.register_events.some((e) => e.kind === 'transferred'), 'the transfer is on the register');

      // ---------------------------------------------------------- the director, still offline, visits both children
      // The rule (sync-core semantic.rs, SYNC-PROTOCOL.md "Semantic checks"):
      // a visit is after a transfer when it is dated on a later day, or on
      // the transfer's day after the instant the transfer was recorded. The
      // form's 走访时间 has minute precision (now, rounded down), so a visit
      // recorded in the same minute as the transfer would be dated before it;
      // the director enters the next minute — still "now" to the form (it
      // accepts up to 5 minutes ahead), strictly after the transfer.
      const visitedAt = districtWall(Math.floor(transferredBy / 60_000) * 60_000 + 60_000);
      assert.deepEqual(await childrenOnPhone(page), childrenBefore, 'offline, the phone cannot know of the transfer');
      await recordVisit(page, { childId: moved, visitedAt, observation: '孩子情绪稳定，家中整洁', followUp: '下月再访' });
      const movedVisit = await newVisitId(page, moved, movedVisitsBefore);
      await recordVisit(page, { childId: stays, observation: '学习用品齐全', followUp: '电话联系班主任' });
      const staysVisit = await newVisitId(page, stays, staysVisitsBefore);
      const waiting = await visitTab(page, 'waiting');
      assert.equal(waiting.count, '2');
      assert.deepEqual([...waiting.ids].sort(), [movedVisit, staysVisit].sort());
      assert.equal(await pendingOnBar(page), '2');
      assert.equal(await page.getAttribute('#syncbar', 'data-state'), 'offline');

      // ---------------------------------------------------------- back online
      await context.setOffline(false);
      await syncNow(page, 90_000);
      // sync again: a retry never duplicates
      await syncNow(page);

      // the server: each visit exactly once, the moved child's flagged for both towns
      const serverMoved = await serverVisitsOf(server, admin, moved);
      assert.equal(serverMoved.length, serverMovedBefore.length + 1, 'one new visit to the moved child');
      assert.equal(serverMoved.filter((v) => v.id === movedVisit).length, 1, 'the offline visit arrived once');
      const movedDetail = await api<{ review_status: string; record: { village_id: string; follow_up: string; visited_at: string } }>(
        server,
        newSupervisor,
        'GET',
        `/api/v1/visits/${movedVisit}`,
      );
      assert.equal(movedDetail.review_status, 'submitted');
      assert.equal(movedDetail.record.follow_up, '下月再访');
      assert.equal(movedDetail.record.village_id, oldVillage, 'filed under the village it was recorded in');
      assert.ok(Date.parse(movedDetail.record.visited_at) > transferredBy, 'dated after the transfer');
      for (const [who, name] of [
        [oldSupervisor, 'the old town (supervisor-01)'],
        [newSupervisor, 'the new town (supervisor-02)'],
      ] as const) {
        const flagged = (await conflicts(server, who, 'visit_after_transfer')).filter((c) => c.record_id === movedVisit);
        assert.equal(flagged.length, 1, `${name} has one visit_after_transfer notice for the visit`);
      }
      const serverStays = await serverVisitsOf(server, admin, stays);
      assert.equal(serverStays.length, serverStaysBefore.length + 1, 'one new visit to the other child');
      assert.equal(serverStays.filter((v) => v.id === staysVisit).length, 1, 'the other visit arrived once');
      assert.equal(
        (await conflicts(server, oldSupervisor, 'visit_after_transfer')).filter((c) => c.record_id === staysVisit).length,
        0,
        'the other visit is not flagged',
      );

      // the phone: the moved child and its visits are gone, nothing waits, nothing else went
      assert.equal(await pendingOnBar(page), '0', 'nothing left to send');
      const childrenAfter = await childrenOnPhone(page);
      assert.ok(!childrenAfter.includes(moved), 'the moved child is no longer on 我的儿童');
      assert.deepEqual([...childrenAfter].sort(), childrenBefore.filter((id) => id !== moved).sort(), 'every other child is still there');
      await page.goto(`${server.url}/app/#/child/${moved}`);
      // the child's page, opened by its address, says the record left the village
      await page.waitForFunction(() => document.querySelector('#view .empty')?.textContent === '找不到这条记录（可能已转出本村）', null, {
        timeout: 10_000,
      });
      assert.deepEqual([...(await visitsOnChildPage(page, stays))].sort(), [...staysVisitsBefore, staysVisit].sort(), 'the other child kept its visits');
      const waitingAfter = await visitTab(page, 'waiting');
      assert.equal(waitingAfter.count, '0');
      const syncedAfter = await visitTab(page, 'synced');
      assert.deepEqual(
        [...syncedAfter.ids].sort(),
        [...syncedBefore.filter((id) => !movedVisitsBefore.includes(id)), staysVisit].sort(),
        'the synced list lost the moved child’s visits and nothing else',
      );
    } catch (e) {
      console.error(server.logTail());
      await page.screenshot({ path: '/tmp/app-test-failure-transfer.png' }).catch(() => undefined);
      throw e;
    } finally {
      await context.close();
    }
  });

  test('two devices editing one visit offline converge on the later edit, the other waits in the queue', async () => {
    const supervisor = await apiLogin(server, 'supervisor-01');
    const a = await phone(browser);
    const b = await phone(browser);
    try {
      // ---------------------------------------------------------- two phones of director-001
      await signInWithPin(a.page, server, 'director-001');
      await signInWithPin(b.page, server, 'director-001');
      const children = await childrenOnPhone(a.page);
      assert.ok(children.length >= 1);
      const child = children[children.length - 1]!;
      const before = await visitsOnChildPage(a.page, child);

      // A records a visit and syncs; B syncs and has it
      await recordVisit(a.page, { childId: child, observation: '家中整洁', followUp: '下周电话回访' });
      const visitId = await newVisitId(a.page, child, before);
      await syncNow(a.page);
      const first = await api<{ version: number; record: { follow_up: string; device_id: string } }>(server, supervisor, 'GET', `/api/v1/visits/${visitId}`);
      assert.equal(first.record.follow_up, '下周电话回访');
      await syncNow(b.page);
      assert.equal(await followUpOnPhone(b.page, visitId), '下周电话回访', 'phone B received the visit');

      // ---------------------------------------------------------- both offline, both edit 后续跟进
      await goOffline(a.context, a.page);
      await goOffline(b.context, b.page);
      const fromA = 'A：已联系学校老师，下周再访';
      const fromB = 'B：已电话联系监护人，本周内入户';
      await editFollowUp(a.page, visitId, fromA);
      await editFollowUp(b.page, visitId, fromB); // the later edit
      for (const p of [a.page, b.page]) {
        assert.equal((await visitTab(p, 'waiting')).count, '1');
        assert.equal(await pendingOnBar(p), '1');
      }

      // ---------------------------------------------------------- A, then B, then A again
      await a.context.setOffline(false);
      await syncNow(a.page);
      const afterA = await api<{ record: { follow_up: string } }>(server, supervisor, 'GET', `/api/v1/visits/${visitId}`);
      assert.equal(afterA.record.follow_up, fromA, 'A’s edit reached the server');

      await b.context.setOffline(false);
      await syncNow(b.page);
      await syncNow(a.page);

      // the server holds the later edit, once
      const final = await api<{ review_status: string; record: { follow_up: string } }>(server, supervisor, 'GET', `/api/v1/visits/${visitId}`);
      assert.equal(final.record.follow_up, fromB, 'the later edit wins by its clock');
      assert.equal(final.review_status, 'submitted');
      assert.equal((await serverVisitsOf(server, supervisor, child)).filter((v) => v.id === visitId).length, 1);

      // both phones show it, nothing waits
      assert.equal(await followUpOnPhone(a.page, visitId), fromB, 'phone A converged');
      assert.equal(await followUpOnPhone(b.page, visitId), fromB, 'phone B converged');
      assert.match((await b.page.locator('#view').textContent()) ?? '', /您的修改与另一台手机同时发生，已交督导员处理/, 'phone B is told of the conflict');
      for (const p of [a.page, b.page]) {
        assert.equal(await pendingOnBar(p), '0');
        assert.equal((await visitTab(p, 'waiting')).count, '0');
      }

      // the losing value waits in the supervisor's queue
      const queued = (await conflicts(server, supervisor, 'concurrent_write')).filter((c) => c.record_id === visitId);
      const onFollowUp = queued.filter((c) => c.field === 'follow_up');
      assert.equal(onFollowUp.length, 1, `one concurrent_write on follow_up: ${JSON.stringify(queued)}`);
      const c = onFollowUp[0]!;
      assert.equal(c.local_value, fromA, 'the server’s side was A’s edit');
      assert.equal(c.remote_value, fromB, 'the device’s side was B’s edit');
      assert.equal(c.winner, 'client');
      // Both directors changed 后续跟进 and nothing else: an update carries
      // only the fields that changed (sdk/README.md, SYNC-PROTOCOL.md §3), so
      // no other field of the visit can be in conflict.
      assert.deepEqual(
        queued.map((x) => x.field),
        ['follow_up'],
        `no conflict on a field neither director changed: ${JSON.stringify(queued.filter((x) => x.field !== 'follow_up'))}`,
      );
    } catch (e) {
      console.error(server.logTail());
      await a.page.screenshot({ path: '/tmp/app-test-failure-phone-a.png' }).catch(() => undefined);
      await b.page.screenshot({ path: '/tmp/app-test-failure-phone-b.png' }).catch(() => undefined);
      throw e;
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });
});
