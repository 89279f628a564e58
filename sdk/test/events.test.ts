/**
 * Live updates (SYNC-PROTOCOL.md §4c) against a real server: with auto
 * sync on, a phone keeps the events stream open and syncs when another
 * device's visit commits in its village — long before its hour-long
 * interval would have.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { phone } from './helpers.ts';
import { PASSWORD, startServer, type TestServer } from './server.ts';

/** Polls `check` every 50 ms; fails after `ms` (a bound for a broken run, not a measurement). */
async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what} did not happen within ${ms} ms`);
}

describe('live updates on sqlite', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer('sqlite');
  });
  after(async () => {
    await server?.stop();
  });

  test('a visit from the director\'s other phone arrives without waiting for the interval', async () => {
    const listening = await phone(server.baseUrl);
    await listening.sdk.signIn('director-005', PASSWORD, 'tablet');
    await listening.sdk.setPin('1357');
    assert.equal((await listening.sdk.sync()).state, 'idle');
    assert.equal(listening.sdk.liveState(), 'off');
    listening.sdk.startAutoSync({ intervalMs: 3_600_000 });
    await eventually('the stream to open', async () => listening.sdk.liveState() === 'open');
    // Let the round started with auto sync end.
    await eventually('the first round to end', async () => listening.sdk.status().state === 'idle');

    const other = await phone(server.baseUrl);
    await other.sdk.signIn('director-005', PASSWORD, 'phone');
    await other.sdk.setPin('2468');
    assert.equal((await other.sdk.sync()).state, 'idle');
    const [kid] = await other.sdk.children();
    const saved = await other.sdk.saveVisit(
      { child_id: kid!.id, kind: 'home_visit', visited_at: new Date(Date.now() - 3_600_000).toISOString(), observations: { living: '生活正常' } },
      { submit: true },
    );
    assert.equal((await other.sdk.sync()).state, 'idle');

    await eventually('the visit to reach the listening phone', async () => (await listening.sdk.visit(saved.id)) !== undefined);
    assert.equal((await listening.sdk.visit(saved.id))!.observations?.living, '生活正常');

    listening.sdk.stopAutoSync();
    assert.equal(listening.sdk.liveState(), 'off');
  });
});
