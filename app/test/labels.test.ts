/**
 * Every code the server can answer reaches a director in words: each
 * rejection reason the API document enumerates has a label of its own in
 * both languages, never the catch-all and never the server's English. The
 * document is read from the reviewed snapshot the server's tests hold equal
 * to the live `/openapi.json`.
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { label, setLang, t } from '../src/i18n.ts';

const SNAPSHOT = new URL('../../tests/tests/e2e/snapshots/e2e__operations__openapi.snap', import.meta.url);

function documentReasons(): string[] {
  const text = readFileSync(SNAPSHOT, 'utf8');
  const doc = JSON.parse(text.slice(text.indexOf('\n{'))) as {
    components: { schemas: Record<string, { properties: Record<string, { items: { oneOf: { properties: Record<string, { enum?: string[] }> }[] } }> }> };
  };
  const variants = doc.components.schemas['PushResponse']!.properties['results']!.items.oneOf;
  const reasons = variants.flatMap((v) => v.properties['reason']?.enum ?? []);
  assert.ok(reasons.length > 10, 'the document enumerates the rejection reasons');
  return reasons;
}

test('every rejection reason in the API document has its own label in Chinese and English', () => {
  (globalThis as { document?: unknown }).document = { documentElement: {} };
  for (const lang of ['zh', 'en'] as const) {
    setLang(lang);
    const fallback = t('reason_unknown');
    for (const reason of documentReasons()) {
      const text = label('reason_', reason, 'reason_unknown');
      assert.notEqual(text, fallback, `${lang}: ${reason} has no label`);
      assert.doesNotMatch(text, /_/, `${lang}: ${reason} shows a code`);
    }
  }
  setLang('zh');
  assert.match(label('reason_', 'id_exists', 'reason_unknown'), /[\u4e00-\u9fff]/);
});
