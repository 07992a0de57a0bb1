/**
 * Property tests over the whole codec: emit → parse round trips for random segments, and
 * random or mutated bytes never make the parser throw or read outside its range.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  FlowKey,
  PacketParser,
  REASON_VERDICT,
  finishTcpChecksum,
  ipHeaderLength,
  writeTcpPacket,
  TCP_CHECKSUM_OFFSET,
  type ChecksumMode,
  type ParseVerdict,
} from '../../src/wire/packet.js';
import { onesSum } from '../../src/wire/checksum.js';
import { OutSegment, Segment } from '../../src/wire/segment.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });

interface Case {
  family: 4 | 6;
  src: number[];
  dst: number[];
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  mss: number;
  wscale: number;
  sackPermitted: boolean;
  ts: { val: number; ecr: number } | null;
  sack: number[];
  payload: Uint8Array;
  off: number;
  mode: ChecksumMode;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  family: fc.constantFrom(4 as const, 6 as const),
  src: fc.array(u32, { minLength: 4, maxLength: 4 }),
  dst: fc.array(u32, { minLength: 4, maxLength: 4 }),
  srcPort: u16,
  dstPort: u16,
  seq: u32,
  ack: u32,
  flags: fc.integer({ min: 0, max: 0xff }),
  window: u16,
  mss: fc.oneof(fc.constant(-1), u16),
  wscale: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 14 })),
  sackPermitted: fc.boolean(),
  ts: fc.option(fc.record({ val: u32, ecr: u32 }), { nil: null }),
  sack: fc.array(u32, { maxLength: 8 }).map((a) => a.slice(0, a.length & ~1)),
  payload: fc.uint8Array({ maxLength: 300, size: 'max' }),
  off: fc.nat(7),
  mode: fc.constantFrom<ChecksumMode>('full', 'partial'),
});

/** Build the packet for `c` into a buffer at `c.off`, checksum completed as the kernel or we would. */
function build(c: Case): { buf: Buffer; len: number } {
  const src = new Uint32Array(c.family === 4 ? [0, 0, 0, c.src[3]!] : c.src);
  const dst = new Uint32Array(c.family === 4 ? [0, 0, 0, c.dst[3]!] : c.dst);
  const out = new OutSegment();
  out.seq = c.seq;
  out.ack = c.ack;
  out.flags = c.flags;
  out.window = c.window;
  const o = out.options;
  o.mss = c.mss;
  o.wscale = c.wscale;
  o.sackPermitted = c.sackPermitted;
  o.tsPresent = c.ts !== null;
  o.tsVal = c.ts?.val ?? 0;
  o.tsEcr = c.ts?.ecr ?? 0;
  o.sackBlocks.set(c.sack);
  o.sackCount = c.sack.length / 2;
  const buf = Buffer.alloc(c.off + 40 + 60 + c.payload.length + 5, 0xcc);
  const hl = writeTcpPacket(buf, c.off, c.family, src, dst, c.srcPort, c.dstPort, out, c.payload.length);
  buf.set(c.payload, c.off + hl);
  finishTcpChecksum(buf, c.off, c.mode);
  if (c.mode === 'partial') {
    // What the kernel does for VIRTIO_NET_HDR_F_NEEDS_CSUM.
    const start = c.off + ipHeaderLength(c.family);
    const len = hl + c.payload.length - ipHeaderLength(c.family);
    buf.writeUInt16BE(~onesSum(buf, start, len) & 0xffff, start + TCP_CHECKSUM_OFFSET);
  }
  return { buf, len: hl + c.payload.length };
}

/** SACK blocks that fit in 40 option bytes, computed from the layout, independently of the codec. */
function expectedSackBlocks(c: Case): number {
  const fixed = (c.mss >= 0 ? 4 : 0) + (c.ts !== null ? 12 : c.sackPermitted ? 4 : 0) + (c.wscale >= 0 ? 4 : 0);
  const room = Math.max(0, Math.floor((40 - fixed - 4) / 8));
  return Math.min(c.sack.length / 2, room);
}

const VERDICTS: ParseVerdict[] = ['tcp', 'not_tcp', 'checksum', 'malformed', 'fragment', 'unsupported'];

describe('properties: emit then parse', () => {
  it('property parse of emit returns the segment v4 and v6', () => {
    const parser = new PacketParser();
    const seg = new Segment();
    const flow = new FlowKey();
    fc.assert(
      fc.property(caseArb, (c) => {
        const { buf, len } = build(c);
        expect(parser.parse(buf, c.off, len, false, seg, flow)).toBe('tcp');
        expect(flow.family).toBe(c.family);
        const words = (a: number[]): number[] => (c.family === 4 ? [0, 0, 0, a[3]!] : a);
        expect(Array.from(flow.src)).toEqual(words(c.src));
        expect(Array.from(flow.dst)).toEqual(words(c.dst));
        expect(flow.srcPort).toBe(c.srcPort);
        expect(flow.dstPort).toBe(c.dstPort);
        expect(seg.seq).toBe(c.seq);
        expect(seg.ack).toBe(c.ack);
        expect(seg.flags).toBe(c.flags);
        expect(seg.window).toBe(c.window);
        expect(seg.urgent).toBe(0);
        expect(Buffer.compare(seg.payload, Buffer.from(c.payload))).toBe(0);
        const o = seg.options;
        expect(o.mss).toBe(c.mss);
        expect(o.wscale).toBe(c.wscale);
        expect(o.sackPermitted).toBe(c.sackPermitted);
        expect(o.tsPresent).toBe(c.ts !== null);
        if (c.ts !== null) {
          expect(o.tsVal).toBe(c.ts.val);
          expect(o.tsEcr).toBe(c.ts.ecr);
        }
        const n = expectedSackBlocks(c);
        expect(o.sackCount).toBe(n);
        expect(Array.from(o.sackBlocks.subarray(0, 2 * n))).toEqual(c.sack.slice(0, 2 * n));
        // 32-bit aligned options, never more than 40 bytes.
        expect(parser.tcp.headerLength % 4).toBe(0);
        expect(parser.tcp.headerLength).toBeLessThanOrEqual(60);
      }),
      { numRuns: 1000 },
    );
  });
});

function checkConsistent(parser: PacketParser, verdict: ParseVerdict, off: number, len: number, seg: Segment): void {
  expect(VERDICTS).toContain(verdict);
  expect(REASON_VERDICT[parser.reason]).toBe(verdict);
  if (verdict === 'tcp') {
    expect(parser.payloadOffset).toBeGreaterThanOrEqual(off);
    expect(parser.payloadOffset + parser.payloadLength).toBeLessThanOrEqual(off + len);
    expect(seg.payload.length).toBe(parser.payloadLength);
  }
}

/**
 * Byte strings that look like IP packets often enough to get past the first checks: a chosen
 * first byte, sometimes a consistent length field, a TCP or extension-header protocol number.
 */
const noiseArb = fc
  .tuple(
    fc.constantFrom(-1, 0x45, 0x46, 0x4f, 0x60),
    fc.uint8Array({ minLength: 0, maxLength: 160, size: 'max' }),
    fc.boolean(),
    fc.constantFrom(-1, 6, 0, 43, 44, 51, 60),
  )
  .map(([first, bytes, fixLength, proto]) => {
    const b = Buffer.from(bytes);
    if (first >= 0 && b.length > 0) b[0] = first;
    const v = b.length > 0 ? b[0]! >> 4 : 0;
    if (v === 4 && b.length >= 20) {
      if (fixLength) b.writeUInt16BE(b.length, 2);
      if (proto >= 0) b[9] = 6;
    } else if (v === 6 && b.length >= 40) {
      if (fixLength) b.writeUInt16BE(b.length - 40, 4);
      if (proto >= 0) b[6] = proto;
    }
    return b;
  });

const mutationArb = fc.tuple(
  caseArb,
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
  fc.oneof({ arbitrary: fc.constant(null), weight: 4 }, { arbitrary: fc.nat(), weight: 1 }),
);

describe('properties: hostile input', () => {
  it('property random bytes never throw and verdict matches reason', () => {
    const parser = new PacketParser();
    const seg = new Segment();
    const flow = new FlowKey();
    fc.assert(
      fc.property(noiseArb, fc.boolean(), (b, known) => {
        const v = parser.parse(b, 0, b.length, known, seg, flow);
        checkConsistent(parser, v, 0, b.length, seg);
      }),
      { numRuns: 2000 },
    );
  });

  it('property mutated packets never throw and verdict matches reason', () => {
    const parser = new PacketParser();
    const seg = new Segment();
    const flow = new FlowKey();
    fc.assert(
      fc.property(mutationArb, fc.boolean(), ([c, edits, cut], known) => {
        const { buf, len } = build(c);
        for (const [i, value] of edits) buf[c.off + (i % len)] = value;
        const l = cut === null ? len : cut % (len + 1);
        const v = parser.parse(buf, c.off, l, known, seg, flow);
        checkConsistent(parser, v, c.off, l, seg);
      }),
      { numRuns: 2000 },
    );
  });

  it('property bytes outside the range do not change the result', () => {
    const a = new PacketParser();
    const b = new PacketParser();
    const segA = new Segment();
    const segB = new Segment();
    const flowA = new FlowKey();
    const flowB = new FlowKey();
    fc.assert(
      fc.property(mutationArb, fc.integer({ min: 0, max: 255 }), ([c, edits, cut], fill) => {
        const { buf, len } = build(c);
        for (const [i, value] of edits) buf[c.off + (i % len)] = value;
        const l = cut === null ? len : cut % (len + 1);
        const other = Buffer.from(buf);
        other.fill(fill, 0, c.off);
        other.fill(fill, c.off + l);
        const va = a.parse(buf, c.off, l, true, segA, flowA);
        const vb = b.parse(other, c.off, l, true, segB, flowB);
        expect(vb).toBe(va);
        expect(b.reason).toBe(a.reason);
        if (va === 'tcp') {
          expect([segB.seq, segB.ack, segB.flags, segB.window, segB.urgent]).toEqual([segA.seq, segA.ack, segA.flags, segA.window, segA.urgent]);
          expect({ ...segB.options }).toEqual({ ...segA.options });
          expect(Buffer.compare(segB.payload, segA.payload)).toBe(0);
          expect(flowB.equals(flowA)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});
