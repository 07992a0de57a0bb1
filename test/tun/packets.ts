/**
 * Test-local IPv4/TCP building and parsing, just enough to talk to the kernel through a TUN device
 * by hand. Independent of src/wire on purpose: these tests check the device, not the codec.
 */

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

export const IPPROTO_TCP = 6;

/** Folded 16-bit one's-complement sum of buf[off, off+len) (RFC 1071), starting from `initial`. */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export function ipv4ToBytes(addr: string): number[] {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`bad IPv4 address ${addr}`);
  return parts;
}

export function bytesToIpv4(buf: Uint8Array, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** Sum of the IPv4 pseudo-header (RFC 9293 §3.1) for a TCP segment of `tcpLen` bytes. */
export function pseudoHeaderSum(src: string, dst: string, tcpLen: number): number {
  const b = Uint8Array.from([...ipv4ToBytes(src), ...ipv4ToBytes(dst), 0, IPPROTO_TCP, tcpLen >> 8, tcpLen & 0xff]);
  return onesSum(b, 0, b.length);
}

export interface TcpPacket {
  src: string;
  dst: string;
  ipHeaderLen: number;
  totalLen: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  tcpHeaderLen: number;
  payloadLen: number;
  /** MSS option value, or -1. */
  mss: number;
  /** Window scale option shift, or -1. */
  wscale: number;
}

/** Parses an IPv4/TCP packet at buf[off, off+len); null for anything else. */
export function parseIpv4Tcp(buf: Uint8Array, off: number, len: number): TcpPacket | null {
  if (len < 20 || buf[off]! >> 4 !== 4) return null;
  const ihl = (buf[off]! & 0x0f) * 4;
  const totalLen = (buf[off + 2]! << 8) | buf[off + 3]!;
  if (buf[off + 9] !== IPPROTO_TCP || ihl < 20 || totalLen > len || totalLen < ihl + 20) return null;
  const t = off + ihl;
  const dv = new DataView(buf.buffer, buf.byteOffset + t, 20);
  const tcpHeaderLen = (buf[t + 12]! >> 4) * 4;
  let mss = -1;
  let wscale = -1;
  // RFC 9293 §3.1 options: kind 0 end, 1 no-op, else kind, length, data.
  for (let o = t + 20; o < t + tcpHeaderLen; ) {
    const kind = buf[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const olen = buf[o + 1]!;
    if (olen < 2) break;
    if (kind === 2 && olen === 4) mss = (buf[o + 2]! << 8) | buf[o + 3]!;
    if (kind === 3 && olen === 3) wscale = buf[o + 2]!;
    o += olen;
  }
  return {
    src: bytesToIpv4(buf, off + 12),
    dst: bytesToIpv4(buf, off + 16),
    ipHeaderLen: ihl,
    totalLen,
    sport: dv.getUint16(0),
    dport: dv.getUint16(2),
    seq: dv.getUint32(4),
    ack: dv.getUint32(8),
    flags: buf[t + 13]! & 0x3f,
    window: dv.getUint16(14),
    tcpHeaderLen,
    payloadLen: totalLen - ihl - tcpHeaderLen,
    mss,
    wscale,
  };
}

/** True when the TCP checksum of the IPv4 packet at buf[off..] verifies. */
export function tcpChecksumOk(buf: Uint8Array, off: number, p: TcpPacket): boolean {
  const tcpLen = p.totalLen - p.ipHeaderLen;
  return onesSum(buf, off + p.ipHeaderLen, tcpLen, pseudoHeaderSum(p.src, p.dst, tcpLen)) === 0xffff;
}

export interface TcpSpec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** MSS option (SYN only). */
  mss?: number;
  /** Window scale option (SYN only). */
  wscale?: number;
  /** Payload bytes, already written by the caller right after the TCP header, or filled with `fill`. */
  payloadLen?: number;
  fill?: number;
  /**
   * 'full': complete TCP checksum. 'partial': only the pseudo-header sum, for the kernel to
   * finish (vnet NEEDS_CSUM / GSO).
   */
  checksum?: 'full' | 'partial';
}

/**
 * Writes a 20-byte IPv4 header and a TCP header (with options) at buf[off..]; returns the total
 * IP packet length. The payload (payloadLen bytes) follows the TCP header.
 */
export function writeIpv4Tcp(buf: Uint8Array, off: number, s: TcpSpec): number {
  const optLen = (s.mss !== undefined ? 4 : 0) + (s.wscale !== undefined ? 4 : 0);
  const tcpHeaderLen = 20 + optLen;
  const payloadLen = s.payloadLen ?? 0;
  const totalLen = 20 + tcpHeaderLen + payloadLen;
  const dv = new DataView(buf.buffer, buf.byteOffset + off, totalLen);
  // IPv4 header (RFC 791 §3.1).
  dv.setUint8(0, 0x45);
  dv.setUint8(1, 0);
  dv.setUint16(2, totalLen);
  dv.setUint16(4, 0x1234);
  dv.setUint16(6, 0x4000); // DF
  dv.setUint8(8, 64);
  dv.setUint8(9, IPPROTO_TCP);
  dv.setUint16(10, 0);
  buf.set(ipv4ToBytes(s.src), off + 12);
  buf.set(ipv4ToBytes(s.dst), off + 16);
  dv.setUint16(10, ~onesSum(buf, off, 20) & 0xffff);
  // TCP header (RFC 9293 §3.1).
  const t = 20;
  dv.setUint16(t, s.sport);
  dv.setUint16(t + 2, s.dport);
  dv.setUint32(t + 4, s.seq >>> 0);
  dv.setUint32(t + 8, s.ack >>> 0);
  dv.setUint8(t + 12, (tcpHeaderLen / 4) << 4);
  dv.setUint8(t + 13, s.flags);
  dv.setUint16(t + 14, s.window);
  dv.setUint16(t + 16, 0);
  dv.setUint16(t + 18, 0);
  let o = t + 20;
  if (s.mss !== undefined) {
    dv.setUint8(o, 2);
    dv.setUint8(o + 1, 4);
    dv.setUint16(o + 2, s.mss);
    o += 4;
  }
  if (s.wscale !== undefined) {
    dv.setUint8(o, 1); // NOP
    dv.setUint8(o + 1, 3);
    dv.setUint8(o + 2, 3);
    dv.setUint8(o + 3, s.wscale);
    o += 4;
  }
  if (s.fill !== undefined) buf.fill(s.fill, off + o, off + o + payloadLen);
  const tcpLen = tcpHeaderLen + payloadLen;
  const pseudo = pseudoHeaderSum(s.src, s.dst, tcpLen);
  if (s.checksum === 'partial') {
    dv.setUint16(t + 16, pseudo);
  } else {
    dv.setUint16(t + 16, ~onesSum(buf, off + t, tcpLen, pseudo) & 0xffff);
  }
  return totalLen;
}
