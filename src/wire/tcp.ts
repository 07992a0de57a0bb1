/**
 * TCP header (RFC 9293 §3.1) and options as a reusable view, plus option parse/emit.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |          Source Port          |       Destination Port        |
 *    |                        Sequence Number                        |
 *    |                    Acknowledgment Number                      |
 *    |  Data |       |C|E|U|A|P|R|S|F|                               |
 *    | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 *    |           Checksum            |         Urgent Pointer        |
 *    |                      Options (Data Offset > 5)                |
 *
 * Options (RFC 9293 §3.2): EOL (0), NOP (1), then kind/length/value. Recognised: MSS (2, len 4,
 * RFC 9293 §3.7.1), Window Scale (3, len 3, RFC 7323 §2.2), SACK-Permitted (4, len 2, RFC 2018
 * §2), SACK (5, len 2+8n, RFC 2018 §3), Timestamps (8, len 10, RFC 7323 §3.2).
 */

import { get16, get32, put16, put32, EMPTY_BUFFER } from './bytes.js';
import { onesSum } from './checksum.js';
import { TCP_HEADER_LEN, TCP_MAX_OPTIONS_LEN } from './field.js';
import { MAX_SACK_BLOCKS, type TcpOptions } from './segment.js';

// Field offsets (RFC 9293 §3.1).
const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DATA_OFF = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;

/** Offset of the checksum field in the TCP header (virtio csum_offset for CHECKSUM_PARTIAL). */
export const TCP_CHECKSUM_OFFSET = CHECKSUM;

/** Option kinds (IANA "TCP Option Kind Numbers"). */
export const TcpOptionKind = {
  EOL: 0,
  NOP: 1,
  MSS: 2,
  WINDOW_SCALE: 3,
  SACK_PERMITTED: 4,
  SACK: 5,
  TIMESTAMPS: 8,
} as const;

const LEN_MSS = 4;
const LEN_WSCALE = 3;
const LEN_SACK_PERMITTED = 2;
const LEN_TIMESTAMPS = 10;
const LEN_SACK_BASE = 2;
const LEN_SACK_BLOCK = 8;
/** NOP, NOP, kind 8, length 10 as one big-endian word. */
const ALIGNED_TIMESTAMPS = 0x0101080a;

/**
 * Outcome of `TcpView.reset`. 'bad_data_offset': Data Offset < 5 or the header it announces
 * does not fit in the segment.
 */
export type TcpVerdict = 'ok' | 'truncated' | 'bad_data_offset';

/**
 * Outcome of option parsing. RFC 9293 §3.1 (MUST-7): be prepared for an illegal option length.
 * 'bad_option_length': a length of 0 or 1; 'option_overrun': an option (or its length octet)
 * runs past the header. A recognised kind with the wrong fixed length is skipped by its length
 * and ignored, as Linux does (tcp_parse_options).
 */
export type TcpOptionsVerdict = 'ok' | 'bad_option_length' | 'option_overrun';

export class TcpView {
  buf: Buffer = EMPTY_BUFFER;
  off = 0;
  /** Segment length: header, options and payload. */
  length = 0;
  /** Data Offset × 4. */
  headerLength = 0;

  /** Check the segment at `buf[off, off+len)` (len = upper-layer length from the IP header). */
  reset(buf: Buffer, off: number, len: number): TcpVerdict {
    this.buf = buf;
    this.off = off;
    this.length = 0;
    this.headerLength = 0;
    if (len < TCP_HEADER_LEN) return 'truncated';
    const hl = ((buf[off + DATA_OFF] as number) >>> 4) << 2;
    // RFC 9293 §3.1: Data Offset counts 32-bit words; the fixed header alone is 5.
    if (hl < TCP_HEADER_LEN || hl > len) return 'bad_data_offset';
    this.length = len;
    this.headerLength = hl;
    return 'ok';
  }

  get srcPort(): number {
    return get16(this.buf, this.off + SRC_PORT);
  }

  set srcPort(v: number) {
    put16(this.buf, this.off + SRC_PORT, v);
  }

  get dstPort(): number {
    return get16(this.buf, this.off + DST_PORT);
  }

  set dstPort(v: number) {
    put16(this.buf, this.off + DST_PORT, v);
  }

  get seq(): number {
    return get32(this.buf, this.off + SEQ);
  }

  set seq(v: number) {
    put32(this.buf, this.off + SEQ, v);
  }

  get ack(): number {
    return get32(this.buf, this.off + ACK);
  }

  set ack(v: number) {
    put32(this.buf, this.off + ACK, v);
  }

  /** Data Offset in 32-bit words. */
  get dataOffset(): number {
    return (this.buf[this.off + DATA_OFF] as number) >>> 4;
  }

  /** TcpFlag bits (CWR..FIN, the low octet of the control bits). */
  get flags(): number {
    return this.buf[this.off + FLAGS] as number;
  }

  set flags(v: number) {
    this.buf[this.off + FLAGS] = v;
  }

  get window(): number {
    return get16(this.buf, this.off + WINDOW);
  }

  set window(v: number) {
    put16(this.buf, this.off + WINDOW, v);
  }

  get checksum(): number {
    return get16(this.buf, this.off + CHECKSUM);
  }

  set checksum(v: number) {
    put16(this.buf, this.off + CHECKSUM, v);
  }

  get urgent(): number {
    return get16(this.buf, this.off + URGENT);
  }

  set urgent(v: number) {
    put16(this.buf, this.off + URGENT, v);
  }

  get payloadOffset(): number {
    return this.off + this.headerLength;
  }

  get payloadLength(): number {
    return this.length - this.headerLength;
  }

  /** RFC 9293 §3.1: the sum over pseudo-header, header and data (checksum included) is all ones. */
  verifyChecksum(pseudoHeaderSum: number): boolean {
    return onesSum(this.buf, this.off, this.length, pseudoHeaderSum) === 0xffff;
  }

  /** Parse the options into `opts` (cleared first). */
  parseOptions(opts: TcpOptions): TcpOptionsVerdict {
    return parseTcpOptions(this.buf, this.off + TCP_HEADER_LEN, this.headerLength - TCP_HEADER_LEN, opts);
  }
}

/**
 * Parse the TCP options in `buf[off, off+len)` into `opts`, which is cleared first. Later
 * duplicates of an option overwrite earlier ones. Stops at EOL (RFC 9293 §3.2).
 * Values are reported as received: a window scale above 14 is the caller's to clamp
 * (RFC 7323 §2.3).
 */
export function parseTcpOptions(buf: Uint8Array, off: number, len: number, opts: TcpOptions): TcpOptionsVerdict {
  opts.clear();
  // Fast path for the usual data segment, NOP,NOP,Timestamps (RFC 7323 Appendix A layout).
  if (len === 12 && get32(buf, off) === ALIGNED_TIMESTAMPS) {
    opts.tsPresent = true;
    opts.tsVal = get32(buf, off + 4);
    opts.tsEcr = get32(buf, off + 8);
    return 'ok';
  }
  const end = off + len;
  let i = off;
  while (i < end) {
    const kind = buf[i] as number;
    if (kind === TcpOptionKind.EOL) break;
    if (kind === TcpOptionKind.NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return 'option_overrun';
    const olen = buf[i + 1] as number;
    if (olen < 2) return 'bad_option_length';
    if (i + olen > end) return 'option_overrun';
    switch (kind) {
      case TcpOptionKind.MSS:
        if (olen === LEN_MSS) opts.mss = get16(buf, i + 2);
        break;
      case TcpOptionKind.WINDOW_SCALE:
        if (olen === LEN_WSCALE) opts.wscale = buf[i + 2] as number;
        break;
      case TcpOptionKind.SACK_PERMITTED:
        if (olen === LEN_SACK_PERMITTED) opts.sackPermitted = true;
        break;
      case TcpOptionKind.SACK: {
        const body = olen - LEN_SACK_BASE;
        // RFC 2018 §3: 8 octets per block; 40 option octets hold at most 4 blocks.
        if (body >= LEN_SACK_BLOCK && body % LEN_SACK_BLOCK === 0) {
          const n = Math.min(body / LEN_SACK_BLOCK, MAX_SACK_BLOCKS);
          const blocks = opts.sackBlocks;
          for (let b = 0; b < n; b++) {
            blocks[2 * b] = get32(buf, i + 2 + 8 * b);
            blocks[2 * b + 1] = get32(buf, i + 6 + 8 * b);
          }
          opts.sackCount = n;
        }
        break;
      }
      case TcpOptionKind.TIMESTAMPS:
        if (olen === LEN_TIMESTAMPS) {
          opts.tsPresent = true;
          opts.tsVal = get32(buf, i + 2);
          opts.tsEcr = get32(buf, i + 6);
        }
        break;
      default:
        // Unknown kinds are skipped by their length (RFC 9293 §3.2, MUST-6).
        break;
    }
    i += olen;
  }
  return 'ok';
}

/** How many SACK blocks `emitTcpOptions` will write for `opts` (those that fit in 40 bytes). */
export function sackBlocksThatFit(opts: TcpOptions): number {
  // Room left after the other options and the NOP,NOP,kind,length word of the SACK option.
  const avail = TCP_MAX_OPTIONS_LEN - fixedOptionsLength(opts) - 4;
  let n = opts.sackCount;
  if (n > MAX_SACK_BLOCKS) n = MAX_SACK_BLOCKS;
  const fit = avail > 0 ? avail >>> 3 : 0;
  return n < fit ? n : fit;
}

function fixedOptionsLength(opts: TcpOptions): number {
  let len = 0;
  if (opts.mss >= 0) len += 4;
  if (opts.tsPresent) len += 12; // [SACK-Permitted or NOP,NOP] + Timestamps
  else if (opts.sackPermitted) len += 4; // NOP,NOP,SACK-Permitted
  if (opts.wscale >= 0) len += 4; // NOP,Window Scale
  return len;
}

/** Bytes `emitTcpOptions(opts)` writes: a multiple of 4, at most 40. */
export function tcpOptionsLength(opts: TcpOptions): number {
  const n = sackBlocksThatFit(opts);
  return fixedOptionsLength(opts) + (n > 0 ? 4 + LEN_SACK_BLOCK * n : 0);
}

/**
 * Write the options of `opts` at `buf[off]`, 32-bit aligned with NOPs, in Linux's layout
 * (tcp_options_write): MSS; SACK-Permitted+Timestamps, or NOP,NOP,Timestamps; NOP,NOP,
 * SACK-Permitted when there is no timestamp to share a word with; NOP,Window Scale;
 * NOP,NOP,SACK. A SYN is thus MSS, SACK-Permitted, TS, NOP, WS, and a data segment NOP,NOP,TS
 * followed by the SACK blocks. SACK blocks beyond the 40-byte limit are dropped (the first
 * ones, the most recent by RFC 2018 §4, are kept). Returns the bytes written.
 */
export function emitTcpOptions(buf: Uint8Array, off: number, opts: TcpOptions): number {
  let i = off;
  if (opts.mss >= 0) {
    buf[i] = TcpOptionKind.MSS;
    buf[i + 1] = LEN_MSS;
    put16(buf, i + 2, opts.mss);
    i += 4;
  }
  if (opts.tsPresent) {
    if (opts.sackPermitted) {
      buf[i] = TcpOptionKind.SACK_PERMITTED;
      buf[i + 1] = LEN_SACK_PERMITTED;
    } else {
      buf[i] = TcpOptionKind.NOP;
      buf[i + 1] = TcpOptionKind.NOP;
    }
    buf[i + 2] = TcpOptionKind.TIMESTAMPS;
    buf[i + 3] = LEN_TIMESTAMPS;
    put32(buf, i + 4, opts.tsVal);
    put32(buf, i + 8, opts.tsEcr);
    i += 12;
  } else if (opts.sackPermitted) {
    buf[i] = TcpOptionKind.NOP;
    buf[i + 1] = TcpOptionKind.NOP;
    buf[i + 2] = TcpOptionKind.SACK_PERMITTED;
    buf[i + 3] = LEN_SACK_PERMITTED;
    i += 4;
  }
  if (opts.wscale >= 0) {
    buf[i] = TcpOptionKind.NOP;
    buf[i + 1] = TcpOptionKind.WINDOW_SCALE;
    buf[i + 2] = LEN_WSCALE;
    buf[i + 3] = opts.wscale;
    i += 4;
  }
  if (opts.sackCount > 0) {
    const n = sackBlocksThatFit(opts);
    if (n > 0) {
      buf[i] = TcpOptionKind.NOP;
      buf[i + 1] = TcpOptionKind.NOP;
      buf[i + 2] = TcpOptionKind.SACK;
      buf[i + 3] = LEN_SACK_BASE + LEN_SACK_BLOCK * n;
      i += 4;
      const blocks = opts.sackBlocks;
      for (let b = 0; b < 2 * n; b++) {
        put32(buf, i, blocks[b] as number);
        i += 4;
      }
    }
  }
  return i - off;
}

/**
 * Write a TCP header and the options of `opts` (none when null) at `buf[off]`, with a zero
 * checksum; returns the header length (20 + options). The checksum is filled in later, once
 * the payload is in place (see src/wire/packet.ts).
 */
export function emitTcpHeader(
  buf: Uint8Array,
  off: number,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  urgent: number,
  opts: TcpOptions | null,
): number {
  const optLen = opts === null ? 0 : emitTcpOptions(buf, off + TCP_HEADER_LEN, opts);
  const hl = TCP_HEADER_LEN + optLen;
  put16(buf, off + SRC_PORT, srcPort);
  put16(buf, off + DST_PORT, dstPort);
  put32(buf, off + SEQ, seq);
  put32(buf, off + ACK, ack);
  buf[off + DATA_OFF] = (hl >>> 2) << 4;
  buf[off + FLAGS] = flags;
  put16(buf, off + WINDOW, window);
  buf[off + CHECKSUM] = 0;
  buf[off + CHECKSUM + 1] = 0;
  put16(buf, off + URGENT, urgent);
  return hl;
}
