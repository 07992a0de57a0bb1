#!/usr/bin/env node
// A/B comparison of synfin builds or settings in one sitting: the variants take turns, round after
// round, on the same namespaces, and the medians are compared. The host's speed drifts by 15-30 %
// between sittings (BENCHMARKS.md), so two separate `npm run bench` runs cannot tell a 5 % change;
// alternating short rounds can.
//
//   sudo node bench/ab.js --variant base:dist=/tmp/old/dist --variant new: --rounds 6
//   sudo node bench/ab.js --variant off:SYNFIN_TX_THREAD=0 --variant on: --only connections,http
//   sudo npm run bench:capture -- --rounds 4    capture off against a 64 MiB ring (SYNFIN_CAPTURE_BUFFER)
//
// A variant is NAME:SETTINGS, SETTINGS a comma-separated list of ENV=VALUE (set in synfin's
// environment) or dist=DIR (a compiled synfin, default: this tree's dist/, built first).
// Measures per round: short connections/s (64 in flight), connect p50 one at a time, keep-alive
// HTTP req/s (wrk -c64, nginx), and synfin's CPU per connection / per request; with --only bulk,
// one iperf3 stream each way at MTU 65000 and synfin's CPU per GB; with --only httpclose, the same
// wrk with `Connection: close` (one connection per request); with --only latency, connect
// and first-byte p50/p99/p99.9 one connection at a time (the greet server: the server writes 6
// bytes and closes, as `npm run bench`'s latency workload) and synfin's event-loop delay meanwhile.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ADDR, topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startIperf, startNginx, startTcpServer } from './lib/servers.js';
import { SynfinProcess } from './lib/synfin.js';
import { run, sleep } from './lib/proc.js';
import { tool, checkPrerequisites } from './lib/tools.js';
import { workingTreeDist } from './lib/snapshot.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function usage(msg) {
  if (msg) process.stderr.write(`bench/ab: ${msg}\n`);
  process.stderr.write('usage: node bench/ab.js --variant NAME:[ENV=V,...|dist=DIR] (two or more) [--rounds N] [--seconds N] [--only connections,http,httpclose,bulk,latency]\n');
  process.exit(2);
}

const { values: opt } = parseArgs({
  options: {
    variant: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    only: { type: 'string', default: 'connections,http' },
  },
});
const rounds = Number(opt.rounds);
const seconds = Number(opt.seconds);
const only = opt.only.split(',').map((w) => w.trim());
if (!(rounds >= 1 && rounds <= 100)) usage('--rounds must be 1..100');
if (!(seconds >= 1 && seconds <= 120)) usage('--seconds must be 1..120');
for (const w of only) if (w !== 'connections' && w !== 'http' && w !== 'httpclose' && w !== 'bulk' && w !== 'latency') usage(`unknown workload "${w}" (connections, http, httpclose, bulk, latency)`);
if ((opt.variant ?? []).length < 2) usage('give at least two variants');
if (process.getuid?.() !== 0) usage('run as root: it creates network namespaces and a TUN device');
checkPrerequisites(['ip', 'curl', ...(only.includes('http') || only.includes('httpclose') ? ['wrk', 'nginx'] : []), ...(only.includes('bulk') ? ['iperf3'] : [])]);

let defaultDist = null;
const variants = opt.variant.map((spec) => {
  const colon = spec.indexOf(':');
  if (colon <= 0) usage(`variant "${spec}" is not NAME:SETTINGS`);
  const v = { name: spec.slice(0, colon), env: {}, dist: null };
  for (const item of spec.slice(colon + 1).split(',').filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq <= 0) usage(`setting "${item}" of variant ${v.name} is not KEY=VALUE`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key === 'dist') {
      if (!fs.existsSync(path.join(value, 'runtime.js'))) usage(`${value} holds no compiled synfin (runtime.js)`);
      v.dist = path.resolve(value);
    } else v.env[key] = value;
  }
  if (v.dist === null) v.dist = defaultDist ??= workingTreeDist(REPO).dist;
  return v;
});

const { topo } = topologyTornDownOnExit();
tool('connrate');
tool('tcpserv');
topo.create();

const echo = await startTcpServer(topo, 'echo');
const greet = only.includes('latency') ? await startTcpServer(topo, 'greet') : null;
const nginx = only.includes('http') || only.includes('httpclose') ? await startNginx(topo) : null;
const iperfd = only.includes('bulk') ? await startIperf(topo) : null;
// Bulk runs at MTU 65000 (the large-MTU target); the other workloads at 1500.
const BULK_MTU = 65000;
const results = new Map(variants.map((v) => [v.name, { rate: [], cpuConn: [], mainConn: [], p50: [], rps: [], cpuReq: [], mainReq: [], closeRps: [], closeCpuReq: [], closeMainReq: [], up: [], down: [], cpuGbUp: [], cpuGbDown: [], lat: { c50: [], c99: [], c999: [], f50: [], f99: [], f999: [], loop99: [], loopMax: [] } }]));

async function withEnv(env, fn) {
  const saved = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function connrate(concurrency, secs) {
  const r = await run(tool('connrate'), [ADDR.tunTarget, String(PORT.echo), String(secs), String(concurrency), '64'], { ns: topo.ns.scli, timeoutMs: (secs + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

async function wrk(secs, close = false) {
  const r = await run('wrk', ['-t1', '-c64', `-d${secs}s`, ...(close ? ['-H', 'Connection: close'] : []), `http://${ADDR.tunTarget}:${PORT.http}/`], { ns: topo.ns.scli, timeoutMs: (secs + 30) * 1000 });
  const rps = Number(/Requests\/sec:\s+(\S+)/.exec(r.stdout)?.[1]);
  const total = Number(/(\d+) requests in/.exec(r.stdout)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`wrk: ${r.stdout}${r.stderr}`);
  return { rps, total };
}

async function iperf(secs, reverse) {
  const r = await run('iperf3', ['-c', ADDR.tunTarget, '-p', String(PORT.iperf), '-t', String(secs), '-J', ...(reverse ? ['-R'] : [])], { ns: topo.ns.scli, timeoutMs: (secs + 40) * 1000 });
  const j = JSON.parse(r.stdout);
  if (j.error !== undefined) throw new Error(`iperf3: ${j.error}`);
  return j.end.sum_received.bits_per_second / 1e9;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

for (let round = 1; round <= rounds; round++) {
  // Alternate the order too, so neither variant always runs right after the other.
  const order = round % 2 ? variants : [...variants].reverse();
  for (const v of order) {
    const res = results.get(v.name);
    if (only.includes('latency')) {
      await withEnv(v.env, async () => {
        const sf = await new SynfinProcess(topo, { dist: v.dist, name: `ab-${v.name}-latency`, mtu: 1500 }).start();
        try {
          const once = (secs) => run(tool('connrate'), [ADDR.tunTarget, String(PORT.greet), String(secs), '1', '6', 'eof'], { ns: topo.ns.scli, timeoutMs: (secs + 30) * 1000 });
          await once(1); // warm-up: the first connections, the JIT
          // A scrape resets synfin's loop-delay histogram: the one after the run covers the run alone.
          await sf.snapshot();
          const r = await once(seconds);
          const s1 = await sf.snapshot();
          if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
          const j = JSON.parse(r.stdout);
          const l = res.lat;
          l.c50.push(j.connectUs.p50);
          l.c99.push(j.connectUs.p99);
          l.c999.push(j.connectUs.p999);
          l.f50.push(j.firstByteUs.p50);
          l.f99.push(j.firstByteUs.p99);
          l.f999.push(j.firstByteUs.p999);
          l.loop99.push(s1.loop?.p99 ?? NaN);
          l.loopMax.push(s1.loop?.max ?? NaN);
          process.stdout.write(`round ${round} ${v.name}: ${j.ok} one at a time; connect µs p50/p99/p99.9 ${j.connectUs.p50}/${j.connectUs.p99}/${j.connectUs.p999}, first byte ${j.firstByteUs.p50}/${j.firstByteUs.p99}/${j.firstByteUs.p999}; loop delay p99 ${(s1.loop?.p99 ?? NaN).toFixed(1)} ms, max ${(s1.loop?.max ?? NaN).toFixed(1)} ms\n`);
        } finally {
          await sf.stop();
        }
      });
    }
    if (only.includes('connections') || only.includes('http') || only.includes('httpclose')) await withEnv(v.env, async () => {
      const sf = await new SynfinProcess(topo, { dist: v.dist, name: `ab-${v.name}`, mtu: 1500 }).start();
      try {
        const parts = [];
        if (only.includes('connections')) {
          const cpu0 = sf.cpuMs();
          const main0 = sf.cpuMs(true);
          const r = await connrate(64, seconds);
          const cpuConn = ((sf.cpuMs() - cpu0) * 1000) / Math.max(1, r.ok);
          const mainConn = ((sf.cpuMs(true) - main0) * 1000) / Math.max(1, r.ok);
          const lat = await connrate(1, Math.max(2, Math.round(seconds / 2)));
          res.rate.push(r.rate);
          res.cpuConn.push(cpuConn);
          res.mainConn.push(mainConn);
          res.p50.push(lat.connectUs.p50);
          parts.push(`${r.rate.toFixed(0)} conn/s (${cpuConn.toFixed(0)} µs CPU each, ${mainConn.toFixed(0)} on the event loop's thread; ${r.failed} failed), connect p50 ${lat.connectUs.p50.toFixed(1)} µs`);
        }
        for (const close of [false, true]) {
          if (!only.includes(close ? 'httpclose' : 'http')) continue;
          const cpu0 = sf.cpuMs();
          const main0 = sf.cpuMs(true);
          const w = await wrk(seconds, close);
          const cpuReq = ((sf.cpuMs() - cpu0) * 1000) / Math.max(1, w.total);
          const mainReq = ((sf.cpuMs(true) - main0) * 1000) / Math.max(1, w.total);
          res[close ? 'closeRps' : 'rps'].push(w.rps);
          res[close ? 'closeCpuReq' : 'cpuReq'].push(cpuReq);
          res[close ? 'closeMainReq' : 'mainReq'].push(mainReq);
          parts.push(`${w.rps.toFixed(0)} req/s ${close ? 'Connection: close' : 'keep-alive'} (${cpuReq.toFixed(1)} µs CPU each, ${mainReq.toFixed(1)} on the event loop's thread)`);
        }
        process.stdout.write(`round ${round} ${v.name}: ${parts.join('; ')}\n`);
      } finally {
        await sf.stop();
      }
    });
    if (only.includes('bulk')) {
      await withEnv(v.env, async () => {
        topo.setVethMtu(BULK_MTU);
        const sf = await new SynfinProcess(topo, { dist: v.dist, name: `ab-${v.name}-bulk`, mtu: BULK_MTU }).start();
        try {
          const parts = [];
          for (const reverse of [false, true]) {
            const c0 = await sf.counters(['synfin_tun_packets_total', 'synfin_tun_bytes_total']);
            const cpu0 = sf.cpuMs();
            const gbps = await iperf(seconds, reverse);
            const cpuGb = ((sf.cpuMs() - cpu0) * 8) / Math.max(1e-9, gbps * seconds);
            const c1 = await sf.counters(['synfin_tun_packets_total', 'synfin_tun_bytes_total']);
            const d = (k) => (c1[k] ?? 0) - (c0[k] ?? 0);
            const dir = reverse ? 'tx' : 'rx';
            const other = reverse ? 'rx' : 'tx';
            const dataPackets = d(`synfin_tun_packets_total{direction="${dir}"}`);
            const avgKB = d(`synfin_tun_bytes_total{direction="${dir}"}`) / Math.max(1, dataPackets) / 1024;
            const acksPerData = d(`synfin_tun_packets_total{direction="${other}"}`) / Math.max(1, dataPackets);
            res[reverse ? 'down' : 'up'].push(gbps);
            res[reverse ? 'cpuGbDown' : 'cpuGbUp'].push(cpuGb);
            parts.push(`${reverse ? 'server→client' : 'client→server'} ${gbps.toFixed(2)} Gbit/s (${cpuGb.toFixed(0)} ms CPU/GB; data packets of ${avgKB.toFixed(1)} KiB on average, ${acksPerData.toFixed(2)} packets back per data packet)`);
          }
          process.stdout.write(`round ${round} ${v.name}: bulk MTU ${BULK_MTU} ${parts.join(', ')}\n`);
        } finally {
          await sf.stop();
          topo.setVethMtu(1500);
        }
      });
    }
    await sleep(500);
  }
}

process.stdout.write('\nmedians\n');
for (const v of variants) {
  const r = results.get(v.name);
  const parts = [];
  if (only.includes('connections')) parts.push(`${median(r.rate).toFixed(0)} conn/s, ${median(r.cpuConn).toFixed(0)} µs CPU/conn (loop thread ${median(r.mainConn).toFixed(0)}), connect p50 ${median(r.p50).toFixed(1)} µs`);
  if (only.includes('http')) parts.push(`${median(r.rps).toFixed(0)} req/s, ${median(r.cpuReq).toFixed(1)} µs CPU/req (loop thread ${median(r.mainReq).toFixed(1)})`);
  if (only.includes('httpclose')) parts.push(`Connection: close ${median(r.closeRps).toFixed(0)} req/s, ${median(r.closeCpuReq).toFixed(1)} µs CPU/req (loop thread ${median(r.closeMainReq).toFixed(1)})`);
  if (only.includes('latency')) {
    const l = r.lat;
    const m = (k) => median(l[k]).toFixed(0);
    parts.push(`one at a time connect p50/p99/p99.9 ${m('c50')}/${m('c99')}/${m('c999')} µs, first byte ${m('f50')}/${m('f99')}/${m('f999')} µs, loop delay p99 ${median(l.loop99).toFixed(1)} ms max ${median(l.loopMax).toFixed(1)} ms`);
  }
  if (only.includes('bulk')) parts.push(`bulk ${median(r.up).toFixed(2)} / ${median(r.down).toFixed(2)} Gbit/s, ${median(r.cpuGbUp).toFixed(0)} / ${median(r.cpuGbDown).toFixed(0)} ms CPU/GB`);
  process.stdout.write(`  ${v.name.padEnd(12)} ${parts.join('; ')}\n`);
}
await echo.stop();
if (greet !== null) await greet.stop();
if (nginx !== null) await nginx.stop();
if (iperfd !== null) await iperfd.stop();
process.exit(0);
