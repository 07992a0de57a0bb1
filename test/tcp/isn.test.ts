import { describe, it, expect } from 'vitest';
import { IsnGenerator, ISN_TICKS_PER_MS } from '../../src/tcp/isn.js';
import { SipHashKeyError } from '../../src/tcp/siphash.js';

const SECRET = Uint8Array.from({ length: 16 }, (_, i) => i);
const v4 = (a: number): Uint32Array => new Uint32Array([0, 0, 0, a >>> 0]);
const LOCAL = v4(0xc6120001); // 198.18.0.1
const REMOTE = v4(0x0a000002); // 10.0.0.2

describe('IsnGenerator (RFC 6528)', () => {
  it('isn is keyed hash of the tuple at time zero (golden value)', () => {
    // SipHash-2-4, key 00..0f, of the LE words "ISN1", 4, 0,0,0,local, 0,0,0,remote, 443<<16|51000,
    // computed independently with `openssl mac ... SipHash`: low half 0xfee88f14.
    const g = new IsnGenerator(SECRET);
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, 0)).toBe(0xfee88f14);
  });

  it('ts offset is the high half of the hash whose low half is the isn (golden value)', () => {
    // The same message as above; `openssl mac -macopt hexkey:000102030405060708090a0b0c0d0e0f
    // -macopt size:8 SipHash` gives the bytes 14 8f e8 fe 37 f1 c3 75: high half 0x75c3f137.
    // (Was a second hash under the domain word "TSO1": one SipHash per connection is enough.)
    const g = new IsnGenerator(SECRET);
    expect(g.tsOffset(4, LOCAL, 443, REMOTE, 51000)).toBe(0x75c3f137);
  });

  it('isn leaves the same tuple\'s ts offset behind, and hashes once for both', () => {
    const g = new IsnGenerator(SECRET);
    const hash = (g as unknown as { hash: { begin(): unknown } }).hash;
    let begins = 0;
    const begin = hash.begin.bind(hash);
    hash.begin = () => {
      begins++;
      return begin();
    };
    const iss = g.isn(4, LOCAL, 443, REMOTE, 51000, 1000);
    expect(begins).toBe(1);
    expect(iss).toBe((0xfee88f14 + 250_000) >>> 0);
    expect(g.lastTsOffset).toBe(0x75c3f137);
    expect(g.lastTsOffset).toBe(g.tsOffset(4, LOCAL, 443, REMOTE, 51000));
  });

  it('same tuple and time give the same isn', () => {
    const g = new IsnGenerator(SECRET);
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, 1234.5)).toBe(g.isn(4, LOCAL, 443, REMOTE, 51000, 1234.5));
  });

  it('m advances every 4 microseconds (§3)', () => {
    const g = new IsnGenerator(SECRET);
    const base = g.isn(4, LOCAL, 443, REMOTE, 51000, 1000);
    expect(ISN_TICKS_PER_MS).toBe(250);
    // Binary-exact offsets: 1/256 ms = 3.9 µs (same tick), 1/128 ms = 7.8 µs (next tick).
    expect(g.isn(4, LOCAL, 443, REMOTE, 51000, 1000 + 1 / 256)).toBe(base);
    expect((g.isn(4, LOCAL, 443, REMOTE, 51000, 1000 + 1 / 128) - base) >>> 0).toBe(1);
    expect((g.isn(4, LOCAL, 443, REMOTE, 51000, 1001) - base) >>> 0).toBe(250);
  });

  it('isn wraps modulo 2^32', () => {
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

  it('different tuples get unrelated isns', () => {
    const g = new IsnGenerator(SECRET);
    const a = g.isn(4, LOCAL, 443, REMOTE, 51000, 0);
    expect(g.isn(4, LOCAL, 443, REMOTE, 51001, 0)).not.toBe(a);
    expect(g.isn(4, LOCAL, 444, REMOTE, 51000, 0)).not.toBe(a);
    expect(g.isn(4, LOCAL, 443, v4(0x0a000003), 51000, 0)).not.toBe(a);
    expect(g.isn(4, REMOTE, 51000, LOCAL, 443, 0)).not.toBe(a); // reversed direction
  });

  it('ipv4 uses only word 3', () => {
    const g = new IsnGenerator(SECRET);
    const dirty = new Uint32Array([0xdead, 0xbeef, 0xffff, 0xc6120001]);
    expect(g.isn(4, dirty, 443, REMOTE, 51000, 0)).toBe(g.isn(4, LOCAL, 443, REMOTE, 51000, 0));
  });

  it('ipv6 uses all words and differs from ipv4', () => {
    const g = new IsnGenerator(SECRET);
    const a6 = new Uint32Array([0x20010db8, 0, 0, 1]);
    const b6 = new Uint32Array([0x20010db8, 0, 0, 2]);
    const c6 = new Uint32Array([0x20010db9, 0, 0, 1]);
    const a = g.isn(6, a6, 443, b6, 51000, 0);
    expect(g.isn(6, c6, 443, b6, 51000, 0)).not.toBe(a);
    expect(g.isn(4, v4(1), 443, v4(2), 51000, 0)).not.toBe(g.isn(6, v4(1), 443, v4(2), 51000, 0));
  });

  it('ts offset is stable per tuple and independent of isn', () => {
    const g = new IsnGenerator(SECRET);
    const t = g.tsOffset(4, LOCAL, 443, REMOTE, 51000);
    expect(g.tsOffset(4, LOCAL, 443, REMOTE, 51000)).toBe(t);
    expect(g.tsOffset(4, LOCAL, 443, REMOTE, 51001)).not.toBe(t);
    expect(t).not.toBe(g.isn(4, LOCAL, 443, REMOTE, 51000, 0));
  });

  it('default secret is random per generator', () => {
    const a = new IsnGenerator().isn(4, LOCAL, 443, REMOTE, 51000, 0);
    const b = new IsnGenerator().isn(4, LOCAL, 443, REMOTE, 51000, 0);
    // Equal only with probability 2^-32.
    expect(a).not.toBe(b);
  });

  it('different secrets give different isns', () => {
    const other = SECRET.slice();
    other[0] = 0xff;
    expect(new IsnGenerator(other).isn(4, LOCAL, 443, REMOTE, 51000, 0)).not.toBe(
      new IsnGenerator(SECRET).isn(4, LOCAL, 443, REMOTE, 51000, 0),
    );
  });

  it('secret of wrong length is rejected', () => {
    expect(() => new IsnGenerator(new Uint8Array(8))).toThrow(SipHashKeyError);
  });
});
