/**
 * `replicateSeedling`: RxDB's `replicateRxCollection` wired to Seedling's
 * RxDB endpoints (`/api/v1/rxdb/{collection}/pull` and `/push`), with
 * `pull.stream$` emitting `'RESYNC'` on each event of Seedling's live
 * stream (`GET /api/v1/sync/events`, server-sent events that only say "your
 * scope changed": the pull stays the one place data comes from).
 */

import { createParser } from 'eventsource-parser';
import { replicateRxCollection, type RxReplicationState } from 'rxdb/plugins/replication';
import type { RxCollection } from 'rxdb';
import { Observable, Subject, share } from 'rxjs';

import type { Clock } from './clock.ts';

export type TokenSource = string | (() => string | Promise<string>);

export interface SeedlingConnection {
  /** The server, e.g. `https://seedling.example.org`. */
  baseUrl: string;
  /** The access token, or a function that answers a fresh one (called before each request). */
  token: TokenSource;
  /** A `fetch` to use (tests wrap it); the global one by default. */
  fetch?: typeof fetch;
}

export interface SeedlingReplicationOptions extends SeedlingConnection {
  /** The device id the app signed in with. */
  deviceId: string;
  /** The device's clock: it observes the field clocks pulled. */
  clock?: Clock;
  /** The server's collection name; the RxDB collection's name by default. */
  remote?: 'children' | 'visits' | 'case_plan_items' | 'conflicts';
  /** Documents per pull and rows per push (default 100; the server pulls at most 1000). */
  batchSize?: number;
  /** Keep replicating (default true); false runs one round. */
  live?: boolean;
  /** Wait before retrying after a failed request, in ms (default 5000). */
  retryTime?: number;
  /**
   * Pokes that start a pull: by default, each replication opens its own
   * events stream when live; share one with {@link seedlingEvents}.
   */
  events?: Observable<unknown>;
}

export interface SeedlingCheckpoint {
  cursor: string | null;
}

async function tokenOf(source: TokenSource): Promise<string> {
  return typeof source === 'function' ? await source() : source;
}

/** One `changed`/`ready` value per event of Seedling's live stream, reconnecting with a back-off until unsubscribed. */
export function seedlingEvents(conn: SeedlingConnection): Observable<'changed'> {
  const doFetch = conn.fetch ?? fetch;
  return new Observable<'changed'>((subscriber) => {
    const abort = new AbortController();
    void (async () => {
      let backoff = 1000;
      while (!abort.signal.aborted) {
        try {
          const res = await doFetch(`${conn.baseUrl}/api/v1/sync/events?protocol_version=1`, {
            headers: { authorization: `Bearer ${await tokenOf(conn.token)}`, accept: 'text/event-stream' },
            signal: abort.signal,
          });
          if (res.ok && res.body) {
            backoff = 1000;
            const parser = createParser({ onEvent: () => subscriber.next('changed') });
            const reader = res.body.getReader();
            const decoder = new TextDecoder();
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              parser.feed(decoder.decode(value, { stream: true }));
            }
          } else {
            await res.body?.cancel();
          }
        } catch {
          // No signal, or unsubscribed: try again below unless aborted.
        }
        if (abort.signal.aborted) break;
        await new Promise((ok) => setTimeout(ok, backoff));
        backoff = Math.min(backoff * 2, 30_000);
      }
    })();
    return () => abort.abort();
  }).pipe(share());
}

/** Replicates one collection with the server; `conflicts` is pull-only. */
export function replicateSeedling<T = any>(
  collection: RxCollection<T>,
  opts: SeedlingReplicationOptions,
): RxReplicationState<T, SeedlingCheckpoint> {
  const remote = opts.remote ?? collection.name;
  const doFetch = opts.fetch ?? fetch;
  const base = `${opts.baseUrl}/api/v1/rxdb/${remote}`;
  const live = opts.live ?? true;
  const batchSize = opts.batchSize ?? 100;

  const call = async <R>(method: string, path: string, body?: unknown): Promise<R> => {
    const res = await doFetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await tokenOf(opts.token)}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`seedling ${method} ${remote}${path.split('?')[0]}: ${res.status} ${text}`);
    return JSON.parse(text) as R;
  };
  const observe = (docs: Record<string, unknown>[]) => {
    if (!opts.clock) return;
    for (const doc of docs) {
      for (const hlc of Object.values((doc['field_clocks'] as Record<string, string>) ?? {})) opts.clock.observe(hlc);
    }
  };

  const resync = new Subject<'RESYNC'>();
  const state = replicateRxCollection<T, SeedlingCheckpoint>({
    replicationIdentifier: `seedling:${opts.baseUrl}:${remote}:${opts.deviceId}`,
    collection,
    live,
    retryTime: opts.retryTime ?? 5000,
    waitForLeadership: false,
    pull: {
      batchSize,
      stream$: resync.asObservable(),
      async handler(checkpoint, size) {
        const q = new URLSearchParams({ batchSize: String(size) });
        if (checkpoint?.cursor) q.set('checkpoint', checkpoint.cursor);
        const answer = await call<{ documents: any[]; checkpoint: SeedlingCheckpoint }>('GET', `/pull?${q}`);
        observe(answer.documents);
        return answer;
      },
    },
    ...(remote === 'conflicts'
      ? {}
      : {
          push: {
            batchSize,
            async handler(rows) {
              const masters = await call<any[]>('POST', '/push', rows);
              observe(masters);
              return masters;
            },
          },
        }),
  });
  if (live) {
    const events = opts.events ?? seedlingEvents(opts);
    const sub = events.subscribe(() => resync.next('RESYNC'));
    void state.canceled$.subscribe((canceled) => {
      if (canceled) sub.unsubscribe();
    });
  }
  return state;
}
