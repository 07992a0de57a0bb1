// Where an idle connection's memory goes (issue 24 item 4): synfin in the benchmark's topology,
// heap snapshots before and with N idle connections held, and the difference by class.
//
//   npm run build && node bench/idle-anatomy.mjs [--idle N] [--snapshots] [--settle S] [--dist DIR]
//
// Prints: the RSS delta per connection (as the `idle` workload measures it), the V8 heap's used
// and total size and external memory before/with/after (v8 heap spaces from the snapshot-free
// /metrics), /proc/PID/smaps_rollup's anonymous memory, and with --snapshots the self size of
// every constructor that grew by at least N/2 objects, per connection. Needs root.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ADDR, topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startTcpServer } from './lib/servers.js';
import { SynfinProcess } from './lib/synfin.js';
import { Daemon, run, sleep } from './lib/proc.js';
import { BENCH_DIR, tool } from './lib/tools.js';

const { values: opt } = parseArgs({
  options: {
    idle: { type: 'string', default: '10000' },
    snapshots: { type: 'boolean', default: false },
    settle: { type: 'string', default: '30' },
    /** Instead of idle connections: short connections closed by the server (synfin's leg then waits in TIME-WAIT) for this many seconds. */
    'time-wait': { type: 'string', default: '0' },
    dist: { type: 'string', default: path.resolve(BENCH_DIR, '..', 'dist') },
  },
});
const N = Number(opt.idle);
const log = (m) => process.stdout.write(m + '\n');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sf-anatomy-'));
if (opt.snapshots) process.env.SYNFIN_BENCH_NODE_ARGS = `${process.env.SYNFIN_BENCH_NODE_ARGS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`;

const { topo, teardown: cleanup } = topologyTornDownOnExit();

function smaps(pid) {
  const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? NaN);
  return { rss: kb('Rss'), anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') };
}

async function heap(sf) {
  const { body } = await sf.get('/metrics', { body: true });
  const v = (name, label = '') => Number(new RegExp(`^${name}${label ? `\\{${label}\\}` : ''} (\\S+)$`, 'm').exec(body)?.[1] ?? NaN) / 1024;
  const spaces = {};
  for (const m of body.matchAll(/^nodejs_heap_space_size_(used|total)_bytes\{space="(\w+)"\} (\S+)$/gm)) spaces[`${m[2]} ${m[1]}`] = Number(m[3]) / 1024;
  return { used: v('nodejs_heap_size_used_bytes'), total: v('nodejs_heap_size_total_bytes'), external: v('nodejs_external_memory_bytes'), spaces };
}

async function snapshot(pid, tag) {
  const before = new Set(fs.readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    await sleep(500);
    const fresh = fs.readdirSync(dir).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (fresh.length === 0) continue;
    const file = path.join(dir, fresh[0]);
    const s1 = fs.statSync(file).size;
    await sleep(1500);
    if (fs.statSync(file).size === s1 && s1 > 0) {
      const to = path.join(dir, `${tag}.heapsnapshot`);
      fs.renameSync(file, to);
      return to;
    }
  }
}

/** Self size and count by "type:name" of every node in a snapshot. */
function byClass(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const nodes = snap.nodes;
  const out = new Map();
  for (let i = 0; i < nodes.length; i += f.length) {
    const type = types[nodes[i + iType]];
    let name = snap.strings[nodes[i + iName]];
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)';
    if (type === 'number') name = '(heap number)';
    if (type === 'code') name = '(code)';
    const key = `${type}:${name.slice(0, 60)}`;
    const e = out.get(key) ?? { n: 0, bytes: 0 };
    e.n++;
    e.bytes += nodes[i + iSize];
    out.set(key, e);
  }
  return out;
}

/** Short connections for --time-wait seconds, then the heap per TIME-WAIT record held. */
async function timeWaits(sf, base, snapA) {
  const r = await run(tool('connrate'), [ADDR.tunTarget, String(PORT.greet), opt['time-wait'], '50', '6', 'eof'], { ns: topo.ns.scli, timeoutMs: 120_000 });
  const made = JSON.parse(r.stdout).ok;
  await sleep(1000);
  const { body } = await sf.get('/metrics', { body: true });
  const records = Number(/^synfin_tcp_connections\{state="TIME_WAIT"\} (\d+)/m.exec(body)?.[1] ?? NaN);
  const held = { rss: sf.rssKb(), heap: await heap(sf) };
  log(`${made} short connections, ${records} TIME-WAIT records held; RSS ${base.rss} → ${held.rss} KiB; heap used ${base.heap.used.toFixed(0)} → ${held.heap.used.toFixed(0)} KiB`);
  if (snapA !== null) diff(byClass(snapA), byClass(await snapshot(sf.pid, 'held')), records);
}

function diff(a, b, n = N) {
  const rows = [];
  for (const [k, e] of b) {
    const o = a.get(k) ?? { n: 0, bytes: 0 };
    rows.push({ k, dn: e.n - o.n, db: e.bytes - o.bytes });
  }
  rows.sort((x, y) => y.db - x.db);
  let total = 0;
  for (const r of rows) total += r.db;
  log(`heap snapshot difference: ${(total / n).toFixed(0)} B per connection of self size (all classes)`);
  for (const r of rows.slice(0, 45)) {
    if (Math.abs(r.db) < n * 4) continue;
    log(`  ${(r.db / n).toFixed(1).padStart(7)} B/conn  ${(r.dn / n).toFixed(2).padStart(6)} obj/conn  ${r.k}`);
  }
}

async function main() {
  tool('connrate');
  tool('tcpserv');
  topo.create();
  const hold = await startTcpServer(topo, 'hold');
  const greet = await startTcpServer(topo, 'greet');
  const sf = await new SynfinProcess(topo, { dist: path.resolve(opt.dist), name: 'anatomy', mtu: 1500 }).start();
  try {
    await run(tool('connrate'), [ADDR.tunTarget, String(PORT.greet), '1', '4', '6', 'eof'], { ns: topo.ns.scli }).catch(() => {});
    for (let i = 0; i < 3; i++) await sf.get('/metrics');
    await sleep(1000);
    const base = { rss: sf.rssKb(), sm: smaps(sf.pid), heap: await heap(sf) };
    const snapA = opt.snapshots ? await snapshot(sf.pid, 'base') : null;
    if (Number(opt['time-wait']) > 0) return await timeWaits(sf, base, snapA);
    const client = new Daemon('idle client', 'sh', ['-c', 'ulimit -n 20000 && exec "$0" "$@"', process.execPath, path.join(BENCH_DIR, 'idle-client.mjs'), ADDR.tunTarget, String(PORT.hold), String(N), '200'], { ns: topo.ns.scli, readyLine: /"established"/, readyMs: 120_000 });
    const opened = JSON.parse(await client.ready);
    await sleep(2000);
    const heldRss = sf.rssKb();
    const held = { rss: heldRss, sm: smaps(sf.pid), heap: await heap(sf) };
    const snapB = opt.snapshots ? await snapshot(sf.pid, 'held') : null;
    const stdoutAtClose = sf.daemon.stdout.length;
    await client.stop('SIGTERM');
    const after = [];
    const closedAt = Date.now();
    for (let s = 1; s <= Number(opt.settle); s++) {
      await sleep(Math.max(0, closedAt + s * 1000 - Date.now()));
      after.push(sf.rssKb());
    }
    const end = { rss: after.at(-1), sm: smaps(sf.pid), heap: await heap(sf) };
    const per = (a, b) => ((b - a) / opened.established).toFixed(2);
    log(`${opened.established}/${N} held; RSS ${base.rss} → ${heldRss} KiB = ${per(base.rss, heldRss)} KiB/conn; ${opt.settle} s after close ${end.rss} KiB (${((end.rss - base.rss) / 1024).toFixed(1)} MiB)`);
    for (const [name, b, h, e] of [
      ['anon (smaps)', base.sm.anon, held.sm.anon, end.sm.anon],
      ['file-backed (smaps)', base.sm.file, held.sm.file, end.sm.file],
      ['V8 heap used', base.heap.used, held.heap.used, end.heap.used],
      ['V8 heap total', base.heap.total, held.heap.total, end.heap.total],
      ['external', base.heap.external, held.heap.external, end.heap.external],
      ...Object.keys(held.heap.spaces).map((s) => [`  space ${s}`, base.heap.spaces[s], held.heap.spaces[s], end.heap.spaces[s]]),
    ]) {
      log(`  ${name.padEnd(28)} ${b.toFixed(0).padStart(8)} → ${h.toFixed(0).padStart(8)} → ${e.toFixed(0).padStart(8)} KiB  (${per(b, h)} KiB/conn held)`);
    }
    log(`  RSS each second after close (MiB above base): ${after.map((r) => ((r - base.rss) / 1024).toFixed(0)).join(' ')}`);
    // With SYNFIN_BENCH_NODE_ARGS=--trace-gc: the full collections after the close (the close-wave collection's pause).
    const fullGcs = sf.daemon.stdout.slice(stdoutAtClose).split('\n').filter((l) => /Mark-Compact/.test(l));
    for (const l of fullGcs) log(`  after close: ${l.trim()}`);
    if (snapA !== null && snapB !== null) {
      diff(byClass(snapA), byClass(snapB));
      log(`snapshots: ${snapA} ${snapB}`);
    }
  } finally {
    await sf.stop();
    await hold.stop();
    await greet.stop();
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
