/**
 * IPv6 header (RFC 8200 §3) and its extension-header chain (RFC 8200 §4) as a reusable view.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |Version| Traffic Class |           Flow Label                  |
 *    |         Payload Length        |  Next Header  |   Hop Limit   |
 *    |                  Source Address (16 octets)                   |
 *    |               Destination Address (16 octets)                 |
 *
 * `reset()` checks the fixed header and walks the extension headers once, recording the
 * upper-layer protocol and where it starts (`upperProtocol`, `upperOffset`, `upperLength`).
 * Every header length is checked against the payload before it is used, and the walk stops
 * after MAX_EXTENSION_HEADERS headers, so no input can make it read out of bounds or loop.
 */

import { get16, get32, put32, EMPTY_BUFFER } from './bytes.js';
import { DEFAULT_TTL, IPV6_HEADER_LEN, IpProto } from './field.js';

// Field offsets (RFC 8200 §3).
const VER_TC_FL = 0;
const PAYLOAD_LEN = 4;
const NEXT_HEADER = 6;
const HOP_LIMIT = 7;
const SRC = 8;
const DST = 24;

/** Upper bound on extension headers walked before giving up (a packet needs at most a handful). */
export const MAX_EXTENSION_HEADERS = 16;

/**
 * Outcome of `Ipv6View.reset`.
 * - 'fragment': a Fragment header with a non-zero offset or M set (we do not reassemble);
 *   `upperProtocol` is then the fragment header's Next Header and `fragment*` are set.
 * - 'ext_overrun': an extension header runs past the payload; 'ext_limit': too many of them;
 *   'ext_order': a Hop-by-Hop header not directly after the fixed header (RFC 8200 §4.3).
 * - 'routing': a Routing header with Segments Left > 0, i.e. we are not the final destination
 *   (RFC 8200 §4.4); 'jumbogram': Payload Length 0 with Hop-by-Hop (RFC 2675), unsupported.
 */
export type Ipv6Verdict =
  | 'ok'
  | 'fragment'
  | 'truncated'
  | 'bad_version'
  | 'bad_payload_length'
  | 'ext_overrun'
  | 'ext_limit'
  | 'ext_order'
  | 'routing'
  | 'jumbogram';

export class Ipv6View {
  buf: Buffer = EMPTY_BUFFER;
  off = 0;
  /** Payload Length field: octets after the fixed 40-byte header. */
  payloadLength = 0;
  /** Protocol found at the end of the extension chain (TCP = 6, ESP = 50, No Next Header = 59, ...). */
  upperProtocol = 0;
  /** Offset in `buf` of the upper-layer header. */
  upperOffset = 0;
  /** Octets from `upperOffset` to the end of the payload. */
  upperLength = 0;
  /** Number of extension headers walked. */
  extensionCount = 0;
  /** Fragment header fields when one was seen, else 0/false (RFC 8200 §4.5). Offset in octets. */
  fragmentOffset = 0;
  moreFragments = false;
  fragmentId = 0;

  reset(buf: Buffer, off: number, len: number): Ipv6Verdict {
    this.buf = buf;
    this.off = off;
    this.payloadLength = 0;
    this.upperProtocol = 0;
    this.upperOffset = 0;
    this.upperLength = 0;
    this.extensionCount = 0;
    this.fragmentOffset = 0;
    this.moreFragments = false;
    this.fragmentId = 0;
    if (len < IPV6_HEADER_LEN) return 'truncated';
    if ((buf[off + VER_TC_FL] as number) >>> 4 !== 6) return 'bad_version';
    const pl = get16(buf, off + PAYLOAD_LEN);
    if (IPV6_HEADER_LEN + pl > len) return 'bad_payload_length';
    this.payloadLength = pl;
    let nh = buf[off + NEXT_HEADER] as number;
    // RFC 2675 §3: a jumbogram has Payload Length 0 and a Jumbo Payload option in Hop-by-Hop.
    if (pl === 0 && nh === IpProto.HOPOPT) return 'jumbogram';
    const end = off + IPV6_HEADER_LEN + pl;
    let cur = off + IPV6_HEADER_LEN;
    let count = 0;
    for (;;) {
      let extLen: number;
      switch (nh) {
        case IpProto.HOPOPT:
        case IpProto.IPV6_OPTS:
        case IpProto.IPV6_ROUTE:
          // RFC 8200 §4.3: Hop-by-Hop must immediately follow the IPv6 header.
          if (nh === IpProto.HOPOPT && count !== 0) return 'ext_order';
          // RFC 8200 §4.3/§4.4/§4.6: Hdr Ext Len counts 8-octet units after the first 8.
          if (cur + 2 > end) return 'ext_overrun';
          extLen = ((buf[cur + 1] as number) + 1) << 3;
          if (cur + extLen > end) return 'ext_overrun';
          // RFC 8200 §4.4: Segments Left > 0 means the packet is still in transit to another node.
          if (nh === IpProto.IPV6_ROUTE && buf[cur + 3] !== 0) return 'routing';
          break;
        case IpProto.IPV6_FRAG: {
          // RFC 8200 §4.5: fixed 8 octets; offset in 8-octet units in the top 13 bits, M the low bit.
          extLen = 8;
          if (cur + extLen > end) return 'ext_overrun';
          const w = get16(buf, cur + 2);
          const fragOff = w & 0xfff8;
          const more = (w & 1) !== 0;
          this.fragmentOffset = fragOff;
          this.moreFragments = more;
          this.fragmentId = get32(buf, cur + 4);
          if (fragOff !== 0 || more) {
            this.upperProtocol = buf[cur] as number;
            this.upperOffset = cur + extLen;
            this.upperLength = end - (cur + extLen);
            this.extensionCount = count + 1;
            return 'fragment';
          }
          // RFC 6946 §4: an atomic fragment (offset 0, M = 0) is processed as a whole packet.
          break;
        }
        case IpProto.AH:
          // RFC 4302 §2.2: Payload Len is the AH length in 4-octet units minus 2.
          if (cur + 2 > end) return 'ext_overrun';
          extLen = ((buf[cur + 1] as number) + 2) << 2;
          if (cur + extLen > end) return 'ext_overrun';
          break;
        default:
          // Upper layer, or a terminal header (ESP, No Next Header, or one we do not walk).
          this.upperProtocol = nh;
          this.upperOffset = cur;
          this.upperLength = end - cur;
          this.extensionCount = count;
          return 'ok';
      }
      if (++count > MAX_EXTENSION_HEADERS) return 'ext_limit';
      nh = buf[cur] as number;
      cur += extLen;
    }
  }

  get version(): number {
    return (this.buf[this.off + VER_TC_FL] as number) >>> 4;
  }

  get trafficClass(): number {
    return (get16(this.buf, this.off + VER_TC_FL) >>> 4) & 0xff;
  }

  /** ECN codepoint (RFC 3168 §5): the low two bits of the Traffic Class. */
  get ecn(): number {
    return (get16(this.buf, this.off + VER_TC_FL) >>> 4) & 0x03;
  }

  get flowLabel(): number {
    return get32(this.buf, this.off + VER_TC_FL) & 0xfffff;
  }

  /** The fixed header's Next Header field (the first extension header, if any). */
  get nextHeader(): number {
    return this.buf[this.off + NEXT_HEADER] as number;
  }

  get hopLimit(): number {
    return this.buf[this.off + HOP_LIMIT] as number;
  }

  set hopLimit(v: number) {
    this.buf[this.off + HOP_LIMIT] = v;
  }

  /** Octets from the start of the fixed header to the end of the payload. */
  get totalLength(): number {
    return IPV6_HEADER_LEN + this.payloadLength;
  }

  /** Copy the source address as four big-endian words into `out[outOff..outOff+4)`. */
  readSrc(out: Uint32Array, outOff = 0): void {
    readWords(this.buf, this.off + SRC, out, outOff);
  }

  readDst(out: Uint32Array, outOff = 0): void {
    readWords(this.buf, this.off + DST, out, outOff);
  }
}

function readWords(b: Uint8Array, o: number, out: Uint32Array, outOff: number): void {
  out[outOff] = get32(b, o);
  out[outOff + 1] = get32(b, o + 4);
  out[outOff + 2] = get32(b, o + 8);
  out[outOff + 3] = get32(b, o + 12);
}

/**
 * Write a fixed 40-byte IPv6 header (no extension headers) at `buf[off]`; returns 40.
 * Addresses are four big-endian words at `src[srcOff..+4]`, `dst[dstOff..+4]`.
 */
export function emitIpv6(
  buf: Uint8Array,
  off: number,
  src: Uint32Array,
  dst: Uint32Array,
  nextHeader: number,
  payloadLength: number,
  hopLimit = DEFAULT_TTL,
  trafficClass = 0,
  flowLabel = 0,
  srcOff = 0,
  dstOff = 0,
): number {
  put32(buf, off + VER_TC_FL, ((0x60000000 | ((trafficClass & 0xff) << 20) | (flowLabel & 0xfffff)) >>> 0));
  buf[off + PAYLOAD_LEN] = payloadLength >>> 8;
  buf[off + PAYLOAD_LEN + 1] = payloadLength;
  buf[off + NEXT_HEADER] = nextHeader;
  buf[off + HOP_LIMIT] = hopLimit;
  for (let i = 0; i < 4; i++) {
    put32(buf, off + SRC + 4 * i, src[srcOff + i] as number);
    put32(buf, off + DST + 4 * i, dst[dstOff + i] as number);
  }
  return IPV6_HEADER_LEN;
}
