/**
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012), the keyed hash
 * behind our ISNs (RFC 6528 F()), timestamp offsets and SYN cookies.
 *
 * Written over 32-bit halves so it runs on plain numbers (no BigInt, no allocation per call):
 * each 64-bit lane v0..v3 is a (high, low) pair of u32 fields. One instance holds one key and is
 * reused for every hash; it is not re-entrant (finish one hash before starting the next).
 *
 * Two ways to feed it:
 * - `hashBytes(buf, off, len)`: a whole byte string (the paper's definition; used by the tests
 *   against the reference vectors).
 * - `begin()`, `word(w)` …, `finish()`: a message made of u32 words, each taken as 4
 *   little-endian bytes, so `word(a).word(b)` hashes the same as the 8 bytes LE(a) ‖ LE(b).
 * The 64-bit result is left in `hi`/`lo`; `finish`/`hashBytes` return `lo`.
 */
import { SipHashKeyError } from '../errors.js';

export { SipHashKeyError };


export class SipHash24 {
  /** High 32 bits of the last result. */
  hi: number;
  /** Low 32 bits of the last result. */
  lo: number;

  private readonly k0h: number;
  private readonly k0l: number;
  private readonly k1h: number;
  private readonly k1l: number;
  private v0h: number;
  private v0l: number;
  private v1h: number;
  private v1l: number;
  private v2h: number;
  private v2l: number;
  private v3h: number;
  private v3l: number;
  /** A word waiting for its partner to make a 64-bit block (streaming API). */
  private pending: number;
  private hasPending: boolean;
  /** Message length in bytes so far (only its low 8 bits matter). */
  private length: number;

  constructor(key: Uint8Array) {
    if (key.length !== 16) throw new SipHashKeyError(key.length);
    // k0 = key bytes 0..7, k1 = bytes 8..15, both little-endian (the paper, §2).
    this.k0l = le32(key, 0) | 0;
    this.k0h = le32(key, 4) | 0;
    this.k1l = le32(key, 8) | 0;
    this.k1h = le32(key, 12) | 0;
    this.hi = 0;
    this.lo = 0;
    this.v0h = 0;
    this.v0l = 0;
    this.v1h = 0;
    this.v1l = 0;
    this.v2h = 0;
    this.v2l = 0;
    this.v3h = 0;
    this.v3l = 0;
    this.pending = 0;
    this.hasPending = false;
    this.length = 0;
  }

  /** Start a new message. */
  begin(): this {
    // Initialisation: v0 = k0 ^ "somepseu", v1 = k1 ^ "dorandom", v2 = k0 ^ "lygenera", v3 = k1 ^ "tedbytes".
    this.v0h = this.k0h ^ 0x736f6d65;
    this.v0l = this.k0l ^ 0x70736575;
    this.v1h = this.k1h ^ 0x646f7261;
    this.v1l = this.k1l ^ 0x6e646f6d;
    this.v2h = this.k0h ^ 0x6c796765;
    this.v2l = this.k0l ^ 0x6e657261;
    this.v3h = this.k1h ^ 0x74656462;
    this.v3l = this.k1l ^ 0x79746573;
    this.pending = 0;
    this.hasPending = false;
    this.length = 0;
    return this;
  }

  /** Append one u32 as 4 little-endian bytes. */
  word(w: number): this {
    this.length += 4;
    if (this.hasPending) {
      this.hasPending = false;
      this.compress(w | 0, this.pending);
    } else {
      this.pending = w | 0;
      this.hasPending = true;
    }
    return this;
  }

  /** Finish the message; the 64-bit result is in hi/lo, and lo is returned. */
  finish(): number {
    // Last block: the remaining bytes, with the message length mod 256 in the top byte.
    const top = (this.length & 0xff) << 24;
    if (this.hasPending) this.compress(top, this.pending);
    else this.compress(top, 0);
    return this.finalize();
  }

  /** SipHash-2-4 of `len` bytes of `buf` from `off`; result in hi/lo, lo returned. */
  hashBytes(buf: Uint8Array, off: number, len: number): number {
    this.begin();
    const end = off + len;
    let p = off;
    for (; p + 8 <= end; p += 8) this.compress(le32(buf, p + 4) | 0, le32(buf, p) | 0);
    // Tail: up to 7 bytes little-endian, then the length byte at bit 56.
    let ml = 0;
    let mh = (len & 0xff) << 24;
    const rest = end - p;
    for (let i = 0; i < rest; i++) {
      const b = buf[p + i]!;
      if (i < 4) ml |= b << (8 * i);
      else mh |= b << (8 * (i - 4));
    }
    this.compress(mh | 0, ml | 0);
    return this.finalize();
  }

  /** One message block m = (mh, ml): v3 ^= m; c = 2 SipRounds; v0 ^= m. */
  private compress(mh: number, ml: number): void {
    this.v3h ^= mh;
    this.v3l ^= ml;
    this.round();
    this.round();
    this.v0h ^= mh;
    this.v0l ^= ml;
  }

  /** v2 ^= 0xff; d = 4 SipRounds; result = v0 ^ v1 ^ v2 ^ v3. */
  private finalize(): number {
    this.v2l ^= 0xff;
    this.round();
    this.round();
    this.round();
    this.round();
    this.hi = (this.v0h ^ this.v1h ^ this.v2h ^ this.v3h) >>> 0;
    this.lo = (this.v0l ^ this.v1l ^ this.v2l ^ this.v3l) >>> 0;
    return this.lo;
  }

  /**
   * One SipRound (the paper, §2, Figure 2.1) on 32-bit halves. Every lane is kept as an int32
   * (| 0, never >>> 0): on 64-bit V8 those are small integers, where a u32 above 2³¹ stored in a
   * field is a heap number, allocated at every store (measured: the largest allocation per
   * connection, ISNs and timestamp offsets, before it was changed).
   */
  private round(): void {
    let v0h = this.v0h;
    let v0l = this.v0l;
    let v1h = this.v1h;
    let v1l = this.v1l;
    let v2h = this.v2h;
    let v2l = this.v2l;
    let v3h = this.v3h;
    let v3l = this.v3l;
    let l: number;
    let t: number;

    // 64-bit add on halves: the carry out of the low half is bit 31 of (a&b) | ((a|b) & ~sum).
    // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
    l = (v0l + v1l) | 0;
    v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~l)) >>> 31)) | 0;
    v0l = l;
    t = v1h;
    v1h = ((v1h << 13) | (v1l >>> 19)) ^ v0h;
    v1l = ((v1l << 13) | (t >>> 19)) ^ v0l;
    t = v0h;
    v0h = v0l;
    v0l = t;

    // v2 += v3; v3 <<<= 16; v3 ^= v2
    l = (v2l + v3l) | 0;
    v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~l)) >>> 31)) | 0;
    v2l = l;
    t = v3h;
    v3h = ((v3h << 16) | (v3l >>> 16)) ^ v2h;
    v3l = ((v3l << 16) | (t >>> 16)) ^ v2l;

    // v0 += v3; v3 <<<= 21; v3 ^= v0
    l = (v0l + v3l) | 0;
    v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~l)) >>> 31)) | 0;
    v0l = l;
    t = v3h;
    v3h = ((v3h << 21) | (v3l >>> 11)) ^ v0h;
    v3l = ((v3l << 21) | (t >>> 11)) ^ v0l;

    // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
    l = (v2l + v1l) | 0;
    v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~l)) >>> 31)) | 0;
    v2l = l;
    t = v1h;
    v1h = ((v1h << 17) | (v1l >>> 15)) ^ v2h;
    v1l = ((v1l << 17) | (t >>> 15)) ^ v2l;
    t = v2h;
    v2h = v2l;
    v2l = t;

    this.v0h = v0h;
    this.v0l = v0l;
    this.v1h = v1h;
    this.v1l = v1l;
    this.v2h = v2h;
    this.v2l = v2l;
    this.v3h = v3h;
    this.v3l = v3l;
  }
}

function le32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

/**
 * Start a hash over a connection's 4-tuple, prefixed by a domain word so that different uses of
 * one key (ISN, timestamp offset, SYN cookie) never produce related values. Message words:
 * domain, family, local[0..3], remote[0..3], localPort << 16 | remotePort. For IPv4 only word 3
 * of each address is used (words 0–2 hash as zero), whatever the caller's buffer holds there.
 * The caller may append more words, then calls `finish()`.
 */
export function sipTuple(
  h: SipHash24,
  domain: number,
  family: 4 | 6,
  localAddr: Uint32Array,
  localPort: number,
  remoteAddr: Uint32Array,
  remotePort: number,
): SipHash24 {
  h.begin().word(domain).word(family);
  if (family === 6) {
    h.word(localAddr[0]!).word(localAddr[1]!).word(localAddr[2]!).word(localAddr[3]!);
    h.word(remoteAddr[0]!).word(remoteAddr[1]!).word(remoteAddr[2]!).word(remoteAddr[3]!);
  } else {
    h.word(0).word(0).word(0).word(localAddr[3]!);
    h.word(0).word(0).word(0).word(remoteAddr[3]!);
  }
  return h.word((((localPort & 0xffff) << 16) | (remotePort & 0xffff)) >>> 0);
}

/**
 * A 16-byte key for another use of `secret`: SipHash-2-4 of two domain-tagged words, so a key
 * handed to a cheaper hash (the flow table's SipHash-1-3) is unrelated to the secret behind ISNs
 * and SYN cookies, and learning it (were SipHash-1-3 ever weakened) tells nothing of theirs.
 */
export function deriveKey(secret: Uint8Array, domain: number): Uint8Array {
  const h = new SipHash24(secret);
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 2; i++) {
    h.begin().word(domain).word(i).finish();
    view.setUint32(8 * i, h.lo, true);
    view.setUint32(8 * i + 4, h.hi, true);
  }
  return out;
}

/**
 * Keyed SipHash-c-d of a message of u32 words (each 4 little-endian bytes, as `word()` above),
 * written with locals only: the flow table calls it for every packet, so no object state is
 * written back per round and nothing is allocated. The message is `words[0..count)`; the result
 * is the low 32 bits (the high half is not needed by the caller). `c`/`d` are the compression and
 * finalization rounds: 1/3 for the flow table (SipHash-1-3, as Linux's hsiphash and Rust's
 * HashMap use for tables), 2/4 for the paper's SipHash-2-4 (tests check it against SipHash24).
 */
export function sipWords(
  k0h: number,
  k0l: number,
  k1h: number,
  k1l: number,
  words: Uint32Array,
  count: number,
  c: number,
  d: number,
): number {
  // All lanes as int32 (| 0, never >>> 0): V8 keeps them in registers as small integers, where
  // u32 values above 2³¹ would be doubles (measured: half the cost of the u32 version).
  let v0h = k0h ^ 0x736f6d65;
  let v0l = k0l ^ 0x70736575;
  let v1h = k1h ^ 0x646f7261;
  let v1l = k1l ^ 0x6e646f6d;
  let v2h = k0h ^ 0x6c796765;
  let v2l = k0l ^ 0x6e657261;
  let v3h = k1h ^ 0x74656462;
  let v3l = k1l ^ 0x79746573;
  const full = count >>> 1;
  // Blocks 0..full-1 are whole 8-byte blocks; block `full` is the last (an odd word, then the
  // length byte at bit 56); block full+1 is finalization (v2 ^= 0xff, d rounds).
  for (let b = 0; b <= full + 1; b++) {
    let mh = 0;
    let ml = 0;
    let rounds = c;
    if (b < full) {
      ml = words[2 * b]! | 0;
      mh = words[2 * b + 1]! | 0;
    } else if (b === full) {
      ml = count & 1 ? words[count - 1]! | 0 : 0;
      mh = ((4 * count) & 0xff) << 24;
    } else {
      v2l ^= 0xff;
      rounds = d;
    }
    v3h ^= mh;
    v3l ^= ml;
    for (let r = 0; r < rounds; r++) {
      let l: number;
      let t: number;
      // 64-bit add on halves: the carry out of the low half is bit 31 of (a&b) | ((a|b) & ~sum).
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      l = (v0l + v1l) | 0;
      v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~l)) >>> 31)) | 0;
      v0l = l;
      t = v1h;
      v1h = ((v1h << 13) | (v1l >>> 19)) ^ v0h;
      v1l = ((v1l << 13) | (t >>> 19)) ^ v0l;
      t = v0h;
      v0h = v0l;
      v0l = t;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      l = (v2l + v3l) | 0;
      v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~l)) >>> 31)) | 0;
      v2l = l;
      t = v3h;
      v3h = ((v3h << 16) | (v3l >>> 16)) ^ v2h;
      v3l = ((v3l << 16) | (t >>> 16)) ^ v2l;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      l = (v0l + v3l) | 0;
      v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~l)) >>> 31)) | 0;
      v0l = l;
      t = v3h;
      v3h = ((v3h << 21) | (v3l >>> 11)) ^ v0h;
      v3l = ((v3l << 21) | (t >>> 11)) ^ v0l;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      l = (v2l + v1l) | 0;
      v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~l)) >>> 31)) | 0;
      v2l = l;
      t = v1h;
      v1h = ((v1h << 17) | (v1l >>> 15)) ^ v2h;
      v1l = ((v1l << 17) | (t >>> 15)) ^ v2l;
      t = v2h;
      v2h = v2l;
      v2l = t;
    }
    v0h ^= mh;
    v0l ^= ml;
  }
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}

/** The 16-byte key as the four u32 halves sipWords takes: [k0h, k0l, k1h, k1l]. */
export function sipKeyWords(key: Uint8Array): Uint32Array {
  if (key.length !== 16) throw new SipHashKeyError(key.length);
  return Uint32Array.of(le32(key, 4), le32(key, 0), le32(key, 12), le32(key, 8));
}
