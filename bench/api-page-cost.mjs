// What one GET /api/connections costs the event loop that moves the packets, with N connections in
// the stack's table: a stack over an in-memory link (no device, no root) holding N ESTABLISHED
// connections, each with an "upstream" whose TCP_INFO is read from a real loopback socket, the
// connection registry and the Fastify app of a compiled synfin (dist/ of this tree, or of an older
// commit to compare). Prints one JSON line per request kind, medians of the runs: event-loop active
// time (performance.eventLoopUtilization: wall time, so it grows when the machine is busy), CPU
// time of the process during the request (the thread pool is idle: the kernel snapshot is read
// before), the longest single block of the loop (how late a 1 ms timer ran), wall time, body size.
//
//   node bench/api-page-cost.mjs DIST_DIR [N=100000] [RUNS=5]
import net from 'node:net';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const [distArg, nText = '100000', runsText = '5'] = process.argv.slice(2);
if (distArg === undefined) {
  process.stderr.write('usage: node bench/api-page-cost.mjs DIST_DIR [N] [RUNS]\n');
  process.exit(2);
}
const dist = path.resolve(distArg);
const load = (f) => import(pathToFileURL(path.join(dist, f)).href);
const { Stack } = await load('stack/stack.js');
const { EventHub } = await load('stack/events.js');
const { ManualClock } = await load('stack/clock.js');
const { defaultTcpConfig } = await load('tcp/defaults.js');
const { OutSegment, TcpFlag } = await load('tcp/segment.js');
const { seqAdd } = await load('tcp/seq.js');
const { writeTcpPacket, finishTcpChecksum } = await load('wire/packet.js');
const { ConnectionRegistry } = await load('observability/registry.js');
const { createMetrics } = await load('observability/metrics.js');
const { build } = await load('http/app.js');

const N = Number(nText);
const RUNS = Number(runsText);
const clock = new ManualClock(1_000_000);
const hub = new EventHub();
let lastIss = 0;
const link = {
  vnetHdr: false,
  txSlotSize: 2048,
  txBuffer: Buffer.alloc(2048),
  txReserve: () => 0,
  // IPv4 without options: the TCP sequence number at 20 + 4.
  txCommit(off) {
    lastIss = this.txBuffer.readUInt32BE(off + 24);
  },
  txFlush() {},
  onTxDrain() {},
};
const syns = [];
const stack = new Stack({
  link,
  clock,
  tcp: defaultTcpConfig({}),
  forwarder: { onSyn: (r) => syns.push(r), onSynAborted() {} },
  events: hub,
  synBacklog: 1 << 22,
  maxConnections: 1 << 22,
  setTimer: () => null,
  clearTimer: () => {},
});
const registry = new ConnectionRegistry(clock);
registry.attach(stack, null);

// A few real TCP sockets whose TCP_INFO every row reads (the getsockopt is the per-row cost).
const server = net.createServer(() => {});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const sockets = await Promise.all(Array.from({ length: 8 }, () => new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => r(s)); })));
const fds = sockets.map((s) => s._handle.fd);

const handler = { onEstablished() {}, onData(c, d) { c.consume(d.length, 0); }, onFin() {}, onSendSpace() {}, onClosed() {} };
const buf = Buffer.alloc(100);
const out = new OutSegment();
const src = new Uint32Array(4);
const dst = Uint32Array.of(0, 0, 0, 0xc6120102);
const ISN = 1000;
function send(i, seq, ack, flags) {
  out.clear();
  out.seq = seq;
  out.ack = ack;
  out.flags = flags;
  out.window = 65535;
  src[3] = 0xc6120001 + Math.floor(i / 50_000);
  const len = writeTcpPacket(buf, 0, 4, src, dst, 10_000 + (i % 50_000), 80, out, 0);
  finishTcpChecksum(buf, 0, 'full');
  stack.input(buf, 0, len, false);
  stack.flush();
}
const t0 = performance.now();
const pipes = registry.pipesById;
for (let i = 0; i < N; i++) {
  clock.advance(0.01);
  send(i, ISN, 0, TcpFlag.SYN);
  const req = syns.shift();
  const conn = stack.acceptPending(req, handler);
  send(i, seqAdd(ISN, 1), seqAdd(lastIss, 1), TcpFlag.ACK);
  const fd = fds[i % fds.length];
  const p = 20000 + (i % 40000);
  pipes.set(conn.id, { upstreamFd: () => fd, upstreamClosed: false, waitingSince: 0, upstreamEndpoints: () => ({ local: `127.0.0.1:${p}`, remote: `127.0.0.1:${port}` }) });
}
clock.advance(5000);
const buildMs = performance.now() - t0;

const counters = { segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 };
const metrics = createMetrics(hub, { clock, forEachConnection: (v) => registry.forEachSample(v), counters: () => counters }, 'bench');
const app = build({
  registry: metrics.registry,
  openMetricsRegistry: metrics.openMetricsRegistry,
  connections: registry,
  events: hub,
  isReady: () => true,
  describe: (c) => registry.describe(c),
});
await app.ready();
// The kernel snapshot read (thread pool) once, before timing: requests within 100 ms share it.
await registry.refreshKernel(0);

async function measure(url) {
  const active = [];
  const wall = [];
  const stalls = [];
  const cpu = [];
  let bytes = 0;
  let status = 0;
  let count = 0;
  for (let r = 0; r < RUNS; r++) {
    await registry.refreshKernel(0);
    // The longest the loop was held at once: how late a 1 ms timer ran (what a packet would wait).
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const c0 = process.cpuUsage();
    const e0 = performance.eventLoopUtilization();
    const w0 = performance.now();
    const res = await app.inject({ url, remoteAddress: '127.0.0.1' });
    wall.push(performance.now() - w0);
    active.push(performance.eventLoopUtilization(e0).active);
    const c1 = process.cpuUsage(c0);
    cpu.push((c1.user + c1.system) / 1000);
    h.disable();
    stalls.push(h.max / 1e6);
    bytes = res.rawPayload.length;
    status = res.statusCode;
    count = res.json().count;
    // Let the collector settle between runs.
    await new Promise((r2) => setTimeout(r2, 50));
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { url, status, rows: count, loopMs: Number(med(active).toFixed(1)), wallMs: Number(med(wall).toFixed(1)), maxLoopMs: Number(Math.max(...active).toFixed(1)), longestBlockMs: Number(med(stalls).toFixed(1)), cpuMs: Number(med(cpu).toFixed(1)), bytes };
}

const results = [];
// The midpoint cursor: a next token of a page ending at N/2 (new builds only).
const mid = await app.inject({ url: `/api/connections?limit=${Math.floor(N / 2)}`, remoteAddress: '127.0.0.1' });
const midNext = mid.statusCode === 200 ? mid.json().next : undefined;
const urls = process.env.URLS ? process.env.URLS.split(' ') : ['/api/connections', '/api/connections?state=FIN_WAIT_2', '/api/connections?minAge=1', ...(midNext ? [`/api/connections?cursor=${midNext}`] : [])];
for (const url of urls) {
  results.push(await measure(url));
}
process.stdout.write(JSON.stringify({ dist, connections: stack.connectionCount, buildSeconds: Number((buildMs / 1000).toFixed(1)), results }) + '\n');
for (const s of sockets) s.destroy();
server.close();
await app.close();
process.exit(0);
