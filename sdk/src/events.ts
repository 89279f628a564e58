/**
 * Live updates (SYNC-PROTOCOL.md §4c): while the phone is online and auto
 * sync runs, one `GET /api/v1/sync/events` stream stays open and every
 * `ready` or `changed` event starts a sync round, so a supervisor's return
 * or a register change reaches the phone in seconds rather than at the
 * next interval. The events carry no records: the round's pull is still
 * the one place data arrives.
 *
 * The stream is read from `fetch`'s body (an `EventSource` cannot send the
 * bearer token) with `eventsource-parser`. It reconnects after the server
 * ends it (the access token it was opened with expired; the request layer
 * refreshes the token first) or after a failure, with a growing, jittered
 * wait; a busy server's `Retry-After` is honoured; a revoked or signed-out
 * phone, or a server without the route (404), stops it.
 */

import { createParser } from 'eventsource-parser';

import { ApiError } from './api.ts';
import { PROTOCOL_VERSION } from './wire.ts';

/** What the stream is doing now. */
export type LiveState = 'off' | 'connecting' | 'open' | 'waiting';

export interface LiveDeps {
  request(path: string, signal: AbortSignal): Promise<Response>;
  /** A `ready` (the stream opened) or `changed` (a commit in scope) event arrived. */
  onSignal(kind: 'ready' | 'changed'): void;
  onState(state: LiveState): void;
}

/** Longest silence on an open stream before it is dropped and opened again (the server's heartbeat is every 25 s). */
export const LIVE_SILENCE_MS = 75_000;
const FIRST_WAIT_MS = 1_000;
const LONGEST_WAIT_MS = 60_000;

export class LiveUpdates {
  private controller: AbortController | null = null;
  private stopped = true;

  constructor(private readonly deps: LiveDeps) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    this.controller = null;
    this.deps.onState('off');
  }

  private async run(): Promise<void> {
    let wait = FIRST_WAIT_MS;
    while (!this.stopped) {
      this.deps.onState('connecting');
      try {
        // A stream that was open ended (its token expired): come back soon.
        if (await this.follow()) wait = FIRST_WAIT_MS;
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof ApiError) {
          if (e.kind === 'revoked' || e.kind === 'sign_in' || e.kind === 'update' || e.status === 404 || e.status === 405) {
            this.stopped = true;
            this.deps.onState('off');
            return;
          }
          if (e.kind === 'busy' && e.retryAfterMs) wait = Math.max(wait, e.retryAfterMs);
        }
      }
      if (this.stopped) return;
      this.deps.onState('waiting');
      await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random() / 2)));
      wait = Math.min(LONGEST_WAIT_MS, wait * 2);
    }
  }

  /** One stream, until it ends; whether it was open. */
  private async follow(): Promise<boolean> {
    const controller = new AbortController();
    this.controller = controller;
    const res = await this.deps.request(`/api/v1/sync/events?protocol_version=${PROTOCOL_VERSION}`, controller.signal);
    if (!res.body) return false;
    this.deps.onState('open');
    const parser = createParser({
      onEvent: (message) => {
        if (message.event === 'ready' || message.event === 'changed') this.deps.onSignal(message.event);
      },
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let silence: ReturnType<typeof setTimeout> | null = null;
    const quiet = () => {
      if (silence) clearTimeout(silence);
      silence = setTimeout(() => controller.abort(), LIVE_SILENCE_MS);
    };
    try {
      quiet();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return true;
        quiet();
        parser.feed(value);
      }
    } catch {
      // Aborted (stopped, or silent too long) or the connection broke.
      return true;
    } finally {
      if (silence) clearTimeout(silence);
      reader.releaseLock();
    }
  }
}
