#!/usr/bin/env node
// What capture costs the stack per packet, without the network: one connection on an in-memory
// link receives in-order 1,000-byte segments (checksum known good, as with a vnet header) in
// batches of 32, and the stack answers each batch with its ACKs; capture off (no ring) and on
// (a 64 MiB ring, default snaplen) take turns, and the fastest of the runs is reported.
//
//   npm run build && node bench/capture-cost.mjs [segments per run, default 200000] [runs, default 6]
//
// No root needed. The figure is the stack's own work per received segment (demultiplexing, the
// state machine, the ACKs it writes), with and without the copies into the ring.
import { Stack } from '../dist/stack/stack.js';
import { ManualClock } from '../dist/stack/clock.js';
import { defaultTcpConfig } from '../dist/tcp/defaults.js';
import { OutSegment, TcpFlag } from '../dist/wire/segment.js';
import { finishTcpChecksum, writeTcpPacket } from '../dist/wire/packet.js';
import { CaptureRing } from '../dist/stack/capture.js';

const SEGMENTS = Number(process.argv[2] ?? 200_000);
const RUNS = Number(process.argv[3] ?? 6);
const PAYLOAD = 1000;
const BATCH = 32;
const APP = Uint32Array.of(0, 0, 0, 0xc6120001);
const DEST = Uint32Array.of(0, 0, 0, 0xc6120102);

class NullLink {
  vnetHdr = false;
  txSlotSize = 70_000;
  txBuffer = Buffer.alloc(70_000);
  last = 0;
  txReserve() {
    return 0;
  }
  txCommit(_off, len) {
    this.last = len;
  }
  txFlush() {}
  onTxDrain() {}
}

function packet(seq, ack, flags, payload) {
  const out = new OutSegment();
  out.seq = seq >>> 0;
  out.ack = ack >>> 0;
  out.flags = flags;
  out.window = 65535;
  if (flags & TcpFlag.SYN) out.options.mss = 1460;
  const buf = Buffer.alloc(60 + payload);
  const hl = writeTcpPacket(buf, 0, 4, APP, DEST, 40000, 80, out, payload);
  finishTcpChecksum(buf, 0, 'full');
  return buf.subarray(0, hl + payload);
}

function run(capture) {
  const link = new NullLink();
  const clock = new ManualClock(1000);
  const syns = [];
  const stack = new Stack({
    link,
    clock,
    tcp: defaultTcpConfig(),
    forwarder: { onSyn: (r) => syns.push(r), onSynAborted() {} },
    setTimer: () => null,
    clearTimer: () => {},
  });
  if (capture) stack.setCapture(ring);
  const handler = { onEstablished() {}, onData: (c, d) => c.consume(d.length, 0), onFin() {}, onSendSpace() {}, onClosed() {} };
  const isn = 0x10000;
  const syn = packet(isn, 0, TcpFlag.SYN, 0);
  stack.input(syn, 0, syn.length, false);
  stack.flush();
  stack.acceptPending(syns.shift(), handler);
  stack.flush();
  const ourIss = link.txBuffer.readUInt32BE(24);
  const ack = packet(isn + 1, ourIss + 1, TcpFlag.ACK, 0);
  stack.input(ack, 0, ack.length, false);
  stack.flush();
  const data = packet(isn + 1, ourIss + 1, TcpFlag.ACK | TcpFlag.PSH, PAYLOAD);
  let seq = isn + 1;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < SEGMENTS; i += BATCH) {
    for (let k = 0; k < BATCH; k++) {
      data.writeUInt32BE(seq >>> 0, 24);
      seq += PAYLOAD;
      stack.input(data, 0, data.length, true);
    }
    clock.advance(1);
    stack.flush();
  }
  const ns = Number(process.hrtime.bigint() - t0) / SEGMENTS;
  stack.stop();
  return ns;
}

// One ring for every run, touched once before: page faults of a fresh 64 MiB are not the figure.
const ring = new CaptureRing(64 * 1024 * 1024, 128);
ring.bytes.fill(0);
const results = { off: [], on: [] };
for (let r = 0; r < RUNS; r++) {
  for (const variant of r % 2 ? ['on', 'off'] : ['off', 'on']) results[variant].push(run(variant === 'on'));
}
const fmt = (a) => `fastest ${Math.min(...a).toFixed(0)} ns, median ${[...a].sort((x, y) => x - y)[a.length >> 1].toFixed(0)} ns`;
console.log(`${SEGMENTS} segments of ${PAYLOAD} bytes per run, ${RUNS} runs each`);
console.log(`capture off: ${fmt(results.off)} per segment received`);
console.log(`capture on:  ${fmt(results.on)} per segment received (64 MiB ring, snaplen 128)`);
