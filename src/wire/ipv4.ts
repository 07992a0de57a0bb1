/**
 * IPv4 header (RFC 791 §3.1) as a reusable view over a Buffer.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |Version|  IHL  |   DSCP    |ECN|          Total Length         |
 *    |         Identification        |Flags|      Fragment Offset    |
 *    |  Time to Live |    Protocol   |         Header Checksum       |
 *    |                       Source Address                          |
 *    |                    Destination Address                        |
 *    |                    Options (IHL > 5), skipped                 |
 *
 * `reset()` checks every length once; after it returns 'ok' or 'fragment' the accessors read
 * inside `[off, off + totalLength)` and allocate nothing. After any other verdict the view must
 * not be read.
 */

import { get16, get32, put16, put32, EMPTY_BUFFER } from './bytes.js';
import { checksum, onesSum } from './checksum.js';
import { DEFAULT_TTL, IPV4_HEADER_LEN } from './field.js';

// Field offsets (RFC 791 §3.1).
const VER_IHL = 0;
const TOS = 1;
const TOTAL_LEN = 2;
const IDENT = 4;
const FLG_OFF = 6;
const TTL = 8;
const PROTOCOL = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;

/** Flags in the high bits of the 16-bit flags/fragment-offset word. */
const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAG_OFFSET_MASK = 0x1fff;

/**
 * Outcome of `Ipv4View.reset`. 'fragment': the header is valid but the datagram is a fragment
 * (MF set or a non-zero offset); we do not reassemble (the view is still readable).
 */
export type Ipv4Verdict = 'ok' | 'fragment' | 'truncated' | 'bad_version' | 'bad_ihl' | 'bad_total_length';

export class Ipv4View {
  buf: Buffer = EMPTY_BUFFER;
  /** Offset of the header in `buf`. */
  off = 0;
  /** Total Length of the datagram (bytes past it in the input are padding and ignored). */
  totalLength = 0;
  /** IHL × 4. */
  headerLength = 0;

  /** Check the header at `buf[off, off+len)` and point the view at it. */
  reset(buf: Buffer, off: number, len: number): Ipv4Verdict {
    this.buf = buf;
    this.off = off;
    this.totalLength = 0;
    this.headerLength = 0;
    if (len < IPV4_HEADER_LEN) return 'truncated';
    const vi = buf[off + VER_IHL] as number;
    if (vi >>> 4 !== 4) return 'bad_version';
    const hl = (vi & 0x0f) << 2;
    // RFC 791 §3.1: IHL is at least 5 (20 octets).
    if (hl < IPV4_HEADER_LEN) return 'bad_ihl';
    if (hl > len) return 'truncated';
    const tl = get16(buf, off + TOTAL_LEN);
    if (tl < hl || tl > len) return 'bad_total_length';
    this.headerLength = hl;
    this.totalLength = tl;
    // RFC 791 §3.2: a datagram with MF set or a non-zero offset is a fragment. We do not reassemble.
    if ((get16(buf, off + FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK)) !== 0) return 'fragment';
    return 'ok';
  }

  get version(): number {
    return (this.buf[this.off + VER_IHL] as number) >>> 4;
  }

  /** The whole DSCP/ECN octet (RFC 2474, RFC 3168). */
  get tos(): number {
    return this.buf[this.off + TOS] as number;
  }

  /** ECN codepoint (RFC 3168 §5): the low two bits of the TOS octet. */
  get ecn(): number {
    return (this.buf[this.off + TOS] as number) & 0x03;
  }

  get identification(): number {
    return get16(this.buf, this.off + IDENT);
  }

  get dontFragment(): boolean {
    return (get16(this.buf, this.off + FLG_OFF) & FLAG_DF) !== 0;
  }

  get moreFragments(): boolean {
    return (get16(this.buf, this.off + FLG_OFF) & FLAG_MF) !== 0;
  }

  /** Fragment offset in octets (the field counts 8-octet units). */
  get fragmentOffset(): number {
    return (get16(this.buf, this.off + FLG_OFF) & FRAG_OFFSET_MASK) << 3;
  }

  get ttl(): number {
    return this.buf[this.off + TTL] as number;
  }

  set ttl(v: number) {
    this.buf[this.off + TTL] = v;
  }

  get protocol(): number {
    return this.buf[this.off + PROTOCOL] as number;
  }

  get checksum(): number {
    return get16(this.buf, this.off + CHECKSUM);
  }

  set checksum(v: number) {
    put16(this.buf, this.off + CHECKSUM, v);
  }

  /** Source address as an unsigned 32-bit number (198.18.0.1 = 0xc6120001). */
  get src(): number {
    return get32(this.buf, this.off + SRC);
  }

  set src(v: number) {
    put32(this.buf, this.off + SRC, v);
  }

  get dst(): number {
    return get32(this.buf, this.off + DST);
  }

  set dst(v: number) {
    put32(this.buf, this.off + DST, v);
  }

  /** Offset in `buf` of the first byte after the header and its options. */
  get payloadOffset(): number {
    return this.off + this.headerLength;
  }

  get payloadLength(): number {
    return this.totalLength - this.headerLength;
  }

  /** RFC 791 §3.1: the one's-complement sum over the header, checksum included, is all ones. */
  verifyChecksum(): boolean {
    return onesSum(this.buf, this.off, this.headerLength) === 0xffff;
  }

  /** Recompute the header checksum in place (after changing a field). */
  fillChecksum(): void {
    const o = this.off + CHECKSUM;
    this.buf[o] = 0;
    this.buf[o + 1] = 0;
    put16(this.buf, o, checksum(this.buf, this.off, this.headerLength));
  }
}

/**
 * Write a 20-byte IPv4 header (no options) with its checksum at `buf[off]`; returns 20.
 * `payloadLength` is the length of what follows the header (Total Length − 20); the caller keeps
 * it ≤ 65515. `tos` is the whole DSCP/ECN octet.
 */
export function emitIpv4(
  buf: Uint8Array,
  off: number,
  src: number,
  dst: number,
  protocol: number,
  payloadLength: number,
  identification: number,
  dontFragment = true,
  ttl = DEFAULT_TTL,
  tos = 0,
): number {
  buf[off + VER_IHL] = 0x45;
  buf[off + TOS] = tos;
  put16(buf, off + TOTAL_LEN, IPV4_HEADER_LEN + payloadLength);
  put16(buf, off + IDENT, identification);
  put16(buf, off + FLG_OFF, dontFragment ? FLAG_DF : 0);
  buf[off + TTL] = ttl;
  buf[off + PROTOCOL] = protocol;
  buf[off + CHECKSUM] = 0;
  buf[off + CHECKSUM + 1] = 0;
  put32(buf, off + SRC, src);
  put32(buf, off + DST, dst);
  put16(buf, off + CHECKSUM, checksum(buf, off, IPV4_HEADER_LEN));
  return IPV4_HEADER_LEN;
}
