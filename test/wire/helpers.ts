/**
 * Test helpers for the codecs: hex fixtures and an independent, deliberately naive RFC 1071
 * checksum to check the fast one against.
 */

/** Bytes from a string of hex pairs ('45 00 00 3c ...'; spaces optional). */
export function hex(s: string): Buffer {
  const clean = s.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex: ${s}`);
  return Buffer.from(clean, 'hex');
}

/** `bytes` copied into a fresh buffer at offset `off`, with `after` spare bytes behind it, filled with `fill`. */
export function placed(bytes: Uint8Array, off: number, after = 0, fill = 0xee): Buffer {
  const b = Buffer.alloc(off + bytes.length + after, fill);
  b.set(bytes, off);
  return b;
}

/** Plain RFC 1071 sum: 16-bit big-endian words, odd byte padded with zero, folded; not complemented. */
export function refSum(bytes: ArrayLike<number>, off = 0, len = bytes.length - off): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    const hi = bytes[off + i] as number;
    const lo = i + 1 < len ? (bytes[off + i + 1] as number) : 0;
    s += hi * 256 + lo;
  }
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

export function refChecksum(bytes: ArrayLike<number>, off = 0, len = bytes.length - off): number {
  return 0xffff - refSum(bytes, off, len);
}

/** IPv4 or IPv6 TCP/UDP pseudo-header bytes (RFC 9293 §3.1, RFC 8200 §8.1) for a packet. */
export function pseudoHeaderBytes(packet: Uint8Array, protocol: number, upperLength: number): Buffer {
  if (packet[0]! >> 4 === 4) {
    const p = Buffer.alloc(12);
    p.set(packet.subarray(12, 20), 0);
    p[9] = protocol;
    p.writeUInt16BE(upperLength, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  p.set(packet.subarray(8, 40), 0);
  p.writeUInt32BE(upperLength, 32);
  p[39] = protocol;
  return p;
}

/**
 * Re-checksum a hand-built IPv4/IPv6 packet whose TCP header starts at `tcpOff`: the IPv4
 * header checksum (if IPv4) and the TCP checksum, both by the reference implementation.
 */
export function fixChecksums(p: Buffer, tcpOff: number): Buffer {
  if (p[0]! >> 4 === 4) {
    const ihl = (p[0]! & 0x0f) * 4;
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(refChecksum(p, 0, ihl), 10);
  }
  const tcpLen = p.length - tcpOff;
  p.writeUInt16BE(0, tcpOff + 16);
  const all = Buffer.concat([pseudoHeaderBytes(p, 6, tcpLen), p.subarray(tcpOff)]);
  p.writeUInt16BE(refChecksum(all), tcpOff + 16);
  return p;
}
