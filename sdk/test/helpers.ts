/** Test helpers: SDK instances on their own fake IndexedDB (one per phone), a recording sleep, fetch wrappers. */

import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';

import { Seedling } from '../src/index.ts';
import type { SeedlingOptions } from '../src/types.ts';

export interface Phone {
  sdk: Seedling;
  idb: IDBFactory;
  sleeps: number[];
  opts: SeedlingOptions;
  /** Opens the same store again, as after an app restart. */
  reopen(extra?: Partial<SeedlingOptions>): Promise<Seedling>;
}

export async function phone(baseUrl: string, extra: Partial<SeedlingOptions> = {}): Promise<Phone> {
  const idb = new IDBFactory();
  const sleeps: number[] = [];
  const opts: SeedlingOptions = {
    baseUrl,
    dbName: 'seedling',
    indexedDB: idb,
    IDBKeyRange,
    pinIterations: 200_000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  };
  const p: Phone = {
    sdk: await Seedling.open(opts),
    idb,
    sleeps,
    opts,
    reopen: async (more = {}) => {
      p.sdk.stopAutoSync();
      p.sdk.db.close();
      p.sdk = await Seedling.open({ ...opts, ...more });
      return p.sdk;
    },
  };
  return p;
}

/** Every value stored in every object store of a fake IndexedDB, as text. */
export async function rawDump(sdk: Seedling): Promise<string> {
  const db = sdk.db;
  const parts: string[] = [];
  for (const table of db.tables) {
    for (const row of await table.toArray()) {
      parts.push(
        JSON.stringify(row, (_k, v) => {
          if (v instanceof ArrayBuffer) return new TextDecoder('utf-8', { fatal: false }).decode(v);
          if (ArrayBuffer.isView(v)) return new TextDecoder('utf-8', { fatal: false }).decode(v as Uint8Array);
          return v;
        }),
      );
    }
  }
  return parts.join('\n');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
