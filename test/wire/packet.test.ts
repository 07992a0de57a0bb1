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
  it('parses_golden_v4_syn_into_segment_and_flow', () => {
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

  it('payload_is_a_view_of_the_input_at_any_offset_and_alignment', () => {
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

  it('ignores_link_padding_after_ipv4_total_length', () => {
    const p = placed(hex(DATA_V4), 0, 9, 0x00);
    expect(run(p)).toBe('tcp');
    expect(seg.payload.toString()).toBe('hello');
    expect(parser.ipLength).toBe(57);
  });

  it('parses_golden_v6_synack', () => {
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

  it('finds_tcp_behind_v6_extension_headers', () => {
    expect(run(hex(EXT_V6))).toBe('tcp');
    expect(parser.l4Offset).toBe(64);
    expect(parser.l4Length).toBe(24);
    expect(seg.payload.toString()).toBe('abcd');
    expect(flow.srcPort).toBe(1111);
  });

  it('parses_sack_blocks', () => {
    expect(run(hex(SACK_V4))).toBe('tcp');
    expect(seg.options.sackCount).toBe(2);
    expect(Array.from(seg.options.sackBlocks.subarray(0, 4))).toEqual([0x1000, 0x2000, 0x3000, 0x4000]);
  });

  it('a_pure_ack_gets_the_shared_empty_payload', () => {
    run(hex(SYN_V4));
    const first = seg.payload;
    run(hex(SACK_V4));
    expect(seg.payload).toBe(first);
    expect(first.length).toBe(0);
  });

  it('reports_ecn_codepoint', () => {
    const p = hex(SYN_V4);
    p[1] = 0x03; // CE
    fixChecksums(p, 20);
    run(p);
    expect(parser.ecn).toBe(3);
  });
});

describe('PacketParser: checksums', () => {
  it('rfc9293_bad_tcp_checksum_is_checksum', () => {
    const p = hex(DATA_V4);
    p[56] = p[56]! ^ 0x01;
    expectRejected(p, 'checksum', 'tcp_checksum');
  });

  it('bad_tcp_checksum_passes_when_checksum_known_good', () => {
    const p = hex(DATA_V4);
    p.writeUInt16BE(0x1234, 36); // e.g. CHECKSUM_PARTIAL: only the pseudo-header sum is there
    expect(run(p, true)).toBe('tcp');
  });

  it('bad_v6_tcp_checksum_is_checksum', () => {
    const p = hex(SYNACK_V6);
    p[79] = p[79]! ^ 0x01;
    expectRejected(p, 'checksum', 'tcp_checksum');
  });

  it('rfc1122_bad_ipv4_header_checksum_is_checksum_even_when_known_good', () => {
    const p = hex(SYN_V4);
    p[10] = p[10]! ^ 0x40;
    expectRejected(p, 'checksum', 'ipv4_checksum', true);
  });

  it('checksum_is_checked_before_the_data_offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0x30; // data offset 3, and the checksum no longer matches
    expectRejected(p, 'checksum', 'tcp_checksum');
  });
});

describe('PacketParser: not TCP, fragments, unsupported', () => {
  it('udp_is_not_tcp_with_protocol_and_addresses', () => {
    expectRejected(hex(UDP_V4), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(17);
    expect(flow.family).toBe(4);
    expect(flow.dst[3]).toBe(0xc6120035);
    expect(flow.srcPort).toBe(0);
    expect(flow.dstPort).toBe(0);
  });

  it('v6_udp_and_icmp_are_not_tcp', () => {
    expectRejected(hex(UDP_V6), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(17);
    expectRejected(hex(ECHO_REP_V6), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(58);
    expect(parser.l4Offset).toBe(40);
  });

  it('icmpv4_is_not_tcp', () => {
    expectRejected(hex(ECHO_REQ_V4), 'not_tcp', 'not_tcp');
    expect(parser.protocol).toBe(1);
  });

  it('v4_fragment_is_fragment', () => {
    const p = hex(SYN_V4);
    p.writeUInt16BE(0x2000, 6);
    fixChecksums(p, 20);
    expectRejected(p, 'fragment', 'ipv4_fragment');
    expect(parser.protocol).toBe(6);
    expect(flow.src[3]).toBe(0xc6120001);
  });

  it('v6_fragment_is_fragment', () => {
    const base = hex(SYNACK_V6);
    const frag = hex('06 00 00 08 00 00 00 01'); // offset 1 unit
    const p = Buffer.concat([base.subarray(0, 40), frag, base.subarray(40)]);
    p[6] = 44;
    p.writeUInt16BE(48, 4);
    expectRejected(p, 'fragment', 'ipv6_fragment');
    expect(parser.protocol).toBe(6);
  });

  it('v6_routing_in_transit_is_unsupported', () => {
    const base = hex(SYNACK_V6);
    const rh = hex('06 00 04 01 00 00 00 00');
    const p = Buffer.concat([base.subarray(0, 40), rh, base.subarray(40)]);
    p[6] = 43;
    p.writeUInt16BE(48, 4);
    expectRejected(p, 'unsupported', 'ipv6_routing');
  });

  it('v6_jumbogram_is_unsupported', () => {
    const p = hex(EXT_V6);
    p.writeUInt16BE(0, 4);
    expectRejected(p, 'unsupported', 'ipv6_jumbogram');
  });
});

describe('PacketParser: malformed packets', () => {
  it('empty_input_is_ip_truncated', () => {
    expectRejected(Buffer.alloc(0), 'malformed', 'ip_truncated');
  });

  it('version_not_4_or_6_is_ip_version', () => {
    const p = hex(SYN_V4);
    p[0] = 0x55;
    expectRejected(p, 'malformed', 'ip_version');
  });

  it('short_v4_header_is_ipv4_truncated', () => {
    expectRejected(hex(SYN_V4).subarray(0, 19), 'malformed', 'ipv4_truncated');
  });

  it('ihl_below_5_is_ipv4_ihl', () => {
    const p = hex(SYN_V4);
    p[0] = 0x44;
    expectRejected(p, 'malformed', 'ipv4_ihl');
  });

  it('total_length_beyond_buffer_is_ipv4_total_length', () => {
    expectRejected(hex(SYN_V4).subarray(0, 59), 'malformed', 'ipv4_total_length');
  });

  it('short_v6_header_is_ipv6_truncated', () => {
    expectRejected(hex(SYNACK_V6).subarray(0, 39), 'malformed', 'ipv6_truncated');
  });

  it('v6_payload_length_beyond_buffer_is_ipv6_payload_length', () => {
    expectRejected(hex(SYNACK_V6).subarray(0, 79), 'malformed', 'ipv6_payload_length');
  });

  it('v6_extension_chain_overrun_is_ipv6_ext_overrun', () => {
    const p = hex(EXT_V6);
    p[49] = 8; // Destination Options claims 72 octets
    expectRejected(p, 'malformed', 'ipv6_ext_overrun');
  });

  it('v6_endless_destination_options_is_ipv6_ext_limit', () => {
    const base = hex(SYNACK_V6);
    const chain = Buffer.alloc(8 * 20);
    for (let i = 0; i < 20; i++) chain[8 * i] = i === 19 ? 6 : 60;
    const p = Buffer.concat([base.subarray(0, 40), chain, base.subarray(40)]);
    p[6] = 60;
    p.writeUInt16BE(p.length - 40, 4);
    expectRejected(p, 'malformed', 'ipv6_ext_limit');
  });

  it('v6_hop_by_hop_not_first_is_ipv6_ext_order', () => {
    const p = hex(EXT_V6);
    p[6] = 60;
    p[40] = 0; // DestOpts(8) → HBH(16) → TCP
    expectRejected(p, 'malformed', 'ipv6_ext_order');
  });

  it('segment_shorter_than_tcp_header_is_tcp_truncated', () => {
    const p = hex(SYN_V4).subarray(0, 39);
    p.writeUInt16BE(39, 2);
    fixChecksums(p, 20);
    expectRejected(p, 'malformed', 'tcp_truncated');
  });

  it('data_offset_below_5_is_tcp_data_offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0x40;
    fixChecksums(p, 20);
    expectRejected(p, 'malformed', 'tcp_data_offset');
  });

  it('data_offset_beyond_the_packet_is_tcp_data_offset', () => {
    const p = hex(SYN_V4);
    p[32] = 0xf0;
    fixChecksums(p, 20);
    expectRejected(p, 'malformed', 'tcp_data_offset');
  });

  it('option_length_0_is_tcp_option_length', () => {
    expectRejected(synWithOptions('02 04 05 b4 08 00 00 00'), 'malformed', 'tcp_option_length');
  });

  it('option_length_1_is_tcp_option_length', () => {
    expectRejected(synWithOptions('01 01 03 01'), 'malformed', 'tcp_option_length');
  });

  it('option_overrun_is_tcp_option_overrun', () => {
    expectRejected(synWithOptions('01 01 08 0a 00 00 00 00'), 'malformed', 'tcp_option_overrun');
  });

  it('every_reason_maps_to_one_verdict_and_ok_alone_to_tcp', () => {
    for (const r of PARSE_REASONS) {
      const v = REASON_VERDICT[r];
      expect(['tcp', 'not_tcp', 'checksum', 'malformed', 'fragment', 'unsupported']).toContain(v);
      expect(v === 'tcp').toBe(r === 'ok');
    }
    expect(Object.keys(REASON_VERDICT).sort()).toEqual([...PARSE_REASONS].sort());
  });
});

describe('FlowKey', () => {
  it('is_a_FlowKeyLike_for_the_flow_table', () => {
    const k: FlowKeyLike = new FlowKey();
    expect(k.src.length).toBe(4);
  });

  it('hash_is_a_31_bit_function_of_the_tuple', () => {
    const a = new FlowKey();
    const b = new FlowKey();
    a.setV4(0xc6120001, 54321, 0xc613ff0a, 443);
    b.setV4(0xc6120001, 54321, 0xc613ff0a, 443);
    expect(a.hash()).toBe(b.hash());
    expect(a.hash()).toBeGreaterThanOrEqual(0);
    expect(a.hash()).toBeLessThan(2 ** 31);
    expect(a.equals(b)).toBe(true);
  });

  it('hash_differs_for_the_reverse_direction_and_another_port', () => {
    const a = new FlowKey();
    const b = new FlowKey();
    a.setV4(1, 2, 3, 4);
    b.setV4(3, 4, 1, 2);
    expect(a.hash()).not.toBe(b.hash());
    expect(a.equals(b)).toBe(false);
    b.setV4(1, 2, 3, 5);
    expect(a.hash()).not.toBe(b.hash());
  });

  it('copyFrom_and_clear', () => {
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

  it('writes_the_golden_v4_syn', () => {
    const buf = Buffer.alloc(80, 0xee);
    const o = out(
      { seq: 0xf0e1d2c3, flags: TcpFlag.SYN, window: 64240 },
      { mss: 1460, sackPermitted: true, tsPresent: true, tsVal: 0x0012d687, tsEcr: 0, wscale: 7 },
    );
    expect(writeTcpPacket(buf, 0, 4, CLIENT4, SERVER4, 54321, 443, o, 0)).toBe(60);
    finishTcpChecksum(buf, 0, 'full');
    expect(buf.subarray(0, 60)).toEqual(hex(SYN_V4));
  });

  it('writes_the_golden_data_segment_with_payload_copied_after_the_header', () => {
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

  it('writes_the_golden_v6_synack', () => {
    const buf = Buffer.alloc(80);
    const o = out(
      { seq: 0x11223344, ack: 0xf0e1d2c4, flags: TcpFlag.SYN | TcpFlag.ACK, window: 65160 },
      { mss: 1440, sackPermitted: true, tsPresent: true, tsVal: 0x7f000001, tsEcr: 0x0012d687, wscale: 7 },
    );
    expect(writeTcpPacket(buf, 0, 6, SERVER6, CLIENT6, 443, 54321, o, 0)).toBe(80);
    finishTcpChecksum(buf, 0, 'full');
    expect(buf).toEqual(hex(SYNACK_V6));
  });

  it('writes_the_golden_sack_ack', () => {
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

  it('ipv4_identification_increments_per_packet_and_wraps', () => {
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

  it('partial_leaves_the_pseudo_header_sum_for_the_kernel_to_complete', () => {
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

  it('partial_v4_checksum_field_is_the_v4_pseudo_sum', () => {
    const buf = Buffer.alloc(60);
    writeTcpPacket(buf, 0, 4, CLIENT4, SERVER4, 1, 2, out({ flags: TcpFlag.ACK }), 1000);
    expect(buf.readUInt16BE(20 + TCP_CHECKSUM_OFFSET)).toBe(pseudoSumV4(0xc6120001, 0xc613ff0a, 6, 1020));
    expect(buf.readUInt16BE(2)).toBe(1040);
  });

  it('ip_header_length_is_20_or_40', () => {
    expect(ipHeaderLength(4)).toBe(20);
    expect(ipHeaderLength(6)).toBe(40);
  });
});

describe('writeRst', () => {
  it('rst_ack_v4_matches_golden', () => {
    setNextIpv4Id(0x0100);
    const buf = Buffer.alloc(40);
    expect(writeRst(buf, 0, 4, SERVER4, CLIENT4, 443, 54321, 0, 0xf0e1d2c4, true)).toBe(40);
    expect(buf).toEqual(hex(RST_V4));
  });

  it('bare_rst_v6_matches_golden_with_zero_ack_field', () => {
    const buf = Buffer.alloc(60);
    expect(writeRst(buf, 0, 6, SERVER6, CLIENT6, 443, 54321, 0x01020304, 0xdeadbeef, false)).toBe(60);
    expect(buf).toEqual(hex(RST_V6));
  });
});

describe('writeIcmpUnreachable / writeIcmpEchoReply', () => {
  it('v4_port_unreachable_matches_golden', () => {
    setNextIpv4Id(0x0300);
    const orig = hex(SYN_V4);
    const buf = Buffer.alloc(88);
    expect(writeIcmpUnreachable(buf, 0, 4, SERVER4, CLIENT4, Icmpv4UnreachableCode.PORT, orig, 0, 60)).toBe(88);
    expect(buf).toEqual(hex(UNREACH_V4));
  });

  it('v6_port_unreachable_matches_golden', () => {
    const orig = hex(EXT_V6);
    const buf = Buffer.alloc(136);
    expect(writeIcmpUnreachable(buf, 0, 6, SERVER6, CLIENT6, Icmpv6UnreachableCode.PORT, orig, 0, 88)).toBe(136);
    expect(buf).toEqual(hex(UNREACH_V6));
  });

  it('unreachable_can_be_written_over_the_packet_it_quotes', () => {
    setNextIpv4Id(0x0300);
    const buf = Buffer.alloc(120);
    hex(SYN_V4).copy(buf, 0);
    const n = writeIcmpUnreachable(buf, 0, 4, SERVER4, CLIENT4, Icmpv4UnreachableCode.PORT, buf, 0, 60);
    expect(buf.subarray(0, n)).toEqual(hex(UNREACH_V4));
  });

  it('echo_replies_match_golden', () => {
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
