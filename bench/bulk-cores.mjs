// Where the cores go during one bulk stream, on each path: the whole machine's busy time (all CPUs,
// /proc/stat, softirqs included), the relay's own CPU (/proc/PID/stat) and iperf3's own report of
// its client's and server's CPU, each per MB moved (issue 24: the bulk rows' floor). On a machine
// whose cores the client, the server and the relay share, a stream that keeps every core busy is
// paced by the machine's CPU per MB, not by any one process's.
//
//   sudo node bench/bulk-cores.mjs [--seconds N] [--rounds N] [--paths kernel,haproxy,synfin] [--dist DIR]
//
// Prints one row per path, MTU and direction: medians over the rounds (paths interleaved).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Topology } from './lib/topology.js';
import { PORT, startIperf } from './lib/servers.js';
import { pathOrder, withPath } from './lib/relays.js';
import { killAllDaemons, run, sleep } from './lib/proc.js';
import { median } from './lib/results.js';
import { checkPrerequisites } from './lib/tools.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    paths: { type: 'string', default: 'kernel,haproxy,synfin' },
    dist: { type: 'string' },
  },
});
const seconds = Number(opt.seconds);
const rounds = Number(opt.rounds);
const paths = opt.paths.split(',');
checkPrerequisites(['ip', 'iperf3', ...(paths.includes('haproxy') ? ['haproxy'] : [])]);
if (!(seconds >= 2 && seconds <= 120)) throw new Error('--seconds must be 2..120');
if (!(rounds >= 1 && rounds <= 20)) throw new Error('--rounds must be 1..20');
const dist = path.resolve(opt.dist ?? path.join(here, '..', 'dist'));

/** Busy and total jiffies of all CPUs (the "cpu" line of /proc/stat; idle and iowait are not busy). */
function machineTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

async function iperf(ns, host, reverse) {
  const r = await run('iperf3', ['-c', host, '-p', String(PORT.iperf), '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])], { ns, timeoutMs: (seconds + 40) * 1000 });
  const j = JSON.parse(r.stdout);
  if (j.error !== undefined) throw new Error(`iperf3: ${j.error}`);
  // With -R the local host (the client) receives; host_total is the local process, remote_total the server's.
  return { bytes: j.end.sum_received.bytes, clientPct: j.end.cpu_utilization_percent.host_total, serverPct: j.end.cpu_utilization_percent.remote_total };
}

const cpus = fs.readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d/.test(l)).length;
const samples = new Map();
const topo = new Topology();
try {
  topo.create();
  const iperfd = await startIperf(topo);
  const ctx = { topo, dist, log: (s) => process.stderr.write(`${s}\n`) };
  try {
    for (const mtu of [1500, 65000]) {
      topo.setVethMtu(mtu);
      for (let round = 0; round < rounds; round++) {
        for (const p of pathOrder(round).filter((x) => paths.includes(x))) {
          await withPath(ctx, p, { name: `bulk-cores-${mtu}`, mtu }, async (relay, ep) => {
            for (const reverse of [false, true]) {
              await sleep(1000);
              const m0 = machineTicks();
              const r0 = relay?.cpuMs() ?? 0;
              const it = await iperf(ep.ns, ep.host, reverse);
              const m1 = machineTicks();
              const r1 = relay?.cpuMs() ?? 0;
              const mb = it.bytes / 1e6;
              const busyCores = ((m1.busy - m0.busy) / (m1.total - m0.total)) * cpus;
              const row = {
                gbps: (it.bytes * 8) / seconds / 1e9,
                busyCores,
                machineUsPerMb: (busyCores * seconds * 1e6) / mb,
                relayUsPerMb: relay === null ? NaN : ((r1 - r0) * 1000) / mb,
                clientUsPerMb: ((it.clientPct / 100) * seconds * 1e6) / mb,
                serverUsPerMb: ((it.serverPct / 100) * seconds * 1e6) / mb,
              };
              const key = `${p}|${mtu}|${reverse ? 'server→client' : 'client→server'}`;
              if (!samples.has(key)) samples.set(key, []);
              samples.get(key).push(row);
              ctx.log(`  ${key} round ${round + 1}: ${row.gbps.toFixed(2)} Gbit/s, ${busyCores.toFixed(2)} cores busy, machine ${row.machineUsPerMb.toFixed(0)} µs/MB`);
            }
          });
        }
      }
    }
  } finally {
    await iperfd.stop();
  }
} finally {
  killAllDaemons();
  topo.destroy();
}

const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const out = [
  `bulk, one iperf3 stream, ${seconds} s, medians of ${rounds} interleaved round(s); ${cpus} CPUs; CPU per MB moved`,
  '',
  '| path | MTU | direction | Gbit/s | cores busy (machine) | machine µs/MB | relay µs/MB | iperf3 client µs/MB | iperf3 server µs/MB |',
  '|---|--:|---|--:|--:|--:|--:|--:|--:|',
];
for (const [key, rows] of samples) {
  const [p, mtu, dir] = key.split('|');
  const med = (k) => median(rows.map((r) => r[k]));
  out.push(`| ${p} | ${mtu} | ${dir} | ${f(med('gbps'), 2)} | ${f(med('busyCores'), 2)} | ${f(med('machineUsPerMb'))} | ${f(med('relayUsPerMb'))} | ${f(med('clientUsPerMb'))} | ${f(med('serverUsPerMb'))} |`);
}
process.stdout.write(out.join('\n') + '\n');
