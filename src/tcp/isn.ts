/**
 * Initial sequence numbers (RFC 6528) and per-connection timestamp offsets (RFC 7323).
 *
 * RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a
 * timer ticking every 4 microseconds and F a keyed pseudo-random function. The timer keeps ISNs
 * of successive incarnations of one 4-tuple increasing (as RFC 9293 §3.4.1 wants), while F makes
 * them unpredictable to anyone not on the path. F here is SipHash-2-4 (siphash.ts) with a
 * 128-bit secret drawn once per generator (RFC 6528 §3: at least 128 bits, from a good source).
 *
 * The timestamp offset (RFC 7323 §5.4 and §7 recommend a random, per-connection offset added
 * to TSval, so the timestamp clock leaks neither uptime nor a host-wide counter) is the other half
 * of the same 64-bit hash: F is its low 32 bits, the offset its high 32 bits. Both stay keyed and
 * stable for a 4-tuple (PAWS keeps working across incarnations), and one half tells nothing of the
 * other (SipHash is a PRF: its output bits are independent to anyone without the key). One hash
 * per connection instead of two (~0.3-0.5 µs each in JavaScript, BENCHMARKS.md "Cutting the CPU
 * of a short connection, round 3").
 *
 * `nowMs` is the injected clock; nothing here reads the time. No allocation per call.
 */
import { randomBytes } from 'node:crypto';
import { SipHash24, sipTuple } from './siphash.js';

/** The domain word separating this use of the secret from the others (SYN cookies, flow keys): "ISN1". */
export const ISN_DOMAIN = 0x49534e31;

/** RFC 6528 §3: M ticks every 4 µs, i.e. 250 ticks per millisecond. */
export const ISN_TICKS_PER_MS = 250;

export class IsnGenerator {
  private readonly hash: SipHash24;
  /** The timestamp offset of the tuple the last isn() call hashed (the hash's high half). */
  lastTsOffset = 0;

  /** `secret`: 16 bytes; by default 16 random bytes from the system CSPRNG. */
  constructor(secret: Uint8Array = randomBytes(16)) {
    this.hash = new SipHash24(secret);
  }

  /**
   * RFC 6528 §3 ISN for a connection (addresses are 4 u32 words each, IPv4 in word 3). The same
   * tuple's timestamp offset is left in `lastTsOffset`: what `tsOffset()` would return.
   */
  isn(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
    nowMs: number,
  ): number {
    const h = this.hash;
    const f = sipTuple(h, ISN_DOMAIN, family, localAddr, localPort, remoteAddr, remotePort).finish();
    this.lastTsOffset = h.hi;
    // M = the 4-µs timer mod 2^32 (ToUint32 reduces modulo 2^32), then (M + F) mod 2^32.
    const m = Math.floor(nowMs * ISN_TICKS_PER_MS) >>> 0;
    return (m + f) >>> 0;
  }

  /**
   * A per-connection offset to add to our TSval clock (RFC 7323 §5.4, §7): the high half of the
   * hash isn() takes its F from. For a SYN cookie's SYN-ACK, which has no ISN of this kind, and a
   * connection rebuilt from a cookie: the same value its clock will carry later.
   */
  tsOffset(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
  ): number {
    const h = this.hash;
    sipTuple(h, ISN_DOMAIN, family, localAddr, localPort, remoteAddr, remotePort).finish();
    return h.hi;
  }
}
