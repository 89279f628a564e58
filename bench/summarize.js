#!/usr/bin/env node
// Turns the JSON lines written by bench/run.sh into the Markdown table of
// docs/BENCHMARKS.md: the median of the repetitions, with the range
// (min–max) in brackets, per backend.
'use strict';

const fs = require('fs');

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: summarize.js results.jsonl\n');
  process.exit(64);
}
const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const backends = ['sqlite', 'postgres', 'pouchdb'];
const names = { sqlite: 'Seedling SQLite', postgres: 'Seedling PostgreSQL', pouchdb: 'pouchdb-server' };

function values(backend, scenario, pick) {
  return rows
    .filter((r) => r.backend === backend && r.scenario === scenario)
    .map(pick)
    .filter((v) => typeof v === 'number' && Number.isFinite(v));
}
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function fmt(x) {
  if (Math.abs(x) >= 100) return String(Math.round(x));
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}
function cell(backend, scenario, pick) {
  const xs = values(backend, scenario, pick);
  if (!xs.length) return '—';
  if (xs.length === 1) return fmt(xs[0]);
  return `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}
function ratio(backend, scenario, pick) {
  const a = values(backend, scenario, pick);
  const b = values('pouchdb', scenario, pick);
  if (!a.length || !b.length || backend === 'pouchdb') return '';
  const r = median(a) / median(b);
  return ` **${r < 1 ? r.toFixed(2) : r.toFixed(1)}×**`;
}

const lines = [
  ['push 10,000 visits (100 × 100): time, s', 'push10k', (r) => r.seconds],
  ['push 10,000: visits/s', 'push10k', (r) => r.visits_per_s, true],
  ['push 10,000: p99 push latency, ms', 'push10k', (r) => r.latency && r.latency.p99_ms],
  ['fresh device pulls them: time, s', 'pull10k', (r) => r.seconds],
  ['pull: visits/s', 'pull10k', (r) => r.visits_per_s, true],
  ['pull: records received (visits + village children etc.)', 'pull10k', (r) => r.records],
  ['burst, 327 devices × 1 push + pull (3,559 visits): time, s', 'burst', (r) => r.seconds],
  ['burst: visits/s', 'burst', (r) => r.visits_per_s, true],
  ['burst: requests measured', 'burst', (r) => r.latency && r.latency.requests],
  ['burst: p50 request latency, ms', 'burst', (r) => r.latency && r.latency.p50_ms],
  ['burst: p99 request latency, ms', 'burst', (r) => r.latency && r.latency.p99_ms],
  ['burst: p99 push latency, ms', 'burst', (r) => r.push_latency && r.push_latency.p99_ms],
  ['burst: server RSS peak (sampled VmRSS), MiB', 'burst', (r) => r.server_rss_peak_mib],
  ['server VmHWM after the burst (whole run), MiB', 'burst', (r) => r.server_vmhwm_mib],
  ['bootstrap supervisor-01 (town scope): time, s', 'bootstrap', (r) => r.seconds],
  ['bootstrap: records', 'bootstrap', (r) => r.records],
  ['bootstrap: records/s', 'bootstrap', (r) => r.records_per_s],
];

const out = [];
out.push(`| measure | ${backends.map((b) => names[b]).join(' | ')} |`);
out.push(`|---|${backends.map(() => '---').join('|')}|`);
for (const [label, scenario, pick, withRatio] of lines) {
  const cells = backends.map((b) => cell(b, scenario, pick) + (withRatio ? ratio(b, scenario, pick) : ''));
  out.push(`| ${label} | ${cells.join(' | ')} |`);
}
const reps = new Set(rows.map((r) => r.rep)).size;
out.push('');
out.push(`Median of ${reps} repetition(s), range in brackets; **n×** = throughput relative to pouchdb-server.`);
const bad = rows.filter((r) => r.rejected > 0 || r.devices_missing_own_visits_in_pull > 0);
for (const r of bad) {
  out.push(`Note: ${r.backend} rep ${r.rep} ${r.scenario}: ${r.rejected} rejected, ` +
    `${r.devices_missing_own_visits_in_pull || 0} devices missing their own visits in the pull.`);
}
process.stdout.write(out.join('\n') + '\n');
