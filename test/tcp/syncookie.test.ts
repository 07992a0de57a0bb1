import { describe, it, expect } from 'vitest';
import {
  SynCookies,
  SynCookieConfigError,
  SYN_COOKIE_MSS_TABLE,
  synCookieMssIndex,
} from '../../src/tcp/syncookie.js';
import { seqLeq, seqDiff } from '../../src/tcp/seq.js';

const SECRET = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const TICK = 64_000;
const v4 = (a: number): Uint32Array => new Uint32Array([0, 0, 0, a >>> 0]);
const LOCAL = v4(0xc6120001); // 198.18.0.1, the address the app dialled
const REMOTE = v4(0x0a000002); // 10.0.0.2, the app
const LPORT = 443;
const RPORT = 51000;
const CLIENT_ISN = 0xfffffff0; // near the wrap

const T0 = 1_000_000; // an arbitrary clock origin, mid-tick

function encode(sc: SynCookies, mss: number, now = T0, isn = CLIENT_ISN): number {
  return sc.encode(4, LOCAL, LPORT, REMOTE, RPORT, isn, mss, now);
}

function decode(sc: SynCookies, cookie: number, now = T0, isn = CLIENT_ISN): number {
  return sc.decode(4, LOCAL, LPORT, REMOTE, RPORT, isn, cookie, now);
}

describe('SynCookies (RFC 4987 §3.6)', () => {
  describe('encode/decode', () => {
    it('valid cookie is accepted with its mss', () => {
      const sc = new SynCookies(SECRET);
      expect(decode(sc, encode(sc, 1460))).toBe(1460);
    });

    it('every table entry round trips', () => {
      const sc = new SynCookies(SECRET);
      for (const mss of SYN_COOKIE_MSS_TABLE) expect(decode(sc, encode(sc, mss))).toBe(mss);
    });

    it('mss is rounded down to the table', () => {
      const sc = new SynCookies(SECRET);
      expect(decode(sc, encode(sc, 1459))).toBe(1440);
      expect(decode(sc, encode(sc, 1400))).toBe(1300);
      expect(decode(sc, encode(sc, 9000))).toBe(8960);
      expect(decode(sc, encode(sc, 65535))).toBe(8960);
      expect(decode(sc, encode(sc, 600))).toBe(536);
      expect(SynCookies.roundMss(1459)).toBe(1440);
    });

    it('mss below every entry uses the smallest', () => {
      expect(synCookieMssIndex(10)).toBe(0);
      const sc = new SynCookies(SECRET);
      expect(decode(sc, encode(sc, 10))).toBe(SYN_COOKIE_MSS_TABLE[0]);
    });

    it('wrong tuple is rejected', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460);
      expect(sc.decode(4, v4(0xc6120002), LPORT, REMOTE, RPORT, CLIENT_ISN, c, T0)).toBe(-1);
      expect(sc.decode(4, LOCAL, LPORT + 1, REMOTE, RPORT, CLIENT_ISN, c, T0)).toBe(-1);
      expect(sc.decode(4, LOCAL, LPORT, v4(0x0a000003), RPORT, CLIENT_ISN, c, T0)).toBe(-1);
      expect(sc.decode(4, LOCAL, LPORT, REMOTE, RPORT + 1, CLIENT_ISN, c, T0)).toBe(-1);
      expect(sc.decode(6, LOCAL, LPORT, REMOTE, RPORT, CLIENT_ISN, c, T0)).toBe(-1);
    });

    it('wrong client isn is rejected', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460);
      expect(decode(sc, c, T0, (CLIENT_ISN + 1) >>> 0)).toBe(-1);
    });

    it('every single bit flip is rejected', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460);
      for (let bit = 0; bit < 32; bit++) expect(decode(sc, (c ^ (1 << bit)) >>> 0), `bit ${bit}`).toBe(-1);
    });

    it('random cookies are rejected', () => {
      const sc = new SynCookies(SECRET);
      let accepted = 0;
      // Deterministic xorshift32 stream; with a 26-bit MAC about 2e-4 acceptances are expected.
      let x = 0x9e3779b9;
      for (let i = 0; i < 50_000; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        if (decode(sc, x >>> 0) !== -1) accepted++;
      }
      expect(accepted).toBe(0);
    });

    it('ipv6 cookie round trips and binds all address words', () => {
      const sc = new SynCookies(SECRET);
      const a = new Uint32Array([0x20010db8, 0, 0, 1]);
      const b = new Uint32Array([0x20010db8, 0, 0, 2]);
      const c = sc.encode(6, a, LPORT, b, RPORT, CLIENT_ISN, 1220, T0);
      expect(sc.decode(6, a, LPORT, b, RPORT, CLIENT_ISN, c, T0)).toBe(1220);
      const a2 = new Uint32Array([0x20010db9, 0, 0, 1]);
      expect(sc.decode(6, a2, LPORT, b, RPORT, CLIENT_ISN, c, T0)).toBe(-1);
    });

    it('cookie hides time and mss bits', () => {
      // Same tick and MSS for many client ISNs: the (masked) top 6 bits must still vary.
      const sc = new SynCookies(SECRET);
      const seen = new Set<number>();
      for (let isn = 0; isn < 2000; isn++) seen.add(encode(sc, 1460, T0, isn) >>> 26);
      expect(seen.size).toBeGreaterThan(50);
    });
  });

  describe('age', () => {
    const start = 10 * TICK; // beginning of tick 10

    it('cookie is valid within its tick and the next', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460, start);
      expect(decode(sc, c, start + TICK - 1)).toBe(1460);
      expect(decode(sc, c, start + 2 * TICK - 1)).toBe(1460);
    });

    it('cookie expires after max age ticks', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460, start);
      expect(decode(sc, c, start + 2 * TICK)).toBe(-1);
      expect(decode(sc, c, start + 8 * TICK)).toBe(-1); // same tick modulo 8: the MAC catches it
      expect(decode(sc, c, start + 800 * TICK)).toBe(-1);
    });

    it('cookie from the future is rejected', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460, start + TICK);
      expect(decode(sc, c, start)).toBe(-1);
    });

    it('tick counter wrap is handled (tick 7 -> 8)', () => {
      const sc = new SynCookies(SECRET);
      const c = encode(sc, 1460, 7 * TICK + 5);
      expect(decode(sc, c, 8 * TICK + 5)).toBe(1460);
    });

    it('large clock values work', () => {
      const sc = new SynCookies(SECRET);
      const big = 2 ** 45; // ~1100 years of ms; the tick still fits the MAC word
      expect(decode(sc, encode(sc, 1460, big), big + TICK)).toBe(1460);
    });

    it('custom tick and max age', () => {
      const sc = new SynCookies(SECRET, { tickMs: 1000, maxAgeTicks: 4 });
      const c = encode(sc, 1460, 0);
      expect(decode(sc, c, 3999)).toBe(1460);
      expect(decode(sc, c, 4000)).toBe(-1);
    });

    it('invalid options are rejected with code', () => {
      expect(() => new SynCookies(SECRET, { maxAgeTicks: 8 })).toThrow(SynCookieConfigError);
      try {
        new SynCookies(SECRET, { tickMs: 0 });
        expect.unreachable();
      } catch (err) {
        expect((err as SynCookieConfigError).code).toBe('ERR_TCP_SYNCOOKIE_CONFIG');
      }
    });
  });

  describe('secrets', () => {
    it('default secrets differ per instance', () => {
      const a = new SynCookies();
      const b = new SynCookies();
      expect(encode(a, 1460)).not.toBe(encode(b, 1460));
    });

    it('cookie of another instance is rejected', () => {
      const a = new SynCookies();
      const b = new SynCookies();
      expect(decode(b, encode(a, 1460))).toBe(-1);
    });

    it('same secret gives the same cookie', () => {
      expect(encode(new SynCookies(SECRET), 1460)).toBe(encode(new SynCookies(SECRET), 1460));
    });
  });

  describe('timestamp options', () => {
    const sc = new SynCookies(SECRET);

    it('wscale and sack round trip through tsecr', () => {
      for (let w = -1; w <= 14; w++) {
        for (const sack of [false, true]) {
          const ts = sc.encodeTsOptions(0x12345678, w, sack);
          expect(sc.decodeTsOptions(ts)).toEqual({ wscale: w, sackPermitted: sack });
        }
      }
    });

    it('wscale above 14 is clamped (RFC 7323 §2.3)', () => {
      expect(sc.decodeTsOptions(sc.encodeTsOptions(1000, 15, false))?.wscale).toBe(14);
    });

    it('encoded tsval never runs ahead and stays within 64 ticks', () => {
      for (const now of [0x12345678, 0x12345640, 0x1234567f, 5, 0]) {
        const ts = sc.encodeTsOptions(now, 7, true);
        expect(seqLeq(ts, now)).toBe(true);
        expect(seqDiff(now, ts)).toBeLessThan(64);
      }
    });

    it('encoded tsval wraps below zero', () => {
      const ts = sc.encodeTsOptions(5, 14, true); // options 0x3e > 5: goes back one 64 block
      expect(ts).toBe(0xffffffc0 + 0x3e);
      expect(sc.decodeTsOptions(ts)).toEqual({ wscale: 14, sackPermitted: true });
    });

    it('echo without marker decodes to null', () => {
      expect(sc.decodeTsOptions(0x12345600)).toBeNull();
      expect(sc.decodeTsOptions(0x1f)).toBeNull();
    });
  });
});
