#!/usr/bin/env node
// Where synfin's slow connections come from (BENCHMARKS.md, "Where the tail comes from"). One
// connection at a time against the greet server, on the kernel path and through synfin AT THE
// SAME TIME (two connrate clients, one per path), every sample written with its start time on
// CLOCK_MONOTONIC; synfin runs with bench/trace-tail.cjs preloaded, which records its garbage
// collections, its timer callbacks and the moments its event loop ran late. Then each of
// synfin's slow samples (above its p99) is lined up with what overlapped it:
//   host      the kernel path had a slow sample (above its p99) overlapping it: the machine stalled both
//   gc        a collection in synfin overlapped it
//   busy      the loop ran late while synfin used CPU (synfin's own work held it)
//   waiting   the loop ran late while synfin used little CPU (its thread waited for a core)
//   timer     a timer callback of synfin's ran inside it
// and the same overlaps for all samples, as the base rate to compare with.
//
//   sudo node bench/tail.mjs [--seconds 10] [--rounds 1] [--dist DIR] [--env K=V,...] [--node-args=...] [--keep] [--json FILE]
// --cpu-prof adds a CPU profile of synfin and lists what ran during the loop's busy late turns.
// --alloc adds a sampling allocation profile of synfin (alloc-N.heapprofile, with --keep).
// --keep leaves the sample files (bench/tools/connrate.c, CONNRATE_SAMPLES) and synfin's trace.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Topology, ADDR } from './lib/topology.js';
import { PORT, startTcpServer } from './lib/servers.js';
import { SynfinProcess } from './lib/synfin.js';
import { killAllDaemons, run, sleep } from './lib/proc.js';
import { tool } from './lib/tools.js';
import { workingTreeDist } from './lib/snapshot.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '1' },
    dist: { type: 'string' },
    env: { type: 'string', default: '' },
    'node-args': { type: 'string', default: '' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    alloc: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
if (process.getuid?.() !== 0) {
  process.stderr.write('bench/tail: run as root (namespaces, a TUN device)\n');
  process.exit(2);
}
const seconds = Number(opt.seconds);
const rounds = Number(opt.rounds);
const dist = opt.dist !== undefined ? path.resolve(opt.dist) : workingTreeDist(REPO).dist;
const extraEnv = Object.fromEntries(opt.env.split(',').filter((s) => s.includes('=')).map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]));

const topo = new Topology();
process.on('exit', () => {
  killAllDaemons();
  topo.destroy();
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
const connrate = tool('connrate');
topo.create();
const greet = await startTcpServer(topo, 'greet');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sfb-tail-'));

function readSamples(file) {
  const c = [];
  const f = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [k, s, us] = line.split(' ');
    if (k === 'c') c.push([Number(s), Number(us)]);
    else if (k === 'f') f.push([Number(s), Number(us)]);
  }
  return { c, f };
}

const pct = (xs, p) => {
  const s = xs.map((x) => x[1]).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.round(p * (s.length - 1)))];
};

/** Sorted [start, end] intervals → does any overlap [a, b]? (binary search on start) */
function overlapper(intervals) {
  const iv = intervals.slice().sort((x, y) => x[0] - y[0]);
  let maxLen = 0;
  for (const [s, e] of iv) maxLen = Math.max(maxLen, e - s);
  return (a, b) => {
    let lo = 0;
    let hi = iv.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (iv[mid][0] < a - maxLen) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < iv.length && iv[i][0] <= b; i++) if (iv[i][1] >= a) return iv[i];
    return null;
  };
}

function attribute(name, sf, kernel, trace) {
  const p50 = pct(sf, 0.5);
  const p99 = pct(sf, 0.99);
  const kp99 = pct(kernel, 0.99);
  // An event explains a sample only if it is long enough to account for a good part of the
  // sample's excess over synfin's median (a 20 µs timer callback inside a 5 ms sample does not).
  const sized = (list) => {
    const o = overlapper(list);
    return (a, b, us) => {
      const hit = o(a, b);
      if (hit === null) return null;
      const need = (us - p50) / 4;
      for (const [s, e] of list) if (s <= b && e >= a && e - s >= need) return hit;
      return null;
    };
  };
  const kernelSlow = kernel.filter(([, us]) => us > kp99).map(([s, us]) => [s, s + us]);
  const checks = {
    host: sized(kernelSlow),
    gc: sized(trace.gc.map(([s, d]) => [s, s + d])),
    busy: sized(trace.late.filter(([, l, cpu]) => cpu >= l / 2).map(([s, l]) => [s, s + l])),
    waiting: sized(trace.late.filter(([, l, cpu]) => cpu < l / 2).map(([s, l]) => [s, s + l])),
    timer: sized(trace.timers.map(([s, d]) => [s, s + d])),
  };
  const count = (samples) => {
    const n = Object.fromEntries([...Object.keys(checks), 'none'].map((k) => [k, 0]));
    for (const [s, us] of samples) {
      let any = false;
      for (const [k, f] of Object.entries(checks)) {
        if (f(s, s + us, us) !== null) {
          n[k]++;
          any = true;
        }
      }
      if (!any) n.none++;
    }
    return n;
  };
  const slow = sf.filter(([, us]) => us > p99);
  const frac = (n, total) => Object.entries(n).map(([k, v]) => `${k} ${v} (${((100 * v) / Math.max(1, total)).toFixed(0)} %)`).join(', ');
  const slowN = count(slow);
  const allN = count(sf);
  const log = [
    `  ${name}: synfin p50/p99/p99.9 ${pct(sf, 0.5).toFixed(0)}/${p99.toFixed(0)}/${pct(sf, 0.999).toFixed(0)} µs, kernel ${pct(kernel, 0.5).toFixed(0)}/${kp99.toFixed(0)}/${pct(kernel, 0.999).toFixed(0)} µs (${sf.length} / ${kernel.length} samples)`,
    `    ${slow.length} synfin samples above its p99 overlap: ${frac(slowN, slow.length)}`,
    `    all ${sf.length} synfin samples overlap:       ${frac(allN, sf.length)}`,
  ];
  // The slowest samples, with what overlapped each.
  const within = (list, a, b) => list.filter(([s0, d]) => s0 <= b && s0 + d >= a);
  for (const [s0, us] of sf.slice().sort((x, y) => y[1] - x[1]).slice(0, 6)) {
    const b = s0 + us;
    const kmax = Math.max(0, ...within(kernel, s0, b).map(([, d]) => d));
    const parts = [
      `kernel's slowest overlapping ${kmax.toFixed(0)} µs`,
      ...within(trace.gc, s0, b).map(([g0, d, k]) => `gc kind ${k} ${d.toFixed(0)} µs at +${(g0 - s0).toFixed(0)}`),
      ...within(trace.late.map(([t, l, c, n]) => [t, l, c, n]), s0, b).map(([t, l, c, n]) => `late ${l.toFixed(0)} µs at +${(t - s0).toFixed(0)} (cpu ${c} µs, ${n} preemptions)`),
      ...within(trace.timers, s0, b).filter(([, d]) => d >= 50).map(([t, d, nm]) => `timer ${nm} ${d.toFixed(0)} µs at +${(t - s0).toFixed(0)}`),
    ];
    log.push(`      ${us.toFixed(0)} µs: ${parts.join('; ')}`);
  }
  return { log, p99, kp99, slow: slowN, all: allN, slowCount: slow.length, count: sf.length };
}

/**
 * --cpu-prof: what synfin's thread was running during the watchdog's busy late turns of the
 * measured window (the CPU
 * profile's samples carry CLOCK_MONOTONIC timestamps in µs, as the trace does), by function.
 */
function busyProfile(file, trace, w0, w1) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const busy = trace.late.filter(([s0, l, cpu]) => cpu >= l / 2 && s0 >= w0 && s0 <= w1).map(([s0, l]) => [s0, s0 + l]).sort((a, b) => a[0] - b[0]);
  const inBusy = new Map();
  const all = new Map();
  let t = prof.startTime;
  let nBusy = 0;
  let k = 0;
  let nWindow = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    if (t < w0 || t > w1) continue;
    nWindow++;
    const n = byId.get(prof.samples[i]);
    const name = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
    all.set(name, (all.get(name) ?? 0) + 1);
    while (k < busy.length && busy[k][1] < t) k++;
    if (k < busy.length && busy[k][0] <= t) {
      nBusy++;
      inBusy.set(name, (inBusy.get(name) ?? 0) + 1);
    }
  }
  const top = [...inBusy].sort((a, b) => b[1] - a[1]).slice(0, 12);
  process.stdout.write(`  CPU profile: ${nWindow} samples in the measured window, ${nBusy} inside the ${busy.length} busy late turns; there, by function (self):\n`);
  for (const [name, c] of top) process.stdout.write(`    ${((100 * c) / Math.max(1, nBusy)).toFixed(1).padStart(5)} %  ${name}  (${((100 * (all.get(name) ?? 0)) / Math.max(1, nWindow)).toFixed(1)} % of the window's samples)\n`);
}

const report = [];
for (let round = 1; round <= rounds; round++) {
  const traceFile = path.join(scratch, `trace-${round}.json`);
  const set = { ...extraEnv, ...(opt.alloc ? { SYNFIN_TRACE_ALLOC: path.join(scratch, `alloc-${round}.heapprofile`) } : {}), SYNFIN_TRACE_TAIL: traceFile, SYNFIN_BENCH_NODE_ARGS: `${opt['node-args']}${opt['cpu-prof'] ? ` --cpu-prof --cpu-prof-dir=${scratch} --cpu-prof-name=cpu-${round}.cpuprofile --cpu-prof-interval=250` : ''} --require ${path.join(REPO, 'bench', 'trace-tail.cjs')}`.trim() };
  const saved = Object.fromEntries(Object.keys(set).map((k) => [k, process.env[k]]));
  Object.assign(process.env, set);
  let sf;
  try {
    sf = await new SynfinProcess(topo, { dist, name: 'tail', mtu: 1500 }).start();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  const runOne = (ns, host, file, secs) => run(connrate, [host, String(PORT.greet), String(secs), '1', '6', 'eof'], { ns, timeoutMs: (secs + 30) * 1000, env: { ...process.env, CONNRATE_SAMPLES: file } });
  let kr;
  let sr;
  try {
    // Warm-up: the first connections, the JIT.
    await runOne(topo.ns.scli, ADDR.tunTarget, path.join(scratch, 'warm'), 2);
    const kFile = path.join(scratch, `kernel-${round}.txt`);
    const sFile = path.join(scratch, `synfin-${round}.txt`);
    [kr, sr] = await Promise.all([runOne(topo.ns.kcli, ADDR.kernelServer, kFile, seconds), runOne(topo.ns.scli, ADDR.tunTarget, sFile, seconds)]);
    if (kr.code !== 0 || sr.code !== 0) throw new Error(`connrate: ${kr.stderr}${sr.stderr}`);
    const stopped = await sf.stop();
    if (opt.keep) fs.writeFileSync(path.join(scratch, `synfin-${round}.stdout`), stopped?.stdout ?? '');
    const trace = JSON.parse(fs.readFileSync(traceFile, 'utf8'));
    const k = readSamples(kFile);
    const s = readSamples(sFile);
    const gcUs = trace.gc.map(([, d]) => d).sort((a, b) => a - b);
    const kinds = {};
    for (const [, , kind] of trace.gc) kinds[kind] = (kinds[kind] ?? 0) + 1;
    const st = trace.schedstat;
    process.stdout.write(`round ${round}: ${trace.gc.length} collections (by kind ${JSON.stringify(kinds)}; duration median ${(gcUs[gcUs.length >> 1] ?? 0).toFixed(0)} µs, max ${(gcUs[gcUs.length - 1] ?? 0).toFixed(0)} µs), ${trace.late.length} late watchdog turns (${trace.late.filter(([, l, c]) => c >= l / 2).length} busy), ${trace.timers.length} timer callbacks (longest ${Math.max(0, ...trace.timers.map(([, d]) => d)).toFixed(0)} µs); synfin's main thread waited for a core ${(st.runDelayNs / 1e6).toFixed(0)} ms over ${st.slices} runs (${(st.runDelayNs / 1e3 / Math.max(1, st.slices)).toFixed(0)} µs each on average) and ran ${(st.cpuNs / 1e6).toFixed(0)} ms\n`);
    // Collections while the measured connections ran (not start-up's): count and pause per 1,000 connections.
    const w0 = s.c[0]?.[0] ?? 0;
    const w1 = (s.f.at(-1)?.[0] ?? 0) + (s.f.at(-1)?.[1] ?? 0);
    const inWindow = trace.gc.filter(([g]) => g >= w0 && g <= w1);
    const pauseMs = inWindow.reduce((a, [, d]) => a + d, 0) / 1000;
    const perK = 1000 / Math.max(1, s.c.length);
    process.stdout.write(`  threads' CPU over the process's life, ms: ${Object.entries(trace.threadsCpuMs ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
    process.stdout.write(`  during the ${((w1 - w0) / 1e6).toFixed(1)} s measured: ${inWindow.length} collections, ${pauseMs.toFixed(0)} ms of pauses (${(inWindow.length * perK).toFixed(2)} collections and ${(pauseMs * perK).toFixed(1)} ms per 1,000 connections, longest ${(Math.max(0, ...inWindow.map(([, d]) => d)) / 1000).toFixed(1)} ms)\n`);
    const c = attribute('connect', s.c, k.c, trace);
    const f = attribute('first byte', s.f, k.f, trace);
    for (const l of [...c.log, ...f.log]) process.stdout.write(l + '\n');
    if (opt['cpu-prof']) busyProfile(path.join(scratch, `cpu-${round}.cpuprofile`), trace, w0, w1);
    report.push({ round, connect: c, firstByte: f, gc: trace.gc.length, gcInWindow: inWindow.length, gcPauseMs: pauseMs, late: trace.late.length, schedstat: st });
  } finally {
    if (sf.daemon !== null) await sf.stop();
  }
  await sleep(500);
}
if (opt.json !== undefined) fs.writeFileSync(opt.json, JSON.stringify(report, null, 1));
await greet.stop();
if (opt.keep) process.stdout.write(`samples and traces kept in ${scratch}\n`);
else fs.rmSync(scratch, { recursive: true, force: true });
process.exit(0);
