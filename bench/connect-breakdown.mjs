// Where a connection's connect latency goes, one connection at a time: the SYN on the TUN device,
// synfin's upstream SYN, the destination's SYN-ACK, synfin's SYN-ACK on the TUN device and the
// first data segment on both legs, timestamped by tcpdump on each side of synfin, for every
// connection of a `connrate` run one at a time against the greet server (issue 24, item 3).
//
//   sudo node bench/connect-breakdown.mjs [--seconds N] [--dist DIR] [--trace] [--relay synfin|floor|floorjs]
//
// --relay floor: the same taps on tun-floor (bench/tools/tun-floor.c, the deferred handshake in C
// with no stack), for the floor of each interval; --relay floorjs: on tun-floor.mjs (the same on
// Node.js through synfin's addon).
//
// --trace: also runs bpftrace on synfin's main thread during the measured run (its system calls'
// entries and exits, the SYNs entering the TUN device and leaving on the upstream veth, the
// thread's switches in) and prints, per connection, where the SYN's time inside synfin goes
// between those system calls (bench/lib/syn-trace.js).
//
// Prints the medians and p99 of each interval (µs) and the client's own connect() p50/p99, on the
// synfin path and, for reference, the kernel path (the client's SYN to the server's SYN-ACK on the
// client's veth). tcpdump's taps add a little to every packet's path on both sides alike.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ADDR, Topology } from './lib/topology.js';
import { PORT, startTcpServer } from './lib/servers.js';
import { withFloorOr } from './lib/tun-floor.js';
import { killAllDaemons, run, sleep } from './lib/proc.js';
import { checkPrerequisites, tool } from './lib/tools.js';
import { startSynTrace } from './lib/syn-trace.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, dist: { type: 'string' }, trace: { type: 'boolean', default: false }, relay: { type: 'string', default: 'synfin' } } });
if (!['synfin', 'floor', 'floorjs'].includes(opt.relay)) throw new Error('--relay must be synfin, floor or floorjs');
const relayName = { synfin: 'synfin', floor: 'tun-floor', floorjs: 'tun-floor.mjs' }[opt.relay];
const seconds = Number(opt.seconds);
if (!(seconds >= 1 && seconds <= 600)) throw new Error('--seconds must be 1..600');
const dist = path.resolve(opt.dist ?? path.join(here, '..', 'dist'));
checkPrerequisites(['ip', 'tcpdump', ...(opt.trace ? ['bpftrace'] : [])]);

/** tcpdump on `dev` in `ns`, SYNs and data-bearing segments only, nanosecond timestamps. */
function capture(ns, dev) {
  const filter = 'tcp and (tcp[tcpflags] & tcp-syn != 0 or (ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2)) > 0)';
  const child = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', dev, '-n', '-l', '-tt', '-B', '65536', '--time-stamp-precision=nano', '-s', '96', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => (out += d));
  let err = '';
  const started = new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      err += d;
      if (err.includes('listening')) resolve();
    });
    // A tcpdump that cannot start (no such device, no permission) must not leave the run waiting.
    child.on('exit', (code) => reject(new Error(`tcpdump on ${dev} in ${ns} exited (${code}) before listening: ${err.trim()}`)));
  });
  return {
    started,
    async stop() {
      await sleep(300);
      child.kill('SIGINT');
      await new Promise((r) => child.on('exit', r));
      return out;
    },
  };
}

/** Parsed lines: { t (µs), src, dst, kind: 'syn' | 'synack' | 'data' }. */
function parse(text) {
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+)\.(\d{9}) IP (\S+) > (\S+): Flags \[([^\]]*)\].*length (\d+)/.exec(line);
    if (m === null) continue;
    const t = Number(m[1]) * 1e6 + Number(m[2]) / 1e3;
    const flags = m[5];
    const kind = flags.includes('S') ? (flags.includes('.') ? 'synack' : 'syn') : Number(m[6]) > 0 ? 'data' : null;
    if (kind !== null) rows.push({ t, src: m[3], dst: m[4].replace(/:$/, ''), kind });
  }
  return rows;
}

/** Per connection (keyed by the client's endpoint): the first time of each kind, both directions. */
function legs(rows, clientPrefix) {
  const byConn = new Map();
  for (const r of rows) {
    const fromClient = r.src.startsWith(clientPrefix);
    const key = fromClient ? r.src : r.dst;
    let c = byConn.get(key);
    if (c === undefined) byConn.set(key, (c = {}));
    const name = r.kind === 'data' ? (fromClient ? 'dataUp' : 'dataDown') : r.kind;
    if (c[name] === undefined) c[name] = r.t;
  }
  return [...byConn.values()].filter((c) => c.syn !== undefined && c.synack !== undefined).sort((a, b) => a.syn - b.syn);
}

function pct(xs, p) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function row(name, xs) {
  return `| ${name} | ${xs.length} | ${pct(xs, 50).toFixed(1)} | ${pct(xs, 99).toFixed(1)} |`;
}

async function connrate(ns, host) {
  const r = await run(tool('connrate'), [host, String(PORT.greet), String(seconds), '1', '6', 'eof'], { ns, timeoutMs: (seconds + 30) * 1000 });
  if (r.code !== 0) throw new Error(`connrate: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

const topo = new Topology();
const lines = [];
try {
  topo.create();
  const server = await startTcpServer(topo, 'greet');
  const ctx = { topo, dist, log: (s) => process.stderr.write(`${s}\n`) };
  try {
    // The kernel path: the client's veth sees the client's SYN and the server's SYN-ACK.
    await connrate(topo.ns.kcli, ADDR.kernelServer).catch(() => null);
    const kcap = capture(topo.ns.kcli, topo.dev.kc);
    await kcap.started;
    const kr = await connrate(topo.ns.kcli, ADDR.kernelServer);
    const kconn = legs(parse(await kcap.stop()), ADDR.kernelClient);
    let traceLines = [];
    await withFloorOr(ctx, opt.relay, 'connect-breakdown', async (relay) => {
      await connrate(topo.ns.scli, ADDR.tunTarget); // warm-up (JIT)
      const tun = capture(topo.ns.scli, topo.dev.tun);
      const up = capture(topo.ns.sfn, topo.dev.uc);
      const trace = opt.trace && opt.relay === 'synfin' ? startSynTrace(relay.pid, topo.dev.tun, topo.dev.uc, topo.dev.us) : null;
      await Promise.all([tun.started, up.started, trace?.started]);
      const sr = await connrate(topo.ns.scli, ADDR.tunTarget);
      if (trace !== null) traceLines = await trace.stop();
      const tconn = legs(parse(await tun.stop()), ADDR.tunClient);
      const uconn = legs(parse(await up.stop()), ADDR.synfinUpstream);
      // One at a time: the upstream leg of a client connection is the first upstream SYN after the
      // client's SYN on the TUN device.
      const A = [], B = [], C = [], D = [], T = [], S = [];
      let j = 0;
      for (const c of tconn) {
        while (j < uconn.length && uconn[j].syn < c.syn) j++;
        if (j >= uconn.length) break;
        const u = uconn[j];
        if (u.syn > c.synack) continue; // not this connection's
        A.push(u.syn - c.syn);
        B.push(u.synack - u.syn);
        C.push(c.synack - u.synack);
        T.push(c.synack - c.syn);
        if (u.dataDown !== undefined && c.dataDown !== undefined) D.push(c.dataDown - u.dataDown);
        if (u.dataDown !== undefined) S.push(u.dataDown - c.synack);
      }
      lines.push(
        `connect breakdown, one connection at a time, ${seconds} s per path (µs; tcpdump timestamps on the TUN device and synfin's upstream veth)`,
        '',
        '| interval | samples | p50 | p99 |',
        '|---|--:|--:|--:|',
        row('kernel path: client SYN → server SYN-ACK (client veth)', kconn.map((c) => c.synack - c.syn)),
        `| kernel path: client connect() (connrate) | ${kr.ok} | ${kr.connectUs.p50} | ${kr.connectUs.p99} |`,
        row(`${relayName}: SYN on TUN → the relay's upstream SYN (wake-up, read, parse, admission, connect(2) until its SYN)`, A),
        row(`${relayName}: upstream SYN → destination SYN-ACK (the destination's kernel)`, B),
        row(`${relayName}: destination SYN-ACK → the relay's SYN-ACK on TUN (rest of connect(2), the relay's own work, TUN write)`, C),
        row(`${relayName}: SYN on TUN → SYN-ACK on TUN (all of the relay)`, T),
        `| ${relayName} path: client connect() (connrate) | ${sr.ok} | ${sr.connectUs.p50} | ${sr.connectUs.p99} |`,
        row(`${relayName}: SYN-ACK on TUN → the destination's first data on the upstream veth`, S),
        row(`${relayName}: destination's first data → the same data on TUN (first byte relay)`, D),
        ...traceLines,
      );
    });
  } finally {
    await server.stop();
  }
} finally {
  killAllDaemons();
  topo.destroy();
}
process.stdout.write(lines.join('\n') + '\n');
