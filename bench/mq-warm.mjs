#!/usr/bin/env node
// Steady-state CPU per unit of synfin with one stack against N stacks on N queues of a multi-queue
// TUN device (issue 24 item 5, BENCHMARKS.md "Past one core"). Unlike bench/ab.js, each synfin is
// warmed up first (short connections and keep-alive HTTP for --warm seconds, so every isolate's
// JIT has settled) and then measured; the variants take turns round after round.
//
//   sudo node bench/mq-warm.mjs [--rounds 4] [--seconds 8] [--warm 8] [--variants single,w1,w2]
//
// A variant is `single` (synfin as `npm run bench` runs it), `wN` (N worker threads, N queues:
// the prototype bench/synfin-workers-in-ns.mjs) or `rN` (synfin's own --workers N). Per measurement: short connections, the server closing first
// (50 in flight, connrate eof) and keep-alive HTTP (wrk -c64, nginx); synfin's CPU (all threads)
// per connection and per request, and the CPU of its busiest threads (the event loops).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ADDR, topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startNginx, startTcpServer } from './lib/servers.js';
import { SynfinProcess } from './lib/synfin.js';
import { connrate, wrk as wrkRun } from './lib/workloads.js';
import { checkPrerequisites, tool } from './lib/tools.js';
import { median } from './lib/results.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '8' },
    warm: { type: 'string', default: '8' },
    variants: { type: 'string', default: 'single,w1,w2' },
  },
});
const rounds = Number(opt.rounds);
const seconds = Number(opt.seconds);
const warm = Number(opt.warm);
const variants = opt.variants.split(',').map((v) => v.trim());
for (const v of variants) if (v !== 'single' && !/^[wr]\d+$/.test(v)) throw new Error(`variant ${v}: single, wN or rN`);
if (process.getuid?.() !== 0) throw new Error('run as root');
checkPrerequisites(['ip', 'curl', 'wrk', 'nginx']);

/** CPU ms of every thread of `pid`, by tid. */
function threadsCpu(pid) {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, ((Number(f[11]) + Number(f[12])) * 1000) / 100);
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** Runs `fn`, returns its result with synfin's CPU over it: total ms and the busiest threads' ms. */
async function measured(sf, fn) {
  const t0 = threadsCpu(sf.pid);
  const c0 = sf.cpuMs();
  const result = await fn();
  const c1 = sf.cpuMs();
  const t1 = threadsCpu(sf.pid);
  const threads = [...t1].map(([tid, ms]) => ms - (t0.get(tid) ?? 0)).sort((a, b) => b - a);
  return { result, cpuMs: c1 - c0, top: threads.slice(0, 3) };
}

// The shortconn workload's shape (50 in flight, the server writes 6 bytes and closes) and the http
// workload's (wrk -t1 -c64, keep-alive), through synfin.
const shortconn = (secs) => connrate(topo.ns.scli, ADDR.tunTarget, PORT.greet, secs, 50, 6, 'eof');
const wrk = (secs) => wrkRun(topo.ns.scli, ADDR.tunTarget, secs, false);

const { topo } = topologyTornDownOnExit();
tool('connrate');
tool('tcpserv');
topo.create();
await startTcpServer(topo, 'greet');
await startNginx(topo);
const dist = path.join(REPO, 'dist');

const results = new Map(variants.map((v) => [v, []]));
for (let round = 1; round <= rounds; round++) {
  const order = round % 2 ? variants : [...variants].reverse();
  for (const v of order) {
    // wN: the prototype (bench/synfin-workers-in-ns.mjs); rN: synfin's own --workers N.
    const workers = v.startsWith('w') ? v.slice(1) : '';
    if (workers === '') delete process.env.SYNFIN_BENCH_WORKERS;
    else process.env.SYNFIN_BENCH_WORKERS = workers;
    if (v.startsWith('r')) process.env.SYNFIN_BENCH_REAL_WORKERS = v.slice(1);
    else delete process.env.SYNFIN_BENCH_REAL_WORKERS;
    const sf = await new SynfinProcess(topo, { dist, name: `mq-${v}`, mtu: 1500 }).start();
    try {
      await shortconn(warm);
      await wrk(Math.max(2, Math.round(warm / 2)));
      const c = await measured(sf, () => shortconn(seconds));
      const h = await measured(sf, () => wrk(seconds));
      const row = {
        round,
        connPerS: c.result.rate,
        failed: c.result.failed,
        cpuUsPerConn: (c.cpuMs * 1000) / Math.max(1, c.result.ok),
        loopUsPerConn: c.top.map((ms) => (ms * 1000) / Math.max(1, c.result.ok)),
        reqPerS: h.result.rps,
        cpuUsPerReq: (h.cpuMs * 1000) / Math.max(1, h.result.total),
        loopUsPerReq: h.top.map((ms) => (ms * 1000) / Math.max(1, h.result.total)),
      };
      results.get(v).push(row);
      const f = (xs) => xs.map((x) => x.toFixed(1)).join('/');
      process.stdout.write(
        `round ${round} ${v}: ${row.connPerS.toFixed(0)} conn/s, ${row.cpuUsPerConn.toFixed(0)} µs CPU/conn (busiest threads ${f(row.loopUsPerConn)}), ${row.failed} failed; ` +
          `${row.reqPerS.toFixed(0)} req/s, ${row.cpuUsPerReq.toFixed(1)} µs CPU/req (busiest threads ${f(row.loopUsPerReq)})\n`,
      );
    } finally {
      await sf.stop();
    }
  }
}
process.stdout.write('\nmedians\n');
for (const [v, rows] of results) {
  process.stdout.write(
    `  ${v.padEnd(8)} ${median(rows.map((r) => r.connPerS)).toFixed(0)} conn/s, ${median(rows.map((r) => r.cpuUsPerConn)).toFixed(0)} µs CPU/conn; ` +
      `${median(rows.map((r) => r.reqPerS)).toFixed(0)} req/s, ${median(rows.map((r) => r.cpuUsPerReq)).toFixed(1)} µs CPU/req\n`,
  );
}
process.stdout.write(JSON.stringify({ date: new Date().toISOString(), load: fs.readFileSync('/proc/loadavg', 'utf8').trim(), rounds, seconds, warm, results: Object.fromEntries(results) }) + '\n');
// The servers this script started in its namespaces keep handles open; the exit handler of
// topologyTornDownOnExit stops them and removes the namespaces.
process.exit(0);
