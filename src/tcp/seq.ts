/**
 * Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4). This is the only module that does
 * arithmetic or comparisons on sequence numbers: everything else calls these helpers, so that
 * wrap-around is handled in exactly one place.
 *
 * Values are unsigned 32-bit integers held in plain numbers (0 ≤ v < 2^32). Comparisons use the
 * sign of the 32-bit difference, which is correct as long as the two values are within 2^31 of
 * each other, as RFC 9293 assumes for every window.
 */

/** a + n (mod 2^32). `n` may be negative. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** a - b as a signed distance (−2^31 ≤ result < 2^31). */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a < b in sequence space. */
export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** a ≤ b in sequence space. */
export function seqLeq(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

/** a > b in sequence space. */
export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** a ≥ b in sequence space. */
export function seqGeq(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

/** The larger of two sequence numbers. */
export function seqMax(a: number, b: number): number {
  return ((a - b) | 0) >= 0 ? a : b;
}

/**
 * start ≤ v < start + len, with len ≥ 0 (the RFC 9293 §3.10.7.4 window test).
 * Unsigned distance from `start` avoids any comparison across the wrap.
 */
export function seqInWindow(v: number, start: number, len: number): boolean {
  return ((v - start) >>> 0) < len;
}

