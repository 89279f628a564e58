/**
 * The document is the product for app developers: a TypeScript client is
 * generated from the live `/openapi.json` with openapi-typescript, and a
 * typed reference to every operation — its parameters, its request body
 * and its success answer — is type-checked against it with `tsc --strict`.
 * A route the generator cannot type, or a document it cannot read, fails
 * here.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

import openapiTS, { astToString } from 'openapi-typescript';

import { startServer, type TestServer } from './server.ts';

type Operation = { requestBody?: { content?: Record<string, unknown> }; responses?: Record<string, { content?: Record<string, unknown> }> };

describe('a TypeScript client generated from /openapi.json', () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    server = await startServer();
    dir = mkdtempSync(join(tmpdir(), 'seedling-openapi-'));
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('types every operation, and a typed call to each compiles', async () => {
    const doc = (await (await fetch(`${server.baseUrl}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, Operation>>;
    };
    const ast = await openapiTS(doc as never);
    writeFileSync(join(dir, 'schema.d.ts'), astToString(ast));
    const lines = ["import type { paths } from './schema.d.ts';", ''];
    let n = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!['get', 'put', 'post', 'delete', 'patch'].includes(method)) continue;
        n += 1;
        const at = `paths[${JSON.stringify(path)}][${JSON.stringify(method)}]`;
        lines.push(`export type Op${n} = ${at};`);
        lines.push(`export type Params${n} = ${at}['parameters'];`);
        if (op.requestBody?.content?.['application/json']) {
          lines.push(`export type Body${n} = NonNullable<${at}['requestBody']>['content']['application/json'];`);
        }
        const ok = Object.entries(op.responses ?? {}).find(([code]) => code.startsWith('2'));
        if (ok?.[1].content?.['application/json']) {
          lines.push(`export type Answer${n} = ${at}['responses'][${ok[0]}]['content']['application/json'];`);
        }
        // Every error answer is the one envelope.
        const error = Object.entries(op.responses ?? {}).find(([code]) => code.startsWith('4'));
        if (error?.[1].content?.['application/json']) {
          lines.push(
            `export const envelope${n} = (e: ${at}['responses'][${error[0]}]['content']['application/json']): string => e.error.code;`,
          );
        }
      }
    }
    assert.ok(n >= 40, `only ${n} operations`);
    writeFileSync(join(dir, 'check.ts'), lines.join('\n') + '\n');
    const tsc = resolve(import.meta.dirname, '../node_modules/typescript/bin/tsc');
    try {
      execFileSync(
        process.execPath,
        [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--allowImportingTsExtensions', join(dir, 'check.ts')],
        { stdio: 'pipe' },
      );
    } catch (err) {
      const out = (err as { stdout?: Buffer }).stdout?.toString() ?? String(err);
      assert.fail(`the generated client does not type-check:\n${out.slice(0, 4000)}`);
    }
  });
});
