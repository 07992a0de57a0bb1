#!/usr/bin/env node
// The JavaScript of one short connection (the `shortconn` workload: the server writes 6 bytes and
// closes, the app reads to EOF and closes), without the kernel: synfin's Stack, TcpConn and Pipe
// (a compiled dist/) with the observability synfin runs with by default subscribed to the stack's
// events (the connection registry with its kernel-socket watch, the metrics, the summary, the
// flight recorder with --history 10000), on an in-memory link and an upstream socket that takes
// every write. Per connection: the app's SYN; the dial's success as the forwarder reports it
// (upstreamConnect, the Pipe, acceptPending, upstreamOpened); the app's ACK; 6 bytes and the EOF
// from the destination in one upstream batch (data + FIN to the app); the app's ACK + FIN (our
// TIME-WAIT); the pipe's end (upstreamClosed). The app's segments are made as Linux's (timestamps,
// SACK-permitted, window scaling). `--batch` connections go through each step together, as the
// TUN batches and upstream polls of 50 connections in flight carry them. TIME-WAIT records expire
// between rounds (as in a 5 s run of the real workload, none expires during one).
//
// Per round and build, process CPU (process.cpuUsage) per connection; builds take turns round by
// round in one process, so a loaded machine slows them alike; medians are compared. What this
// leaves out is the native side of the dial and the system calls (bench/connection-floor.mjs).
//
// With --http, one request of the `Connection: close` HTTP workload instead (wrk against nginx):
// after its ACK the app sends a 62-byte request (its own segment, as wrk's), which the pipe writes
// upstream; the destination's answer is 148 bytes and the EOF in one upstream batch.
//
// With --forwarder, the dial is synfin's own UpstreamForwarder (its dial bookkeeping, the Pipe it
// makes, the events it publishes, the loop check of every SYN) over upstream sockets that are
// stand-ins (no system call): each connect is in progress when it returns and completes in the
// next step's upstream poll, as most of them do under the real workload.
//
// With --syscalls NAMES (variants of --ab, comma-separated), those variants make a trivial system
// call (getsockopt on fd -1 through the addon: EBADF at the fd lookup) wherever synfin makes a
// real one, as many and in the same order: the TUN reads of a batch (one per packet and the
// EAGAIN) before its JavaScript, the TUN writes of a flush after it, each dial's connect and TCP_INFO
// look, each registration's epoll_ctl and getsockname, the upstream poll and each socket's read
// before its handler, each pipe's close, a socket made ahead per dial (13.x per connection, as
// bench/connection-floor.mjs counts synfin's). Their own cost is measured in a tight loop in the
// same round and taken off: what is left is synfin's JavaScript as it runs between system calls.
// On a guest where a system call costs the JavaScript after it its TLB (or caches), that is more
// than the same JavaScript run straight through (a variant without --syscalls).
//
//   node bench/connection-floor-js.mjs --ab base=/tmp/base/dist,head=dist [--rounds 7] [--conns 20000] [--batch 8] [--forwarder] [--http]
//                                      [--observers registry,metrics,summary,history|none] [--syscalls NAMES]
import { parseArgs } from 'node:util';
import { buildsInTurn, importFromDist } from './lib/builds-in-turn.js';
import { median } from './lib/results.js';

const { values: opt } = parseArgs({
  options: {
    ab: { type: 'string', default: 'head=dist' },
    rounds: { type: 'string', default: '7' },
    conns: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '8' },
    forwarder: { type: 'boolean', default: false },
    http: { type: 'boolean', default: false },
    observers: { type: 'string', default: 'registry,metrics,summary,history' },
    syscalls: { type: 'string', default: '' },
  },
});
const SYSCALL_VARIANTS = new Set(opt.syscalls === '' ? [] : opt.syscalls.split(','));
/** The trivial system call of --syscalls (getsockopt(-1, SO_ERROR): EBADF), through the addon as synfin calls it. */
const trivialSyscall = await (async () => {
  if (SYSCALL_VARIANTS.size === 0) return null;
  const { createRequire } = await import('node:module');
  const addon = { ...createRequire(import.meta.url)(new URL('../build/Release/synfin.node', import.meta.url).pathname) };
  if (addon.upstreamSocketError(-1) !== 9) throw new Error('--syscalls: getsockopt(-1) did not fail with EBADF');
  return addon.upstreamSocketError;
})();
// --observers: which of the default observability subscribe to the stack's events (any subset of
// registry,metrics,summary,history; 'none' for the stack, pipe and forwarder alone): what each
// costs a short connection's JavaScript, by difference.
const OBSERVERS = new Set(opt.observers === 'none' ? [] : opt.observers.split(','));
for (const o of OBSERVERS) if (!['registry', 'metrics', 'summary', 'history'].includes(o)) throw new Error(`--observers: unknown ${o}`);
const ROUNDS = Number(opt.rounds);
const CONNS = Number(opt.conns);
const BATCH = Number(opt.batch);
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: 198.18.103.2:8080\r\nConnection: close\r\n\r\n');
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 07 Dec 2026 17:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n');
// What the destination writes before its EOF, and what the app sends first (none: it only reads).
const GREETING = opt.http ? RESPONSE : Buffer.from('hello\n');
const ASK = opt.http ? REQUEST : null;
const PSH = 0x08;
const APP_BASE = 0xc6120001; // 198.18.0.1 onward: a fresh 4-tuple for every connection
const DEST = 0xc6136702;
const FIN = 0x01;
const SYN = 0x02;
const ACK = 0x10;

async function load(dist) {
  const m = (f) => importFromDist(dist, f);
  const [stack, clock, defaults, pipe, packet, segment, events, registry, metrics, summary, history, forwarder, policy] = await Promise.all([
    m('stack/stack.js'),
    m('stack/clock.js'),
    m('tcp/defaults.js'),
    m('proxy/pipe.js'),
    m('wire/packet.js'),
    m('wire/segment.js'),
    m('stack/events.js'),
    m('observability/registry.js'),
    m('observability/metrics.js'),
    m('observability/summary.js'),
    m('observability/history.js'),
    m('proxy/forwarder.js'),
    m('proxy/policy.js'),
  ]);
  return {
    Stack: stack.Stack,
    ManualClock: clock.ManualClock,
    defaultTcpConfig: defaults.defaultTcpConfig,
    Pipe: pipe.Pipe,
    ...packet,
    OutSegment: segment.OutSegment,
    Segment: segment.Segment,
    EventHub: events.EventHub,
    ConnectionRegistry: registry.ConnectionRegistry,
    createMetrics: metrics.createMetrics,
    createSummary: summary.createSummary,
    FlightRecorder: history.FlightRecorder,
    UpstreamForwarder: forwarder.UpstreamForwarder,
    DestinationPolicy: policy.DestinationPolicy,
  };
}

function world(mod, syscalls) {
  // --syscalls: `sys(k)` makes k trivial system calls where synfin makes k real ones.
  let syscallCount = 0;
  const sys = syscalls
    ? (k) => {
        for (let i = 0; i < k; i++) trivialSyscall(-1);
        syscallCount += k;
      }
    : () => {};
  let unflushed = 0;
  const slot = 2048;
  let lastOff = 0;
  let lastLen = 0;
  const link = {
    vnetHdr: false,
    txSlotSize: slot,
    txBuffer: Buffer.alloc(slot * 64),
    used: 0,
    txReserve: () => {
      const off = link.used;
      link.used = (link.used + slot) % (slot * 64);
      return off;
    },
    commits: 0,
    txCommit(off, len) {
      link.commits++;
      unflushed++;
      lastOff = off;
      lastLen = len;
      sent.push(off, len);
    },
    // The TUN writes of a flush: one write(2) per packet, made together by the addon.
    txFlush() {
      sys(unflushed);
      unflushed = 0;
    },
    onTxDrain() {},
  };
  const sent = [];
  const clock = new mod.ManualClock(1_000_000);
  const hub = new mod.EventHub();
  const syns = [];
  // --forwarder: synfin's forwarder, its upstream connect a stand-in that records the dial.
  const dialing = [];
  let proxy = null;
  // The stand-in sockets of the SYNs sent, in order: the forwarder dials when the SYNs' batch ends.
  const nextSockets = [];
  if (opt.forwarder) {
    proxy = new mod.UpstreamForwarder({ clock, policy: new mod.DestinationPolicy({}), connectTimeoutMs: 10_000, idleTimeoutMs: 0, maxDialsInFlight: 1024, events: hub });
    proxy.upstream.connect = (handler) => {
      // connect(2) and the TCP_INFO look of a dial still connecting; the socket made ahead for it.
      sys(3);
      const socket = nextSockets.shift();
      socket.handler = handler;
      dialing.push(socket);
      return socket;
    };
  }
  const stack = new mod.Stack({
    link,
    clock,
    tcp: mod.defaultTcpConfig({}),
    forwarder: proxy ?? { onSyn: (r) => syns.push(r), onSynAborted() {} },
    events: hub,
    maxConnections: 1_000_000,
    maxTimeWait: 1_000_000,
    setTimer: () => 0,
    clearTimer: () => {},
  });
  if (proxy !== null) {
    proxy.attach(stack);
  }
  const connections = new mod.ConnectionRegistry(clock);
  if (OBSERVERS.has('registry')) connections.attach(stack);
  connections.close();
  const metrics = !OBSERVERS.has('metrics') ? null : mod.createMetrics(
    hub,
    {
      clock,
      forEachConnection: () => {},
      counters: () => ({ segmentsIn: 0, segmentsOut: 0, bytesClientToUpstream: 0, bytesUpstreamToClient: 0, tunRxPackets: 0, tunRxBytes: 0, tunTxPackets: 0, tunTxBytes: 0 }),
    },
    'bench',
  );
  void metrics;
  if (OBSERVERS.has('summary')) mod.createSummary(hub, connections, clock, { upstreamTimeWait: () => 0 });
  if (OBSERVERS.has('history')) {
    const history = new mod.FlightRecorder({ capacity: 10_000 });
    history.appProcessOf = (id) => connections.appProcessOf(id)?.appProcess ?? null;
    history.attach(hub);
  }

  const out = new mod.OutSegment();
  const pkt = Buffer.alloc(1600);
  const dst = Uint32Array.of(0, 0, 0, DEST);
  const parser = new mod.PacketParser();
  const seg = new mod.Segment();
  const key = new mod.FlowKey();
  const pipeOptions = { stack, clock, onDone: (p) => hub.upstreamClosed(p, clock.now()), budget: null, events: hub };
  let serial = 0;

  function send(c, flags, payload = null) {
    out.clear();
    out.seq = c.cNxt;
    out.ack = flags & ACK ? c.sNxt : 0;
    out.flags = flags;
    out.window = 502;
    out.options.tsPresent = true;
    out.options.tsVal = c.ts++;
    out.options.tsEcr = c.tsEcr;
    if (flags & SYN) {
      out.options.mss = 1460;
      out.options.wscale = 7;
      out.options.sackPermitted = true;
    }
    const n = payload === null ? 0 : payload.length;
    const hl = mod.writeTcpPacket(pkt, 0, 4, c.src, dst, c.port, 8080, out, n);
    if (n > 0) payload.copy(pkt, hl);
    mod.finishTcpChecksum(pkt, 0, 'full');
    stack.input(pkt, 0, hl + n, false);
  }
  /** The last segment the stack sent to `c` (its seq and timestamp are what the app answers). */
  function readBack(c) {
    parser.parse(link.txBuffer, lastOff, lastLen, false, seg, key);
    c.tsEcr = seg.options.tsVal;
    return seg;
  }
  function socketFor(c) {
    return {
      handler: null,
      connecting: true,
      destroyed: false,
      writable: true,
      writableLength: 0,
      localFamily: 4,
      remoteFamily: 4,
      localWords: Uint32Array.of(0, 0, 0, 0xc0a80001),
      localPort: 30000 + (c.port % 30000),
      remoteWords: dst,
      remotePort: 8080,
      localAddress: '192.168.0.1',
      remoteAddress: '198.19.103.2',
      // write(2) or writev(2) of what a batch delivered.
      write(_chunks, _count, bytes) {
        sys(1);
        return bytes;
      },
      writeOne(chunk) {
        sys(1);
        return chunk.length;
      },
      pause() {},
      resume() {},
      // epoll_ctl and getsockname.
      register() {
        sys(2);
      },
      // close(2): the destination finished first.
      end() {
        sys(1);
        this.destroyed = true;
      },
      destroy() {
        this.destroyed = true;
      },
      resetAndDestroy() {
        this.destroyed = true;
      },
    };
  }

  /** `n` connections, BATCH at a time through each step. */
  function run(n) {
    let done = 0;
    const batch = [];
    while (done < n) {
      batch.length = 0;
      // The SYNs' TUN batch: a read(2) per packet and the EAGAIN that ends it, before any JavaScript.
      sys(BATCH + 1);
      for (let k = 0; k < BATCH; k++) {
        const id = serial++;
        const c = { src: Uint32Array.of(0, 0, 0, APP_BASE + Math.floor(id / 50_000)), port: 1024 + (id % 50_000), cNxt: 1000, sNxt: 0, ts: 1, tsEcr: 0, pipe: null, conn: null };
        batch.push(c);
        if (proxy !== null) nextSockets.push((c.socket = socketFor(c)));
        send(c, SYN);
      }
      stack.flush();
      // The dials complete (one upstream poll): the forwarder's part of dialConnected.
      sys(1);
      stack.openBatch();
      if (proxy !== null) {
        for (const c of batch) {
          const s = c.socket;
          s.connecting = false;
          s.handler.onUpstreamConnect(s);
          c.pipe = s.handler;
        }
        dialing.length = 0;
      }
      for (const c of proxy !== null ? [] : batch) {
        const req = syns.shift();
        hub.upstreamConnect(req.id, 'ok', 0.05, clock.now());
        const pipe = new mod.Pipe(socketFor(c), pipeOptions);
        pipe.id = req.id;
        pipe.stats = hub.bytes;
        const conn = stack.acceptPending(req, pipe);
        pipe.conn = conn;
        hub.upstreamOpened(pipe, clock.now());
        c.pipe = pipe;
      }
      stack.closeBatch();
      // The SYN-ACKs went out in order: the app's ACKs.
      for (let k = 0; k < batch.length; k++) {
        const c = batch[k];
        lastOff = sent[sent.length - 2 * (batch.length - k)];
        lastLen = sent[sent.length - 2 * (batch.length - k) + 1];
        const s = readBack(c);
        c.cNxt = 1001;
        c.sNxt = (s.seq + 1) >>> 0;
      }
      sent.length = 0;
      clock.advance(0.05);
      sys(BATCH + 1);
      for (const c of batch) send(c, ACK);
      stack.flush();
      if (ASK !== null) {
        // The requests, one TUN batch; the pipes write them upstream.
        sys(BATCH + 1);
        for (const c of batch) {
          send(c, ACK | PSH, ASK);
          c.cNxt = (c.cNxt + ASK.length) >>> 0;
        }
        stack.flush();
        clock.advance(0.05);
      }
      // The destination's 6 bytes and EOF, one upstream poll: data + FIN to each app.
      sys(1);
      stack.openBatch();
      for (const c of batch) {
        // Each socket's read(2) comes just before its handler.
        sys(1);
        c.pipe.onUpstreamData(Buffer.from(GREETING));
        c.pipe.onUpstreamEnd();
      }
      stack.closeBatch();
      sent.length = 0;
      clock.advance(0.05);
      // Each app ACKs the data and FIN and sends its own FIN: our TIME-WAIT.
      sys(BATCH + 1);
      for (const c of batch) {
        c.sNxt = (c.sNxt + GREETING.length + 1) >>> 0;
        send(c, ACK | FIN);
      }
      stack.flush();
      sent.length = 0;
      clock.advance(0.05);
      done += BATCH;
    }
    return done;
  }
  /** TIME-WAIT records expire (outside the measured rounds). */
  function expire() {
    clock.advance(10 * 60_000);
    stack.runTimers();
  }
  return { run, expire, link, stack, proxy, get syscalls() { return syscallCount; } };
}

const variants = await buildsInTurn(opt.ab, {
  rounds: ROUNDS,
  units: CONNS,
  worldOf: async (dist, name) => world(await load(dist), SYSCALL_VARIANTS.has(name)),
  warm: (w) => {
    w.run(Math.min(CONNS, 20_000));
    w.expire();
    w.syscallsAfterWarm = w.syscalls;
  },
  // The round's connections are all in TIME-WAIT: counted, then expired before the next turn.
  afterTurn: (v) => {
    v.left = v.world.stack.tableSize;
    if (SYSCALL_VARIANTS.has(v.name)) {
      // This turn's system calls, and what the same number cost alone right now (a tight loop).
      const made = v.world.syscalls - (v.syscallsBefore ?? v.world.syscallsAfterWarm);
      v.syscallsBefore = v.world.syscalls;
      const n = 200_000;
      const t = process.cpuUsage();
      for (let i = 0; i < n; i++) trivialSyscall(-1);
      const u = process.cpuUsage(t);
      const each = (u.user + u.system) / n;
      v.syscallsPerUnit = made / CONNS;
      (v.syscallAlone ??= []).push(each);
      (v.jsBetween ??= []).push(v.samples[v.samples.length - 1] - v.syscallsPerUnit * each);
    }
    // With --forwarder every dial settled and every pipe finished (or the world leaks).
    const p = v.world.proxy;
    if (p !== null && (p.dialsInFlight !== 0 || p.pipes.size !== 0)) throw new Error(`${v.name}: ${p.dialsInFlight} dials and ${p.pipes.size} pipes left`);
    v.world.expire();
  },
});
for (const v of variants) {
  if (v.jsBetween !== undefined) {
    process.stdout.write(
      `${v.name}: ${v.syscallsPerUnit.toFixed(2)} system calls per connection at ${median(v.syscallAlone).toFixed(2)} µs each alone (median); the JavaScript between them ${median(v.jsBetween).toFixed(2)} µs per connection (median of ${ROUNDS}; ${v.jsBetween.map((s) => s.toFixed(2)).join(' ')})\n`,
    );
  }
  process.stdout.write(
    `${v.name}: ${median(v.samples).toFixed(2)} µs CPU per connection (median of ${ROUNDS}; ${v.samples.map((s) => s.toFixed(2)).join(' ')}); ${v.packets.toFixed(2)} packets to the app per connection; ${v.left} table entries at the round's end\n`,
  );
}
