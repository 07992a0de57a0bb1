#!/usr/bin/env node
// The floor of a small request (issue 24 item 2): what one small request and its response cost a
// relay, measured in units that survive a loaded machine: CPU per request (/proc/PID/stat),
// system calls per request by name (bpftrace on the relay's pid), packets per request on both
// legs (tcpdump: data segments and pure ACKs, each direction) and, with --perf, a perf profile
// of the relay (kernel and, for synfin, JavaScript names through --perf-basic-prof) summarized by
// category (bench/request-floor-categories.mjs).
//
//   sudo node bench/request-floor.mjs [--dist DIR] [--paths haproxy,synfin,floorjs] [--only http,redis1,redis16]
//                             [--seconds 5] [--perf] [--out bench/results/request-floor-<date>]
//
// Each workload runs on each path with a fresh relay: a warm-up, then one run per measure
// (CPU alone, then under bpftrace, then under tcpdump, then under perf), so that no measure's
// overhead enters another's figure. Prints one table and writes floor.json (and the perf
// reports) into --out.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startNginx, startRedis } from './lib/servers.js';
import { withPath } from './lib/relays.js';
import { withFloorOr } from './lib/tun-floor.js';
import { Daemon, run, sleep } from './lib/proc.js';
import { workingTreeDist } from './lib/snapshot.js';
import { wrk } from './lib/workloads.js';
import { categorize } from './request-floor-categories.mjs';
import { checkPrerequisites } from './lib/tools.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    dist: { type: 'string' },
    paths: { type: 'string', default: 'haproxy,synfin' },
    only: { type: 'string', default: 'http,redis1,redis16' },
    seconds: { type: 'string', default: '5' },
    perf: { type: 'boolean', default: false },
    'keep-perf': { type: 'boolean', default: false },
    strace: { type: 'boolean', default: false },
    measures: { type: 'string', default: 'cpu,syscalls,packets' },
    ab: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});
const seconds = Number(opt.seconds);
{
  const measures = opt.measures.split(',');
  const workloads = opt.only.split(',');
  checkPrerequisites([
    'ip',
    ...(opt.paths.split(',').includes('haproxy') ? ['haproxy'] : []),
    ...(workloads.includes('http') ? ['wrk', 'nginx'] : []),
    ...(workloads.some((w) => w.startsWith('redis')) ? ['redis-server', 'redis-benchmark'] : []),
    ...(measures.includes('syscalls') ? ['bpftrace'] : []),
    ...(measures.includes('packets') ? ['tcpdump'] : []),
    ...(opt.perf ? ['perf'] : []),
    ...(opt.strace ? ['strace'] : []),
  ]);
}
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, 'Z');
const outDir = path.resolve(opt.out ?? path.join(REPO, 'bench', 'results', `request-floor-${stamp}`));
fs.mkdirSync(outDir, { recursive: true });
const dist = path.resolve(opt.dist ?? workingTreeDist(REPO).dist);
if (opt.ab !== undefined) opt.ab = opt.ab.split(',').map((v) => v.replace(/=(.*)$/, (_, d) => `=${path.resolve(d)}`)).join(',');
// The relays run in the output directory: --perf-basic-prof also writes V8's isolate-*.log
// into the working directory.
process.chdir(outDir);
const log = (s) => process.stderr.write(s + '\n');

/** The workloads: a client run of about `secs` seconds that resolves the number of requests done. */
const WORKLOADS = {
  http: {
    label: 'keep-alive HTTP, wrk -t1 -c64, nginx',
    run: async (ep, secs) => (await wrk(ep.ns, ep.host, secs, false)).total,
  },
  http1: {
    label: 'keep-alive HTTP, wrk -t1 -c1 (one connection: no other segment to ride on)',
    run: async (ep, secs) => (await wrkOne(ep.ns, ep.host, secs)).total,
  },
  redis1: { label: 'redis-benchmark GET, 50 connections, depth 1', run: (ep, secs) => redis(ep, 1, Math.round(secs * 15000)) },
  redis16: { label: 'redis-benchmark GET, 50 connections, depth 16', run: (ep, secs) => redis(ep, 16, Math.round(secs * 150000)) },
};

async function wrkOne(ns, host, secs) {
  const r = await run('wrk', ['-t1', '-c1', `-d${secs}s`, `http://${host}:${PORT.http}/`], { ns, timeoutMs: (secs + 30) * 1000 });
  return { total: Number(/(\d+) requests in/.exec(r.stdout)?.[1] ?? NaN) };
}

async function redis(ep, depth, n) {
  const args = ['-h', ep.host, '-p', String(PORT.redis), '-c', '50', '-P', String(depth), '-n', String(n), '-t', 'get', '-d', '3', '--csv', '-q'];
  const r = await run('redis-benchmark', args, { ns: ep.ns, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`redis-benchmark: ${r.stderr}`);
  // --csv: a header line, then "GET","<requests per second>",...
  const rps = Number(/^"GET","([\d.]+)"/m.exec(r.stdout)?.[1] ?? NaN);
  lastRate = Number.isFinite(rps) ? rps : null;
  return n;
}
/** The requests per second of the last redis-benchmark run (null for the other workloads). */
let lastRate = null;

/** The client leg's device on each path (where the client's packets enter the relay) and the upstream leg's. */
function devices(topo, p) {
  const client = p === 'synfin' ? { ns: topo.ns.scli, dev: topo.dev.tun } : { ns: topo.ns.sfn, dev: topo.dev.hs };
  return { client, upstream: { ns: topo.ns.sfn, dev: topo.dev.uc } };
}

async function cpuRun(relay, w, ep) {
  const before = relay.cpuMs();
  lastRate = null;
  const reqs = await w.run(ep, seconds);
  return { reqs, cpuUsPerReq: ((relay.cpuMs() - before) * 1000) / reqs, rate: lastRate };
}

/** System calls of the relay (all threads) by name over one run, per request. */
async function syscallRun(relay, w, ep) {
  const script = `tracepoint:raw_syscalls:sys_enter /pid == ${relay.pid}/ { @[args->id] = count(); }`;
  const bt = new Daemon('bpftrace', 'bpftrace', ['-e', script], { readyLine: /Attaching/, readyMs: 60_000 });
  await bt.ready;
  await sleep(300);
  const reqs = await w.run(ep, seconds);
  const r = await bt.stop('SIGINT', 10_000);
  const names = syscallNames();
  const counts = {};
  for (const m of r.stdout.matchAll(/@\[(\d+)\]: (\d+)/g)) counts[names[m[1]] ?? `#${m[1]}`] = Number(m[2]) / reqs;
  return { reqs, perReq: counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
}

let sysNames = null;
/** x86-64 system call numbers → names, from the kernel headers' table (ausyscall when present). */
function syscallNames() {
  if (sysNames !== null) return sysNames;
  sysNames = {};
  for (const f of ['/usr/include/x86_64-linux-gnu/asm/unistd_64.h', '/usr/include/asm/unistd_64.h']) {
    if (!fs.existsSync(f)) continue;
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/#define __NR_(\w+) (\d+)/g)) sysNames[m[2]] = m[1];
    break;
  }
  return sysNames;
}

/** Packets per request on both legs, by direction and kind (pure ACK, data, other flags). */
async function packetRun(topo, p, w, ep) {
  const devs = devices(topo, p);
  const files = {};
  const dumps = [];
  for (const [leg, d] of Object.entries(devs)) {
    files[leg] = path.join(outDir, `${p}-${leg}.pcap`);
    dumps.push(new Daemon(`tcpdump ${leg}`, 'tcpdump', ['-i', d.dev, '-s', '80', '-B', '65536', '-w', files[leg], 'tcp'], { ns: d.ns }));
  }
  await sleep(1000);
  const reqs = await w.run(ep, Math.min(seconds, 3));
  await sleep(200);
  const legs = {};
  for (const d of dumps) {
    const r = await d.stop('SIGINT', 5000);
    const dropped = Number(/(\d+) packets dropped by kernel/.exec(r.stderr)?.[1] ?? NaN);
    const leg = d.name.split(' ')[1];
    legs[leg] = { ...(await classify(files[leg], reqs)), dropped };
    fs.rmSync(files[leg], { force: true });
  }
  return { reqs, legs };
}

/** Reads a capture: per request, segments towards the relay's listener side (the server port) and back, split into pure ACKs and data. */
async function classify(file, reqs) {
  const c = { toServerData: 0, toServerAck: 0, toClientData: 0, toClientAck: 0, other: 0 };
  const rf = await run('tcpdump', ['-nn', '-r', file, '-tt'], { timeoutMs: 300_000 });
  for (const line of rf.stdout.split('\n')) {
    const m = /IP \S+\.(\d+) > \S+\.(\d+): Flags \[([^\]]*)\].* length (\d+)/.exec(line);
    if (m === null) continue;
    const toServer = Number(m[2]) === PORT.http || Number(m[2]) === PORT.redis;
    const flags = m[3];
    const len = Number(m[4]);
    if (flags !== '.' && flags !== 'P.') c.other++;
    else if (len === 0) c[toServer ? 'toServerAck' : 'toClientAck']++;
    else c[toServer ? 'toServerData' : 'toClientData']++;
  }
  const per = {};
  for (const [k, v] of Object.entries(c)) per[k] = v / reqs;
  per.total = Object.values(c).reduce((a, b) => a + b, 0) / reqs;
  return per;
}

/** The relay's system calls in order for one second of the run (strace -f -tt): a request's sequence by eye. */
async function straceRun(relay, p, w, ep, name) {
  const file = path.join(outDir, `${name}-${p}.strace.txt`);
  const running = w.run(ep, 3);
  await sleep(1000);
  const st = new Daemon('strace', 'strace', ['-f', '-tt', '-s', '0', '-p', String(relay.pid), '-o', file], {});
  await sleep(1000);
  await st.stop('SIGINT', 5000);
  await running;
  // The first 400 calls are enough to read a few requests' sequences by eye.
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  fs.writeFileSync(file, lines.slice(0, 400).join('\n') + '\n');
  return { file };
}

/** perf record -g of the relay over one run; the report by symbol and its categories. */
async function perfRun(relay, p, w, ep, name) {
  const data = path.join(outDir, `${name}-${p}.perf.data`);
  const rec = new Daemon('perf record', 'perf', ['record', '-F', '2999', '-g', '-p', String(relay.pid), '-o', data], {});
  await sleep(500);
  const reqs = await w.run(ep, seconds);
  await rec.stop('SIGINT', 20_000);
  const rep = await run('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '--stdio', '-g', 'none', '--percent-limit', '0.1'], { timeoutMs: 300_000 });
  fs.writeFileSync(path.join(outDir, `${name}-${p}.perf.txt`), rep.stdout);
  // Callers matter for the kernel's TCP work done in the relay's own writes: a caller-graph report too.
  const callers = await run('perf', ['report', '-i', data, '--children', '--sort', 'sym', '--stdio', '-g', 'none', '--percent-limit', '1'], { timeoutMs: 300_000 });
  fs.writeFileSync(path.join(outDir, `${name}-${p}.perf-children.txt`), callers.stdout);
  const script = await run('perf', ['script', '-i', data, '-F', 'comm,tid,ip,sym,dso', '--no-inline'], { timeoutMs: 600_000 });
  const cats = categorize(script.stdout);
  if (!opt['keep-perf']) fs.rmSync(data, { force: true });
  return { reqs, categories: cats };
}

// Torn down on any exit (SIGINT, SIGTERM, a throw), not only Ctrl-C.
const { topo, teardown: cleanup } = topologyTornDownOnExit();
const results = { date: new Date().toISOString(), dist, seconds, load: fs.readFileSync('/proc/loadavg', 'utf8').trim(), rows: {} };
try {
  topo.create();
  const nodeArgs = opt.perf ? '--perf-basic-prof' : '';
  process.env.SYNFIN_BENCH_NODE_ARGS = `${process.env.SYNFIN_BENCH_NODE_ARGS ?? ''} ${nodeArgs}`;
  const ctx = { topo, dist, log, cpuProfDir: undefined };
  const nginx = await startNginx(topo);
  const redisd = await startRedis(topo);
  try {
    if (opt.ab !== undefined) await abRounds(ctx);
    else
      for (const name of opt.only.split(',')) {
        for (const p of opt.paths.split(',')) {
          await withFloorOr(ctx, p, `floor-${name}`, async (relay, ep) => {
            results.rows[`${name}/${p}`] = await measureAll(relay, p, name, ep);
          });
        }
      }
  } finally {
    await nginx.stop();
    await redisd.stop();
  }
} finally {
  results.loadAfter = fs.readFileSync('/proc/loadavg', 'utf8').trim();
  fs.writeFileSync(path.join(outDir, 'floor.json'), JSON.stringify(results, null, 2) + '\n');
  cleanup();
  log(`results in ${outDir}`);
}

/** Every selected measure of workload `name` on one relay. */
async function measureAll(relay, p, name, ep) {
  const w = WORKLOADS[name];
  const measures = new Set(opt.measures.split(','));
  await w.run(ep, 1);
  const row = { cpu: await cpuRun(relay, w, ep) };
  log(`${name} ${p}: ${row.cpu.cpuUsPerReq.toFixed(2)} µs CPU/req (${row.cpu.reqs} requests${row.cpu.rate === null ? '' : `, ${Math.round(row.cpu.rate)}/s`})`);
  if (measures.has('syscalls')) {
    row.syscalls = await syscallRun(relay, w, ep);
    log(`  syscalls/req ${row.syscalls.total.toFixed(3)}: ${fmtObj(row.syscalls.perReq)}`);
  }
  if (measures.has('packets')) {
    row.packets = await packetRun(topo, p, w, ep);
    for (const [leg, v] of Object.entries(row.packets.legs)) log(`  packets/req ${leg}: ${fmtObj(v)}`);
  }
  if (opt.strace) {
    row.strace = await straceRun(relay, p, w, ep, name);
    log(`  strace (the relay's system calls in order, 1 s): ${row.strace.file}`);
  }
  if (opt.perf) {
    row.perf = await perfRun(relay, p, w, ep, name);
    log(`  perf categories (% of samples): ${fmtObj(row.perf.categories.percent)}`);
  }
  return row;
}

/**
 * --ab NAME=DIST,NAME=DIST --rounds N: synfin builds take turns (order rotated each round), each
 * workload on a fresh synfin per build and round; medians of CPU per request (and of the other
 * measures selected) per build.
 */
async function abRounds(ctx) {
  const variants = opt.ab.split(',').map((v) => {
    const [name, dir] = v.split('=');
    return { name, dist: path.resolve(dir) };
  });
  const rounds = Number(opt.rounds);
  const samples = {};
  for (let r = 0; r < rounds; r++) {
    for (const name of opt.only.split(',')) {
      const order = variants.map((_, i) => variants[(i + r) % variants.length]);
      for (const v of order) {
        await withPath({ ...ctx, dist: v.dist }, 'synfin', { name: `floor-${name}-${v.name}` }, async (relay, ep) => {
          log(`round ${r + 1} ${v.name}:`);
          const row = await measureAll(relay, 'synfin', name, ep);
          ((samples[name] ??= {})[v.name] ??= []).push(row);
        });
      }
    }
  }
  const med = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  for (const [name, byVariant] of Object.entries(samples)) {
    for (const [v, rows] of Object.entries(byVariant)) {
      const cpu = rows.map((x) => x.cpu.cpuUsPerReq);
      const sys = rows.filter((x) => x.syscalls).map((x) => x.syscalls.total);
      const summary = { cpuUsPerReqMedian: med(cpu), cpuUsPerReq: cpu, syscallsPerReqMedian: sys.length ? med(sys) : null };
      results.rows[`${name}/${v}`] = { summary, rows };
      log(`${name} ${v}: CPU µs/req median ${summary.cpuUsPerReqMedian.toFixed(2)} (${cpu.map((c) => c.toFixed(2)).join(' ')})${sys.length ? `; syscalls/req median ${summary.syscallsPerReqMedian.toFixed(2)}` : ''}`);
    }
  }
}

function fmtObj(o) {
  return Object.entries(o)
    .filter(([, v]) => typeof v !== 'number' || Number.isNaN(v) || v >= 0.005)
    .sort((a, b) => (typeof b[1] === 'number' ? b[1] : 0) - (typeof a[1] === 'number' ? a[1] : 0))
    .map(([k, v]) => `${k} ${typeof v === 'number' ? v.toFixed(2) : v}`)
    .join(', ');
}
