#!/usr/bin/env node
// The pouchdb-server side of the Seedling sync API benchmarks: the same work
// as `seedling-bench`, done by PouchDB 9 devices replicating (CouchDB
// replication protocol) with a pouchdb-server 4.2.0.
//
//   node pouch.js --server http://127.0.0.1:PORT --scenario push10k|pull10k|burst
//                 [--visits N] [--batch 100] [--limit 1000] [--devices 327]
//                 [--server-pid PID] [--label L]
//
// Devices keep their local database in memory (pouchdb-adapter-memory), as
// the Seedling benchmark client keeps no local store: both sides measure the
// server and the wire. The server keeps one database per village
// (`village-001` …), the CouchDB way to give a director their scope. Local
// documents are written before the clock starts. The JSON result is the last
// line of standard output; progress goes to standard error.
'use strict';

const fs = require('fs');
const PouchDB = require('pouchdb').plugin(require('pouchdb-adapter-memory'));

function parseArgs(argv) {
  const args = { batch: 100, limit: 1000, devices: 327, label: '', timeoutSecs: 600 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    args[key] = argv[i + 1];
  }
  for (const k of ['batch', 'limit', 'devices', 'visits', 'serverPid', 'timeoutSecs']) {
    if (args[k] !== undefined) args[k] = Number(args[k]);
  }
  if (!args.server || !args.scenario) {
    throw new Error('usage: pouch.js --server URL --scenario push10k|pull10k|burst');
  }
  return args;
}

const progress = (m) => process.stderr.write(`pouch-bench: ${m}\n`);
const round3 = (x) => Math.round(x * 1000) / 1000;
const perSecond = (n, s) => (s > 0 ? Math.round(n / s) : 0);

// Every HTTP request PouchDB makes goes through this fetch, which times it.
let latencies = [];
function timedFetch(url, opts) {
  const t0 = process.hrtime.bigint();
  return PouchDB.fetch(url, opts).then(
    async (res) => {
      // Time to the whole body, as seedling-bench does.
      const body = await res.arrayBuffer();
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    },
  );
}

function latencyOf(samples) {
  const ms = [...samples].sort((a, b) => a - b);
  const rank = (p) => (ms.length ? round3(ms[Math.min(ms.length, Math.max(1, Math.ceil(p * ms.length))) - 1]) : 0);
  return { requests: ms.length, p50_ms: rank(0.5), p99_ms: rank(0.99), max_ms: rank(1) };
}

function procStatusMiB(pid, key) {
  try {
    const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(key));
    return line ? round3(parseInt(line.split(/\s+/)[1], 10) / 1024) : null;
  } catch (_) {
    return null;
  }
}

const remote = (args, village) =>
  new PouchDB(`${args.server}/village-${String(village).padStart(3, '0')}`, { fetch: timedFetch });
let localCount = 0;
const local = () => new PouchDB(`device-${localCount++}`, { adapter: 'memory' });

// A visit document with the same content as seedling-bench's visit create.
function visitDoc(device, village, n, offset) {
  const now = Date.now();
  const daysAgo = ((offset + n) % 180) + 1;
  const visitedAt = new Date(now - daysAgo * 86400e3 + (n % 600) * 60e3);
  return {
    _id: `visit:${device}:${String(n).padStart(6, '0')}`,
    type: 'visit',
    child_id: `child-${village}-${n % 2}`,
    author_id: `director-${village}`,
    device_id: `device-${device}`,
    village_id: `village-${village}`,
    kind: 'home_visit',
    visited_at: visitedAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    review_status: 'submitted',
    location: 'home',
    observations: {
      living: `meals regular, house clean (visit ${n})`,
      study: 'attends school, grade average',
      psychology: 'cheerful, talks about friends',
      health: 'no complaints',
      safety: 'no concerns',
    },
    follow_up: 'check school attendance next visit',
  };
}

async function fill(db, docs) {
  for (let i = 0; i < docs.length; i += 1000) {
    await db.bulkDocs(docs.slice(i, i + 1000));
  }
}

async function push10k(args) {
  const visits = args.visits || 10000;
  const db = local();
  await fill(db, Array.from({ length: visits }, (_, n) => visitDoc(0, 1, n, 0)));
  const target = remote(args, 1);
  await target.info();
  latencies = [];
  progress(`push10k: ${visits} visits, batch_size ${args.batch}`);
  const t0 = process.hrtime.bigint();
  const r = await db.replicate.to(target, { batch_size: args.batch });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    scenario: 'push10k', visits, applied: r.docs_written, rejected: r.doc_write_failures,
    seconds: round3(seconds), visits_per_s: perSecond(r.docs_written, seconds), latency: latencyOf(latencies),
  };
}

async function pull10k(args) {
  const db = local();
  const source = remote(args, 1);
  latencies = [];
  const t0 = process.hrtime.bigint();
  const r = await db.replicate.from(source, { batch_size: args.limit });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    scenario: 'pull10k', records: r.docs_written, visits: r.docs_written, seconds: round3(seconds),
    visits_per_s: perSecond(r.docs_written, seconds), records_per_s: perSecond(r.docs_written, seconds),
    latency: latencyOf(latencies),
  };
}

async function burst(args) {
  const devices = args.devices;
  const visits = args.visits || 3559;
  const share = (i) => Math.floor(visits / devices) + (i < visits % devices ? 1 : 0);
  progress(`burst: preparing ${devices} devices`);
  const prepared = [];
  for (let i = 0; i < devices; i++) {
    const db = local();
    const village = i + 1;
    const server = remote(args, village);
    // The device is in sync before the burst, as the Seedling devices are after their first pull.
    await db.replicate.from(server, { batch_size: args.limit });
    await fill(db, Array.from({ length: share(i) }, (_, n) => visitDoc(1000 + i, village, n, i * 7)));
    prepared.push({ db, server, pushed: share(i) });
  }
  const rssBefore = args.serverPid ? procStatusMiB(args.serverPid, 'VmRSS') : null;
  let peak = 0;
  const sampler = args.serverPid
    ? setInterval(() => { peak = Math.max(peak, procStatusMiB(args.serverPid, 'VmRSS') || 0); }, 2)
    : null;
  latencies = [];
  progress(`burst: ${devices} devices push ${visits} visits at once, then pull`);
  const t0 = process.hrtime.bigint();
  const runs = await Promise.all(prepared.map(async (p) => {
    const pushed = await p.db.replicate.to(p.server, { batch_size: 100 });
    const pulled = await p.db.replicate.from(p.server, { batch_size: args.limit });
    return { pushed: p.pushed, written: pushed.docs_written, failed: pushed.doc_write_failures, pulled };
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (sampler) clearInterval(sampler);
  const applied = runs.reduce((s, r) => s + r.written, 0);
  return {
    scenario: 'burst', devices, databases: 'one per village', visits: runs.reduce((s, r) => s + r.pushed, 0),
    applied, rejected: runs.reduce((s, r) => s + r.failed, 0), seconds: round3(seconds),
    visits_per_s: perSecond(applied, seconds), latency: latencyOf(latencies),
    server_rss_before_mib: rssBefore, server_rss_peak_mib: args.serverPid ? round3(peak) : null,
    server_vmhwm_mib: args.serverPid ? procStatusMiB(args.serverPid, 'VmHWM') : null,
  };
}

async function main() {
  const args = parseArgs(process.argv);
  const timer = setTimeout(() => { progress(`gave up after ${args.timeoutSecs} s`); process.exit(2); }, args.timeoutSecs * 1000);
  const scenarios = { push10k, pull10k, burst };
  const run = scenarios[args.scenario];
  if (!run) throw new Error(`unknown scenario ${args.scenario}`);
  const result = await run(args);
  result.label = args.label;
  clearTimeout(timer);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => { progress(String(e && e.stack || e)); process.exit(1); });
