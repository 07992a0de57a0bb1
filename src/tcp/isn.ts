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
 * to TSval, so the timestamp clock leaks neither uptime nor a host-wide counter) is the same hash
 * under another domain word: stable for a 4-tuple, so PAWS keeps working across incarnations.
 *
 * `nowMs` is the injected clock; nothing here reads the time. No allocation per call.
 */
import { randomBytes } from 'node:crypto';
import { SipHash24, sipTuple } from './siphash.js';

/** Domain words separating the uses of the secret: "ISN1", "TSO1". */
export const ISN_DOMAIN = 0x49534e31;
export const TS_OFFSET_DOMAIN = 0x54534f31;

/** RFC 6528 §3: M ticks every 4 µs, i.e. 250 ticks per millisecond. */
export const ISN_TICKS_PER_MS = 250;

export class IsnGenerator {
  private readonly hash: SipHash24;

  /** `secret`: 16 bytes; by default 16 random bytes from the system CSPRNG. */
  constructor(secret: Uint8Array = randomBytes(16)) {
    this.hash = new SipHash24(secret);
  }

  /** RFC 6528 §3 ISN for a connection (addresses are 4 u32 words each, IPv4 in word 3). */
  isn(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
    nowMs: number,
  ): number {
    const f = sipTuple(this.hash, ISN_DOMAIN, family, localAddr, localPort, remoteAddr, remotePort).finish();
    // M = the 4-µs timer mod 2^32 (ToUint32 reduces modulo 2^32), then (M + F) mod 2^32.
    const m = Math.floor(nowMs * ISN_TICKS_PER_MS) >>> 0;
    return (m + f) >>> 0;
  }

  /** A per-connection offset to add to our TSval clock (RFC 7323 §5.4, §7). */
  tsOffset(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
  ): number {
    return sipTuple(this.hash, TS_OFFSET_DOMAIN, family, localAddr, localPort, remoteAddr, remotePort).finish();
  }
}
