// Builds the field app into the folder named on the command line (default
// dist/): app.js and sw.js bundled by esbuild (the SDK imported from
// ../sdk/src), app.css minified, the static files copied, and the service
// worker's cache named by a hash of the shell's bytes. Same input, same
// bytes: CI rebuilds and runs `git diff --exit-code app/dist`.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const app = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(app, process.argv[2] ?? 'dist');
const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));

// The SDK's one dependency comes from the app's own node_modules, so the
// bundle does not depend on whether sdk/node_modules is installed.
const ownDeps = {
  name: 'own-deps',
  setup(build) {
    build.onResolve({ filter: /^dexie$/ }, async (args) => {
      if (args.pluginData === 'own') return undefined;
      const r = await build.resolve(args.path, { kind: args.kind, resolveDir: app, pluginData: 'own' });
      return { path: r.path, errors: r.errors };
    });
  },
};

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  charset: 'utf8',
  legalComments: 'none',
  write: false,
  logLevel: 'warning',
  absWorkingDir: app,
};

async function bundle(entry, define) {
  const r = await esbuild.build({ ...common, entryPoints: [join(app, entry)], define, plugins: [ownDeps] });
  return Buffer.from(r.outputFiles[0].contents);
}

const files = new Map();
files.set('app.js', await bundle('src/main.ts', { __APP_VERSION__: JSON.stringify(pkg.version) }));
const css = await esbuild.transform(readFileSync(join(app, 'static/app.css'), 'utf8'), { loader: 'css', minify: true, charset: 'utf8' });
files.set('app.css', Buffer.from(css.code));
for (const f of ['index.html', 'manifest.webmanifest', 'icon-192.png', 'icon-512.png']) files.set(f, readFileSync(join(app, 'static', f)));

const shell = ['./', 'index.html', 'app.js', 'app.css', 'manifest.webmanifest', 'icon-192.png', 'icon-512.png'];
const hash = createHash('sha256');
for (const name of [...files.keys()].sort()) hash.update(name).update('\0').update(files.get(name)).update('\0');
const version = hash.digest('hex').slice(0, 16);
files.set('sw.js', await bundle('src/sw.ts', { __SHELL_VERSION__: JSON.stringify(version), __SHELL_FILES__: JSON.stringify(shell) }));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [name, bytes] of [...files.entries()].sort()) writeFileSync(join(out, name), bytes);
const listed = readdirSync(out).sort();
if (process.env.BUILD_QUIET !== '1') console.log(`built ${listed.join(', ')} into ${out} (shell ${version})`);
