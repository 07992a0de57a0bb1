#!/usr/bin/env node
// The JavaScript of a small request and its response, without the kernel: `--conns` connections
// through synfin's Stack, TcpConn and Pipe (a compiled dist/), on an in-memory link that keeps
// nothing and an upstream socket that takes every write, the app's segments made as Linux's
// (timestamps, SACK-permitted, window scaling). Per round and build: `--requests` requests,
// `--batch` connections' requests per TUN batch, then their responses as one batch of upstream
// events; process CPU (process.cpuUsage) per request. Builds take turns round by round, in one
// process, so a loaded machine slows them alike; medians are compared. What this leaves out is
// the native side (the addon's calls and the system calls), which bench/request-floor.mjs measures.
//
//   node bench/request-floor-js.mjs --ab base=/tmp/base/dist,head=dist [--rounds 7] [--requests 200000]
import { parseArgs } from 'node:util';
import { buildsInTurn, importFromDist } from './lib/builds-in-turn.js';
import { median } from './lib/results.js';

const { values: opt } = parseArgs({
  options: {
    ab: { type: 'string', default: 'head=dist' },
    rounds: { type: 'string', default: '7' },
    requests: { type: 'string', default: '200000' },
    conns: { type: 'string', default: '50' },
    batch: { type: 'string', default: '8' },
  },
});
const ROUNDS = Number(opt.rounds);
const REQUESTS = Number(opt.requests);
const CONNS = Number(opt.conns);
const BATCH = Number(opt.batch);
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: 198.18.103.2:8080\r\nUser-Agent: floor-js\r\nAccept: */*\r\n\r\n');
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n');
const APP = 0xc6126701; // 198.18.103.1
const DEST = 0xc6126702;
const ACK = 0x10;
const PSH = 0x08;
const SYN = 0x02;

async function load(dist) {
  const m = (f) => importFromDist(dist, f);
  const [stack, clock, defaults, pipe, packet, segment] = await Promise.all([
    m('stack/stack.js'),
    m('stack/clock.js'),
    m('tcp/defaults.js'),
    m('proxy/pipe.js'),
    m('wire/packet.js'),
    m('wire/segment.js'),
  ]);
  return { Stack: stack.Stack, monotonicClock: clock.monotonicClock, defaultTcpConfig: defaults.defaultTcpConfig, Pipe: pipe.Pipe, ...packet, OutSegment: segment.OutSegment, Segment: segment.Segment };
}

/** One build's world: a stack with CONNS established connections, each behind a Pipe. */
function world(mod) {
  const slot = 2048;
  let lastOff = 0;
  let lastLen = 0;
  const link = {
    vnetHdr: false,
    txSlotSize: slot,
    txBuffer: Buffer.alloc(slot),
    txReserve: () => 0,
    commits: 0,
    txCommit(off, len) {
      link.commits++;
      lastOff = off;
      lastLen = len;
    },
    txFlush() {},
    onTxDrain() {},
  };
  const syns = [];
  const stack = new mod.Stack({
    link,
    clock: mod.monotonicClock,
    tcp: mod.defaultTcpConfig({}),
    forwarder: { onSyn: (r) => syns.push(r), onSynAborted() {} },
    maxConnections: 100_000,
  });
  const out = new mod.OutSegment();
  const pkt = Buffer.alloc(1600);
  const src = Uint32Array.of(0, 0, 0, APP);
  const dst = Uint32Array.of(0, 0, 0, DEST);
  const written = [];
  const conns = [];
  const parser = new mod.PacketParser();
  const seg = new mod.Segment();
  const key = new mod.FlowKey();
  function send(c, flags, payload) {
    out.clear();
    out.seq = c.cNxt;
    out.ack = c.sNxt;
    out.flags = flags;
    out.window = 502;
    out.options.tsPresent = true;
    out.options.tsVal = c.ts;
    out.options.tsEcr = c.tsEcr;
    if (flags & SYN) {
      out.options.mss = 1460;
      out.options.wscale = 7;
      out.options.sackPermitted = true;
    }
    const n = payload === null ? 0 : payload.length;
    const hl = mod.writeTcpPacket(pkt, 0, 4, src, dst, c.port, 8080, out, n);
    if (n > 0) payload.copy(pkt, hl);
    mod.finishTcpChecksum(pkt, 0, 'full');
    stack.input(pkt, 0, hl + n, false);
  }
  for (let i = 0; i < CONNS; i++) {
    const c = { port: 40000 + i, cNxt: 1000, sNxt: 0, ts: 1, tsEcr: 0, pipe: null };
    send(c, SYN, null);
    stack.flush();
    const req = syns.shift();
    const socket = {
      handler: null,
      destroyed: false,
      writable: true,
      writableLength: 0,
      write(chunks, count, bytes) {
        written.push(c);
        return bytes;
      },
      writeOne(chunk) {
        written.push(c);
        return chunk.length;
      },
      pause() {},
      resume() {},
      end() {},
      destroy() {},
      resetAndDestroy() {},
    };
    const pipe = new mod.Pipe(socket, { stack, clock: mod.monotonicClock });
    const conn = stack.acceptPending(req, pipe);
    pipe.conn = conn;
    stack.flush();
    parser.parse(link.txBuffer, lastOff, lastLen, false, seg, key);
    c.cNxt = 1001;
    c.sNxt = (seg.seq + 1) >>> 0;
    c.tsEcr = seg.options.tsVal;
    send(c, ACK, null);
    stack.flush();
    c.pipe = pipe;
    conns.push(c);
  }
  const upstreamBatch = typeof stack.openBatch === 'function';
  /** `n` requests: BATCH connections' requests per TUN batch, then their responses as one upstream batch. */
  function run(n) {
    let done = 0;
    let next = 0;
    while (done < n) {
      for (let k = 0; k < BATCH; k++) {
        const c = conns[(next + k) % CONNS];
        send(c, ACK | PSH, REQUEST);
        c.cNxt = (c.cNxt + REQUEST.length) >>> 0;
      }
      stack.flush();
      if (upstreamBatch) stack.openBatch();
      for (let i = 0; i < written.length; i++) {
        const c = written[i];
        // As the upstream read does for a small response: a copy at its own length.
        const chunk = Buffer.allocUnsafe(RESPONSE.length);
        RESPONSE.copy(chunk);
        c.pipe.onUpstreamData(chunk);
        c.sNxt = (c.sNxt + RESPONSE.length) >>> 0;
      }
      written.length = 0;
      // A build without the upstream event batch flushed from a setImmediate (the check phase of
      // the same loop turn): flushed here directly, so that the comparison leaves that out (an
      // await here would add a loop turn with an epoll_wait that synfin does not pay).
      if (upstreamBatch) stack.closeBatch();
      else stack.flush();
      next = (next + BATCH) % CONNS;
      done += BATCH;
    }
    return done;
  }
  return { run, link };
}

const variants = await buildsInTurn(opt.ab, {
  rounds: ROUNDS,
  units: REQUESTS,
  worldOf: async (dist) => world(await load(dist)),
  // Warm-up: every build's code optimized before the first measured round.
  warm: (w) => w.run(Math.min(REQUESTS, 50_000)),
});
for (const v of variants) {
  process.stdout.write(`${v.name}: ${median(v.samples).toFixed(3)} µs CPU per request (median of ${ROUNDS}; ${v.samples.map((s) => s.toFixed(3)).join(' ')}); ${v.packets.toFixed(2)} packets to the app per request\n`);
}
