#!/usr/bin/env node
/*
 * tun-floor.mjs: tun-floor (bench/tools/tun-floor.c) on Node.js, through synfin's own native addon
 * and exactly its I/O primitives: the least a relay of synfin's design (the app's SYN answered on
 * the TUN device only once the upstream connect succeeded) can cost when it runs on the event loop,
 * with N-API crossings, V8 and its GC, but no TCP stack and no bookkeeping beyond one slot per
 * client port. Its gap to the C floor is the runtime's; synfin's gap to it is synfin's own (issue
 * 24: the short-connection and connect rows).
 *
 *   node tun-floor.mjs DEVICE UPSTREAM_IPV4
 *
 * As synfin opens its device (src/tun/configure.ts): IFF_TUN | IFF_NO_PI | IFF_VNET_HDR with
 * checksum/TSO offload, read in batches of 64 slots polled on the event loop (startReading), written
 * through a bound tx ring, one write(2) per packet, flushed at the end of each batch (bindTx,
 * writeBound); segments leave with a vnet header asking the kernel to finish the TCP checksum
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM over the pseudo-header sum), as synfin's do. Upstream sockets as
 * src/proxy/upstream.ts makes them: made ahead (upstreamSocket, refilled on setImmediate),
 * connected by upstreamConnectIo through the bound io array with UPSTREAM_CONNECT_RECHECK and
 * without REGISTER_NOW (a dial ESTABLISHED within connect(2) is registered with upstreamRegisterIo
 * after its SYN-ACK, as synfin's forwarder does), polled by one UpstreamPoller (edge-triggered
 * in/out/peer FIN), read with upstreamRead, closed with upstreamClose.
 *
 * For every IPv4 TCP SYN: the dial; once connected, a SYN-ACK (MSS option only); the destination's
 * bytes written to the app as they arrive, its EOF as our FIN (with the last data when the peer's
 * FIN was seen by the time of the read: EPOLLRDHUP and a short read), the upstream socket closed at
 * EOF; the app's FIN ACKed and the slot freed. The app's bytes, in order, go to the upstream socket
 * (one write(2) per segment) and are ACKed by the next segment to the app (the response) or by a
 * bare ACK within 20 ms, so `Connection: close` and keep-alive HTTP run through it too. No
 * retransmission, no window: the benchmark's requests and responses are small and the TUN path
 * loses nothing. No allocation per packet: every
 * buffer and table is made at start. Prints "ready", and at SIGTERM/SIGINT the dials answered within
 * connect(2) and after an epoll event, to stderr. Not a relay for anything but that benchmark.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const addon = createRequire(import.meta.url)(path.resolve(here, '..', '..', 'build', 'Release', 'synfin.node'));

const [devName, upstreamText, ...flags] = process.argv.slice(2);
/**
 * --options: the TCP options synfin's stack uses with a Linux app (src/tcp/listener.ts): the
 * SYN-ACK carries MSS, SACK-permitted, timestamps and window scale when the app's SYN offered them,
 * and every later segment a timestamp (TSval from a millisecond clock, TSecr the app's last
 * TSval: RFC 7323). Without it, as tun-floor.c: MSS only. The app's kernel does more per segment
 * with them (PAWS, RTT from the echo); this measures how much.
 */
const OPTIONS = flags.includes('--options');
/**
 * Experiments on where synfin's extra system time per connection comes from (BENCHMARKS.md):
 * --burn=US spins US µs of user time per SYN touching no memory (a slower relay: its peers sleep
 * more and are woken more); --touch=KB reads KB of a 32 MiB array per SYN, a line each 64 bytes,
 * moving on through the array (a larger working set: caches and TLB emptied between system calls).
 */
const BURN_US = Number(flags.find((f) => f.startsWith('--burn='))?.slice(7) ?? 0);
const TOUCH_BYTES = 1024 * Number(flags.find((f) => f.startsWith('--touch='))?.slice(8) ?? 0);
const touchArray = new Uint8Array(TOUCH_BYTES > 0 ? 32 << 20 : 0);
let touchAt = 0;
let sink = 0;
function extraWork() {
  if (BURN_US > 0) {
    const end = performance.now() + BURN_US / 1000;
    while (performance.now() < end) sink++;
  }
  if (TOUCH_BYTES > 0) {
    const a = touchArray;
    for (let n = 0; n < TOUCH_BYTES; n += 64) {
      sink += a[touchAt];
      touchAt += 64;
      if (touchAt >= a.length) touchAt = 0;
    }
  }
}
const upstreamParts = (upstreamText ?? '').split('.').map(Number);
if (devName === undefined || upstreamParts.length !== 4 || upstreamParts.some((x) => !(x >= 0 && x <= 255))) {
  process.stderr.write('usage: tun-floor.mjs DEVICE UPSTREAM_IPV4 [--options] [--burn=US] [--touch=KB]\n');
  process.exit(2);
}
const UPSTREAM = ((upstreamParts[0] << 24) | (upstreamParts[1] << 16) | (upstreamParts[2] << 8) | upstreamParts[3]) >>> 0;

// src/native/addon.ts's io array layout and connect flags (native/upstream/upstream.cc kIo*).
const IO_FAMILY = 0;
const IO_WORDS = 1;
const IO_PORT = 5;
const IO_BIND_FAMILY = 6;
const IO_OUT = 11;
const CONNECT_RECHECK = 2;

const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLLRDHUP = 0x2000;
const EAGAIN = 11;

const TH_FIN = 0x01;
const TH_SYN = 0x02;
const TH_RST = 0x04;
const TH_PSH = 0x08;
const TH_ACK = 0x10;

const VNET = 10; // struct virtio_net_hdr
const FREE = 0;
const CONNECTING = 1;
const OPEN = 2;
const UPSTREAM_DONE = 3;

// ---- per-flow state, by the app's port (one app address in the benchmark) ----
const state = new Uint8Array(65536);
const fdOf = new Int32Array(65536).fill(-1);
const generation = new Int32Array(65536);
const appAddr = new Uint32Array(65536);
const ourAddr = new Uint32Array(65536);
const ourPort = new Uint16Array(65536);
const appNxt = new Uint32Array(65536); // RCV.NXT
const ourNxt = new Uint32Array(65536); // SND.NXT
// --options: what the app's SYN offered (bits: 1 timestamps, 2 window scale, 4 SACK-permitted) and its last TSval.
const offered = new Uint8Array(65536);
const appTsVal = new Uint32Array(65536);
const OUR_WSCALE = 7;

// ---- the device: rx batch as src/tun/tun.ts sizes it, tx ring bound once ----
const RX_SLOT = 65536 + 128;
const RX_BATCH = 64;
const TX_SLOT = 2048;
const TX_SLOTS = 128;
const device = addon.open(devName, { vnetHdr: true });
const rxBuf = Buffer.alloc(RX_BATCH * RX_SLOT);
const rxLen = new Int32Array(RX_BATCH);
const txBuf = Buffer.alloc(TX_SLOTS * TX_SLOT);
const txOff = new Int32Array(TX_SLOTS);
for (let i = 0; i < TX_SLOTS; i++) txOff[i] = i * TX_SLOT;
const txLen = new Int32Array(TX_SLOTS);
const txResult = new Int32Array(5);
device.bindTx(txBuf, txOff, txLen, txResult);
let txHead = 0;
let txCount = 0;

// ---- the upstream sockets ----
const events = new Int32Array(3 * addon.UpstreamPoller.MAX_EVENTS);
const poller = new addon.UpstreamPoller(events, onEvents);
const epfd = poller.epfd;
const io = new Uint32Array(addon.UPSTREAM_IO_LENGTH);
addon.upstreamBindIo(io);
io[IO_FAMILY] = 4;
io[IO_WORDS] = 0;
io[IO_WORDS + 1] = 0;
io[IO_WORDS + 2] = 0;
io[IO_WORDS + 3] = UPSTREAM;
io[IO_BIND_FAMILY] = 0;
const SPARE = 4;
const spare = new Int32Array(SPARE);
let spareCount = 0;
let refillScheduled = false;
/** Ports whose dial connected within connect(2): registered with epoll once their SYN-ACK is written. */
const toRegister = new Int32Array(65536);
let toRegisterCount = 0;
/**
 * Upstream sockets at EOF, closed once the segment carrying their FIN is written: as the C floor
 * writes before it closes, the app's first byte does not wait for close(2) (which runs the
 * destination's side of our FIN in the call).
 */
const toClose = new Int32Array(65536);
let toCloseCount = 0;
const readBuf = Buffer.alloc(1400);
// The app's data to the upstream (forward): a scratch copy, views by length made once.
const scratch = Buffer.alloc(65536);
const views = new Array(65536).fill(undefined);
const writes = new Uint8Array(65536); // upstream writes so far, up to 2 (TCP_NODELAY with the second)
let shortWrites = 0;
// Delayed ACKs of the app's data (sweepAcks).
const ackPending = new Uint8Array(65536);
const ackList = new Int32Array(65536);
let ackCount = 0;

let answeredAtOnce = 0;
let answeredLater = 0;

// xorshift32: initial sequence numbers (the C floor's random()).
let rnd = (Date.now() ^ 0x9e3779b9) >>> 0 || 1;
function nextIsn() {
  rnd ^= rnd << 13;
  rnd ^= rnd >>> 17;
  rnd ^= rnd << 5;
  rnd >>>= 0;
  return rnd;
}

function fold(s) {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** One IPv4 + TCP segment from us to the app on `port` into the tx ring (written at the next flush). */
function sendSegment(port, flags, data, len) {
  if (txCount === TX_SLOTS) {
    flush();
    if (txCount === TX_SLOTS) return;
  }
  let slot = txHead + txCount;
  if (slot >= TX_SLOTS) slot -= TX_SLOTS;
  const b = txBuf;
  const o = slot * TX_SLOT;
  const ts = OPTIONS && (offered[port] & 1) !== 0;
  const opt = (flags & TH_SYN) !== 0 ? (OPTIONS ? 20 : 4) : ts ? 12 : 0;
  const thl = 20 + opt;
  const total = 20 + thl + len;
  // vnet header: NEEDS_CSUM, no GSO, csum_start 20 (the TCP header), csum_offset 16 (little-endian).
  b[o] = 1;
  b[o + 1] = 0;
  b[o + 2] = 0;
  b[o + 3] = 0;
  b[o + 4] = 0;
  b[o + 5] = 0;
  b[o + 6] = 20;
  b[o + 7] = 0;
  b[o + 8] = 16;
  b[o + 9] = 0;
  const ip = o + VNET;
  const src = ourAddr[port];
  const dst = appAddr[port];
  b[ip] = 0x45;
  b[ip + 1] = 0;
  b[ip + 2] = total >>> 8;
  b[ip + 3] = total & 0xff;
  b[ip + 4] = 0;
  b[ip + 5] = 0;
  b[ip + 6] = 0x40; // DF
  b[ip + 7] = 0;
  b[ip + 8] = 64;
  b[ip + 9] = 6;
  b[ip + 10] = 0;
  b[ip + 11] = 0;
  b.writeUInt32BE(src, ip + 12);
  b.writeUInt32BE(dst, ip + 16);
  const sa = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  const ipSum = ~fold(0x4500 + total + 0x4000 + 0x4006 + sa) & 0xffff;
  b[ip + 10] = ipSum >>> 8;
  b[ip + 11] = ipSum & 0xff;
  const t = ip + 20;
  const sp = ourPort[port];
  b[t] = sp >>> 8;
  b[t + 1] = sp & 0xff;
  b[t + 2] = port >>> 8;
  b[t + 3] = port & 0xff;
  b.writeUInt32BE(ourNxt[port], t + 4);
  b.writeUInt32BE(appNxt[port], t + 8);
  b[t + 12] = (thl >>> 2) << 4;
  b[t + 13] = flags;
  b[t + 14] = 0xff; // window 65535, unscaled
  b[t + 15] = 0xff;
  b[t + 18] = 0;
  b[t + 19] = 0;
  if ((flags & TH_SYN) !== 0) {
    b[t + 20] = 2;
    b[t + 21] = 4;
    b[t + 22] = 1460 >>> 8;
    b[t + 23] = 1460 & 0xff;
    // As Linux lays them out: SACK-permitted and the timestamps, then NOP and window scale (each a NOP pair when not offered).
    if (opt === 20) {
      const o = offered[port];
      b[t + 24] = (o & 4) !== 0 ? 4 : 1;
      b[t + 25] = (o & 4) !== 0 ? 2 : 1;
      if (ts) writeTs(b, t + 26, port);
      else b.fill(1, t + 26, t + 36);
      b[t + 36] = 1;
      b[t + 37] = (o & 2) !== 0 ? 3 : 1;
      b[t + 38] = (o & 2) !== 0 ? 3 : 1;
      b[t + 39] = (o & 2) !== 0 ? OUR_WSCALE : 1;
    }
  } else if (ts) {
    b[t + 20] = 1;
    b[t + 21] = 1;
    writeTs(b, t + 22, port);
  }
  if (len > 0) data.copy(b, t + thl, 0, len);
  // The pseudo-header sum, uncomplemented: the kernel sums the segment onto it (NEEDS_CSUM).
  const ps = fold(sa + 6 + thl + len);
  b[t + 16] = ps >>> 8;
  b[t + 17] = ps & 0xff;
  txLen[slot] = VNET + total;
  txCount++;
  ackPending[port] = 0;
  ourNxt[port] = (ourNxt[port] + len + ((flags & (TH_SYN | TH_FIN)) !== 0 ? 1 : 0)) >>> 0;
}

/** The timestamps option (kind 8, length 10) at `at`: our millisecond clock, and the app's last TSval echoed. */
function writeTs(b, at, port) {
  b[at] = 8;
  b[at + 1] = 10;
  b.writeUInt32BE(Date.now() >>> 0, at + 2);
  b.writeUInt32BE(appTsVal[port], at + 6);
}

/** --options: what the app's SYN offers (offered[port]) and its TSval. */
function readSynOptions(b, t, port) {
  const end = t + ((b[t + 12] >>> 4) << 2);
  let o = 0;
  for (let i = t + 20; i < end; ) {
    const kind = b[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = b[i + 1];
    if (len < 2 || i + len > end) break;
    if (kind === 8 && len === 10) {
      o |= 1;
      appTsVal[port] = b.readUInt32BE(i + 2);
    } else if (kind === 3 && len === 3) o |= 2;
    else if (kind === 4 && len === 2) o |= 4;
    i += len;
  }
  offered[port] = o;
}

/** Writes the queued segments (one write(2) each), then registers the dials that were waiting for their SYN-ACK and closes the upstream sockets at EOF. */
function flush() {
  if (txCount > 0) {
    const consumed = device.writeBound(txHead, txCount);
    txHead = (txHead + consumed) % TX_SLOTS;
    txCount -= consumed;
    // EAGAIN: the device's queue is full; the benchmark never gets there, and the floor drops.
    if (txResult[3] === 1) {
      txHead = (txHead + txCount) % TX_SLOTS;
      txCount = 0;
    }
  }
  for (let i = 0; i < toRegisterCount; i++) {
    const port = toRegister[i];
    const fd = fdOf[port];
    if (fd >= 0 && addon.upstreamRegisterIo(epfd, fd, port, generation[port]) < 0) fail(port);
  }
  toRegisterCount = 0;
  for (let i = 0; i < toCloseCount; i++) closeUpstream(toClose[i]);
  toCloseCount = 0;
}

function closeUpstream(port) {
  const fd = fdOf[port];
  if (fd < 0) return;
  addon.upstreamClose(fd, false);
  fdOf[port] = -1;
}

function fail(port) {
  sendSegment(port, TH_RST | TH_ACK, null, 0);
  closeUpstream(port);
  state[port] = FREE;
}

function takeSpare() {
  if (!refillScheduled) {
    refillScheduled = true;
    setImmediate(refill);
  }
  return spareCount > 0 ? spare[--spareCount] : -1;
}

function refill() {
  refillScheduled = false;
  while (spareCount < SPARE) {
    const fd = addon.upstreamSocket(4);
    if (fd < 0) return;
    spare[spareCount++] = fd;
  }
}

function onSyn(b, ip, t) {
  const port = (b[t] << 8) | b[t + 1];
  if (BURN_US > 0 || TOUCH_BYTES > 0) extraWork();
  const s = state[port];
  if (s !== FREE) {
    if (s === CONNECTING) return; // a retransmitted SYN: the answer is on its way
    closeUpstream(port);
  }
  appAddr[port] = b.readUInt32BE(ip + 12);
  ourAddr[port] = b.readUInt32BE(ip + 16);
  const dport = (b[t + 2] << 8) | b[t + 3];
  ourPort[port] = dport;
  appNxt[port] = (b.readUInt32BE(t + 4) + 1) >>> 0;
  ourNxt[port] = nextIsn();
  if (OPTIONS) readSynOptions(b, t, port);
  writes[port] = 0;
  ackPending[port] = 0;
  const gen = (generation[port] + 1) | 0;
  generation[port] = gen;
  io[IO_PORT] = dport;
  const fd = addon.upstreamConnectIo(epfd, port, gen, takeSpare(), CONNECT_RECHECK);
  if (fd < 0) {
    fdOf[port] = -1;
    sendSegment(port, TH_RST | TH_ACK, null, 0);
    state[port] = FREE;
    return;
  }
  fdOf[port] = fd;
  const st = io[IO_OUT];
  if (st === 0) {
    state[port] = CONNECTING;
    return;
  }
  // Connected within connect(2) (2: not in the epoll set yet) or at the second look (1).
  answeredAtOnce++;
  sendSegment(port, TH_SYN | TH_ACK, null, 0);
  state[port] = OPEN;
  if (st === 2) toRegister[toRegisterCount++] = port;
}

function onAppSegment(b, ip, n) {
  const ihl = (b[ip] & 0x0f) << 2;
  if (b[ip] >>> 4 !== 4 || b[ip + 9] !== 6 || n < ihl + 20) return;
  const t = ip + ihl;
  const flags = b[t + 13];
  if ((flags & (TH_SYN | TH_ACK)) === TH_SYN) {
    onSyn(b, ip, t);
    return;
  }
  const port = (b[t] << 8) | b[t + 1];
  if (state[port] === FREE) return;
  if ((flags & TH_RST) !== 0) {
    closeUpstream(port);
    state[port] = FREE;
    return;
  }
  const thl = (b[t + 12] >>> 4) << 2;
  const len = ((b[ip + 2] << 8) | b[ip + 3]) - ihl - thl;
  // The app's TSval for our next TSecr, where Linux puts it (NOP, NOP, timestamps); RFC 7323 4.3 asks for the
  // TSval of the segment that advanced RCV.NXT, which on this lossless path is the last one.
  if (OPTIONS && thl >= 32 && b[t + 22] === 8 && b[t + 20] === 1) appTsVal[port] = b.readUInt32BE(t + 24);
  const seq = b.readUInt32BE(t + 4);
  if (len > 0) {
    if (seq === appNxt[port] && state[port] === OPEN && fdOf[port] >= 0) {
      forward(port, b, t + thl, len);
      appNxt[port] = (seq + len) >>> 0;
      if (ackPending[port] === 0) {
        ackPending[port] = 1;
        ackList[ackCount++] = port;
      }
    } else if ((flags & TH_FIN) === 0) {
      // A retransmission, or the upstream already gone: say what we have (RFC 9293 3.10.7.4).
      sendSegment(port, TH_ACK, null, 0);
    }
  }
  if ((flags & TH_FIN) !== 0) {
    appNxt[port] = (seq + len + 1) >>> 0;
    sendSegment(port, TH_ACK, null, 0);
    closeUpstream(port);
    state[port] = FREE;
  }
}

/**
 * The app's bytes to the upstream socket with one write(2) (upstreamWrite), from a scratch buffer
 * through a view of exactly `len` bytes made once per length (no allocation per segment once
 * warm). TCP_NODELAY with the socket's second write, as synfin's upstream sockets set it. A short
 * write or EAGAIN drops the rest (counted): the benchmark's requests are small and never block.
 */
function forward(port, b, off, len) {
  b.copy(scratch, 0, off, off + len);
  let view = views[len];
  if (view === undefined) view = views[len] = scratch.subarray(0, len);
  const w = writes[port];
  const r = addon.upstreamWrite(fdOf[port], view, w === 1);
  if (w < 2) writes[port] = w + 1;
  if (r !== len) shortWrites++;
}

/**
 * Delayed ACKs (RFC 1122 4.2.3.2, under 500 ms): the app's data is ACKed by the next segment to
 * it (the response, piggybacked), or by a bare ACK from this sweep 20 ms later. Every segment
 * carries RCV.NXT, so sendSegment clears the port's flag.
 */
function sweepAcks() {
  for (let i = 0; i < ackCount; i++) {
    const port = ackList[i];
    if (ackPending[port] !== 0 && state[port] !== FREE) sendSegment(port, TH_ACK, null, 0);
    ackPending[port] = 0;
  }
  ackCount = 0;
  flush();
}

function onBatch(count) {
  for (let i = 0; i < count; i++) {
    const n = rxLen[i] - VNET;
    if (n > 0) onAppSegment(rxBuf, i * RX_SLOT + VNET, n);
  }
  flush();
}

function onUpstream(port, mask) {
  if (state[port] === CONNECTING) {
    if ((mask & (EPOLLOUT | EPOLLERR | EPOLLHUP)) === 0) return;
    if ((mask & (EPOLLERR | EPOLLHUP)) !== 0 || (mask & EPOLLOUT) === 0) {
      fail(port);
      return;
    }
    answeredLater++;
    sendSegment(port, TH_SYN | TH_ACK, null, 0);
    state[port] = OPEN;
    // The event may carry the destination's first bytes already.
  }
  if (state[port] !== OPEN || (mask & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) === 0) return;
  const fd = fdOf[port];
  // Edge-triggered: read until a short read, EAGAIN or EOF. With the peer's FIN seen (EPOLLRDHUP)
  // a short read took everything: data and FIN in one segment, as synfin sends them.
  for (;;) {
    const r = addon.upstreamRead(fd, readBuf, 0, readBuf.length);
    if (r > 0 && r < readBuf.length && (mask & EPOLLRDHUP) !== 0) {
      sendSegment(port, TH_PSH | TH_ACK | TH_FIN, readBuf, r);
    } else if (r > 0) {
      sendSegment(port, TH_PSH | TH_ACK, readBuf, r);
      if (r < readBuf.length) return; // drained: the next arrival is a new edge
      continue;
    } else if (r === 0) {
      sendSegment(port, TH_FIN | TH_ACK, null, 0);
    } else if (r === -EAGAIN) {
      return;
    } else {
      fail(port);
      return;
    }
    state[port] = UPSTREAM_DONE;
    toClose[toCloseCount++] = port;
    return;
  }
}

function onEvents(count) {
  for (let i = 0; i < count; i++) {
    const port = events[3 * i];
    // A socket closed since (its port taken again by a newer dial, or freed).
    if (generation[port] !== events[3 * i + 1] || fdOf[port] < 0) continue;
    onUpstream(port, events[3 * i + 2]);
  }
  flush();
}

function onError(err) {
  process.stderr.write(`reading ${devName}: ${err.message}\n`);
  process.exit(1);
}

function stop() {
  process.stderr.write(`dials answered within connect(2): ${answeredAtOnce}, after an epoll wait: ${answeredLater}; short upstream writes: ${shortWrites}\n`);
  process.exit(0);
}

refill();
device.startReading(rxBuf, rxLen, RX_SLOT, RX_BATCH, onBatch, onError);
setInterval(sweepAcks, 20);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write('ready\n');
