/**
 * UDP header (RFC 768) as a reusable view, plus emit and checksum.
 *
 *     0      7 8     15 16    23 24    31
 *    +--------+--------+--------+--------+
 *    |   Source Port   |   Dest. Port    |
 *    |     Length      |    Checksum     |
 */

import { get16, put16, EMPTY_BUFFER } from './bytes.js';
import { checksum, onesSum } from './checksum.js';
import { UDP_HEADER_LEN } from './field.js';

const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;

/** 'bad_length': the Length field is below 8 or beyond the IP payload. */
export type UdpVerdict = 'ok' | 'truncated' | 'bad_length';

export class UdpView {
  buf: Buffer = EMPTY_BUFFER;
  off = 0;
  /** The Length field: header plus data (bytes past it in the IP payload are ignored). */
  length = 0;

  /** Check the datagram at `buf[off, off+len)` (len = upper-layer length from the IP header). */
  reset(buf: Buffer, off: number, len: number): UdpVerdict {
    this.buf = buf;
    this.off = off;
    this.length = 0;
    if (len < UDP_HEADER_LEN) return 'truncated';
    const l = get16(buf, off + LENGTH);
    if (l < UDP_HEADER_LEN || l > len) return 'bad_length';
    this.length = l;
    return 'ok';
  }

  get srcPort(): number {
    return get16(this.buf, this.off + SRC_PORT);
  }

  get dstPort(): number {
    return get16(this.buf, this.off + DST_PORT);
  }

  get checksum(): number {
    return get16(this.buf, this.off + CHECKSUM);
  }

  get payloadOffset(): number {
    return this.off + UDP_HEADER_LEN;
  }

  get payloadLength(): number {
    return this.length - UDP_HEADER_LEN;
  }

  /**
   * Verify against a pseudo-header sum (pseudoSumV4/pseudoSumV6 with protocol 17 and `length`).
   * RFC 768: a zero checksum means "none computed", allowed over IPv4 only; RFC 8200 §8.1:
   * over IPv6 it is invalid. Pass `ipv6` accordingly.
   */
  verifyChecksum(pseudoHeaderSum: number, ipv6: boolean): boolean {
    if (this.checksum === 0) return !ipv6;
    return onesSum(this.buf, this.off, this.length, pseudoHeaderSum) === 0xffff;
  }
}

/** Write a UDP header with a zero checksum at `buf[off]`; returns 8. */
export function emitUdpHeader(buf: Uint8Array, off: number, srcPort: number, dstPort: number, payloadLength: number): number {
  put16(buf, off + SRC_PORT, srcPort);
  put16(buf, off + DST_PORT, dstPort);
  put16(buf, off + LENGTH, UDP_HEADER_LEN + payloadLength);
  buf[off + CHECKSUM] = 0;
  buf[off + CHECKSUM + 1] = 0;
  return UDP_HEADER_LEN;
}

/**
 * Compute and store the checksum of the datagram at `buf[off, off+length)` (header written,
 * checksum field zero, data in place). RFC 768: a computed zero is sent as all ones.
 */
export function finishUdpChecksum(buf: Uint8Array, off: number, length: number, pseudoHeaderSum: number): void {
  const c = checksum(buf, off, length, pseudoHeaderSum);
  put16(buf, off + CHECKSUM, c === 0 ? 0xffff : c);
}
