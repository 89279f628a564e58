// Rebuilds into a temporary folder and compares with the committed dist/:
// exits 1 naming every file that differs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const app = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'seedling-app-dist-'));
try {
  execFileSync(process.execPath, [join(app, 'scripts/build.mjs'), tmp], { stdio: 'inherit', env: { ...process.env, BUILD_QUIET: '1' } });
  const dist = join(app, 'dist');
  const names = new Set([...readdirSync(dist), ...readdirSync(tmp)]);
  const bad = [];
  for (const n of [...names].sort()) {
    let a, b;
    try { a = readFileSync(join(dist, n)); } catch { a = null; }
    try { b = readFileSync(join(tmp, n)); } catch { b = null; }
    if (!a || !b || !a.equals(b)) bad.push(n);
  }
  if (bad.length) {
    console.error(`app/dist is not what the sources build (differs: ${bad.join(', ')}); run \`npm run build\` and commit dist/`);
    process.exit(1);
  }
  console.log('app/dist matches a fresh build');
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
