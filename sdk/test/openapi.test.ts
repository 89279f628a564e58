/**
 * The wire types of src/wire.ts against the live `/openapi.json` of a real
 * server: every property the SDK sends or expects exists in the schema with
 * a compatible type, and the bodies the SDK really sends carry no property
 * the schema lacks.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { WIRE_RESULT_VARIANTS, WIRE_SCHEMAS } from '../src/wire.ts';
import { phone } from './helpers.ts';
import { PASSWORD, startServer, type TestServer } from './server.ts';

type Schema = { type?: string | string[]; $ref?: string; properties?: Record<string, Schema>; items?: Schema; oneOf?: Schema[]; allOf?: Schema[]; enum?: unknown[] };

function typesOf(s: Schema, components: Record<string, Schema>): string[] {
  if (s.$ref) return typesOf(components[s.$ref.split('/').pop()!]!, components).concat(['object']);
  if (s.allOf) return s.allOf.flatMap((x) => typesOf(x, components));
  if (s.oneOf) return s.oneOf.flatMap((x) => typesOf(x, components));
  if (Array.isArray(s.type)) return s.type;
  if (s.type) return [s.type];
  if (s.enum) return ['string'];
  return [];
}

function compatible(want: string, have: string[]): boolean {
  if (have.includes(want)) return true;
  return want === 'integer' && have.includes('number');
}

describe('wire types against /openapi.json', () => {
  let server: TestServer;
  let doc: { components: { schemas: Record<string, Schema> } };
  before(async () => {
    server = await startServer();
    doc = (await (await fetch(`${server.baseUrl}/openapi.json`)).json()) as typeof doc;
  });
  after(async () => {
    await server?.stop();
  });

  test('every property of every wire type exists with a compatible type', () => {
    const schemas = doc.components.schemas;
    for (const [component, props] of Object.entries(WIRE_SCHEMAS)) {
      const schema = schemas[component];
      assert.ok(schema, `component ${component} exists`);
      for (const [prop, want] of Object.entries(props)) {
        const p = schema.properties?.[prop];
        assert.ok(p, `${component}.${prop} exists in the schema`);
        const have = typesOf(p, schemas);
        assert.ok(compatible(want, have), `${component}.${prop}: the SDK expects ${want}, the schema says ${JSON.stringify(have)}`);
      }
    }
  });

  test('the push result variants match the schema’s oneOf', () => {
    const results = doc.components.schemas['PushResponse']!.properties!['results']!.items!.oneOf!;
    for (const [status, props] of Object.entries(WIRE_RESULT_VARIANTS)) {
      const variant = results.find((v) => v.properties?.['status']?.enum?.includes(status));
      assert.ok(variant, `a ${status} variant exists`);
      for (const [prop, want] of Object.entries(props)) {
        const p = variant.properties?.[prop];
        assert.ok(p, `${status}.${prop} exists`);
        assert.ok(compatible(want, typesOf(p, doc.components.schemas)), `${status}.${prop} is ${want}`);
      }
    }
  });

  test('the bodies the SDK sends carry only properties the schema knows', async () => {
    const sent: { path: string; body: Record<string, unknown> }[] = [];
    const f: typeof fetch = async (input, init) => {
      const url = new URL(String(input));
      if (init?.body && typeof init.body === 'string') sent.push({ path: url.pathname, body: JSON.parse(init.body) });
      return fetch(input, init);
    };
    let offset = 0;
    const p = await phone(server.baseUrl, { fetch: f, now: () => Date.now() + offset });
    await p.sdk.signIn('director-050', PASSWORD, 'Pixel 7');
    await p.sdk.setPin('1234');
    await p.sdk.sync();
    const [kid] = await p.sdk.children();
    await p.sdk.saveVisit({ child_id: kid!.id, kind: 'home_visit', visited_at: new Date().toISOString() }, { submit: true });
    offset = 20 * 60_000;
    await p.sdk.sync();
    const byPath: Record<string, string> = {
      '/api/v1/auth/login': 'LoginRequest',
      '/api/v1/auth/refresh': 'RefreshRequest',
      '/api/v1/sync/push': 'PushRequest',
    };
    const seen = new Set<string>();
    for (const { path, body } of sent) {
      const component = byPath[path];
      if (!component) continue;
      seen.add(component);
      const props = doc.components.schemas[component]!.properties!;
      for (const key of Object.keys(body)) assert.ok(key in props, `${component} has ${key}`);
    }
    assert.deepEqual([...seen].sort(), ['LoginRequest', 'PushRequest', 'RefreshRequest']);
  });
});
