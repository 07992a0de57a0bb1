/**
 * The Internet checksum (RFC 1071): the 16-bit one's-complement of the one's-complement sum of
 * the data taken as big-endian 16-bit words, an odd final byte padded with a zero byte.
 *
 * Conventions in this module:
 * - A "sum" is a folded one's-complement sum, an integer in [0, 0xffff]. Sums of adjacent ranges
 *   combine by adding them and folding again (RFC 1071 §2(C): the sum is associative), as long as
 *   every range but the last has an even length.
 * - A "checksum" is what goes on the wire: `finish(sum)` = ~sum & 0xffff.
 * - A received packet is correct when the sum over it, checksum field included (and the
 *   pseudo-header for TCP/UDP/ICMPv6), folds to 0xffff.
 *
 * Speed: the hot loop reads 16-bit words through a Uint16Array over the Buffer's ArrayBuffer,
 * accumulating in the platform byte order and swapping once at the end (RFC 1071 §2(B): the sum
 * is byte-order independent). The view is cached for the last ArrayBuffer seen, so the usual case
 * (every packet from the same TUN read buffer) allocates nothing. A range at an odd address is
 * summed from the next even one and byte-swapped; short ranges use a byte loop.
 */

/** Below this length the byte loop is faster than setting up the word loop. */
const WORD_LOOP_MIN = 64;
/** Words summed before folding: 0x8000 words × 0xffff stays below 2^31 (int32 arithmetic). */
const CHUNK_WORDS = 0x8000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let cachedBuffer: ArrayBufferLike | null = null;
let cachedWords: Uint16Array = new Uint16Array(0);

/** Fold a 32-bit (or smaller) non-negative accumulator to 16 bits with end-around carry. */
function fold32(s: number): number {
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/**
 * Fold any non-negative integer accumulator (up to 2^53) to a 16-bit one's-complement sum.
 * Note fold(0) = 0 while any positive multiple of 0xffff folds to 0xffff ("negative zero").
 */
export function fold(sum: number): number {
  while (sum > 0xffffffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return fold32(sum);
}

/** The checksum field value for a folded (or unfolded) sum: its one's complement. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

function sumBytes(buf: Uint8Array, off: number, len: number): number {
  let total = 0;
  let i = off;
  const end = off + (len & ~1);
  while (i < end) {
    const stop = end - i > 2 * CHUNK_WORDS ? i + 2 * CHUNK_WORDS : end;
    let s = 0;
    for (; i + 8 <= stop; i += 8) {
      s +=
        (((buf[i] as number) << 8) | (buf[i + 1] as number)) +
        (((buf[i + 2] as number) << 8) | (buf[i + 3] as number)) +
        (((buf[i + 4] as number) << 8) | (buf[i + 5] as number)) +
        (((buf[i + 6] as number) << 8) | (buf[i + 7] as number));
    }
    for (; i < stop; i += 2) s += ((buf[i] as number) << 8) | (buf[i + 1] as number);
    total = fold32(total + s);
  }
  if ((len & 1) !== 0) total = fold32(total + ((buf[end] as number) << 8));
  return total;
}

function sumWords(buf: Uint8Array, off: number, len: number): number {
  const ab = buf.buffer;
  const abs = buf.byteOffset + off;
  let words = cachedWords;
  if (ab !== cachedBuffer || abs + len > words.length * 2) {
    words = new Uint16Array(ab, 0, ab.byteLength >>> 1);
    cachedBuffer = ab;
    cachedWords = words;
  }
  let total = 0;
  let i = abs >>> 1;
  const end = i + (len >>> 1);
  while (i < end) {
    const stop = end - i > CHUNK_WORDS ? i + CHUNK_WORDS : end;
    let s = 0;
    for (; i + 8 <= stop; i += 8) {
      s +=
        (words[i] as number) + (words[i + 1] as number) + (words[i + 2] as number) + (words[i + 3] as number) +
        (words[i + 4] as number) + (words[i + 5] as number) + (words[i + 6] as number) + (words[i + 7] as number);
    }
    for (; i < stop; i++) s += words[i] as number;
    total = fold32(total + s);
  }
  if (LITTLE_ENDIAN) total = ((total & 0xff) << 8) | (total >>> 8);
  if ((len & 1) !== 0) total = fold32(total + ((buf[off + len - 1] as number) << 8));
  return total;
}

/**
 * Folded one's-complement sum of `buf[off, off+len)` plus `initial` (any non-negative integer
 * below 2^32, typically a pseudo-header sum). Does not complement. The caller guarantees the
 * range lies inside `buf`.
 */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let s: number;
  if (len < WORD_LOOP_MIN) {
    s = sumBytes(buf, off, len);
  } else if (((buf.byteOffset + off) & 1) === 0) {
    s = sumWords(buf, off, len);
  } else {
    // Odd address: sum the aligned words from off+1 with the first byte as a low byte; that is
    // the sum of the range with its bytes swapped (RFC 1071 §2(B)), so swap the result back.
    s = fold32(sumWords(buf, off + 1, len - 1) + (buf[off] as number));
    s = ((s & 0xff) << 8) | (s >>> 8);
  }
  return fold32(fold32(initial) + s);
}

/** Internet checksum of a range: `finish(onesSum(...))`. */
export function checksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~onesSum(buf, off, len, initial) & 0xffff;
}

/**
 * IPv4 pseudo-header sum (RFC 9293 §3.1, RFC 768): source, destination, zero + protocol, and the
 * upper-layer length (header plus data), addresses as uint32 numbers.
 */
export function pseudoSumV4(src: number, dst: number, protocol: number, length: number): number {
  return fold32(
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + (length & 0xffff),
  );
}

/**
 * IPv6 pseudo-header sum (RFC 8200 §8.1): source, destination, 32-bit upper-layer packet length,
 * three zero octets and the next header value (the upper-layer protocol, not an extension
 * header). Addresses are four big-endian uint32 words each, read from `src[srcOff..+4]` and
 * `dst[dstOff..+4]`.
 */
export function pseudoSumV6(
  src: Uint32Array,
  dst: Uint32Array,
  nextHeader: number,
  length: number,
  srcOff = 0,
  dstOff = 0,
): number {
  let s = nextHeader + (length >>> 16) + (length & 0xffff);
  for (let i = 0; i < 4; i++) {
    const a = src[srcOff + i] as number;
    const b = dst[dstOff + i] as number;
    s += (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff);
  }
  return fold32(s);
}

/** IPv4 pseudo-header sum with the addresses read from the IPv4 header at `ipOff`. */
export function pseudoSumV4At(buf: Uint8Array, ipOff: number, protocol: number, length: number): number {
  return fold32(sumBytes(buf, ipOff + 12, 8) + protocol + (length & 0xffff));
}

/** IPv6 pseudo-header sum with the addresses read from the IPv6 header at `ipOff`. */
export function pseudoSumV6At(buf: Uint8Array, ipOff: number, nextHeader: number, length: number): number {
  return fold32(sumBytes(buf, ipOff + 8, 32) + nextHeader + (length >>> 16) + (length & 0xffff));
}

/**
 * Incremental update of a checksum after one 16-bit field of the covered data changed from
 * `oldWord` to `newWord` (RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m')). Equals a full
 * recomputation except when the new data sums to exactly zero (all-zero data, RFC 1624 §3).
 */
export function updateChecksum16(checksumValue: number, oldWord: number, newWord: number): number {
  return ~fold32((~checksumValue & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** Incremental update for a 32-bit field at an even offset (e.g. an IPv4 address): both halves. */
export function updateChecksum32(checksumValue: number, oldValue: number, newValue: number): number {
  return (
    ~fold32(
      (~checksumValue & 0xffff) +
        (~oldValue & 0xffff) +
        (~(oldValue >>> 16) & 0xffff) +
        (newValue & 0xffff) +
        (newValue >>> 16),
    ) & 0xffff
  );
}
