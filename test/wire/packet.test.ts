import { describe, it, expect, beforeEach } from 'vitest';
import {
  FlowKey,
  PacketParser,
  PARSE_REASONS,
  REASON_VERDICT,
  finishTcpChecksum,
  ipHeaderLength,
  setNextIpv4Id,
  writeIcmpEchoReply,
  writeIcmpUnreachable,
  writeRst,
  writeTcpPacket,
  TCP_CHECKSUM_OFFSET,
  type ParseReason,
  type ParseVerdict,
} from '../../src/wire/packet.js';
import { onesSum, pseudoSumV4, pseudoSumV6 } from '../../src/wire/checksum.js';
import { Icmpv4UnreachableCode, Icmpv6UnreachableCode } from '../../src/wire/icmp.js';
import { OutSegment, Segment, TcpFlag } from '../../src/wire/segment.js';
import type { FlowKeyLike } from '../../src/stack/flow-table.js';
import {
  DATA_V4,
  ECHO_REP_V4,
  ECHO_REP_V6,
  ECHO_REQ_V4,
  EXT_V6,
  RST_V4,
  RST_V6,
  SACK_V4,
  SYN_V4,
  SYNACK_V6,
  UDP_V4,
  UDP_V6,
  UNREACH_V4,
  UNREACH_V6,
} from './golden.js';
import { fixChecksums, hex, placed } from './helpers.js';

const CLIENT4 = new Uint32Array([0, 0, 0, 0xc6120001]);
const SERVER4 = new Uint32Array([0, 0, 0, 0xc613ff0a]);
const CLIENT6 = new Uint32Array([0x20010db8, 0, 0, 1]);
const SERVER6 = new Uint32Array([0x20010db8, 0, 0, 2]);

const parser = new PacketParser();
const seg = new Segment();
const flow = new FlowKey();

function run(p: Buffer, known = false, off = 0, len = p.length - off): ParseVerdict {
  return parser.parse(p, off, len, known, seg, flow);
}

function expectRejected(p: Buffer, verdict: ParseVerdict, reason: ParseReason, known = false): void {
  expect(run(p, known)).toBe(verdict);
  expect(parser.reason).toBe(reason);
}

/** SYN_V4 with its TCP options replaced by `options` (a multiple of 4 bytes), checksums fixed. */
function synWithOptions(options: string): Buffer {
  const base = hex(SYN_V4);
  const o = hex(options);
  const p = Buffer.concat([base.subarray(0, 40), o]);
  p.writeUInt16BE(p.length, 2);
  p[32] = ((20 + o.length) / 4) << 4;
  return fixChecksums(p, 20);
}

describe('PacketParser: valid TCP packets', () => {
  it('parses golden v4 syn into segment and flow', () => {
    expect(run(hex(SYN_V4))).toBe('tcp');
    expect(parser.reason).toBe('ok');
    expect(parser.family).toBe(4);
    expect(parser.protocol).toBe(6);
    expect(parser.ttl).toBe(64);
    expect(parser.ipLength).toBe(60);
    expect(parser.l4Offset).toBe(20);
    expect(parser.l4Length).toBe(40);
    expect(seg.seq).toBe(0xf0e1d2c3);
    expect(seg.ack).toBe(0);
    expect(seg.flags).toBe(TcpFlag.SYN);
    expect(seg.window).toBe(64240);
    expect(seg.urgent).toBe(0);
    expect(seg.payload.length).toBe(0);
    expect(seg.segLen).toBe(1);
    expect(seg.options).toMatchObject({ mss: 1460, wscale: 7, sackPermitted: true, tsPresent: true, tsVal: 0x0012d687 });
    expect(flow.family).toBe(4);
    expect(Array.from(flow.src)).toEqual([0, 0, 0, 0xc6120001]);
    expect(Array.from(flow.dst)).toEqual([0, 0, 0, 0xc613ff0a]);
    expect(flow.srcPort).toBe(54321);
    expect(flow.dstPort).toBe(443);
  });

  it('payload is a view of the input at any offset and alignment', () => {
    for (const off of [0, 1, 2, 3, 10]) {
      const p = placed(hex(DATA_V4), off, 3);
      expect(run(p, false, off, 57)).toBe('tcp');
      expect(seg.payload.toString()).toBe('hello');
      expect(parser.payloadOffset).toBe(off + 52);
      expect(parser.payloadLength).toBe(5);
      p[off + 52] = 0x48;
      expect(seg.payload.toString()).toBe('Hello');
      expect(seg.options).toMatchObject({ tsPresent: true, tsVal: 0x0012d6a0, tsEcr: 0x9a8b7c6d, mss: -1 });
    }
  });

  it('ignores link padding after ipv4 total length', () => {
    const p = placed(hex(DATA_V4), 0, 9, 0x00);
    expect(run(p)).toBe('tcp');
    expect(seg.payload.toString()).toBe('hello');
    expect(parser.ipLength).toBe(57);
  });

  it('parses golden v6 synack', () => {
    expect(run(hex(SYNACK_V6))).toBe('tcp');
    expect(parser.family).toBe(6);
    expect(flow.family).toBe(6);
    expect(Array.from(flow.src)).toEqual([0x20010db8, 0, 0, 2]);
    expect(Array.from(flow.dst)).toEqual([0x20010db8, 0, 0, 1]);
    expect(flow.srcPort).toBe(443);
    expect(seg.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    expect(seg.ack).toBe(0xf0e1d2c4);
    expect(seg.options).toMatchObject({ mss: 1440, wscale: 7, sackPermitted: true, tsVal: 0x7f000001 });
  });

  it('finds tcp behind v6 extension headers', () => {
    expect(run(hex(EXT_V6))).toBe('tcp');
    expect(parser.l4Offset).toBe(64);
    expect(parser.l4Length).toBe(24);
    expect(seg.payload.toString()).toBe('abcd');
    expect(flow.srcPort).toBe(1111);
  });

  it('parses sack blocks', () => {
    expect(run(hex(SACK_V4))).toBe('tcp');
    expect(seg.options.sackCount).toBe(2);
    expect(Array.from(seg.options.sackBlocks.subarray(0, 4))).toEqual([0x1000, 0x2000, 0x3000, 0x4000]);
  });

  it('a pure ack gets the shared empty payload', () => {
    run(hex(SYN_V4));
    const first = seg.payload;
    run(hex(SACK_V4));
    expect(seg.payload).toBe(first);
    expect(first.length).toBe(0);
  });

  it('reports ecn codepoint', () => {
    const p = hex(SYN_V4);
    p[1] = 0x03; // CE
    fixChecksums(p, 20);
    run(p);
    expect(parser.ecn).toBe(3);
  });
});

describe('PacketParser: checksums', () => {
  it('RFC 9293 bad tcp checksum is checksum', () => {
    const p = hex(DATA_V4);
    p[56] = p[56]! ^ 0x01;
    expectRejected(p, 'checksum', 'tcp_checksum');
  });

  it('bad tcp checksum passes when checksum known good', () => {
    const p = hex(DATA_V4);
    p.writeUInt16BE(0x1234, 36); // e.g. CHECKSUM_PARTIAL: only the pseudo-header sum is there
    expect(run(p, true)).toBe('tcp');
  });

  it('bad v6 tcp checksum is checksum', () => {
    const p = hex(SYNACK_V6);
    p[79] = p[79]! ^ 0x01;
    expectRejected(p, 'checksum', 'tcp_checksum');
  });

  it('RFC 1122 bad ipv4 header checksum is checksum even when known good', () => {
    const p = hex(SYN_V4);
    p[10] = p[10]! ^ 0x40;
    expectRejected(p, 'checksum', 'ipv4_checksum', true);
  });

  it('checksum is checked before the data offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0x30; // data offset 3, and the checksum no longer matches
    expectRejected(p, 'checksum', 'tcp_checksum');
  });
});

describe('PacketParser: not TCP, fragments, unsupported', () => {
  it('udp is not tcp with protocol and addresses', () => {
    expectRejected(hex(UDP_V4), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(17);
    expect(flow.family).toBe(4);
    expect(flow.dst[3]).toBe(0xc6120035);
    expect(flow.srcPort).toBe(0);
    expect(flow.dstPort).toBe(0);
  });

  it('v6 udp and icmp are not tcp', () => {
    expectRejected(hex(UDP_V6), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(17);
    expectRejected(hex(ECHO_REP_V6), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(58);
    expect(parser.l4Offset).toBe(40);
  });

  it('icmpv4 is not tcp', () => {
    expectRejected(hex(ECHO_REQ_V4), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(1);
  });

  it('v4 fragment is fragment', () => {
    const p = hex(SYN_V4);
    p.writeUInt16BE(0x2000, 6);
    fixChecksums(p, 20);
    expectRejected(p, 'fragment', 'ipv4_fragment');
    expect(parser.protocol).toBe(6);
    expect(flow.src[3]).toBe(0xc6120001);
  });

  it('v6 fragment is fragment', () => {
    const base = hex(SYNACK_V6);
    const frag = hex('06 00 00 08 00 00 00 01'); // offset 1 unit
    const p = Buffer.concat([base.subarray(0, 40), frag, base.subarray(40)]);
    p[6] = 44;
    p.writeUInt16BE(48, 4);
    expectRejected(p, 'fragment', 'ipv6_fragment');
    expect(parser.protocol).toBe(6);
  });

  it('v6 routing in transit is unsupported', () => {
    const base = hex(SYNACK_V6);
    const rh = hex('06 00 04 01 00 00 00 00');
    const p = Buffer.concat([base.subarray(0, 40), rh, base.subarray(40)]);
    p[6] = 43;
    p.writeUInt16BE(48, 4);
    expectRejected(p, 'unsupported', 'ipv6_routing');
  });

  it('v6 jumbogram is unsupported', () => {
    const p = hex(EXT_V6);
    p.writeUInt16BE(0, 4);
    expectRejected(p, 'unsupported', 'ipv6_jumbogram');
  });
});

describe('PacketParser: malformed packets', () => {
  it('empty input is ip truncated', () => {
    expectRejected(Buffer.alloc(0), 'malformed', 'ip_truncated');
  });

  it('version not 4 or 6 is ip version', () => {
    const p = hex(SYN_V4);
    p[0] = 0x55;
    expectRejected(p, 'malformed', 'ip_version');
  });

  it('short v4 header is ipv4 truncated', () => {
    expectRejected(hex(SYN_V4).subarray(0, 19), 'malformed', 'ipv4_truncated');
  });

  it('ihl below 5 is ipv4 ihl', () => {
    const p = hex(SYN_V4);
    p[0] = 0x44;
    expectRejected(p, 'malformed', 'ipv4_ihl');
  });

  it('total length beyond buffer is ipv4 total length', () => {
    expectRejected(hex(SYN_V4).subarray(0, 59), 'malformed', 'ipv4_total_length');
  });

  it('short v6 header is ipv6 truncated', () => {
    expectRejected(hex(SYNACK_V6).subarray(0, 39), 'malformed', 'ipv6_truncated');
  });

  it('v6 payload length beyond buffer is ipv6 payload length', () => {
    expectRejected(hex(SYNACK_V6).subarray(0, 79), 'malformed', 'ipv6_payload_length');
  });

  it('v6 extension chain overrun is ipv6 ext overrun', () => {
    const p = hex(EXT_V6);
    p[49] = 8; // Destination Options claims 72 octets
    expectRejected(p, 'malformed', 'ipv6_ext_overrun');
  });

  it('v6 endless destination options is ipv6 ext limit', () => {
    const base = hex(SYNACK_V6);
    const chain = Buffer.alloc(8 * 20);
    for (let i = 0; i < 20; i++) chain[8 * i] = i === 19 ? 6 : 60;
    const p = Buffer.concat([base.subarray(0, 40), chain, base.subarray(40)]);
    p[6] = 60;
    p.writeUInt16BE(p.length - 40, 4);
    expectRejected(p, 'malformed', 'ipv6_ext_limit');
  });

  it('v6 hop by hop not first is ipv6 ext order', () => {
    const p = hex(EXT_V6);
    p[6] = 60;
    p[40] = 0; // DestOpts(8) → HBH(16) → TCP
    expectRejected(p, 'malformed', 'ipv6_ext_order');
  });

  it('segment shorter than tcp header is tcp truncated', () => {
    const p = hex(SYN_V4).subarray(0, 39);
    p.writeUInt16BE(39, 2);
    fixChecksums(p, 20);
    expectRejected(p, 'malformed', 'tcp_truncated');
  });

  it('data offset below 5 is tcp data offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0x40;
    fixChecksums(p, 20);
    expectRejected(p, 'malformed', 'tcp_data_offset');
  });

  it('data offset beyond the packet is tcp data offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0xf0;
    fixChecksums(p, 20);
    expectRejected(p, 'malformed', 'tcp_data_offset');
  });

  it('option length 0 is tcp option length', () => {
    expectRejected(synWithOptions('02 04 05 b4 08 00 00 00'), 'malformed', 'tcp_option_length');
  });

  it('option length 1 is tcp option length', () => {
    expectRejected(synWithOptions('01 01 03 01'), 'malformed', 'tcp_option_length');
  });

  it('option overrun is tcp option overrun', () => {
    expectRejected(synWithOptions('01 01 08 0a 00 00 00 00'), 'malformed', 'tcp_option_overrun');
  });

  it('every reason maps to one verdict and ok alone to tcp', () => {
    for (const r of PARSE_REASONS) {
      const v = REASON_VERDICT[r];
      expect(['tcp', 'not_tcp', 'checksum', 'malformed', 'fragment', 'unsupported']).toContain(v);
      expect(v === 'tcp').toBe(r === 'ok');
    }
    expect(Object.keys(REASON_VERDICT).sort()).toEqual([...PARSE_REASONS].sort());
  });
});

describe('FlowKey', () => {
  it('is a flow key like for the flow table', () => {
    const k: FlowKeyLike = new FlowKey();
    expect(k.src.length).toBe(4);
  });

  it('hash is a 31 bit function of the tuple', () => {
    const a = new FlowKey();
    const b = new FlowKey();
    a.setV4(0xc6120001, 54321, 0xc613ff0a, 443);
    b.setV4(0xc6120001, 54321, 0xc613ff0a, 443);
    expect(a.hash()).toBe(b.hash());
    expect(a.hash()).toBeGreaterThanOrEqual(0);
    expect(a.hash()).toBeLessThan(2 ** 31);
    expect(a.equals(b)).toBe(true);
  });

  it('hash differs for the reverse direction and another port', () => {
    const a = new FlowKey();
    const b = new FlowKey();
    a.setV4(1, 2, 3, 4);
    b.setV4(3, 4, 1, 2);
    expect(a.hash()).not.toBe(b.hash());
    expect(a.equals(b)).toBe(false);
    b.setV4(1, 2, 3, 5);
    expect(a.hash()).not.toBe(b.hash());
  });

  it('copyFrom: and clear', () => {
    run(hex(SYNACK_V6));
    const c = new FlowKey();
    c.copyFrom(flow);
    expect(c.equals(flow)).toBe(true);
    c.clear();
    expect(c.equals(new FlowKey())).toBe(true);
  });
});

function out(fields: Partial<Omit<OutSegment, 'options' | 'clear'>>, o: Partial<OutSegment['options']> = {}): OutSegment {
  const s = new OutSegment();
  Object.assign(s, fields);
  Object.assign(s.options, o);
  return s;
}

describe('writeTcpPacket + finishTcpChecksum', () => {
  beforeEach(() => setNextIpv4Id(0x1c46));

  it('writes the golden v4 syn', () => {
    const buf = Buffer.alloc(80, 0xee);
    const o = out(
      { seq: 0xf0e1d2c3, flags: TcpFlag.SYN, window: 64240 },
      { mss: 1460, sackPermitted: true, tsPresent: true, tsVal: 0x0012d687, tsEcr: 0, wscale: 7 },
    );
    expect(writeTcpPacket(buf, 0, 4, CLIENT4, SERVER4, 54321, 443, o, 0)).toBe(60);
    finishTcpChecksum(buf, 0, 'full');
    expect(buf.subarray(0, 60)).toEqual(hex(SYN_V4));
  });

  it('writes the golden data segment with payload copied after the header', () => {
    setNextIpv4Id(0x1c47);
    const buf = Buffer.alloc(100, 0xee);
    const o = out(
      { seq: 0xf0e1d2c4, ack: 0x11223345, flags: TcpFlag.ACK | TcpFlag.PSH, window: 502 },
      { tsPresent: true, tsVal: 0x0012d6a0, tsEcr: 0x9a8b7c6d },
    );
    const at = writeTcpPacket(buf, 7, 4, CLIENT4, SERVER4, 54321, 443, o, 5);
    expect(at).toBe(52);
    buf.write('hello', 7 + at);
    finishTcpChecksum(buf, 7, 'full');
    expect(buf.subarray(7, 7 + 57)).toEqual(hex(DATA_V4));
  });

  it('writes the golden v6 synack', () => {
    const buf = Buffer.alloc(80);
    const o = out(
      { seq: 0x11223344, ack: 0xf0e1d2c4, flags: TcpFlag.SYN | TcpFlag.ACK, window: 65160 },
      { mss: 1440, sackPermitted: true, tsPresent: true, tsVal: 0x7f000001, tsEcr: 0x0012d687, wscale: 7 },
    );
    expect(writeTcpPacket(buf, 0, 6, SERVER6, CLIENT6, 443, 54321, o, 0)).toBe(80);
    finishTcpChecksum(buf, 0, 'full');
    expect(buf).toEqual(hex(SYNACK_V6));
  });

  it('writes the golden sack ack', () => {
    setNextIpv4Id(7);
    const buf = Buffer.alloc(72);
    const o = out({ seq: 1000, ack: 2000, flags: TcpFlag.ACK, window: 1024 }, { tsPresent: true, tsVal: 100, tsEcr: 200 });
    o.options.sackBlocks.set([0x1000, 0x2000, 0x3000, 0x4000]);
    o.options.sackCount = 2;
    const a = new Uint32Array([0, 0, 0, 0x0a000001]);
    const b = new Uint32Array([0, 0, 0, 0x0a000002]);
    expect(writeTcpPacket(buf, 0, 4, a, b, 80, 12345, o, 0)).toBe(72);
    finishTcpChecksum(buf, 0, 'full');
    expect(buf).toEqual(hex(SACK_V4));
  });

  it('ipv4 identification increments per packet and wraps', () => {
    setNextIpv4Id(0xffff);
    const buf = Buffer.alloc(40);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      writeTcpPacket(buf, 0, 4, CLIENT4, SERVER4, 1, 2, out({ flags: TcpFlag.ACK }), 0);
      ids.push(buf.readUInt16BE(4));
      expect(buf.readUInt16BE(6)).toBe(0x4000); // DF, no fragment offset
      expect(buf[8]).toBe(64);
    }
    expect(ids).toEqual([0xffff, 0, 1]);
  });

  it('partial leaves the pseudo header sum for the kernel to complete', () => {
    const buf = Buffer.alloc(100);
    const o = out({ seq: 5, ack: 6, flags: TcpFlag.ACK | TcpFlag.PSH, window: 100 }, { tsPresent: true, tsVal: 1, tsEcr: 2 });
    const hl = writeTcpPacket(buf, 0, 6, CLIENT6, SERVER6, 1111, 2222, o, 4);
    buf.write('abcd', hl);
    finishTcpChecksum(buf, 0, 'partial');
    const tcpOff = ipHeaderLength(6);
    const tcpLen = hl - tcpOff + 4;
    expect(buf.readUInt16BE(tcpOff + TCP_CHECKSUM_OFFSET)).toBe(pseudoSumV6(CLIENT6, SERVER6, 6, tcpLen));
    // The kernel (CHECKSUM_PARTIAL): sum from csum_start to the end, complement, store at csum_offset.
    const done = ~onesSum(buf, tcpOff, tcpLen) & 0xffff;
    buf.writeUInt16BE(done, tcpOff + TCP_CHECKSUM_OFFSET);
    expect(run(buf.subarray(0, hl + 4))).toBe('tcp');
    expect(seg.payload.toString()).toBe('abcd');
  });

  it('partial v4 checksum field is the v4 pseudo sum', () => {
    const buf = Buffer.alloc(60);
    writeTcpPacket(buf, 0, 4, CLIENT4, SERVER4, 1, 2, out({ flags: TcpFlag.ACK }), 1000);
    expect(buf.readUInt16BE(20 + TCP_CHECKSUM_OFFSET)).toBe(pseudoSumV4(0xc6120001, 0xc613ff0a, 6, 1020));
    expect(buf.readUInt16BE(2)).toBe(1040);
  });

  it('ip header length is 20 or 40', () => {
    expect(ipHeaderLength(4)).toBe(20);
    expect(ipHeaderLength(6)).toBe(40);
  });
});

describe('writeRst', () => {
  it('rst ack v4 matches golden', () => {
    setNextIpv4Id(0x0100);
    const buf = Buffer.alloc(40);
    expect(writeRst(buf, 0, 4, SERVER4, CLIENT4, 443, 54321, 0, 0xf0e1d2c4, true)).toBe(40);
    expect(buf).toEqual(hex(RST_V4));
  });

  it('bare rst v6 matches golden with zero ack field', () => {
    const buf = Buffer.alloc(60);
    expect(writeRst(buf, 0, 6, SERVER6, CLIENT6, 443, 54321, 0x01020304, 0xdeadbeef, false)).toBe(60);
    expect(buf).toEqual(hex(RST_V6));
  });
});

describe('writeIcmpUnreachable / writeIcmpEchoReply', () => {
  it('v4 port unreachable matches golden', () => {
    setNextIpv4Id(0x0300);
    const orig = hex(SYN_V4);
    const buf = Buffer.alloc(88);
    expect(writeIcmpUnreachable(buf, 0, 4, SERVER4, CLIENT4, Icmpv4UnreachableCode.PORT, orig, 0, 60)).toBe(88);
    expect(buf).toEqual(hex(UNREACH_V4));
  });

  it('v6 port unreachable matches golden', () => {
    const orig = hex(EXT_V6);
    const buf = Buffer.alloc(136);
    expect(writeIcmpUnreachable(buf, 0, 6, SERVER6, CLIENT6, Icmpv6UnreachableCode.PORT, orig, 0, 88)).toBe(136);
    expect(buf).toEqual(hex(UNREACH_V6));
  });

  it('unreachable can be written over the packet it quotes', () => {
    setNextIpv4Id(0x0300);
    const buf = Buffer.alloc(120);
    hex(SYN_V4).copy(buf, 0);
    const n = writeIcmpUnreachable(buf, 0, 4, SERVER4, CLIENT4, Icmpv4UnreachableCode.PORT, buf, 0, 60);
    expect(buf.subarray(0, n)).toEqual(hex(UNREACH_V4));
  });

  it('echo replies match golden', () => {
    setNextIpv4Id(0x0200);
    const req = hex(ECHO_REQ_V4);
    const b4 = Buffer.alloc(36);
    expect(writeIcmpEchoReply(b4, 0, 4, SERVER4, CLIENT4, 0x1234, 1, req, 28, 8)).toBe(36);
    expect(b4).toEqual(hex(ECHO_REP_V4));
    const b6 = Buffer.alloc(56);
    expect(writeIcmpEchoReply(b6, 0, 6, SERVER6, CLIENT6, 0x1234, 1, req, 28, 8)).toBe(56);
    expect(b6).toEqual(hex(ECHO_REP_V6));
  });
});
