#!/usr/bin/env node
// The floor of synfin's design on the connection rows (issue 24: connect and first byte one at a
// time, short connections closed by the server first): the same workloads through `tun-floor`
// (bench/tools/tun-floor.c), a C program that answers the app's SYN on the same TUN device only
// once its upstream connect() succeeded, as synfin does, with no TCP stack, no JavaScript and no
// bookkeeping. What it measures is what the deferred handshake over a TUN device costs on this
// machine before any of synfin's own work: two thread wake-ups, the TUN read and write, a second
// kernel handshake. Path `floorjs` is the same algorithm on Node.js (bench/tools/tun-floor.mjs),
// through synfin's native addon and its I/O primitives: the floor of that design for a relay
// written on Node.js; `floorjsopt` the same with the TCP options synfin's stack uses (timestamps,
// SACK-permitted, window scale); `floorjs+burn=US` and `floorjs+touch=KB` its experiments (extra
// user work per connection: bench/tools/tun-floor.mjs). The kernel path, haproxy and synfin run in the same rounds, in rotating order.
//
//   sudo node bench/handshake-floor.mjs [--rounds 3] [--seconds 5] [--paths kernel,floor,floorjs,haproxy,synfin]
//                                       [--dist DIR] [--out FILE.json]
//
// Prints, per path, the medians over the rounds (with min-max) of: connect() p50/p99 and first
// byte p50/p99 one connection at a time (connrate against the greet server: 6 bytes, then the
// server closes); short connections per second with 50 in flight on the same server, and the
// relay's CPU per connection there (/proc/PID/stat, all threads).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startTcpServer } from './lib/servers.js';
import { pathOrder } from './lib/relays.js';
import { isFloorPath, withFloorOr } from './lib/tun-floor.js';
import { procCpuSplitMs, run, sleep } from './lib/proc.js';
import { checkPrerequisites, tool } from './lib/tools.js';
import { median } from './lib/results.js';
import { loadAverage, machine } from './lib/report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    paths: { type: 'string', default: 'kernel,floor,haproxy,synfin' },
    dist: { type: 'string' },
    out: { type: 'string' },
  },
});
const rounds = Number(opt.rounds);
const seconds = Number(opt.seconds);
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 50)) throw new Error('--rounds must be 1..50');
if (!(seconds >= 1 && seconds <= 600)) throw new Error('--seconds must be 1..600');
const paths = opt.paths.split(',');
checkPrerequisites(['ip', ...(paths.includes('haproxy') ? ['haproxy'] : [])]);
for (const p of paths) if (!['kernel', 'haproxy', 'synfin'].includes(p) && !isFloorPath(p)) throw new Error(`unknown path ${p}`);
const dist = path.resolve(opt.dist ?? path.join(here, '..', 'dist'));
const CONC = 50;

async function connrate(ns, host, secs, conc) {
  const r = await run(tool('connrate'), [host, String(PORT.greet), String(secs), String(conc), '6', 'eof'], { ns, timeoutMs: (secs + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

const loadBefore = loadAverage();
const { topo } = topologyTornDownOnExit();
topo.create();
const ctx = { topo, dist, log: (s) => process.stderr.write(`${s}\n`) };
const samples = Object.fromEntries(paths.map((p) => [p, []]));
const server = await startTcpServer(topo, 'greet');
try {
  for (let round = 0; round < rounds; round++) {
    for (const p of pathOrder(round, paths)) {
      await withFloorOr(ctx, p, 'handshake-floor', async (relay, ep) => {
        await connrate(ep.ns, ep.host, 1, 1); // warm-up (JIT, caches): not measured
        const one = await connrate(ep.ns, ep.host, seconds, 1);
        const cpu0 = relay === null ? null : procCpuSplitMs(relay.pid);
        const many = await connrate(ep.ns, ep.host, seconds, CONC);
        const cpu1 = relay === null ? null : procCpuSplitMs(relay.pid);
        const perConn = (ms) => (ms * 1000) / many.ok;
        const s = {
          round,
          connectP50: one.connectUs.p50,
          connectP99: one.connectUs.p99,
          firstByteP50: one.firstByteUs.p50,
          firstByteP99: one.firstByteUs.p99,
          oneAtATimeOk: one.ok,
          oneAtATimeFailed: one.failed,
          rate: many.rate,
          manyOk: many.ok,
          manyFailed: many.failed,
          cpuUsPerConn: cpu0 === null ? null : perConn(cpu1.user + cpu1.system - cpu0.user - cpu0.system),
          userUsPerConn: cpu0 === null ? null : perConn(cpu1.user - cpu0.user),
          systemUsPerConn: cpu0 === null ? null : perConn(cpu1.system - cpu0.system),
        };
        samples[p].push(s);
        ctx.log(`round ${round + 1} ${p}: connect p50/p99 ${s.connectP50}/${s.connectP99} µs, first byte ${s.firstByteP50}/${s.firstByteP99} µs; ${CONC} in flight ${Math.round(s.rate)}/s${s.cpuUsPerConn === null ? '' : `, ${s.cpuUsPerConn.toFixed(1)} µs CPU/conn (user ${s.userUsPerConn.toFixed(1)}, system ${s.systemUsPerConn.toFixed(1)})`}; failed ${s.oneAtATimeFailed + s.manyFailed}`);
      });
      await sleep(500);
    }
  }
} finally {
  await server.stop();
}

const fmt = (xs, digits = 0) => {
  const v = xs.filter((x) => x !== null);
  if (v.length === 0) return '—';
  return `${median(v).toFixed(digits)} (${Math.min(...v).toFixed(digits)}–${Math.max(...v).toFixed(digits)})`;
};
const lines = [
  `handshake floor: ${rounds} rounds, ${seconds} s per measurement, medians (min–max); ${new Date().toISOString()}; load before ${loadBefore}, after ${loadAverage()}`,
  '',
  `| path | connect p50 µs | connect p99 µs | first byte p50 µs | first byte p99 µs | short conns/s, ${CONC} in flight | relay CPU µs/conn | user | system | failed |`,
  '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
];
for (const p of paths) {
  const s = samples[p];
  const col = (k, d) => fmt(s.map((x) => x[k]), d);
  const failed = s.reduce((n, x) => n + x.oneAtATimeFailed + x.manyFailed, 0);
  lines.push(`| ${p} | ${col('connectP50')} | ${col('connectP99')} | ${col('firstByteP50')} | ${col('firstByteP99')} | ${col('rate')} | ${col('cpuUsPerConn', 1)} | ${col('userUsPerConn', 1)} | ${col('systemUsPerConn', 1)} | ${failed} |`);
}
process.stdout.write(lines.join('\n') + '\n');
if (opt.out !== undefined) {
  fs.mkdirSync(path.dirname(path.resolve(opt.out)), { recursive: true });
  fs.writeFileSync(opt.out, JSON.stringify({ date: new Date().toISOString(), machine: machine(), load: [loadBefore, loadAverage()], rounds, seconds, conc: CONC, dist, samples }, null, 2));
}
