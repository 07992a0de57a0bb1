// Garbage-collector settings for synfin (issue 24 item 2): the V8 young generation's size against
// the short-connection and keep-alive workloads, measured with figures that survive a loaded
// machine: V8's own account of every collection (--trace-gc-nvp: pause, bytes allocated since the
// collection before) and synfin's CPU time from /proc, per connection / per request.
//
//   npm run build && node bench/gc-eval.mjs [--semi 8,16,32,64] [--rounds 2] [--seconds 8]
//                                           [--only short,keepalive] [--dist DIR]
//
// Each round runs every setting (rotated, so none always runs first), each on a fresh synfin;
// medians over the rounds. Prints per setting: JS heap allocated per unit (KB), GC pause per
// 1,000 units (ms), scavenges and full collections per 1,000 units, synfin CPU per unit (µs),
// and RSS at the end. Needs root and the benchmark's programs (bench/setup.sh).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ADDR, topologyTornDownOnExit } from './lib/topology.js';
import { PORT, startNginx, startTcpServer } from './lib/servers.js';
import { SynfinProcess } from './lib/synfin.js';
import { run, sleep } from './lib/proc.js';
import { BENCH_DIR, tool } from './lib/tools.js';

const { values: opt } = parseArgs({
  options: {
    semi: { type: 'string', default: '8,16,32,64' },
    rounds: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '8' },
    only: { type: 'string', default: 'short,keepalive' },
    dist: { type: 'string', default: path.resolve(BENCH_DIR, '..', 'dist') },
  },
});
const SEMIS = opt.semi.split(',');
const ROUNDS = Number(opt.rounds);
const SECONDS = Number(opt.seconds);
const ONLY = opt.only.split(',');
const log = (m) => process.stdout.write(m + '\n');

const { topo, teardown: cleanup } = topologyTornDownOnExit();

/** The collections V8 reported in `text` (--trace-gc-nvp lines). */
function collections(text) {
  const out = { scavenges: 0, full: 0, pauseMs: 0, allocated: 0 };
  for (const line of text.split('\n')) {
    const gc = / gc=(\w+)/.exec(line);
    if (gc === null) continue;
    if (gc[1] === 's') out.scavenges++;
    else out.full++;
    out.pauseMs += Number(/ pause=([\d.]+)/.exec(line)?.[1] ?? 0);
    out.allocated += Number(/ allocated=(\d+)/.exec(line)?.[1] ?? 0);
  }
  return out;
}

async function connrate(seconds) {
  const r = await run(tool('connrate'), [ADDR.tunTarget, String(PORT.greet), String(seconds), '50', '6', 'eof'], { ns: topo.ns.scli, timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout).ok;
}

async function wrk(seconds) {
  const r = await run('wrk', ['-t1', '-c64', `-d${seconds}s`, `http://${ADDR.tunTarget}:${PORT.http}/`], { ns: topo.ns.scli, timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`wrk: ${r.stderr.trim()}`);
  return Number(/(\d+) requests in/.exec(r.stdout)?.[1] ?? NaN);
}

async function measure(sf, fn) {
  const from = sf.daemon.stdout.length;
  const cpu0 = sf.cpuMs();
  const units = await fn();
  const cpuMs = sf.cpuMs() - cpu0;
  await sleep(200);
  const gc = collections(sf.daemon.stdout.slice(from));
  return {
    units,
    allocKB: gc.allocated / units / 1000,
    gcMsPer1000: (gc.pauseMs / units) * 1000,
    scavengesPer1000: (gc.scavenges / units) * 1000,
    fullPer1000: (gc.full / units) * 1000,
    cpuUs: (cpuMs / units) * 1000,
  };
}

async function oneSetting(semi) {
  // 16 is node's own maximum on this machine (64-bit); the bench starts synfin with 8 otherwise.
  const args = ['--trace-gc-nvp', `--max-semi-space-size=${semi}`];
  process.env.SYNFIN_BENCH_NODE_ARGS = args.join(' ');
  const sf = await new SynfinProcess(topo, { dist: path.resolve(opt.dist), name: `gc ${semi}`, mtu: 1500 }).start();
  try {
    await connrate(1);
    const out = {};
    if (ONLY.includes('short')) out.short = await measure(sf, () => connrate(SECONDS));
    if (ONLY.includes('keepalive')) {
      await wrk(1);
      out.keepalive = await measure(sf, () => wrk(SECONDS));
    }
    out.rssMiB = sf.rssKb() / 1024;
    return out;
  } finally {
    await sf.stop();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  tool('connrate');
  tool('tcpserv');
  topo.create();
  const greet = await startTcpServer(topo, 'greet');
  const nginx = ONLY.includes('keepalive') ? await startNginx(topo) : null;
  const results = new Map(SEMIS.map((s) => [s, []]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = [...SEMIS.slice(round % SEMIS.length), ...SEMIS.slice(0, round % SEMIS.length)];
      for (const semi of order) {
        const r = await oneSetting(semi);
        results.get(semi).push(r);
        log(`round ${round + 1} semi ${semi}: ${JSON.stringify(r)}`);
      }
    }
  } finally {
    await greet.stop();
    await nginx?.stop();
  }
  log('\nmedians over the rounds (--max-semi-space-size, MiB)');
  log('workload   semi     alloc KB/unit  GC ms/1000  scav/1000  full/1000  CPU µs/unit  units');
  for (const w of ONLY.map((o) => (o === 'short' ? 'short' : 'keepalive'))) {
    for (const semi of SEMIS) {
      const rs = results.get(semi).map((r) => r[w]).filter((x) => x !== undefined);
      if (rs.length === 0) continue;
      const m = (k) => median(rs.map((r) => r[k]));
      log(
        `${w.padEnd(10)} ${semi.padEnd(8)} ${m('allocKB').toFixed(2).padStart(13)} ${m('gcMsPer1000').toFixed(1).padStart(11)} ${m('scavengesPer1000').toFixed(2).padStart(10)} ${m('fullPer1000').toFixed(3).padStart(10)} ${m('cpuUs').toFixed(1).padStart(12)} ${m('units').toFixed(0).padStart(6)}`,
      );
    }
  }
  log(`RSS at the end (MiB): ${SEMIS.map((s) => `${s} ${median(results.get(s).map((r) => r.rssMiB)).toFixed(0)}`).join(', ')}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
