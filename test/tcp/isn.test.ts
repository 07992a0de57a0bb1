import { describe, it, expect } from 'vitest';
import { IsnGenerator, ISN_TICKS_PER_MS } from '../../src/tcp/isn.js';
import { SipHashKeyError } from '../../src/tcp/siphash.js';

const SECRET = Uint8Array.from({ length: 16 }, (_, i) => i);
const v4 = (a: number): Uint32Array => new Uint32Array([0, 0, 0, a >>> 0]);
const LOCAL = v4(0xc6120001); // 198.18.0.1
const REMOTE = v4(0x0a000002); // 10.0.0.2

describe('IsnGenerator (RFC 6528)', () => {
  it('isn_is_keyed_hash_of_the_tuple_at_time_zero (golden value)', () => {
    // SipHash-2-4, key 00..0f, of the LE words "ISN1", 4, 0,0,0,local, 0,0,0,remote, 443<<16|51000,
    // computed independently with `openssl mac ... SipHash`: low half 0xfee88f14.
    const g = new IsnGenerator(SECRET);
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, 0)).toBe(0xfee88f14);
  });

  it('ts_offset_is_the_same_hash_under_its_own_domain (golden value)', () => {
    const g = new IsnGenerator(SECRET);
    expect(g.tsOffset(4, LOCAL, 443, REMOTE, 51000)).toBe(0x2f7fd5e7);
  });

  it('same_tuple_and_time_give_the_same_isn', () => {
    const g = new IsnGenerator(SECRET);
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, 1234.5)).toBe(g.isn(4, LOCAL, 443, REMOTE, 51000, 1234.5));
  });

  it('m_advances_every_4_microseconds (§3)', () => {
    const g = new IsnGenerator(SECRET);
    const base = g.isn(4, LOCAL, 443, REMOTE, 51000, 1000);
    expect(ISN_TICKS_PER_MS).toBe(250);
    // Binary-exact offsets: 1/256 ms = 3.9 µs (same tick), 1/128 ms = 7.8 µs (next tick).
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, 1000 + 1 / 256)).toBe(base);
    expect((g.isn(4, LOCAL, 443, REMOTE, 51000, 1000 + 1 / 128) - base) >>> 0).toBe(1);
    expect((g.isn(4, LOCAL, 443, REMOTE, 51000, 1001) - base) >>> 0).toBe(250);
  });

  it('isn_wraps_modulo_2_32', () => {
    const g = new IsnGenerator(SECRET);
    const f = g.isn(4, LOCAL, 443, REMOTE, 51000, 0);
    // 2^32 ticks later the timer has wrapped once: same ISN.
    const wrapMs = 2 ** 32 / ISN_TICKS_PER_MS;
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, wrapMs)).toBe(f);
    const v = g.isn(4, LOCAL, 443, REMOTE, 51000, wrapMs - 1 / 256);
    expect(v).toBe((f - 1) >>> 0);
    expect(v).toBeGreaterThanOrEqual(0);
    expect(v).toBeLessThan(2 ** 32);
  });

  it('different_tuples_get_unrelated_isns', () => {
    const g = new IsnGenerator(SECRET);
    const a = g.isn(4, LOCAL, 443, REMOTE, 51000, 0);
    expect(g.isn(4, LOCAL, 443, REMOTE, 51001, 0)).not.toBe(a);
    expect(g.isn(4, LOCAL, 444, REMOTE, 51000, 0)).not.toBe(a);
    expect(g.isn(4, LOCAL, 443, v4(0x0a000003), 51000, 0)).not.toBe(a);
    expect(g.isn(4, REMOTE, 51000, LOCAL, 443, 0)).not.toBe(a); // reversed direction
  });

  it('ipv4_uses_only_word_3', () => {
    const g = new IsnGenerator(SECRET);
    const dirty = new Uint32Array([0xdead, 0xbeef, 0xffff, 0xc6120001]);
    expect(g.isn(4, dirty, 443, REMOTE, 51000, 0)).toBe(g.isn(4, LOCAL, 443, REMOTE, 51000, 0));
  });

  it('ipv6_uses_all_words_and_differs_from_ipv4', () => {
    const g = new IsnGenerator(SECRET);
    const a6 = new Uint32Array([0x20010db8, 0, 0, 1]);
    const b6 = new Uint32Array([0x20010db8, 0, 0, 2]);
    const c6 = new Uint32Array([0x20010db9, 0, 0, 1]);
    const a = g.isn(6, a6, 443, b6, 51000, 0);
    expect(g.isn(6, c6, 443, b6, 51000, 0)).not.toBe(a);
    expect(g.isn(4, v4(1), 443, v4(2), 51000, 0)).not.toBe(g.isn(6, v4(1), 443, v4(2), 51000, 0));
  });

  it('ts_offset_is_stable_per_tuple_and_independent_of_isn', () => {
    const g = new IsnGenerator(SECRET);
    const t = g.tsOffset(4, LOCAL, 443, REMOTE, 51000);
    expect(g.tsOffset(4, LOCAL, 443, REMOTE, 51000)).toBe(t);
    expect(g.tsOffset(4, LOCAL, 443, REMOTE, 51001)).not.toBe(t);
    expect(t).not.toBe(g.isn(4, LOCAL, 443, REMOTE, 51000, 0));
  });

  it('default_secret_is_random_per_generator', () => {
    const a = new IsnGenerator().isn(4, LOCAL, 443, REMOTE, 51000, 0);
    const b = new IsnGenerator().isn(4, LOCAL, 443, REMOTE, 51000, 0);
    // Equal only with probability 2^-32.
    expect(a).not.toBe(b);
  });

  it('different_secrets_give_different_isns', () => {
    const other = SECRET.slice();
    other[0] = 0xff;
    expect(new IsnGenerator(other).isn(4, LOCAL, 443, REMOTE, 51000, 0)).not.toBe(
      new IsnGenerator(SECRET).isn(4, LOCAL, 443, REMOTE, 51000, 0),
    );
  });

  it('secret_of_wrong_length_is_rejected', () => {
    expect(() => new IsnGenerator(new Uint8Array(8))).toThrow(SipHashKeyError);
  });
});
