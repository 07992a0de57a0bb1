/**
 * ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages: one view for both, since the common part
 * has the same layout.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |     Type      |     Code      |          Checksum             |
 *    |   Identifier (echo) / unused / MTU   |  Sequence (echo) / MTU |
 *    |   Data (echo) / as much of the invoking packet as fits (error) |
 *
 * The ICMPv4 checksum covers the message only; the ICMPv6 checksum also covers the IPv6
 * pseudo-header (RFC 4443 §2.3), which the caller passes as a sum (0 for ICMPv4).
 */

import { get16, get32, put16, put32, EMPTY_BUFFER } from './bytes.js';
import { checksum, onesSum } from './checksum.js';
import { ICMP_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN } from './field.js';

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const ID = 4;
const SEQ = 6;

export const Icmpv4Type = {
  ECHO_REPLY: 0,
  DEST_UNREACHABLE: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
  PARAMETER_PROBLEM: 12,
} as const;

/** ICMPv4 Destination Unreachable codes (RFC 792, RFC 1812 §5.2.7.1). */
export const Icmpv4UnreachableCode = {
  NET: 0,
  HOST: 1,
  PROTOCOL: 2,
  PORT: 3,
  /** Fragmentation needed and DF set; carries the next-hop MTU (RFC 1191 §4). */
  FRAGMENTATION_NEEDED: 4,
  NET_PROHIBITED: 9,
  HOST_PROHIBITED: 10,
  /** Communication administratively prohibited (RFC 1812 §5.2.7.1). */
  ADMIN_PROHIBITED: 13,
} as const;

export const Icmpv6Type = {
  DEST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
} as const;

/** ICMPv6 Destination Unreachable codes (RFC 4443 §3.1). */
export const Icmpv6UnreachableCode = {
  NO_ROUTE: 0,
  ADMIN_PROHIBITED: 1,
  BEYOND_SCOPE: 2,
  ADDRESS: 3,
  PORT: 4,
  SOURCE_POLICY: 5,
  REJECT_ROUTE: 6,
} as const;

/**
 * Most octets of the invoking packet an error message quotes. ICMPv4: RFC 1812 §4.3.2.3, the
 * whole error datagram within 576 octets. ICMPv6: RFC 4443 §2.4(c), within the minimum MTU 1280.
 */
export const ICMPV4_MAX_QUOTE = 576 - IPV4_HEADER_LEN - ICMP_HEADER_LEN;
export const ICMPV6_MAX_QUOTE = 1280 - IPV6_HEADER_LEN - ICMP_HEADER_LEN;

export type IcmpVerdict = 'ok' | 'truncated';

export class IcmpView {
  buf: Buffer = EMPTY_BUFFER;
  off = 0;
  length = 0;
  family: 4 | 6 = 4;

  /** Point at the ICMP message `buf[off, off+len)` carried over IPv`family`. */
  reset(buf: Buffer, off: number, len: number, family: 4 | 6): IcmpVerdict {
    this.buf = buf;
    this.off = off;
    this.family = family;
    this.length = 0;
    if (len < ICMP_HEADER_LEN) return 'truncated';
    this.length = len;
    return 'ok';
  }

  get type(): number {
    return this.buf[this.off + TYPE] as number;
  }

  get code(): number {
    return this.buf[this.off + CODE] as number;
  }

  get checksum(): number {
    return get16(this.buf, this.off + CHECKSUM);
  }

  /** Echo request/reply identifier. */
  get echoId(): number {
    return get16(this.buf, this.off + ID);
  }

  /** Echo request/reply sequence number. */
  get echoSeq(): number {
    return get16(this.buf, this.off + SEQ);
  }

  /**
   * The MTU of ICMPv4 "fragmentation needed" (16 bits at offset 6, RFC 1191 §4) or ICMPv6
   * Packet Too Big (32 bits at offset 4, RFC 4443 §3.2).
   */
  get mtu(): number {
    return this.family === 4 ? get16(this.buf, this.off + SEQ) : get32(this.buf, this.off + ID);
  }

  /** An error message (as opposed to informational): RFC 792 types 3/4/5/11/12, RFC 4443 §2.1 types < 128. */
  get isError(): boolean {
    const t = this.type;
    return this.family === 6 ? t < 128 : t === 3 || t === 4 || t === 5 || t === 11 || t === 12;
  }

  /** Offset of the message body: echo data, or the invoking packet of an error message. */
  get bodyOffset(): number {
    return this.off + ICMP_HEADER_LEN;
  }

  get bodyLength(): number {
    return this.length - ICMP_HEADER_LEN;
  }

  /** Pass 0 for ICMPv4, the IPv6 pseudo-header sum (next header 58) for ICMPv6. */
  verifyChecksum(pseudoHeaderSum: number): boolean {
    return onesSum(this.buf, this.off, this.length, pseudoHeaderSum) === 0xffff;
  }
}

/** Octets of an invoking packet of `origLen` octets an error message over IPv`family` quotes. */
export function icmpErrorQuoteLength(family: 4 | 6, origLen: number): number {
  const max = family === 4 ? ICMPV4_MAX_QUOTE : ICMPV6_MAX_QUOTE;
  return origLen < max ? origLen : max;
}

/**
 * Write an echo message (`type` = Icmpv4Type.ECHO_REPLY or Icmpv6Type.ECHO_REPLY for a reply)
 * carrying `data[dataOff, dataOff+dataLen)` at `buf[off]`, checksum included; returns its
 * length. RFC 792 / RFC 4443 §4.2: a reply echoes the request's identifier, sequence and data.
 * `pseudoHeaderSum` is 0 for ICMPv4, the IPv6 pseudo-header sum over the returned length for ICMPv6.
 * The data may overlap `buf` (it is moved as by memmove).
 */
export function emitIcmpEcho(
  buf: Buffer,
  off: number,
  type: number,
  id: number,
  seq: number,
  data: Buffer,
  dataOff: number,
  dataLen: number,
  pseudoHeaderSum: number,
): number {
  if (dataLen > 0) data.copy(buf, off + ICMP_HEADER_LEN, dataOff, dataOff + dataLen);
  buf[off + TYPE] = type;
  buf[off + CODE] = 0;
  buf[off + CHECKSUM] = 0;
  buf[off + CHECKSUM + 1] = 0;
  put16(buf, off + ID, id);
  put16(buf, off + SEQ, seq);
  const len = ICMP_HEADER_LEN + dataLen;
  put16(buf, off + CHECKSUM, checksum(buf, off, len, pseudoHeaderSum));
  return len;
}

/**
 * Write a Destination Unreachable message at `buf[off]`: ICMPv4 type 3 (RFC 792) or ICMPv6
 * type 1 (RFC 4443 §3.1), quoting the start of the invoking IP packet
 * `orig[origOff, origOff+origLen)` (cut to `icmpErrorQuoteLength`). `mtu` fills the next-hop
 * MTU of ICMPv4 code 4 (RFC 1191 §4); otherwise the field is zero. `pseudoHeaderSum`: 0 for
 * ICMPv4, for ICMPv6 the pseudo-header sum over 8 + icmpErrorQuoteLength(6, origLen).
 * Returns the message length. The quoted bytes may overlap `buf`.
 */
export function emitIcmpUnreachable(
  buf: Buffer,
  off: number,
  family: 4 | 6,
  code: number,
  orig: Buffer,
  origOff: number,
  origLen: number,
  pseudoHeaderSum: number,
  mtu = 0,
): number {
  const quote = icmpErrorQuoteLength(family, origLen);
  if (quote > 0) orig.copy(buf, off + ICMP_HEADER_LEN, origOff, origOff + quote);
  buf[off + TYPE] = family === 4 ? Icmpv4Type.DEST_UNREACHABLE : Icmpv6Type.DEST_UNREACHABLE;
  buf[off + CODE] = code;
  buf[off + CHECKSUM] = 0;
  buf[off + CHECKSUM + 1] = 0;
  put32(buf, off + ID, family === 4 && code === Icmpv4UnreachableCode.FRAGMENTATION_NEEDED ? mtu & 0xffff : 0);
  const len = ICMP_HEADER_LEN + quote;
  put16(buf, off + CHECKSUM, checksum(buf, off, len, pseudoHeaderSum));
  return len;
}
