/**
 * The day of a director, in a real browser against a real server: sign in
 * online, set the PIN, go offline (network off, then the server stopped),
 * record three visits (one urgent, one with a photo), reload offline — the
 * service worker and the data are still there —, come back online: every
 * visit arrives exactly once, the urgent one raised its alert; the
 * supervisor returns one, the phone shows the task, the director amends
 * and resubmits, the supervisor approves, the phone shows it locked.
 * Runs on SQLite, and once more on PostgreSQL when SEEDLING_TEST_POSTGRES is set.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import {
  Server,
  api,
  apiLogin,
  conflicts,
  freshPostgres,
  launch,
  phone,
  recordVisit,
  shot,
  syncNow,
  unlock,
  visitsBy,
  waitSynced,
  type PgDb,
} from './harness.ts';

const backends: { name: string; pg: boolean }[] = [{ name: 'SQLite', pg: false }];
if (process.env.SEEDLING_TEST_POSTGRES) backends.push({ name: 'PostgreSQL', pg: true });

for (const backend of backends) {
  describe(`a director's day (${backend.name})`, () => {
    let server: Server;
    let browser: Browser;
    let db: PgDb | null = null;
    const screenshots = !backend.pg;

    before(async () => {
      db = backend.pg ? freshPostgres() : null;
      server = await Server.start({ databaseUrl: db?.url ?? null });
      browser = await launch();
    });
    after(async () => {
      await browser?.close().catch(() => undefined);
      await server?.dispose();
      db?.drop();
    });

    test('offline visits arrive exactly once, the urgent one alerts, a return is amended and approved', async () => {
      const supervisor = await apiLogin(server, 'supervisor-01');
      const { context, page } = await phone(browser);
      try {
        // ---------------------------------------------------------- sign in online
        await page.goto(`${server.url}/app/`);
        await page.waitForSelector('#username');
        if (screenshots) await shot(page, 'sign-in');
        await page.fill('#username', 'director-001');
        await page.fill('#password', 'seedling-demo');
        await page.click('button[type=submit]');
        await page.waitForSelector('#pin1', { timeout: 30_000 });
        await page.fill('#pin1', '2468');
        await page.fill('#pin2', '2468');
        if (screenshots) await shot(page, 'pin');
        await page.click('button[type=submit]');
        await waitSynced(page);
        await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30_000 });
        const me = await apiLogin(server, 'director-001');
        const before = await visitsBy(server, supervisor, me.user.id);
        assert.ok(before.length > 0, 'supervisor-01 sees director-001 (same town)');
        await page.waitForSelector('.child-card');
        const children = await page.locator('.child-card').count();
        assert.ok(children >= 3, `director-001 has ${children} children`);
        if (screenshots) await shot(page, 'children');
        // Chosen by id: the list re-sorts by due date as visits are recorded.
        const ids = await page.locator('.child-card').evaluateAll((cards) => cards.slice(0, 3).map((c) => (c as HTMLElement).dataset['child']!));

        // ---------------------------------------------------------- offline: three visits
        await context.setOffline(true);
        await page.click('#sync-now');
        await page.waitForSelector('#syncbar[data-state="offline"]');
        const urgentChild = await recordVisit(page, { childId: ids[0], observation: '孩子身上有多处淤青', urgent: true }, screenshots ? 'visit-form-urgent' : undefined);
        const urgentId = (await page.locator('.visit-card').first().getAttribute('data-visit'))!;
        if (screenshots) {
          await page.evaluate(() => window.scrollTo(0, 0));
          await shot(page, 'child');
        }
        const photoChild = await recordVisit(page, { childId: ids[1], observation: '家中整洁，学习用品齐全', photo: true });
        const photoId = (await page.locator('.visit-card').first().getAttribute('data-visit'))!;
        if (screenshots) await shot(page, 'sync-offline');

        // reload while offline: the shell comes from the service worker, the data from IndexedDB
        await page.reload();
        await unlock(page);
        await page.goto(`${server.url}/app/#/children`);
        await page.waitForSelector('.child-card');
        await page.goto(`${server.url}/app/#/visits/waiting`);
        await page.waitForSelector('.visit-card');
        assert.equal(await page.locator('.visit-card').count(), 2, 'two visits wait to sync after an offline reload');

        // the network is back but the server is down
        await server.stop();
        await context.setOffline(false);
        const thirdChild = await recordVisit(page, { childId: ids[2], observation: '电话联系监护人，情况稳定', followUp: '下月再访' });
        const thirdId = (await page.locator('.visit-card').first().getAttribute('data-visit'))!;
        await page.click('#sync-now');
        await page.waitForFunction(() => ['offline', 'error'].includes((document.querySelector('#syncbar') as HTMLElement).dataset['state'] ?? ''), null, {
          timeout: 60_000,
        });
        await page.goto(`${server.url}/app/#/visits/waiting`);
        await page.waitForFunction(() => document.querySelector('#tab-waiting .count')?.textContent === '3', null, { timeout: 10_000 });
        if (screenshots) await shot(page, 'lists');
        assert.ok(new Set([urgentChild, photoChild, thirdChild]).size === 3);

        // ---------------------------------------------------------- back online
        await server.run();
        await syncNow(page, 90_000);
        await page.goto(`${server.url}/app/#/visits/waiting`);
        await page.goto(`${server.url}/app/#/visits/synced`);
        await page.waitForFunction(() => document.querySelector('#tab-waiting .count')?.textContent === '0', null, { timeout: 10_000 });
        // sync again: a retry never duplicates
        await syncNow(page);

        const afterSync = await visitsBy(server, supervisor, me.user.id);
        assert.equal(afterSync.length, before.length + 3, 'exactly three new visits on the server');
        for (const id of [urgentId, photoId, thirdId]) {
          assert.equal(afterSync.filter((v) => v.id === id).length, 1, `visit ${id} arrived once`);
          assert.equal(afterSync.find((v) => v.id === id)!.review_status, 'submitted');
        }
        assert.ok(afterSync.find((v) => v.id === urgentId)!.risk_flags > 0);
        const alerts = await conflicts(server, supervisor, 'urgent');
        assert.equal(alerts.filter((c) => c.record_id === urgentId).length, 1, 'the urgent visit raised one alert');
        const detail = await api<{ photos?: unknown[] }>(server, supervisor, 'GET', `/api/v1/visits/${photoId}`);
        assert.equal(JSON.stringify(detail).includes('sha256'), true, 'the photo is referenced from the visit');

        // ---------------------------------------------------------- returned → task → amended
        const v = afterSync.find((x) => x.id === photoId)!;
        await api(server, supervisor, 'POST', `/api/v1/visits/${photoId}/review`, {
          decision: 'return',
          version: v.version,
          comment: '请补充孩子的学习情况和照片说明',
        });
        await syncNow(page);
        await page.goto(`${server.url}/app/#/tasks`);
        await page.waitForSelector('.task-card');
        assert.match((await page.locator('.task-card').first().textContent()) ?? '', /请补充孩子的学习情况/);
        if (screenshots) await shot(page, 'task');
        await page.click(`.task-card[data-visit="${photoId}"]`);
        await page.waitForSelector('#returned-notice');
        await page.fill('#obs-study', '成绩中等，数学需要辅导');
        await page.click('#submit');
        await page.waitForSelector('#record-visit');
        await syncNow(page);
        const resubmitted = (await visitsBy(server, supervisor, me.user.id)).find((x) => x.id === photoId)!;
        assert.equal(resubmitted.review_status, 'submitted');
        assert.ok(resubmitted.version > v.version);

        // ---------------------------------------------------------- approved → locked
        await api(server, supervisor, 'POST', `/api/v1/visits/${photoId}/review`, { decision: 'approve', version: resubmitted.version });
        await syncNow(page);
        await page.goto(`${server.url}/app/#/visit/${photoId}`);
        await page.waitForSelector('#locked-notice');
        assert.equal(await page.locator('#submit').count(), 0, 'an approved visit has no save button');
        assert.equal(await page.locator('#obs-study').isDisabled(), true);
        assert.equal(await page.locator('#tabs .badge').count(), 0, 'no task left');

        // ---------------------------------------------------------- the error state, for the picture
        if (screenshots) {
          await page.route('**/api/v1/sync/**', (route) =>
            route.fulfill({ status: 400, contentType: 'application/json', body: '{"error":{"code":"validation_failed","message":"bad"}}' }),
          );
          await page.goto(`${server.url}/app/#/children`);
          await page.click('#sync-now');
          await page.waitForSelector('#syncbar[data-state="error"]', { timeout: 30_000 });
          await shot(page, 'sync-error');
          await page.unroute('**/api/v1/sync/**');
          await page.goto(`${server.url}/app/#/me`);
          await page.click('#lock-now');
          await page.waitForSelector('#pin');
          await shot(page, 'locked');
        }
      } catch (e) {
        console.error(server.logTail());
        await page.screenshot({ path: '/tmp/app-test-failure.png' }).catch(() => undefined);
        throw e;
      } finally {
        await context.close();
      }
    });
  });
}
