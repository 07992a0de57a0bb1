/**
 * The stack's entry point to the codecs: one reusable `PacketParser` turns a raw IP packet from
 * the TUN device into the reused `Segment` and `FlowKey`, and the write functions serialize
 * outgoing TCP (and ICMP) packets straight into the caller's transmit buffer.
 *
 * Nothing here allocates per packet except `seg.payload` for segments that carry data (a
 * `subarray` view, see `PacketParser.parse`). Malformed input is a returned verdict, never an
 * exception.
 */

import { randomInt } from 'node:crypto';
import { EMPTY_BUFFER, put16 } from './bytes.js';
import { onesSum, pseudoSumV4, pseudoSumV6 } from './checksum.js';
import { DEFAULT_TTL, ICMP_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, IpProto, TCP_HEADER_LEN } from './field.js';
import { emitIcmpEcho, emitIcmpUnreachable, icmpErrorQuoteLength, Icmpv4Type, Icmpv6Type } from './icmp.js';
import { Ipv4View, emitIpv4, type Ipv4Verdict } from './ipv4.js';
import { Ipv6View, emitIpv6, type Ipv6Verdict } from './ipv6.js';
import { TcpView, emitTcpHeader, parseTcpOptions, TCP_CHECKSUM_OFFSET, type TcpOptionsVerdict } from './tcp.js';
import { TcpFlag, type OutSegment, type Segment, type TcpOptions } from './segment.js';

export { formatAddress, formatEndpoint, parseAddress, type ParsedAddress } from './address.js';
export { TCP_CHECKSUM_OFFSET } from './tcp.js';

/** What the stack does with a packet: only 'tcp' goes on to the connections. */
export type ParseVerdict = 'tcp' | 'not_tcp' | 'checksum' | 'malformed' | 'fragment' | 'unsupported';

/**
 * Why, as a bounded set suitable for a metric label. 'ok' goes with 'tcp', 'not_tcp' with
 * 'not_tcp' (the protocol number is in `PacketParser.protocol`); every other reason belongs to
 * exactly one verdict, listed in REASON_VERDICT.
 */
export const PARSE_REASONS = [
  'ok',
  'not_tcp',
  'ip_truncated',
  'ip_version',
  'ipv4_truncated',
  'ipv4_ihl',
  'ipv4_total_length',
  'ipv4_checksum',
  'ipv4_fragment',
  'ipv6_truncated',
  'ipv6_payload_length',
  'ipv6_ext_overrun',
  'ipv6_ext_limit',
  'ipv6_ext_order',
  'ipv6_fragment',
  'ipv6_routing',
  'ipv6_jumbogram',
  'tcp_truncated',
  'tcp_data_offset',
  'tcp_option_length',
  'tcp_option_overrun',
  'tcp_checksum',
] as const;

export type ParseReason = (typeof PARSE_REASONS)[number];

/** The verdict each reason is reported with. */
export const REASON_VERDICT: { readonly [R in ParseReason]: ParseVerdict } = {
  ok: 'tcp',
  not_tcp: 'not_tcp',
  ip_truncated: 'malformed',
  ip_version: 'malformed',
  ipv4_truncated: 'malformed',
  ipv4_ihl: 'malformed',
  ipv4_total_length: 'malformed',
  ipv4_checksum: 'checksum',
  ipv4_fragment: 'fragment',
  ipv6_truncated: 'malformed',
  ipv6_payload_length: 'malformed',
  ipv6_ext_overrun: 'malformed',
  ipv6_ext_limit: 'malformed',
  ipv6_ext_order: 'malformed',
  ipv6_fragment: 'fragment',
  ipv6_routing: 'unsupported',
  ipv6_jumbogram: 'unsupported',
  tcp_truncated: 'malformed',
  tcp_data_offset: 'malformed',
  tcp_option_length: 'malformed',
  tcp_option_overrun: 'malformed',
  tcp_checksum: 'checksum',
};

/**
 * A packet's addresses and ports, reused for every packet: four big-endian words per address,
 * IPv4 in word 3 with words 0-2 zero. Structurally a `FlowKeyLike` (src/stack/flow-table.ts).
 */
export class FlowKey {
  family: 4 | 6 = 4;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  srcPort = 0;
  dstPort = 0;

  /** A 31-bit mix of the tuple; cheap, not keyed (use it for tables, not for anything secret). */
  hash(): number {
    const s = this.src;
    const d = this.dst;
    let h = Math.imul(this.family, 0x9e3779b1);
    h = mix(h ^ (s[0] as number));
    h = mix(h ^ (s[1] as number));
    h = mix(h ^ (s[2] as number));
    h = mix(h ^ (s[3] as number));
    h = mix(h ^ (d[0] as number));
    h = mix(h ^ (d[1] as number));
    h = mix(h ^ (d[2] as number));
    h = mix(h ^ (d[3] as number));
    h = mix(h ^ ((this.srcPort << 16) | this.dstPort));
    return h & 0x7fffffff;
  }

  /** Set an IPv4 tuple (addresses as uint32 numbers). */
  setV4(src: number, srcPort: number, dst: number, dstPort: number): void {
    this.family = 4;
    this.src.fill(0);
    this.dst.fill(0);
    this.src[3] = src;
    this.dst[3] = dst;
    this.srcPort = srcPort;
    this.dstPort = dstPort;
  }

  copyFrom(other: FlowKey): void {
    this.family = other.family;
    this.src.set(other.src);
    this.dst.set(other.dst);
    this.srcPort = other.srcPort;
    this.dstPort = other.dstPort;
  }

  equals(other: FlowKey): boolean {
    const a = this.src;
    const b = other.src;
    const c = this.dst;
    const d = other.dst;
    return (
      this.srcPort === other.srcPort &&
      this.dstPort === other.dstPort &&
      this.family === other.family &&
      a[3] === b[3] && c[3] === d[3] &&
      a[0] === b[0] && a[1] === b[1] && a[2] === b[2] &&
      c[0] === d[0] && c[1] === d[1] && c[2] === d[2]
    );
  }

  clear(): void {
    this.family = 4;
    this.src.fill(0);
    this.dst.fill(0);
    this.srcPort = 0;
    this.dstPort = 0;
  }
}

/** murmur3's 32-bit finalizer. */
function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function ipv4Reason(v: Ipv4Verdict): ParseReason {
  switch (v) {
    case 'truncated':
      return 'ipv4_truncated';
    case 'bad_ihl':
      return 'ipv4_ihl';
    case 'bad_total_length':
      return 'ipv4_total_length';
    case 'fragment':
      return 'ipv4_fragment';
    default:
      return 'ip_version';
  }
}

function ipv6Reason(v: Ipv6Verdict): ParseReason {
  switch (v) {
    case 'truncated':
      return 'ipv6_truncated';
    case 'bad_payload_length':
      return 'ipv6_payload_length';
    case 'ext_overrun':
      return 'ipv6_ext_overrun';
    case 'ext_limit':
      return 'ipv6_ext_limit';
    case 'ext_order':
      return 'ipv6_ext_order';
    case 'fragment':
      return 'ipv6_fragment';
    case 'routing':
      return 'ipv6_routing';
    case 'jumbogram':
      return 'ipv6_jumbogram';
    default:
      return 'ip_version';
  }
}

function optionsReason(v: TcpOptionsVerdict): ParseReason {
  return v === 'bad_option_length' ? 'tcp_option_length' : 'tcp_option_overrun';
}

/**
 * Parses raw IP packets. Create one and reuse it for every packet; after `parse` its fields
 * describe the last packet until the next call.
 */
export class PacketParser {
  /** Why the last packet got its verdict. */
  reason: ParseReason = 'ok';
  /** IP version of the last packet once its version nibble was read (4 or 6), else 0. */
  family: 0 | 4 | 6 = 0;
  /** Upper-layer protocol (IPv4 Protocol, or the IPv6 Next Header ending the chain); -1 before the IP header validates. */
  protocol = -1;
  /** Offset and length of the IP datagram (Total Length; trailing padding excluded). */
  ipOffset = 0;
  ipLength = 0;
  /** Offset and length of the upper-layer header plus data. */
  l4Offset = 0;
  l4Length = 0;
  /** TCP payload in the input buffer ('tcp' only). */
  payloadOffset = 0;
  payloadLength = 0;
  /** TTL / Hop Limit and ECN codepoint (RFC 3168) of the last valid IP header. */
  ttl = 0;
  ecn = 0;
  /** The views over the last packet, for callers that need more than the fields above. */
  readonly ipv4 = new Ipv4View();
  readonly ipv6 = new Ipv6View();
  readonly tcp = new TcpView();

  private fail(reason: ParseReason): ParseVerdict {
    this.reason = reason;
    return REASON_VERDICT[reason];
  }

  /**
   * Parse the IP packet at `buf[off, off+len)`.
   *
   * Validates the IP header (the IPv4 header checksum always: it is 20 bytes and the kernel
   * always fills it) and, for TCP, the TCP header and options, and the TCP checksum unless
   * `checksumKnownGood` (the vnet header says the kernel produced a partial checksum, or
   * verified it). On 'tcp' it fills `seg` (options parsed in place, `payload` a view into `buf`
   * valid until `buf` is reused) and `flow` (src = the packet's source). Once the IP header is
   * valid `flow`'s family and addresses are set, its ports only on 'tcp' (else 0). After any
   * other verdict `seg` holds no meaningful values.
   *
   * Payload: an empty payload is a shared zero-length Buffer (no allocation, so pure ACKs cost
   * nothing); a non-empty one is `buf.subarray(...)`, one small object per data segment. The
   * offset and length are also in `payloadOffset`/`payloadLength`.
   */
  parse(buf: Buffer, off: number, len: number, checksumKnownGood: boolean, seg: Segment, flow: FlowKey): ParseVerdict {
    this.family = 0;
    this.protocol = -1;
    this.ipOffset = off;
    this.ipLength = 0;
    this.l4Offset = 0;
    this.l4Length = 0;
    this.payloadOffset = 0;
    this.payloadLength = 0;
    flow.srcPort = 0;
    flow.dstPort = 0;
    if (len < 1) return this.fail('ip_truncated');
    const version = (buf[off] as number) >>> 4;
    let pseudo: number;
    if (version === 4) {
      this.family = 4;
      const ip = this.ipv4;
      const v = ip.reset(buf, off, len);
      if (v !== 'ok' && v !== 'fragment') return this.fail(ipv4Reason(v));
      // RFC 791 §3.1 / RFC 1122 §3.2.1.2: a datagram with a bad header checksum is discarded.
      if (!ip.verifyChecksum()) return this.fail('ipv4_checksum');
      const src = ip.src;
      const dst = ip.dst;
      const s = flow.src;
      const d = flow.dst;
      flow.family = 4;
      s[0] = 0; s[1] = 0; s[2] = 0; s[3] = src;
      d[0] = 0; d[1] = 0; d[2] = 0; d[3] = dst;
      this.protocol = ip.protocol;
      this.ipLength = ip.totalLength;
      this.l4Offset = ip.payloadOffset;
      this.l4Length = ip.payloadLength;
      this.ttl = ip.ttl;
      this.ecn = ip.ecn;
      if (v === 'fragment') return this.fail('ipv4_fragment');
      if (this.protocol !== IpProto.TCP) return this.fail('not_tcp');
      pseudo = pseudoSumV4(src, dst, IpProto.TCP, this.l4Length);
    } else if (version === 6) {
      this.family = 6;
      const ip = this.ipv6;
      const v = ip.reset(buf, off, len);
      // The fixed header is valid for every verdict but these three.
      if (v !== 'truncated' && v !== 'bad_version' && v !== 'bad_payload_length') {
        flow.family = 6;
        ip.readSrc(flow.src);
        ip.readDst(flow.dst);
        this.ipLength = ip.totalLength;
        this.ttl = ip.hopLimit;
        this.ecn = ip.ecn;
      }
      if (v !== 'ok') {
        if (v === 'fragment') this.protocol = ip.upperProtocol;
        return this.fail(ipv6Reason(v));
      }
      this.protocol = ip.upperProtocol;
      this.l4Offset = ip.upperOffset;
      this.l4Length = ip.upperLength;
      if (this.protocol !== IpProto.TCP) return this.fail('not_tcp');
      pseudo = pseudoSumV6(flow.src, flow.dst, IpProto.TCP, this.l4Length);
    } else {
      return this.fail('ip_version');
    }

    const l4Off = this.l4Offset;
    const l4Len = this.l4Length;
    if (l4Len < TCP_HEADER_LEN) return this.fail('tcp_truncated');
    // RFC 9293 §3.1 (MUST-2/MUST-3): verify the checksum over pseudo-header, header and data.
    // Checked before the header's own fields, so corruption is reported as corruption.
    if (!checksumKnownGood && onesSum(buf, l4Off, l4Len, pseudo) !== 0xffff) return this.fail('tcp_checksum');
    const tcp = this.tcp;
    if (tcp.reset(buf, l4Off, l4Len) !== 'ok') return this.fail('tcp_data_offset');
    const hl = tcp.headerLength;
    const ov = parseTcpOptions(buf, l4Off + TCP_HEADER_LEN, hl - TCP_HEADER_LEN, seg.options);
    if (ov !== 'ok') return this.fail(optionsReason(ov));

    flow.srcPort = tcp.srcPort;
    flow.dstPort = tcp.dstPort;
    seg.seq = tcp.seq;
    seg.ack = tcp.ack;
    seg.flags = tcp.flags;
    seg.window = tcp.window;
    seg.urgent = tcp.urgent;
    const pOff = l4Off + hl;
    const pLen = l4Len - hl;
    this.payloadOffset = pOff;
    this.payloadLength = pLen;
    seg.payload = pLen === 0 ? EMPTY_BUFFER : buf.subarray(pOff, pOff + pLen);
    this.reason = 'ok';
    return 'tcp';
  }
}

// ---------------------------------------------------------------------------------- emit

/**
 * How the TCP checksum of a packet from `writeTcpPacket` is completed. 'full':
 * `finishTcpChecksum` computes it once the payload is in place. 'partial': the field keeps the
 * pseudo-header sum and the kernel finishes it (virtio CHECKSUM_PARTIAL: VIRTIO_NET_HDR_F_NEEDS_CSUM with csum_start = the TCP
 * header's offset in the packet, `ipHeaderLength(family)`, and csum_offset = TCP_CHECKSUM_OFFSET).
 */
export type ChecksumMode = 'full' | 'partial';

/** IPv4 Identification of the next packet we originate (RFC 6864: unique enough for atomic datagrams). */
let nextIpv4Id = randomInt(0x10000);

/** Set the next IPv4 Identification (tests use it for deterministic output). */
export function setNextIpv4Id(id: number): void {
  nextIpv4Id = id & 0xffff;
}

function takeIpv4Id(): number {
  const id = nextIpv4Id;
  nextIpv4Id = (id + 1) & 0xffff;
  return id;
}

/** Length of the IP header the write functions emit: 20 (IPv4, no options) or 40 (IPv6, no extensions). */
export function ipHeaderLength(family: 4 | 6): number {
  return family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
}

/**
 * Write the IP header, TCP header and options of `out` at `buf[off]` for a segment carrying
 * `payloadLength` octets, and return the header length: the payload goes at `off + return`.
 * Addresses are word arrays like FlowKey's (IPv4 in word 3); src is our side. IPv4: an
 * incrementing Identification, DF set, TTL 64; IPv6: hop limit 64, traffic class and flow
 * label 0. Ports, seq, ack, flags, window and options come from `out` (window already scaled).
 *
 * The checksum field gets the pseudo-header sum over the whole TCP length (RFC 9293 §3.1). That
 * is the final value for 'partial' (the kernel adds the segment's sum, and for a GSO packet
 * corrects the length per segment); for 'full', copy the payload in and call
 * `finishTcpChecksum`. The caller keeps the datagram within 65535 octets (IPv4 Total Length,
 * IPv6 Payload Length).
 */
export function writeTcpPacket(
  buf: Buffer,
  off: number,
  family: 4 | 6,
  src: Uint32Array,
  dst: Uint32Array,
  srcPort: number,
  dstPort: number,
  out: OutSegment,
  payloadLength: number,
): number {
  return writeTcpHeaders(buf, off, family, src, dst, srcPort, dstPort, out.seq, out.ack, out.flags, out.window, out.options, payloadLength);
}

/** `writeTcpPacket` over plain fields: the one writer of IP + TCP headers (checksum field = pseudo-header sum). */
function writeTcpHeaders(
  buf: Buffer,
  off: number,
  family: 4 | 6,
  src: Uint32Array,
  dst: Uint32Array,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  options: TcpOptions | null,
  payloadLength: number,
): number {
  const ipHl = family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
  const tcpOff = off + ipHl;
  const tcpHl = emitTcpHeader(buf, tcpOff, srcPort, dstPort, seq, ack, flags, window, 0, options);
  const tcpLen = tcpHl + payloadLength;
  let pseudo: number;
  if (family === 4) {
    const s = src[3] as number;
    const d = dst[3] as number;
    emitIpv4(buf, off, s, d, IpProto.TCP, tcpLen, takeIpv4Id(), true, DEFAULT_TTL, 0);
    pseudo = pseudoSumV4(s, d, IpProto.TCP, tcpLen);
  } else {
    emitIpv6(buf, off, src, dst, IpProto.TCP, tcpLen, DEFAULT_TTL, 0, 0);
    pseudo = pseudoSumV6(src, dst, IpProto.TCP, tcpLen);
  }
  put16(buf, tcpOff + TCP_CHECKSUM_OFFSET, pseudo);
  return ipHl + tcpHl;
}

/**
 * Complete the TCP checksum of a packet written by `writeTcpPacket` at `buf[off]` whose payload
 * is now in place. The field holds the pseudo-header sum, so the sum over the TCP segment as it
 * stands is exactly pseudo-header + segment. No-op for 'partial' (the kernel completes it).
 */
export function finishTcpChecksum(buf: Buffer, off: number, checksum: ChecksumMode): void {
  if (checksum === 'partial') return;
  let ipHl: number;
  let total: number;
  if ((buf[off] as number) >>> 4 === 4) {
    ipHl = ((buf[off] as number) & 0x0f) << 2;
    total = ((buf[off + 2] as number) << 8) | (buf[off + 3] as number);
  } else {
    ipHl = IPV6_HEADER_LEN;
    total = IPV6_HEADER_LEN + (((buf[off + 4] as number) << 8) | (buf[off + 5] as number));
  }
  const tcpOff = off + ipHl;
  put16(buf, tcpOff + TCP_CHECKSUM_OFFSET, ~onesSum(buf, tcpOff, total - ipHl) & 0xffff);
}

/**
 * Write a complete RST packet (no options, no payload, checksum computed) and return its length.
 * The sequence numbers are the caller's (RFC 9293 §3.10.7.1): with `withAck`, RST|ACK carrying
 * `ack`; without, a bare RST whose acknowledgment field is zero.
 */
export function writeRst(
  buf: Buffer,
  off: number,
  family: 4 | 6,
  src: Uint32Array,
  dst: Uint32Array,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  withAck: boolean,
): number {
  const flags = withAck ? TcpFlag.RST | TcpFlag.ACK : TcpFlag.RST;
  const len = writeTcpHeaders(buf, off, family, src, dst, srcPort, dstPort, seq, withAck ? ack : 0, flags, 0, null, 0);
  finishTcpChecksum(buf, off, 'full');
  return len;
}

/**
 * Write a complete ICMP Destination Unreachable packet (ICMPv4 type 3 / ICMPv6 type 1) from
 * `src` (our side: the address the client tried to reach) to `dst` (the client), quoting the
 * client's packet `orig[origOff, origOff+origLen)` as far as RFC 1812 §4.3.2.3 / RFC 4443
 * §2.4(c) allow; returns the packet length. `code`: Icmpv4UnreachableCode or
 * Icmpv6UnreachableCode. Whether an error may be sent at all (never about an ICMP error, a
 * non-first fragment, or a multicast/broadcast packet: RFC 1122 §3.2.2, RFC 4443 §2.4(e)) is
 * the caller's decision. `orig` may overlap the output.
 */
export function writeIcmpUnreachable(
  buf: Buffer,
  off: number,
  family: 4 | 6,
  src: Uint32Array,
  dst: Uint32Array,
  code: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  mtu = 0,
): number {
  const ipHl = family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
  const icmpLen = ICMP_HEADER_LEN + icmpErrorQuoteLength(family, origLen);
  const pseudo = family === 4 ? 0 : pseudoSumV6(src, dst, IpProto.ICMPV6, icmpLen);
  emitIcmpUnreachable(buf, off + ipHl, family, code, orig, origOff, origLen, pseudo, mtu);
  writeIcmpIpHeader(buf, off, family, src, dst, icmpLen);
  return ipHl + icmpLen;
}

/**
 * Write a complete echo reply (ICMPv4 type 0 / ICMPv6 type 129, RFC 792 / RFC 4443 §4.2) from
 * `src` to `dst` echoing `id`, `seq` and the request's data; returns the packet length.
 */
export function writeIcmpEchoReply(
  buf: Buffer,
  off: number,
  family: 4 | 6,
  src: Uint32Array,
  dst: Uint32Array,
  id: number,
  seq: number,
  data: Buffer,
  dataOff: number,
  dataLen: number,
): number {
  const ipHl = family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
  const icmpLen = ICMP_HEADER_LEN + dataLen;
  const type = family === 4 ? Icmpv4Type.ECHO_REPLY : Icmpv6Type.ECHO_REPLY;
  const pseudo = family === 4 ? 0 : pseudoSumV6(src, dst, IpProto.ICMPV6, icmpLen);
  emitIcmpEcho(buf, off + ipHl, type, id, seq, data, dataOff, dataLen, pseudo);
  writeIcmpIpHeader(buf, off, family, src, dst, icmpLen);
  return ipHl + icmpLen;
}

function writeIcmpIpHeader(buf: Buffer, off: number, family: 4 | 6, src: Uint32Array, dst: Uint32Array, len: number): void {
  if (family === 4) {
    emitIpv4(buf, off, src[3] as number, dst[3] as number, IpProto.ICMP, len, takeIpv4Id(), false, DEFAULT_TTL, 0);
  } else {
    emitIpv6(buf, off, src, dst, IpProto.ICMPV6, len, DEFAULT_TTL, 0, 0);
  }
}
