/**
 * SYN cookies (RFC 4987 §3.6): answer a SYN without keeping state, by encoding what the handshake
 * needs into our ISS and checking it when the final ACK comes back (ACK − 1 = our cookie).
 *
 * Cookie layout, before masking (32 bits):
 *
 *     31..29  tick mod 8       coarse time counter (default 64-s ticks)
 *     28..26  MSS table index  the peer's MSS, rounded down to SYN_COOKIE_MSS_TABLE
 *     25..0   MAC              26 bits of SipHash-2-4(secret; tuple, client ISN, full tick, index)
 *
 * The whole word is then XORed with a second keyed hash of (tuple, client ISN), so the ISS looks
 * random and leaks neither the clock nor the MSS (RFC 6528's concern for ISNs). The decoder
 * removes the pad, recovers the full tick from its low 3 bits and the current time, and checks
 * the MAC, which covers the FULL tick: a cookie cannot be replayed once its tick ages out.
 * Guessing a valid cookie for a given tuple and client ISN succeeds with probability ≈ 2^-26.
 *
 * What does not fit in 32 bits is lost, as in Linux: window scale and SACK-permitted survive only
 * when both sides use timestamps, by riding in the low bits of our TSval (`encodeTsOptions`) and
 * coming back in the peer's TSecr.
 *
 * Times are milliseconds of the injected clock. No allocation per cookie.
 */
import { randomBytes } from 'node:crypto';
import { SipHash24, sipTuple } from './siphash.js';
import { seqGt } from './seq.js';
import { SynCookieConfigError } from '../errors.js';

export { SynCookieConfigError };

/**
 * MSS values a cookie can carry; the peer's MSS is rounded DOWN to one of them so we never send
 * segments larger than it asked for. 536 and 1220 are the RFC 9293 §3.7.1 IPv4/IPv6 defaults,
 * 1300–1460 the common Internet MSSs (tunnels, PPPoE, Ethernet), 8940/8960 jumbo frames (IPv6/IPv4),
 * and 64 a floor for exotic tiny MSSs.
 */
export const SYN_COOKIE_MSS_TABLE: readonly number[] = [64, 536, 1220, 1300, 1440, 1460, 8940, 8960];

const TICK_BITS = 3;
const TICK_MOD = 1 << TICK_BITS;
const MAC_BITS = 26;
const MAC_MASK = (1 << MAC_BITS) - 1;
const INDEX_MASK = 7;

/** Domain words for the two hashes: "SCP1" (pad), "SCM1" (MAC). */
const PAD_DOMAIN = 0x53435031;
const MAC_DOMAIN = 0x53434d31;

/** Low TSval bits carrying options: bits 0–3 wscale (15 = none), bit 4 SACK, bit 5 marker. */
const TS_OPT_BITS = 6;
const TS_OPT_MASK = (1 << TS_OPT_BITS) - 1;
const TS_WSCALE_NONE = 0xf;
const TS_SACK = 0x10;
const TS_MARKER = 0x20;
/** RFC 7323 §2.3: shift counts above 14 are treated as 14. */
const MAX_WSCALE = 14;

export interface SynCookieOptions {
  /** Length of one time tick in ms (default 64 000, as Linux). */
  tickMs?: number;
  /**
   * A cookie is accepted while its age in whole ticks is below this (default 2: between one and
   * two ticks of validity). At most 7, since the cookie carries the tick modulo 8.
   */
  maxAgeTicks?: number;
}


/** The table index for an MSS: the largest entry ≤ mss, or 0 when mss is below every entry. */
export function synCookieMssIndex(mss: number): number {
  for (let i = SYN_COOKIE_MSS_TABLE.length - 1; i > 0; i--) {
    if (mss >= SYN_COOKIE_MSS_TABLE[i]!) return i;
  }
  return 0;
}

export class SynCookies {
  readonly tickMs: number;
  readonly maxAgeTicks: number;
  private readonly hash: SipHash24;

  /** `secret`: 16 bytes; by default 16 random bytes from the system CSPRNG. */
  constructor(secret: Uint8Array = randomBytes(16), opts?: SynCookieOptions) {
    const tickMs = opts?.tickMs ?? 64_000;
    const maxAgeTicks = opts?.maxAgeTicks ?? 2;
    if (!(tickMs > 0) || !Number.isFinite(tickMs)) {
      throw new SynCookieConfigError(`tickMs must be a positive finite number, got ${tickMs}`);
    }
    if (!Number.isInteger(maxAgeTicks) || maxAgeTicks < 1 || maxAgeTicks >= TICK_MOD) {
      throw new SynCookieConfigError(`maxAgeTicks must be an integer in [1, ${TICK_MOD - 1}], got ${maxAgeTicks}`);
    }
    this.tickMs = tickMs;
    this.maxAgeTicks = maxAgeTicks;
    this.hash = new SipHash24(secret);
  }

  /** The MSS a cookie made for a peer MSS of `mss` will carry. */
  static roundMss(mss: number): number {
    return SYN_COOKIE_MSS_TABLE[synCookieMssIndex(mss)]!;
  }

  /** Our ISS for a SYN answered statelessly (RFC 4987 §3.6). */
  encode(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
    clientIsn: number,
    mss: number,
    nowMs: number,
  ): number {
    const tick = Math.floor(nowMs / this.tickMs) >>> 0;
    const index = synCookieMssIndex(mss);
    const mac = this.mac(family, localAddr, localPort, remoteAddr, remotePort, clientIsn, tick, index);
    const raw = (((tick & (TICK_MOD - 1)) << 29) | (index << MAC_BITS) | mac) >>> 0;
    return (raw ^ this.pad(family, localAddr, localPort, remoteAddr, remotePort, clientIsn)) >>> 0;
  }

  /**
   * Check the cookie of a handshake-completing ACK (`cookie` = ACK − 1, `clientIsn` = SEQ − 1).
   * Returns the MSS it carries, or -1 if it was not made by this instance for this tuple and
   * client ISN, or is `maxAgeTicks` ticks old or older (or from the future).
   */
  decode(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
    clientIsn: number,
    cookie: number,
    nowMs: number,
  ): number {
    const raw = ((cookie ^ this.pad(family, localAddr, localPort, remoteAddr, remotePort, clientIsn)) >>> 0);
    const nowTick = Math.floor(nowMs / this.tickMs);
    const age = (nowTick - (raw >>> 29)) & (TICK_MOD - 1);
    if (age >= this.maxAgeTicks) return -1;
    const tick = nowTick - age;
    if (tick < 0) return -1;
    const index = (raw >>> MAC_BITS) & INDEX_MASK;
    const mac = this.mac(family, localAddr, localPort, remoteAddr, remotePort, clientIsn, tick >>> 0, index);
    if (mac !== (raw & MAC_MASK)) return -1;
    return SYN_COOKIE_MSS_TABLE[index]!;
  }

  /**
   * Our TSval for a cookie SYN-ACK when the SYN carried timestamps: `nowTsVal` with its low 6 bits
   * replaced by the options (wscale, -1 for none; SACK-permitted), lowered by 64 if that put it
   * ahead of the clock so our TSvals never run backwards later (RFC 7323 §5.4: the timestamp clock is monotonic).
   */
  encodeTsOptions(nowTsVal: number, wscale: number, sackPermitted: boolean): number {
    let opts = TS_MARKER | (sackPermitted ? TS_SACK : 0);
    opts |= wscale < 0 ? TS_WSCALE_NONE : wscale > MAX_WSCALE ? MAX_WSCALE : wscale;
    let ts = (((nowTsVal & ~TS_OPT_MASK) | opts) >>> 0);
    if (seqGt(ts, nowTsVal >>> 0)) ts = (ts - (1 << TS_OPT_BITS)) >>> 0;
    return ts;
  }

  /**
   * The options carried by `encodeTsOptions`, read from the TSecr of the handshake-completing ACK;
   * null when the echoed value does not carry our marker (not one of our cookie TSvals).
   */
  decodeTsOptions(tsEcr: number): { wscale: number; sackPermitted: boolean } | null {
    if ((tsEcr & TS_MARKER) === 0) return null;
    const w = tsEcr & TS_WSCALE_NONE;
    return { wscale: w === TS_WSCALE_NONE ? -1 : w, sackPermitted: (tsEcr & TS_SACK) !== 0 };
  }

  private pad(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
    clientIsn: number,
  ): number {
    return sipTuple(this.hash, PAD_DOMAIN, family, localAddr, localPort, remoteAddr, remotePort)
      .word(clientIsn)
      .finish();
  }

  private mac(
    family: 4 | 6,
    localAddr: Uint32Array,
    localPort: number,
    remoteAddr: Uint32Array,
    remotePort: number,
    clientIsn: number,
    tick: number,
    index: number,
  ): number {
    return (
      sipTuple(this.hash, MAC_DOMAIN, family, localAddr, localPort, remoteAddr, remotePort)
        .word(clientIsn)
        .word(tick)
        .word(index)
        .finish() & MAC_MASK
    );
  }
}
